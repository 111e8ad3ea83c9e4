"""The two towers: a query tower over (user, condition) and a candidate tower over items.

Both are Keras layers configured by plain arguments, so `from_config(get_config())`
rebuilds them; the lookup tables they hold (user features, item conditions) are weights.
"""

from typing import Dict, Sequence

import tensorflow as tf

from tfcr.models.layers import MultiHotEmbedding, TableLookup, mlp


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
  """

  def __init__(self, num_users: int, user_feature_vocab_sizes: Sequence[int],
               num_conditions: int, embedding_dim: int = 64, id_embedding_dim: int = 64,
               feature_embedding_dim: int = 16, condition_embedding_dim: int = 32,
               hidden_units: Sequence[int] = (128,), normalize: bool = False, **kwargs):
    super().__init__(**kwargs)
    if num_users < 1 or embedding_dim < 1 or num_conditions < 0:
      raise ValueError(f"QueryTower needs num_users >= 1, embedding_dim >= 1 and "
                       f"num_conditions >= 0, got {num_users!r}, {embedding_dim!r}, "
                       f"{num_conditions!r}.")
    self.num_users = num_users
    self.user_feature_vocab_sizes = [int(v) for v in user_feature_vocab_sizes]
    self.num_conditions = num_conditions
    self.embedding_dim = embedding_dim
    self.id_embedding_dim = id_embedding_dim
    self.feature_embedding_dim = feature_embedding_dim
    self.condition_embedding_dim = condition_embedding_dim
    self.hidden_units = [int(h) for h in hidden_units]
    self.normalize = bool(normalize)

    # Row 0 of every table stands for "unknown", so unseen users still get an embedding.
    self.user_embedding = tf.keras.layers.Embedding(num_users + 1, id_embedding_dim)
    self.user_features = None
    self.feature_embeddings = []
    if self.user_feature_vocab_sizes:
      self.user_features = TableLookup(num_users + 1, len(self.user_feature_vocab_sizes),
                                       name="user_feature_table")
      self.feature_embeddings = [
          tf.keras.layers.Embedding(size, feature_embedding_dim)
          for size in self.user_feature_vocab_sizes]
    self.condition_embedding = None
    if num_conditions:
      self.condition_embedding = tf.keras.layers.Embedding(num_conditions,
                                                           condition_embedding_dim)
    self.crossing = mlp(self.hidden_units, embedding_dim, name="query_mlp")

  def call(self, inputs: Dict[str, tf.Tensor]) -> tf.Tensor:
    user = tf.cast(inputs["user"], tf.int32)
    parts = [self.user_embedding(user)]
    if self.user_features is not None:
      feature_ids = self.user_features(user)
      parts += [embedding(feature_ids[:, i])
                for i, embedding in enumerate(self.feature_embeddings)]
    if self.condition_embedding is not None:
      parts.append(self.condition_embedding(tf.cast(inputs["condition"], tf.int32)))
    return _maybe_normalize(self.crossing(tf.concat(parts, axis=-1)), self.normalize)

  def get_config(self):
    return {**super().get_config(), "num_users": self.num_users,
            "user_feature_vocab_sizes": self.user_feature_vocab_sizes,
            "num_conditions": self.num_conditions, "embedding_dim": self.embedding_dim,
            "id_embedding_dim": self.id_embedding_dim,
            "feature_embedding_dim": self.feature_embedding_dim,
            "condition_embedding_dim": self.condition_embedding_dim,
            "hidden_units": self.hidden_units, "normalize": self.normalize}


class CandidateTower(tf.keras.layers.Layer):
  """Embeds items: id embedding plus the multi-hot of the item's conditions, then an MLP.

  inputs: [B] int32 item rows 0..num_items-1. returns: [B, embedding_dim] float32.
  The item -> conditions table ([num_items, max_conditions_per_item], -1 padded) is a
  weight, filled from the catalog with `item_conditions.assign_table`.
  """

  def __init__(self, num_items: int, num_conditions: int, max_conditions_per_item: int,
               embedding_dim: int = 64, id_embedding_dim: int = 64,
               condition_embedding_dim: int = 32, hidden_units: Sequence[int] = (128,),
               normalize: bool = False, **kwargs):
    super().__init__(**kwargs)
    if num_items < 1 or num_conditions < 1 or max_conditions_per_item < 1:
      raise ValueError(f"CandidateTower needs num_items, num_conditions and "
                       f"max_conditions_per_item >= 1, got {num_items!r}, "
                       f"{num_conditions!r}, {max_conditions_per_item!r}.")
    self.num_items = num_items
    self.num_conditions = num_conditions
    self.max_conditions_per_item = max_conditions_per_item
    self.embedding_dim = embedding_dim
    self.id_embedding_dim = id_embedding_dim
    self.condition_embedding_dim = condition_embedding_dim
    self.hidden_units = [int(h) for h in hidden_units]
    self.normalize = bool(normalize)

    self.item_embedding = tf.keras.layers.Embedding(num_items, id_embedding_dim)
    self.item_conditions = TableLookup(num_items, max_conditions_per_item,
                                       name="item_condition_table")
    self.condition_embedding = MultiHotEmbedding(num_conditions, condition_embedding_dim)
    self.crossing = mlp(self.hidden_units, embedding_dim, name="candidate_mlp")

  def call(self, item: tf.Tensor) -> tf.Tensor:
    item = tf.cast(item, tf.int32)
    parts = [self.item_embedding(item),
             self.condition_embedding(self.item_conditions(item))]
    return _maybe_normalize(self.crossing(tf.concat(parts, axis=-1)), self.normalize)

  def get_config(self):
    return {**super().get_config(), "num_items": self.num_items,
            "num_conditions": self.num_conditions,
            "max_conditions_per_item": self.max_conditions_per_item,
            "embedding_dim": self.embedding_dim, "id_embedding_dim": self.id_embedding_dim,
            "condition_embedding_dim": self.condition_embedding_dim,
            "hidden_units": self.hidden_units, "normalize": self.normalize}
