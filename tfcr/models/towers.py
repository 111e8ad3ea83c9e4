"""The two towers: a query tower over (user, condition) and a candidate tower over items.

Both are Keras layers configured by plain arguments, so `from_config(get_config())`
rebuilds them; the lookup tables they hold (user features, item conditions) are weights.
"""

from typing import Dict, Optional, Sequence

import tensorflow as tf

from tfcr.models.layers import (FeatureEmbeddings, IdEmbedding, MultiHotEmbedding,
                                TableLookup, mlp)


def _maybe_normalize(embeddings: tf.Tensor, normalize: bool) -> tf.Tensor:
  # Unit-length embeddings make the score a cosine: an item's norm can no longer stand
  # in for its popularity, which the logQ correction is meant to handle instead.
  return tf.math.l2_normalize(embeddings, axis=-1) if normalize else embeddings


class QueryTower(tf.keras.layers.Layer):
  """Embeds a user, and optionally a condition, into the retrieval space.

  inputs: {"user": [B] int32 (0 = unknown user, users are 1..num_users),
           "condition": [B] int32 (only when num_conditions > 0)}
  returns: [B, embedding_dim] float32.

  User id, user features and condition are embedded, concatenated and crossed by an
  MLP, so the condition can change which users' tastes matter (the paper's conditional
  user tower). With num_conditions = 0 it is the plain two-tower query tower (LR).
  user_feature_vocab_sizes / user_feature_widths: each feature's vocabulary size and
  values per user (default 1), in a [num_users + 1, sum of widths] table
  (`user_features.assign_table`). num_id_rows > 0: users share that many id-embedding
  rows through a table (`user_embedding.assign_table`, tfcr.data.id_rows).
  """

  def __init__(self, num_users: int, user_feature_vocab_sizes: Sequence[int],
               num_conditions: int, embedding_dim: int = 64, id_embedding_dim: int = 64,
               feature_embedding_dim: int = 16, condition_embedding_dim: int = 32,
               hidden_units: Sequence[int] = (128,), normalize: bool = False,
               user_feature_widths: Optional[Sequence[int]] = None, num_id_rows: int = 0,
               **kwargs):
    super().__init__(**kwargs)
    if num_users < 1 or embedding_dim < 1 or num_conditions < 0:
      raise ValueError(f"QueryTower needs num_users >= 1, embedding_dim >= 1 and "
                       f"num_conditions >= 0, got {num_users!r}, {embedding_dim!r}, "
                       f"{num_conditions!r}.")
    self.num_users = num_users
    self.user_feature_vocab_sizes = [int(v) for v in user_feature_vocab_sizes]
    self.user_feature_widths = ([int(w) for w in user_feature_widths]
                                if user_feature_widths is not None
                                else [1] * len(self.user_feature_vocab_sizes))
    self.num_id_rows = int(num_id_rows)
    self.num_conditions = num_conditions
    self.embedding_dim = embedding_dim
    self.id_embedding_dim = id_embedding_dim
    self.feature_embedding_dim = feature_embedding_dim
    self.condition_embedding_dim = condition_embedding_dim
    self.hidden_units = [int(h) for h in hidden_units]
    self.normalize = bool(normalize)

    # Row 0 of every table stands for "unknown", so unseen users still get an embedding
    # (an untrained id row, near zero, and no feature values).
    self.user_embedding = IdEmbedding(num_users + 1, id_embedding_dim,
                                      num_rows=self.num_id_rows, name="user_id_embedding")
    self.user_features = None
    if self.user_feature_vocab_sizes:
      self.user_features = FeatureEmbeddings(num_users + 1, self.user_feature_vocab_sizes,
                                             self.user_feature_widths,
                                             feature_embedding_dim, name="user_features")
    self.condition_embedding = None
    if num_conditions:
      self.condition_embedding = tf.keras.layers.Embedding(num_conditions,
                                                           condition_embedding_dim)
    self.crossing = mlp(self.hidden_units, embedding_dim, name="query_mlp")

  def call(self, inputs: Dict[str, tf.Tensor]) -> tf.Tensor:
    user = tf.cast(inputs["user"], tf.int32)
    parts = [self.user_embedding(user)]
    if self.user_features is not None:
      parts.append(self.user_features(user))
    if self.condition_embedding is not None:
      parts.append(self.condition_embedding(tf.cast(inputs["condition"], tf.int32)))
    return _maybe_normalize(self.crossing(tf.concat(parts, axis=-1)), self.normalize)

  def get_config(self):
    return {**super().get_config(), "num_users": self.num_users,
            "user_feature_vocab_sizes": self.user_feature_vocab_sizes,
            "user_feature_widths": self.user_feature_widths, "num_id_rows": self.num_id_rows,
            "num_conditions": self.num_conditions, "embedding_dim": self.embedding_dim,
            "id_embedding_dim": self.id_embedding_dim,
            "feature_embedding_dim": self.feature_embedding_dim,
            "condition_embedding_dim": self.condition_embedding_dim,
            "hidden_units": self.hidden_units, "normalize": self.normalize}


class CandidateTower(tf.keras.layers.Layer):
  """Embeds items: id embedding, the multi-hot of the item's conditions and the item's
  features, then an MLP.

  inputs: [B] int32 item rows 0..num_items-1. returns: [B, embedding_dim] float32.
  The item -> conditions table ([num_items, max_conditions_per_item], -1 padded) is a
  weight, filled from the catalog with `item_conditions.assign_table`; so is the item
  feature table (item_feature_vocab_sizes / item_feature_widths, `item_features`). An
  item never trained on is still embedded from its conditions and features (its id row
  is untrained, near zero): new items are served without retraining. num_id_rows > 0:
  items share that many id rows (`item_embedding.assign_table`, tfcr.data.id_rows).
  """

  def __init__(self, num_items: int, num_conditions: int, max_conditions_per_item: int,
               embedding_dim: int = 64, id_embedding_dim: int = 64,
               condition_embedding_dim: int = 32, hidden_units: Sequence[int] = (128,),
               normalize: bool = False, item_feature_vocab_sizes: Sequence[int] = (),
               item_feature_widths: Optional[Sequence[int]] = None,
               feature_embedding_dim: int = 16, num_id_rows: int = 0, **kwargs):
    super().__init__(**kwargs)
    if num_items < 1 or num_conditions < 1 or max_conditions_per_item < 1:
      raise ValueError(f"CandidateTower needs num_items, num_conditions and "
                       f"max_conditions_per_item >= 1, got {num_items!r}, "
                       f"{num_conditions!r}, {max_conditions_per_item!r}.")
    self.num_items = num_items
    self.num_conditions = num_conditions
    self.max_conditions_per_item = max_conditions_per_item
    self.item_feature_vocab_sizes = [int(v) for v in item_feature_vocab_sizes]
    self.item_feature_widths = ([int(w) for w in item_feature_widths]
                                if item_feature_widths is not None
                                else [1] * len(self.item_feature_vocab_sizes))
    self.feature_embedding_dim = feature_embedding_dim
    self.num_id_rows = int(num_id_rows)
    self.embedding_dim = embedding_dim
    self.id_embedding_dim = id_embedding_dim
    self.condition_embedding_dim = condition_embedding_dim
    self.hidden_units = [int(h) for h in hidden_units]
    self.normalize = bool(normalize)

    self.item_embedding = IdEmbedding(num_items, id_embedding_dim, num_rows=self.num_id_rows,
                                      name="item_id_embedding")
    self.item_conditions = TableLookup(num_items, max_conditions_per_item,
                                       name="item_condition_table")
    self.condition_embedding = MultiHotEmbedding(num_conditions, condition_embedding_dim)
    self.item_features = None
    if self.item_feature_vocab_sizes:
      self.item_features = FeatureEmbeddings(num_items, self.item_feature_vocab_sizes,
                                             self.item_feature_widths,
                                             feature_embedding_dim, name="item_features")
    self.crossing = mlp(self.hidden_units, embedding_dim, name="candidate_mlp")

  def call(self, item: tf.Tensor) -> tf.Tensor:
    item = tf.cast(item, tf.int32)
    parts = [self.item_embedding(item),
             self.condition_embedding(self.item_conditions(item))]
    if self.item_features is not None:
      parts.append(self.item_features(item))
    return _maybe_normalize(self.crossing(tf.concat(parts, axis=-1)), self.normalize)

  def get_config(self):
    return {**super().get_config(), "num_items": self.num_items,
            "num_conditions": self.num_conditions,
            "max_conditions_per_item": self.max_conditions_per_item,
            "embedding_dim": self.embedding_dim, "id_embedding_dim": self.id_embedding_dim,
            "condition_embedding_dim": self.condition_embedding_dim,
            "hidden_units": self.hidden_units, "normalize": self.normalize,
            "item_feature_vocab_sizes": self.item_feature_vocab_sizes,
            "item_feature_widths": self.item_feature_widths,
            "feature_embedding_dim": self.feature_embedding_dim,
            "num_id_rows": self.num_id_rows}
