"""Condition extraction: one condition per training example, from the engaged item.

The paper's key trick: a (user, item) engagement pair becomes a (user, condition, item)
example by sampling the condition uniformly from the item's own values of a categorical
feature (its genres, topics, decade...). No condition-specific engagement data is needed.

Condition ids used by the model:

* 0 `OOV_TOKEN`: a value the model has never seen (only at serving time).
* 1 `NONE_TOKEN`: "no condition": items without any value, and queries with condition "".
* 2.. the feature's values, in vocabulary order.

Several condition types can share one model (`condition_feature="genres,decade"`): the
vocabulary is then the union of their values, each named "feature=value" (e.g.
"genres=Comedy", "decade=1990s"), and a request names one value.
"""

import dataclasses
from typing import List, Optional, Sequence, Tuple

import numpy as np

from tfcr.data.schema import Catalog, MultiValued
from tfcr.errors import ConfigError

OOV_TOKEN = "[OOV]"
NONE_TOKEN = "[NONE]"
OOV_ID = 0
NONE_ID = 1
NUM_RESERVED = 2


# "genres,decade": several condition types in one model.
FEATURE_SEPARATOR = ","
# A value of one of several condition types is named "feature=value" ("decade=1990s").
VALUE_SEPARATOR = "="


def feature_names(condition_feature: str) -> List[str]:
  """The item features of a condition_feature setting: "genres" or "genres,decade"."""
  names = [n.strip() for n in condition_feature.split(FEATURE_SEPARATOR)]
  if not all(names):
    raise ConfigError(f"Bad condition_feature={condition_feature!r}: name one item feature, "
                      f"or several separated by {FEATURE_SEPARATOR!r}.")
  if len(set(names)) < len(names):
    raise ConfigError(f"condition_feature={condition_feature!r} names a feature twice.")
  return names


def union_of_features(catalog: Catalog, names: Sequence[str]) -> MultiValued:
  """Each item's values of all `names`, namespaced ("decade=1990s"), in the order of
  `names`: one condition vocabulary over several condition types, so a training example
  samples uniformly among all of its item's values and a request names one of them."""
  vocabularies, rows, codes, offset = [], [], [], 0
  for name in names:
    feature = catalog.features[name]
    vocabularies.append(np.array([f"{name}{VALUE_SEPARATOR}{v}" for v in feature.vocabulary],
                                 dtype=object))
    rows.append(np.repeat(np.arange(feature.num_rows), feature.lengths()))
    codes.append(feature.value_ids.astype(np.int64) + offset)
    offset += len(feature.vocabulary)
  rows, codes = np.concatenate(rows), np.concatenate(codes)
  order = np.argsort(rows, kind="stable")  # grouped by item, each feature's values in order
  counts = np.bincount(rows, minlength=len(catalog))
  row_splits = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
  return MultiValued.from_codes(np.concatenate(vocabularies), row_splits,
                                codes[order].astype(np.int32))


@dataclasses.dataclass(frozen=True)
class ItemConditions:
  """Which conditions each item has, in model ids.

  vocabulary: [C] str, index = condition id (0 = OOV, 1 = NONE, then the values).
  row_splits: [I + 1] int64 and ids: [nnz] int32, CSR of each item's condition ids; an
    item without values has exactly one id, NONE_ID, so every item has >= 1 condition.
  """
  feature: str
  vocabulary: np.ndarray
  row_splits: np.ndarray
  ids: np.ndarray

  @classmethod
  def from_catalog(cls, catalog: Catalog, feature: str) -> "ItemConditions":
    """The conditions of item feature `feature`, or of several ("genres,decade": see
    `union_of_features`)."""
    names = feature_names(feature)
    for name in names:
      if name not in catalog.features:
        raise ConfigError(f"Unknown condition_feature={name!r}; valid values: "
                          f"{', '.join(sorted(catalog.features)) or '(catalog has none)'}.")
    if len(names) == 1:
      return cls.from_multi_valued(feature, catalog.features[feature])
    return cls.from_multi_valued(feature, union_of_features(catalog, names))

  @classmethod
  def from_multi_valued(cls, feature: str, values: MultiValued) -> "ItemConditions":
    lengths = values.lengths()
    empty = lengths == 0
    # Items without a value get the single NONE condition, so sampling always succeeds.
    new_lengths = np.where(empty, 1, lengths)
    row_splits = np.concatenate([[0], np.cumsum(new_lengths)]).astype(np.int64)
    ids = np.full(row_splits[-1], NONE_ID, dtype=np.int32)
    has_values = np.repeat(~empty, new_lengths)
    ids[has_values] = values.value_ids + NUM_RESERVED
    vocabulary = np.concatenate([[OOV_TOKEN, NONE_TOKEN], values.vocabulary]).astype(object)
    return cls(feature, vocabulary, row_splits, ids)

  @property
  def num_items(self) -> int:
    return len(self.row_splits) - 1

  @property
  def vocabulary_size(self) -> int:
    return len(self.vocabulary)

  def lengths(self) -> np.ndarray:
    return np.diff(self.row_splits)

  def max_per_item(self) -> int:
    return int(self.lengths().max()) if self.num_items else 1

  def padded(self) -> np.ndarray:
    """[I, max_per_item] int32 condition ids, right-padded with -1."""
    lengths = self.lengths()
    out = np.full((self.num_items, self.max_per_item()), -1, dtype=np.int32)
    columns = np.arange(len(self.ids)) - np.repeat(self.row_splits[:-1], lengths)
    out[np.repeat(np.arange(self.num_items), lengths), columns] = self.ids
    return out

  def membership(self) -> "np.ndarray":
    """[I, C] bool: whether item i has condition c (dense; fine for C in the hundreds)."""
    out = np.zeros((self.num_items, self.vocabulary_size), dtype=bool)
    out[np.repeat(np.arange(self.num_items), self.lengths()), self.ids] = True
    return out

  def items_by_condition(self, rank: Optional[np.ndarray] = None
                         ) -> Tuple[np.ndarray, np.ndarray]:
    """The inversion condition -> items, as CSR over condition ids: (row_splits [C + 1]
    int64, items [nnz] int32). Within a condition, items ascend by `rank` ([I], e.g.
    minus popularity), ties by row; without `rank`, by row. NONE holds the items
    without a value; OOV none."""
    item_of_entry = np.repeat(np.arange(self.num_items), self.lengths())
    keys = (item_of_entry,) if rank is None else (item_of_entry,
                                                   np.asarray(rank)[item_of_entry])
    order = np.lexsort(keys + (self.ids,))
    counts = np.bincount(self.ids, minlength=self.vocabulary_size)
    row_splits = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return row_splits, item_of_entry[order].astype(np.int32)

  def has_value(self) -> np.ndarray:
    """[I] bool: whether each item has a value of the feature (is not NONE)."""
    return self.ids[self.row_splits[:-1]] != NONE_ID

  def ids_of(self, values: Sequence[str]) -> np.ndarray:
    """Maps condition strings to ids: "" -> NONE_ID, unknown -> OOV_ID."""
    position = {v: i for i, v in enumerate(self.vocabulary)}
    return np.array([NONE_ID if v == "" else position.get(v, OOV_ID) for v in values],
                    dtype=np.int32)

  def sample(self, item_index: np.ndarray, uniform: np.ndarray) -> np.ndarray:
    """Picks one condition per example, uniformly among the item's conditions.

    item_index: [N] int; uniform: [N] float in [0, 1). Returns [N] int32 condition ids.
    """
    start = self.row_splits[item_index]
    count = self.row_splits[item_index + 1] - start
    offset = np.minimum((uniform * count).astype(np.int64), count - 1)
    return self.ids[start + offset]

  def sample_with_seed(self, item_index: np.ndarray, seed: int) -> np.ndarray:
    """NumPy sampling with a fixed seed: used for evaluation queries."""
    rng = np.random.default_rng(seed)
    return self.sample(np.asarray(item_index), rng.random(len(item_index)))
