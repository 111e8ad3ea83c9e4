"""Builds the CR or LR retrieval model from a configuration and the data's sizes.

The configuration is anything with the model fields of `tfcr.training.TrainConfig`
(`model`, `embedding_dim`, `hidden_units`, `normalize_embeddings`, `temperature`), so
this layer knows nothing of training. `ModelSizes` is what the data fixes: the lookup
tables' shapes. Training fills the tables from the data (`fill_tables`); export builds the
same model empty and restores a checkpoint, which holds the tables.
"""

import dataclasses
from typing import Optional, Sequence

import numpy as np

from tfcr.data.conditions import ItemConditions
from tfcr.models import MODELS
from tfcr.models.retrieval import RetrievalModel
from tfcr.models.towers import CandidateTower, QueryTower


@dataclasses.dataclass(frozen=True)
class ModelSizes:
  """num_users, num_items: rows of the id tables; user_feature_vocab_sizes: [F] sizes
  of the user feature vocabularies (user_feature_widths: values per user, default 1);
  conditions: which conditions each item has; item_feature_*: the candidate tower's
  features; user_id_rows / item_id_rows: shared id-embedding rows (0: one per id)."""
  num_users: int
  num_items: int
  user_feature_vocab_sizes: Sequence[int]
  conditions: ItemConditions
  user_feature_widths: Optional[Sequence[int]] = None
  item_feature_vocab_sizes: Sequence[int] = ()
  item_feature_widths: Optional[Sequence[int]] = None
  user_id_rows: int = 0
  item_id_rows: int = 0


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
      normalize=config.normalize_embeddings, user_feature_widths=sizes.user_feature_widths,
      num_id_rows=sizes.user_id_rows, name="query_tower")
  candidate_tower = CandidateTower(
      num_items=sizes.num_items, num_conditions=conditions.vocabulary_size,
      max_conditions_per_item=conditions.max_per_item(),
      embedding_dim=config.embedding_dim, hidden_units=config.hidden_units,
      normalize=config.normalize_embeddings,
      item_feature_vocab_sizes=[int(v) for v in sizes.item_feature_vocab_sizes],
      item_feature_widths=sizes.item_feature_widths, num_id_rows=sizes.item_id_rows,
      name="candidate_tower")
  return RetrievalModel(query_tower, candidate_tower, temperature=config.temperature,
                        condition_loss_weight=getattr(config, "condition_loss_weight", 0.0),
                        cross_replica_negatives=getattr(config, "cross_replica_negatives",
                                                        True))


def fill_tables(model: RetrievalModel, user_feature_table: np.ndarray,
                conditions: ItemConditions, item_feature_table: Optional[np.ndarray] = None,
                user_id_rows: Optional[np.ndarray] = None,
                item_id_rows: Optional[np.ndarray] = None) -> RetrievalModel:
  """Writes the data's lookup tables (user -> feature ids, item -> condition ids, item ->
  feature ids, id -> shared embedding row) into the model's non-trainable weights."""
  query, candidate = model.query_tower, model.candidate_tower
  if query.user_features is not None:
    query.user_features.assign_table(user_feature_table)
  candidate.item_conditions.assign_table(conditions.padded())
  if candidate.item_features is not None:
    candidate.item_features.assign_table(item_feature_table)
  if query.num_id_rows:
    query.user_embedding.assign_table(user_id_rows)
  if candidate.num_id_rows:
    candidate.item_embedding.assign_table(item_id_rows)
  return model


def fill_tables_from(model: RetrievalModel, prepared) -> RetrievalModel:
  """fill_tables with every table of a `tfcr.data.prepare.PreparedData`."""
  return fill_tables(model, prepared.user_feature_table, prepared.conditions,
                     prepared.item_feature_table, prepared.user_id_rows,
                     prepared.item_id_rows)


def model_sizes(prepared) -> ModelSizes:
  """The ModelSizes of a `tfcr.data.prepare.PreparedData`."""
  return ModelSizes(
      num_users=prepared.num_users, num_items=prepared.num_items,
      user_feature_vocab_sizes=[f.vocabulary_size for f in prepared.user_features],
      conditions=prepared.conditions,
      user_feature_widths=[f.width for f in prepared.user_features],
      item_feature_vocab_sizes=[f.vocabulary_size for f in prepared.item_features],
      item_feature_widths=[f.width for f in prepared.item_features],
      user_id_rows=prepared.num_user_id_rows, item_id_rows=prepared.num_item_id_rows)
