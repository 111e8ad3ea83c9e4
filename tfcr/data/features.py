"""Tower features: user and item columns encoded as padded id tables the towers embed.

    feature = encode_feature("brand", catalog.features["brand"])  # categorical or lists
    feature = encode_feature("price", catalog.metadata["price"])  # numeric: quantiles

A column is one of:

* categorical: [R] str, one value per row ("" = none);
* multi-valued: a `MultiValued` (Arrow lists, or strings split by a separator);
* numeric: [R] ints or floats (NaN = none), bucketized by the quantiles of its values,
  so a price or an age needs no hand-made buckets.

Every feature becomes `EncodedFeature.table`, [R, width] int32 value ids right-padded with
-1; a tower embeds a row as the sum of its values' embeddings (no value: zeros). The
tables are model weights: the servable needs no feature files, and an item with no
training interactions still has its features, so it gets an embedding (cold start).
"""

import dataclasses
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from tfcr.data.schema import Catalog, MultiValued, Users
from tfcr.errors import ConfigError

NUM_QUANTILE_BUCKETS = 10
# A row with more values keeps its first ones: the table's width is the longest row's,
# and one outlier row (an item tagged 500 times) would otherwise widen every row.
MAX_VALUES_PER_ROW = 32

Column = Union[np.ndarray, MultiValued]


@dataclasses.dataclass(frozen=True)
class EncodedFeature:
  """name; kind: categorical, multi_valued or numeric; vocabulary: [V] str, index =
  value id (numeric: the bucket ranges); table: [R, width] int32, -1 padded."""
  name: str
  kind: str
  vocabulary: np.ndarray
  table: np.ndarray

  @property
  def vocabulary_size(self) -> int:
    return max(len(self.vocabulary), 1)

  @property
  def width(self) -> int:
    return self.table.shape[1]

  def with_unknown_row(self) -> "EncodedFeature":
    """The table with a row 0 of no values prepended (the user tower's unknown user)."""
    table = np.concatenate([np.full((1, self.width), -1, np.int32), self.table])
    return dataclasses.replace(self, table=table)


def is_numeric(column: Column) -> bool:
  return (not isinstance(column, MultiValued) and np.asarray(column).dtype.kind in "iuf")


def quantile_boundaries(values: np.ndarray, num_buckets: int = NUM_QUANTILE_BUCKETS
                        ) -> np.ndarray:
  """The distinct inner quantiles of the finite values: at most num_buckets - 1 cuts."""
  finite = values[np.isfinite(values)]
  if len(finite) == 0:
    return np.zeros([0], np.float64)
  cuts = np.quantile(finite, np.arange(1, num_buckets) / num_buckets)
  return np.unique(cuts)


def _bucket_names(boundaries: np.ndarray) -> np.ndarray:
  if len(boundaries) == 0:
    return np.array(["all"], dtype=object)
  names = [f"<{boundaries[0]:g}"]
  names += [f"[{lo:g},{hi:g})" for lo, hi in zip(boundaries[:-1], boundaries[1:])]
  names.append(f">={boundaries[-1]:g}")
  return np.array(names, dtype=object)


def _encode_numeric(name: str, column: np.ndarray, num_buckets: int) -> EncodedFeature:
  values = np.asarray(column, np.float64)
  boundaries = quantile_boundaries(values, num_buckets)
  ids = np.searchsorted(boundaries, values, side="right").astype(np.int32)
  ids[~np.isfinite(values)] = -1
  return EncodedFeature(name, "numeric", _bucket_names(boundaries), ids[:, np.newaxis])


def _encode_multi_valued(name: str, column: MultiValued) -> EncodedFeature:
  lengths = np.minimum(column.lengths(), MAX_VALUES_PER_ROW)
  width = max(int(lengths.max()) if len(lengths) else 0, 1)
  table = np.full((column.num_rows, width), -1, np.int32)
  rows = np.repeat(np.arange(column.num_rows), lengths)
  slots = np.arange(len(rows)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
  table[rows, slots] = column.value_ids[column.row_splits[rows] + slots]
  return EncodedFeature(name, "multi_valued", column.vocabulary, table)


def _encode_categorical(name: str, column: np.ndarray) -> EncodedFeature:
  text = np.asarray(column).astype(str)
  values, ids = np.unique(text, return_inverse=True)
  ids = ids.astype(np.int32)
  if len(values) and values[0] == "":  # "" sorts first: it means no value
    values, ids = values[1:], ids - 1
  return EncodedFeature(name, "categorical", values.astype(object), ids[:, np.newaxis])


def encode_feature(name: str, column: Column,
                   num_buckets: int = NUM_QUANTILE_BUCKETS) -> EncodedFeature:
  """One column (see the module docstring) as an EncodedFeature."""
  if isinstance(column, MultiValued):
    return _encode_multi_valued(name, column)
  if is_numeric(column):
    return _encode_numeric(name, column, num_buckets)
  return _encode_categorical(name, column)


def user_columns(users: Users) -> Dict[str, Column]:
  """The user table's feature columns by name."""
  return dict(users.features)


def item_columns(catalog: Catalog) -> Dict[str, Column]:
  """The catalog's columns a candidate tower can read: its categorical features, and its
  numeric metadata (e.g. a year or a price). A numeric column is also a categorical
  feature (so it can be a condition); as a tower feature it is read as a number."""
  columns: Dict[str, Column] = dict(catalog.features)
  columns.update({name: values for name, values in catalog.metadata.items()
                  if is_numeric(values)})
  return columns


def select_columns(available: Dict[str, Column], names: Optional[Sequence[str]],
                   what: str) -> List[str]:
  """The names asked for (None: all of `available`, sorted); raises ConfigError naming an
  unknown one and the valid names."""
  if names is None:
    return sorted(available)
  for name in names:
    if name not in available:
      raise ConfigError(f"Unknown {what}={name!r}; valid values: "
                        f"{', '.join(sorted(available)) or '(the table has no such column)'}.")
  return list(dict.fromkeys(names))


def encode_features(available: Dict[str, Column], names: Sequence[str]
                    ) -> List[EncodedFeature]:
  return [encode_feature(name, available[name]) for name in names]


def stacked_table(features: Sequence[EncodedFeature], num_rows: int) -> np.ndarray:
  """The features' tables side by side, [num_rows, sum of widths] (a [num_rows, 0] table
  without features): what a tower's single lookup table holds."""
  if not features:
    return np.zeros((num_rows, 0), np.int32)
  return np.concatenate([f.table for f in features], axis=1).astype(np.int32)
