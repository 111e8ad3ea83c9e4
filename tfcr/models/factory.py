"""Builds the CR or LR retrieval model from a configuration and the data's sizes.

The configuration is anything with the model fields of `tfcr.training.TrainConfig`
(`model`, `embedding_dim`, `hidden_units`, `normalize_embeddings`, `temperature`), so
this layer knows nothing of training. `ModelSizes` is what the data fixes: the lookup
tables' shapes. Training fills the tables from the data (`fill_tables`); export builds the
same model empty and restores a checkpoint, which holds the tables.
"""

import dataclasses
from typing import Sequence

import numpy as np

from tfcr.data.conditions import ItemConditions
from tfcr.models import MODELS
from tfcr.models.retrieval import RetrievalModel
from tfcr.models.towers import CandidateTower, QueryTower


@dataclasses.dataclass(frozen=True)
class ModelSizes:
  """num_users, num_items: rows of the id tables; user_feature_vocab_sizes: [F] sizes
  of the user feature vocabularies; conditions: which conditions each item has."""
  num_users: int
  num_items: int
  user_feature_vocab_sizes: Sequence[int]
  conditions: ItemConditions


def build_model(config, sizes: ModelSizes) -> RetrievalModel:
  """The CR (`config.model == "cr"`) or LR model with empty lookup tables."""
  if config.model not in MODELS:
    raise ValueError(f"Unknown model={config.model!r}; valid values: {', '.join(MODELS)}.")
  conditions = sizes.conditions
  query_tower = QueryTower(
      num_users=sizes.num_users,
      user_feature_vocab_sizes=[int(v) for v in sizes.user_feature_vocab_sizes],
      num_conditions=conditions.vocabulary_size if config.model == "cr" else 0,
      embedding_dim=config.embedding_dim, hidden_units=config.hidden_units,
      normalize=config.normalize_embeddings, name="query_tower")
  candidate_tower = CandidateTower(
      num_items=sizes.num_items, num_conditions=conditions.vocabulary_size,
      max_conditions_per_item=conditions.max_per_item(),
      embedding_dim=config.embedding_dim, hidden_units=config.hidden_units,
      normalize=config.normalize_embeddings, name="candidate_tower")
  return RetrievalModel(query_tower, candidate_tower, temperature=config.temperature,
                        cross_replica_negatives=getattr(config, "cross_replica_negatives",
                                                        True))


def fill_tables(model: RetrievalModel, user_feature_table: np.ndarray,
                conditions: ItemConditions) -> RetrievalModel:
  """Writes the data's lookup tables (user -> feature ids, item -> condition ids) into
  the model's non-trainable weights."""
  if model.query_tower.user_features is not None:
    model.query_tower.user_features.assign_table(user_feature_table)
  model.candidate_tower.item_conditions.assign_table(conditions.padded())
  return model
