"""Arrow columns -> tfcr's schema pieces, in Arrow's C++ kernels: no Python per row.

The files source reads tables of millions of rows; a Python object per cell (pandas'
object columns) costs seconds and gigabytes there. These turn Arrow columns into ids,
row numbers, `MultiValued` features, numbers and seconds directly. Every function takes
`where` ("items.parquet, column 'genres'") for its DataError messages.
"""

from typing import Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tfcr.data.schema import MultiValued
from tfcr.errors import DataError


def _combined(column) -> pa.Array:
  return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def is_list(column) -> bool:
  return pa.types.is_list(column.type) or pa.types.is_large_list(column.type)


def is_numeric(column) -> bool:
  kind = column.type
  return pa.types.is_integer(kind) or pa.types.is_floating(kind)


def id_strings(column, where: str) -> pa.Array:
  """Ids as an Arrow string array: strings as they are, integers printed. Null ids are
  an error."""
  column = _combined(column)
  if column.null_count:
    raise DataError(f"{where}: {column.null_count} rows have no id.")
  if is_list(column) or pa.types.is_floating(column.type):
    raise DataError(f"{where}: ids must be strings or integers, not {column.type}.")
  if pa.types.is_dictionary(column.type):
    column = column.dictionary_decode()
  ids = pc.cast(column, pa.string())
  empty = pc.sum(pc.equal(ids, "")).as_py() or 0
  if empty:
    raise DataError(f"{where}: {empty} rows have an empty id.")
  return ids


def to_numpy_strings(column: pa.Array) -> np.ndarray:
  """An Arrow string array as an object array of str (one Python str per row: for the
  id tables, not the interactions)."""
  return np.asarray(column.to_numpy(zero_copy_only=False), dtype=object)


def rows_in(ids: pa.Array, table_ids: pa.Array) -> np.ndarray:
  """[N] row of each id in `table_ids` (distinct), -1 where absent (a hash join)."""
  rows = pc.index_in(ids, value_set=table_ids)
  return rows.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)


def first_occurrences(ids: pa.Array) -> np.ndarray:
  """Row numbers of the first row of each distinct id, ascending."""
  unique = pc.unique(ids)
  return np.sort(rows_in(unique, ids))


def multi_valued(column, separator: Optional[str], where: str) -> MultiValued:
  """A categorical column as a MultiValued: list cells as their values, strings split
  on `separator` (None: one value), numbers printed; values trimmed, empty ones and
  repeats within a row dropped (first occurrence kept), nulls: no value."""
  column = _combined(column)
  num_rows = len(column)
  if pa.types.is_dictionary(column.type):
    column = column.dictionary_decode()
  if not is_list(column):
    is_text = pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
    column = (pc.split_pattern(column, separator) if is_text and separator
              else _as_lists(column))
  try:
    parents = pc.list_parent_indices(column).to_numpy(zero_copy_only=False)
    values = pc.cast(pc.list_flatten(column), pa.string())
  except pa.ArrowException as e:
    raise DataError(f"{where}: cannot read its values as text ({e}).") from None
  values = pc.utf8_trim_whitespace(values)
  keep = pc.fill_null(pc.not_equal(values, ""), False).to_numpy(zero_copy_only=False)
  encoded = pc.dictionary_encode(values.filter(pa.array(keep)))
  codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
  parents = parents[keep].astype(np.int64)
  vocabulary = to_numpy_strings(encoded.dictionary)
  # Drop a value repeated within a row, keeping its first position.
  _, first = np.unique(parents * max(len(vocabulary), 1) + codes, return_index=True)
  first.sort()
  parents, codes = parents[first], codes[first]
  row_splits = np.concatenate([[0], np.cumsum(np.bincount(parents, minlength=num_rows))])
  return MultiValued.from_codes(vocabulary, row_splits.astype(np.int64),
                                codes.astype(np.int32))


def _as_lists(column: pa.Array) -> pa.Array:
  """Each cell as a one-value list (a null cell: an empty list)."""
  offsets = np.concatenate([[0], np.cumsum(column.is_valid().to_numpy(
      zero_copy_only=False).astype(np.int32))]).astype(np.int32)
  return pa.ListArray.from_arrays(pa.array(offsets), column.drop_null())


def has_separator(column, separator: str) -> bool:
  column = _combined(column)
  if not separator or not pa.types.is_string(column.type):
    return False
  return bool(pc.any(pc.match_substring(column, separator)).as_py())


def numbers(column, where: str) -> np.ndarray:
  """A numeric column as [N] float64, NaN for nulls."""
  if not is_numeric(column):
    raise DataError(f"{where}: not numeric ({column.type}).")
  return _combined(pc.cast(column, pa.float64())).to_numpy(zero_copy_only=False)


def categorical_strings(column) -> np.ndarray:
  """A scalar column as [N] str, "" for nulls."""
  column = _combined(column)
  if pa.types.is_dictionary(column.type):
    column = column.dictionary_decode()
  text = pc.fill_null(pc.cast(column, pa.string()), "")
  return to_numpy_strings(text)


def seconds(column, where: str) -> np.ndarray:
  """Times as [N] int64 seconds: integers as they are, Arrow timestamps and ISO-8601
  strings converted (UTC unless the string says otherwise)."""
  column = _combined(column)
  if column.null_count:
    raise DataError(f"{where}: {column.null_count} rows have no time.")
  kind = column.type
  if pa.types.is_integer(kind) or pa.types.is_floating(kind):
    return column.to_numpy(zero_copy_only=False).astype(np.int64)
  if pa.types.is_string(kind) or pa.types.is_large_string(kind):
    try:
      column = pc.cast(column, pa.timestamp("s", tz="UTC"))
    except pa.ArrowException:
      column = _pandas_iso_times(column, where)
    kind = column.type
  if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
    if pa.types.is_date(kind):
      column = pc.cast(column, pa.timestamp("s"))
    as_seconds = pc.cast(column, pa.timestamp("s", tz=getattr(column.type, "tz", None)),
                         safe=False)
    return as_seconds.cast(pa.int64()).to_numpy(zero_copy_only=False)
  raise DataError(f"{where}: holds neither integer seconds nor ISO-8601 times "
                  f"({kind}).")


def _pandas_iso_times(column: pa.Array, where: str) -> pa.Array:
  """The slower, more forgiving ISO-8601 parser, for what Arrow's cast refuses."""
  import pandas as pd  # pylint: disable=g-import-not-at-top
  try:
    parsed = pd.to_datetime(column.to_pandas(), utc=True, format="ISO8601")
  except (ValueError, TypeError):
    raise DataError(f"{where}: holds neither integer seconds nor ISO-8601 times "
                    f"(e.g. {column[0].as_py()!r}).") from None
  return pa.array(parsed.dt.floor("s"), type=pa.timestamp("s", tz="UTC"))
