"""Small serializable Keras layers the towers are built from."""

from typing import Sequence

import tensorflow as tf


class TableLookup(tf.keras.layers.Layer):
  """Looks up rows of a fixed integer table stored in the model (no side files).

  ids: [B] int -> [B, num_columns] int32. The table is a non-trainable weight, so it is
  saved in checkpoints and SavedModels; fill it with `assign_table` after building.
  """

  def __init__(self, num_rows: int, num_columns: int, **kwargs):
    super().__init__(**kwargs)
    if num_rows < 1 or num_columns < 1:
      raise ValueError(f"TableLookup needs num_rows >= 1 and num_columns >= 1, got "
                       f"num_rows={num_rows!r}, num_columns={num_columns!r}.")
    self.num_rows = num_rows
    self.num_columns = num_columns
    self.table = self.add_weight(name="table", shape=(num_rows, num_columns),
                                 dtype=tf.int32, initializer="zeros", trainable=False)

  def assign_table(self, values) -> None:
    values = tf.convert_to_tensor(values, tf.int32)
    if tuple(values.shape) != (self.num_rows, self.num_columns):
      raise ValueError(f"{self.name}: table has shape {(self.num_rows, self.num_columns)}, "
                       f"got values of shape {tuple(values.shape)}.")
    self.table.assign(values)

  def call(self, ids):
    return tf.gather(self.table, tf.cast(ids, tf.int32))

  def get_config(self):
    return {**super().get_config(), "num_rows": self.num_rows,
            "num_columns": self.num_columns}


class MultiHotEmbedding(tf.keras.layers.Layer):
  """Sum of the embeddings of a padded list of ids: a multi-hot vector times a matrix.

  ids: [B, M] int with -1 as padding -> [B, output_dim]; an all-padding row gives zeros.
  A sum (not a mean) keeps "has value v" linearly visible whatever else the row has, which
  is what a condition query needs to match.
  """

  def __init__(self, input_dim: int, output_dim: int, **kwargs):
    super().__init__(**kwargs)
    if input_dim < 1 or output_dim < 1:
      raise ValueError(f"MultiHotEmbedding needs input_dim >= 1 and output_dim >= 1, got "
                       f"input_dim={input_dim!r}, output_dim={output_dim!r}.")
    self.input_dim = input_dim
    self.output_dim = output_dim
    self.embedding = tf.keras.layers.Embedding(input_dim, output_dim)

  def call(self, ids):
    mask = tf.cast(ids >= 0, tf.float32)[..., tf.newaxis]
    return tf.reduce_sum(self.embedding(tf.maximum(ids, 0)) * mask, axis=1)

  def get_config(self):
    return {**super().get_config(), "input_dim": self.input_dim,
            "output_dim": self.output_dim}


def mlp(hidden_units: Sequence[int], output_dim: int, name: str) -> tf.keras.Sequential:
  """Feature-crossing layers: ReLU layers, then a linear projection to the embedding."""
  layers = [tf.keras.layers.Dense(units, activation="relu") for units in hidden_units]
  layers.append(tf.keras.layers.Dense(output_dim))
  return tf.keras.Sequential(layers, name=name)
