"""Turns a `RecData` into the integer arrays the model trains and evaluates on."""

import dataclasses
from typing import List, Optional

import numpy as np

from tfcr.data import derived
from tfcr.data.conditions import ItemConditions
from tfcr.data.schema import Interactions, RecData
from tfcr.data.split import leave_last_n_out
from tfcr.errors import DataError

OOV_FEATURE = "[OOV]"


@dataclasses.dataclass
class PreparedData:
  """Everything derived from one data set, split and condition feature.

  user_feature_names: [F] names; user_feature_vocabularies: F arrays, index 0 = OOV.
  user_feature_table: [U + 1, F] int32 feature ids; row 0 is the unknown user (all OOV),
    row u + 1 is user row u: model user ids are shifted by one for that reason.
  item_probability: [I] float32, each item's share of training interactions (the
    sampling probability of in-batch negatives, for the logQ correction).
  """
  data: RecData
  conditions: ItemConditions
  user_feature_names: List[str]
  user_feature_vocabularies: List[np.ndarray]
  user_feature_table: np.ndarray
  train: Interactions
  test: Interactions
  item_probability: np.ndarray

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


def encode_categorical(column: np.ndarray):
  """[U] str -> (vocabulary [V + 1] with index 0 = OOV, ids [U] int32 in 1..V)."""
  values, ids = np.unique(np.asarray(column).astype(str), return_inverse=True)
  vocabulary = np.concatenate([[OOV_FEATURE], values]).astype(object)
  return vocabulary, (ids + 1).astype(np.int32)


def prepare(data: RecData, condition_feature: str, test_per_user: int = 2,
            min_rating: Optional[float] = None) -> PreparedData:
  """Conditions, user feature ids, the temporal split and the sampling probabilities.

  A derived condition feature (e.g. decade) is computed here when asked for. Raises
  ConfigError for an unknown feature and DataError when nothing is left to train or test
  on, before anything is written anywhere.
  """
  data = dataclasses.replace(data, catalog=derived.with_feature(data.catalog,
                                                                condition_feature))
  conditions = ItemConditions.from_catalog(data.catalog, condition_feature)
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

  names = sorted(data.users.features)
  vocabularies, columns = [], []
  for name in names:
    vocabulary, ids = encode_categorical(data.users.features[name])
    vocabularies.append(vocabulary)
    columns.append(ids)
  table = np.zeros((len(data.users) + 1, len(names)), dtype=np.int32)
  if names:
    table[1:] = np.stack(columns, axis=1)

  counts = np.bincount(split.train.item_index, minlength=len(data.catalog))
  # Items never trained on never appear as in-batch negatives; the floor only keeps
  # log(p) finite.
  probability = np.maximum(counts, 1).astype(np.float64) / max(len(split.train), 1)
  return PreparedData(data, conditions, names, vocabularies, table, split.train,
                      split.test, probability.astype(np.float32))
