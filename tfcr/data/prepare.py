"""Turns a `RecData` into the integer arrays the model trains and evaluates on."""

import dataclasses
from typing import List, Optional, Sequence

import numpy as np

from tfcr.data import conditions as conditions_lib
from tfcr.data import derived
from tfcr.data import features as features_lib
from tfcr.data import id_rows
from tfcr.data.conditions import ItemConditions
from tfcr.data.features import EncodedFeature
from tfcr.data.schema import Interactions, RecData
from tfcr.data.split import leave_last_n_out
from tfcr.errors import DataError


@dataclasses.dataclass
class PreparedData:
  """Everything derived from one data set, split, condition and feature settings.

  user_features: the query tower's features; their tables have U + 1 rows: row 0 is the
    unknown user (no values), row u + 1 is user row u (model user ids are shifted by one
    for that reason).
  item_features: the candidate tower's features, tables of I rows.
  user_id_rows: [U + 1] int32 id-embedding row of each model user id, and item_id_rows:
    [I] of each item (`tfcr.data.id_rows`); None when every id has its own row.
  item_probability: [I] float32, each item's share of training interactions (the
    sampling probability of in-batch negatives, for the logQ correction).
  """
  data: RecData
  conditions: ItemConditions
  user_features: List[EncodedFeature]
  item_features: List[EncodedFeature]
  train: Interactions
  test: Interactions
  item_probability: np.ndarray
  user_id_rows: Optional[np.ndarray] = None
  num_user_id_rows: int = 0
  item_id_rows: Optional[np.ndarray] = None
  num_item_id_rows: int = 0

  @property
  def user_feature_names(self) -> List[str]:
    return [f.name for f in self.user_features]

  @property
  def user_feature_table(self) -> np.ndarray:
    """[U + 1, sum of widths] int32: the query tower's feature table."""
    return features_lib.stacked_table(self.user_features, self.num_users + 1)

  @property
  def item_feature_table(self) -> np.ndarray:
    """[I, sum of widths] int32: the candidate tower's feature table."""
    return features_lib.stacked_table(self.item_features, self.num_items)

  @property
  def num_users(self) -> int:
    return len(self.data.users)

  @property
  def num_items(self) -> int:
    return len(self.data.catalog)

  def train_items_of_users(self):
    """CSR (row_splits [U + 1], items [N]) of each user's training items, for exclusion."""
    order = np.argsort(self.train.user_index, kind="stable")
    counts = np.bincount(self.train.user_index, minlength=self.num_users)
    row_splits = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return row_splits, self.train.item_index[order]


def prepare(data: RecData, condition_feature: str, test_per_user: int = 2,
            min_rating: Optional[float] = None,
            user_features: Optional[Sequence[str]] = None,
            item_features: Sequence[str] = (), max_vocabulary: int = 0,
            hash_buckets: int = 0) -> PreparedData:
  """Conditions, tower features, the temporal split, id rows and sampling probabilities.

  user_features: user columns for the query tower (None: all of the users table's);
  item_features: item columns for the candidate tower (`tfcr.data.features`).
  max_vocabulary, hash_buckets: id-embedding rows (`tfcr.data.id_rows`).
  A derived condition feature (e.g. decade) is computed here when asked for. Raises
  ConfigError for an unknown feature and DataError when nothing is left to train or test
  on, before anything is written anywhere.
  """
  id_rows.validate(max_vocabulary, hash_buckets)
  catalog = data.catalog
  for name in conditions_lib.feature_names(condition_feature):
    catalog = derived.with_feature(catalog, name)
  data = dataclasses.replace(data, catalog=catalog)
  conditions = ItemConditions.from_catalog(data.catalog, condition_feature)
  available_users = features_lib.user_columns(data.users)
  user_names = features_lib.select_columns(available_users, user_features, "user_features")
  available_items = features_lib.item_columns(data.catalog)
  item_names = features_lib.select_columns(available_items, item_features, "item_features")
  before = len(data.interactions)
  data = data.positives(min_rating)
  if len(data.interactions) == 0:
    raise DataError(f"{data.name}: no interaction has a rating >= min_rating={min_rating} "
                    f"(of {before}); use a lower min_rating or none.")
  split = leave_last_n_out(data.interactions, test_per_user)
  if len(split.test) == 0:
    raise DataError(f"{data.name}: the test split is empty: no user has more than "
                    f"test_per_user={test_per_user} interactions; use a smaller "
                    f"test_per_user.")

  user_encoded = [f.with_unknown_row()
                  for f in features_lib.encode_features(available_users, user_names)]
  item_encoded = features_lib.encode_features(available_items, item_names)

  counts = np.bincount(split.train.item_index, minlength=len(data.catalog))
  # Items never trained on never appear as in-batch negatives; the floor only keeps
  # log(p) finite.
  probability = np.maximum(counts, 1).astype(np.float64) / max(len(split.train), 1)
  prepared = PreparedData(data, conditions, user_encoded, item_encoded, split.train,
                          split.test, probability.astype(np.float32))
  if id_rows.is_hashed(max_vocabulary, hash_buckets):
    user_counts = np.bincount(split.train.user_index, minlength=len(data.users))
    user_rows, prepared.num_user_id_rows = id_rows.embedding_rows(
        data.users.user_id, user_counts, max_vocabulary, hash_buckets)
    prepared.user_id_rows = np.concatenate([[0], user_rows]).astype(np.int32)
    prepared.item_id_rows, prepared.num_item_id_rows = id_rows.embedding_rows(
        data.catalog.item_id, counts, max_vocabulary, hash_buckets)
  return prepared
