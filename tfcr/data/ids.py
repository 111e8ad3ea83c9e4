"""Ids -> rows: the one mapping every data source (and the comparison) uses.

Tables keep their ids as [R] str arrays and interactions refer to rows by position, so
every source has to turn [N] id strings into [N] row numbers. Done here with one sort and
a binary search over NumPy strings: no Python per interaction, millions of rows in a
second or two.
"""

import numpy as np
from absl import logging

from tfcr.errors import DataError


def id_strings(values) -> np.ndarray:
  """Ids as an object array of str (bytes decoded as UTF-8, numbers printed)."""
  array = np.asarray(values)
  if array.dtype.kind == "S":
    return np.char.decode(array, "utf-8").astype(object)
  if array.dtype.kind == "U":
    return array.astype(object)
  if array.dtype == object and array.size and all(isinstance(v, bytes)
                                                  for v in array.flat[:1]):
    try:  # all bytes: decode in C
      return np.char.decode(array.astype("S"), "utf-8").astype(object)
    except (UnicodeDecodeError, TypeError, ValueError):
      pass
  if array.dtype == object:
    return np.array([v.decode("utf-8") if isinstance(v, bytes) else str(v)
                     for v in array.ravel()], dtype=object).reshape(array.shape)
  return array.astype(str).astype(object)


def rows_of(table_ids, ids) -> np.ndarray:
  """[N] ids -> [N] int64 row numbers in `table_ids` ([R] distinct ids), -1 where absent."""
  table = np.asarray(id_strings(table_ids), dtype=str)
  query = np.asarray(id_strings(ids), dtype=str)
  if len(table) == 0:
    return np.full(query.shape, -1, np.int64)
  order = np.argsort(table, kind="stable")
  ordered = table[order]
  position = np.minimum(np.searchsorted(ordered, query), len(table) - 1)
  return np.where(ordered[position] == query, order[position], -1).astype(np.int64)


def first_rows(ids, what: str = "") -> np.ndarray:
  """Row numbers keeping the first row of each distinct id, in table order. With `what`
  ("user", "item"), a repeated id is logged as a warning."""
  _, first = np.unique(np.asarray(id_strings(ids), dtype=str), return_index=True)
  if what and len(first) < len(ids):
    logging.warning("%d %s rows repeat an id; keeping the first of each.",
                    len(ids) - len(first), what)
  return np.sort(first)


def id_order(ids) -> np.ndarray:
  """Permutation sorting [R] str ids: as integers when all are digits, else as strings."""
  ids = id_strings(ids)
  if len(ids) and all(i.isdecimal() and i.isascii() for i in ids):
    return np.argsort(np.array([int(i) for i in ids]), kind="stable")
  return np.argsort(np.asarray(ids, dtype=str), kind="stable")


def known_interactions(user_index: np.ndarray, item_index: np.ndarray,
                       where: str) -> np.ndarray:
  """[N] bool: interactions whose user and item rows exist (>= 0). The others are
  dropped with a counted warning; none left is a DataError naming `where`."""
  keep = (user_index >= 0) & (item_index >= 0)
  if not keep.all():
    logging.warning("%s: dropped %d of %d interactions whose user (%d) or item (%d) is not "
                    "in the tables.", where, int((~keep).sum()), len(keep),
                    int((user_index < 0).sum()), int((item_index < 0).sum()))
  if not keep.any():
    raise DataError(f"{where}: no interaction names a user and an item of the tables.")
  return keep
