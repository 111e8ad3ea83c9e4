"""tfcr's in-memory data schema, shared by every data source.

Every source (MovieLens files, TFDS, the synthetic generator, DataFrames) produces a `RecData`:

* `Users`: `user_id` [U] str and `features` {name: [U] str (categorical), [U] numbers
  (numeric), or `MultiValued`}, which the query tower can read.
* `Catalog`: `item_id` [I] str, categorical, possibly multi-valued `features`
  {name: `MultiValued`} such as genres (any of them can be the condition, and the
  candidate tower can read them), and optional `metadata` {name: [I] values} such as a
  title or a year: shown by clients; numeric ones can be candidate-tower features.
* `Interactions`: `user_index` [N] int32 and `item_index` [N] int32 (row numbers in the
  user and item tables), `rating` [N] float32, `timestamp` [N] int64.

Rows are referenced by position rather than by id so that millions of interactions stay
plain NumPy arrays; ids are strings because that is what the servable is queried with.
"""

import dataclasses
from typing import Dict, Iterable, Optional, Sequence

import numpy as np

from tfcr.errors import DataError


@dataclasses.dataclass(frozen=True)
class MultiValued:
  """A categorical feature with zero or more values per row, stored as CSR.

  vocabulary: [V] str, the distinct values, sorted.
  row_splits: [R + 1] int64; row r holds `value_ids[row_splits[r]:row_splits[r + 1]]`.
  value_ids: [nnz] int32 indices into `vocabulary`.
  """
  vocabulary: np.ndarray
  row_splits: np.ndarray
  value_ids: np.ndarray

  @classmethod
  def from_lists(cls, rows: Iterable[Sequence[str]]) -> "MultiValued":
    """Builds from one list of string values per row; a plain string is one value."""
    rows = [[r] if isinstance(r, str) else list(r) for r in rows]
    rows = [[v for v in dict.fromkeys(r) if v != ""] for r in rows]  # dedupe, drop ""
    vocabulary = np.array(sorted({v for r in rows for v in r}), dtype=object)
    position = {v: i for i, v in enumerate(vocabulary)}
    lengths = np.array([len(r) for r in rows], dtype=np.int64)
    row_splits = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    value_ids = np.array([position[v] for r in rows for v in r], dtype=np.int32)
    return cls(vocabulary, row_splits, value_ids)

  @classmethod
  def from_codes(cls, vocabulary: Sequence[str], row_splits: np.ndarray,
                 value_ids: np.ndarray) -> "MultiValued":
    """Builds from integer codes (fast path for millions of rows)."""
    vocabulary = np.asarray(vocabulary, dtype=object)
    order = np.argsort(vocabulary)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return cls(vocabulary[order], np.asarray(row_splits, np.int64),
               rank[np.asarray(value_ids)].astype(np.int32))

  @property
  def num_rows(self) -> int:
    return len(self.row_splits) - 1

  def lengths(self) -> np.ndarray:
    return np.diff(self.row_splits)

  def row(self, r: int) -> list:
    return list(self.vocabulary[self.value_ids[self.row_splits[r]:self.row_splits[r + 1]]])

  def to_lists(self) -> list:
    return [self.row(r) for r in range(self.num_rows)]

  def take(self, rows: np.ndarray) -> "MultiValued":
    lists = [self.row(r) for r in rows]
    return MultiValued.from_lists(lists)


@dataclasses.dataclass
class Users:
  user_id: np.ndarray
  features: Dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

  def __len__(self):
    return len(self.user_id)


@dataclasses.dataclass
class Catalog:
  item_id: np.ndarray
  features: Dict[str, MultiValued] = dataclasses.field(default_factory=dict)
  # Metadata, e.g. {"title": [I] str, "year": [I] int}: shown by clients, usable by
  # derived features (tfcr.data.derived); a numeric one is a candidate-tower feature
  # only when named in item_features (tfcr.data.features).
  metadata: Dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

  def __len__(self):
    return len(self.item_id)

  def with_feature(self, name: str, rows) -> "Catalog":
    """Returns a copy with one more categorical item feature.

    rows: one value (str) or list of values per item, aligned with `item_id`; or a
    ready `MultiValued`. This is how a derived condition type is added, e.g. decade:
    `catalog.with_feature("decade", [f"{y // 10 * 10}s" if y else "" for y in catalog.year])`.
    """
    feature = rows if isinstance(rows, MultiValued) else MultiValued.from_lists(rows)
    if feature.num_rows != len(self):
      raise DataError(f"Feature {name!r} has {feature.num_rows} rows, the catalog has "
                       f"{len(self)} items.")
    return dataclasses.replace(self, features={**self.features, name: feature})


@dataclasses.dataclass
class Interactions:
  user_index: np.ndarray
  item_index: np.ndarray
  rating: np.ndarray
  timestamp: np.ndarray

  def __len__(self):
    return len(self.user_index)

  def select(self, mask_or_indices) -> "Interactions":
    return Interactions(self.user_index[mask_or_indices], self.item_index[mask_or_indices],
                        self.rating[mask_or_indices], self.timestamp[mask_or_indices])


@dataclasses.dataclass
class RecData:
  """A data set in tfcr's schema (see the module docstring)."""
  name: str
  users: Users
  catalog: Catalog
  interactions: Interactions
  # The item feature a model conditions on when the caller names none (e.g. genres for
  # MovieLens); None: the caller must name one.
  default_condition_feature: Optional[str] = None

  def validate(self) -> "RecData":
    """Checks the cross-table invariants; raises DataError naming the broken one."""
    n_users, n_items = len(self.users), len(self.catalog)
    inter = self.interactions
    lengths = {len(inter.user_index), len(inter.item_index), len(inter.rating),
               len(inter.timestamp)}
    if len(lengths) != 1:
      raise DataError(f"{self.name}: interaction columns differ in length: {lengths}")
    if len(inter) and (inter.user_index.min() < 0 or inter.user_index.max() >= n_users):
      raise DataError(f"{self.name}: interactions reference users outside 0..{n_users - 1}")
    if len(inter) and (inter.item_index.min() < 0 or inter.item_index.max() >= n_items):
      raise DataError(f"{self.name}: interactions reference items outside 0..{n_items - 1}")
    for name, column in self.users.features.items():
      rows = column.num_rows if isinstance(column, MultiValued) else len(column)
      if rows != n_users:
        raise DataError(f"{self.name}: user feature {name!r} has {rows} rows, "
                         f"expected {n_users}")
    for name, feature in self.catalog.features.items():
      if feature.num_rows != n_items:
        raise DataError(f"{self.name}: item feature {name!r} has {feature.num_rows} rows, "
                         f"expected {n_items}")
    for name, column in self.catalog.metadata.items():
      if len(column) != n_items:
        raise DataError(f"{self.name}: item metadata {name!r} has {len(column)} rows, "
                         f"expected {n_items}")
    return self

  def positives(self, min_rating: Optional[float]) -> "RecData":
    """Keeps only interactions with rating >= min_rating (all of them when None)."""
    if min_rating is None:
      return self
    keep = self.interactions.rating >= min_rating
    return dataclasses.replace(self, interactions=self.interactions.select(keep))
