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


class FeatureEmbeddings(tf.keras.layers.Layer):
  """Rows of a table -> the concatenated embeddings of each feature's values.

  The table ([num_rows, sum(widths)] int32, -1 padded; filled with `assign_table`) holds
  the features side by side, feature f in `widths[f]` columns; each is embedded as the
  sum of its values' embeddings, so a row without values gives zeros.
  rows: [B] int -> [B, len(vocab_sizes) * output_dim].
  """

  def __init__(self, num_rows: int, vocab_sizes: Sequence[int], widths: Sequence[int],
               output_dim: int, **kwargs):
    super().__init__(**kwargs)
    self.num_rows = int(num_rows)
    self.vocab_sizes = [int(v) for v in vocab_sizes]
    self.widths = [int(w) for w in widths]
    self.output_dim = int(output_dim)
    if not self.vocab_sizes or len(self.widths) != len(self.vocab_sizes):
      raise ValueError(f"FeatureEmbeddings needs one width per feature and >= 1 feature, "
                       f"got vocab_sizes={self.vocab_sizes}, widths={self.widths}.")
    self.table = TableLookup(self.num_rows, sum(self.widths), name="feature_table")
    self.embeddings = [MultiHotEmbedding(size, self.output_dim, name=f"feature_{i}")
                       for i, size in enumerate(self.vocab_sizes)]

  def assign_table(self, values) -> None:
    self.table.assign_table(values)

  def call(self, rows):
    ids = self.table(rows)
    parts, start = [], 0
    for width, embedding in zip(self.widths, self.embeddings):
      parts.append(embedding(ids[:, start:start + width]))
      start += width
    return tf.concat(parts, axis=-1)

  def get_config(self):
    return {**super().get_config(), "num_rows": self.num_rows,
            "vocab_sizes": self.vocab_sizes, "widths": self.widths,
            "output_dim": self.output_dim}


class IdEmbedding(tf.keras.layers.Layer):
  """An id embedding with one row per id, or rows shared through a table.

  num_ids: ids 0..num_ids-1. num_rows = 0: one row per id. num_rows > 0: id -> row by a
  [num_ids, 1] table (`assign_table`; tfcr.data.id_rows: frequent ids own a row, the
  tail shares hashed rows), so the embedding has num_rows rows however many ids there are.
  """

  def __init__(self, num_ids: int, output_dim: int, num_rows: int = 0, **kwargs):
    super().__init__(**kwargs)
    self.num_ids, self.output_dim, self.num_rows = int(num_ids), int(output_dim), int(num_rows)
    self.rows = (TableLookup(self.num_ids, 1, name="id_row_table")
                 if self.num_rows else None)
    self.embedding = tf.keras.layers.Embedding(self.num_rows or self.num_ids,
                                               self.output_dim)

  def assign_table(self, rows) -> None:
    if self.rows is None:
      raise ValueError(f"{self.name}: one row per id, no table to fill.")
    self.rows.assign_table(tf.reshape(tf.convert_to_tensor(rows, tf.int32), [-1, 1]))

  def call(self, ids):
    ids = tf.cast(ids, tf.int32)
    if self.rows is not None:
      ids = self.rows(ids)[:, 0]
    return self.embedding(ids)

  def get_config(self):
    return {**super().get_config(), "num_ids": self.num_ids,
            "output_dim": self.output_dim, "num_rows": self.num_rows}


def mlp(hidden_units: Sequence[int], output_dim: int, name: str) -> tf.keras.Sequential:
  """Feature-crossing layers: ReLU layers, then a linear projection to the embedding."""
  layers = [tf.keras.layers.Dense(units, activation="relu") for units in hidden_units]
  layers.append(tf.keras.layers.Dense(output_dim))
  return tf.keras.Sequential(layers, name=name)
