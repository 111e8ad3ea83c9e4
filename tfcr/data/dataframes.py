"""Your own data as pandas DataFrames -> a `RecData` that tfcr trains on.

    interactions: one row per engagement: user_id, item_id[, timestamp][, rating]
    items:        one row per item: item_id, then attribute columns; any of them can be
                  the condition. A cell holds one value, a list of values, or a string
                  of values joined by `sep` ("Comedy|Drama"); empty/NaN means none.
    users:        optional, one row per user: user_id, then feature columns
                  (categorical, multi-valued like the items', or numeric).

    data = from_dataframes(interactions, items, title="name")
    train_and_evaluate(TrainConfig(condition_feature="brand", model_dir=...), data=data)

Ids are compared as strings (that is how the servable is queried). Interactions whose
user or item is missing from a given table are dropped, with a warning.
"""

import math
from typing import Dict, Optional, Sequence, Union

import numpy as np
import pandas as pd

from tfcr.data import ids as ids_lib
from tfcr.data.schema import Catalog, Interactions, MultiValued, RecData, Users
from tfcr.errors import DataError


def _is_missing(value) -> bool:
  if value is None:
    return True
  if isinstance(value, float) and math.isnan(value):
    return True
  return value is pd.NA or value is pd.NaT


def split_values(value, sep: Optional[str] = "|") -> list:
  """One cell -> its list of string values: lists as they are, strings split on `sep`
  (stripped, empties dropped), other scalars as one value, missing as none."""
  if isinstance(value, (list, tuple, set, np.ndarray, pd.Series)):
    return [str(v).strip() for v in value if not _is_missing(v) and str(v).strip()]
  if _is_missing(value):
    return []
  if isinstance(value, bytes):
    value = value.decode("utf-8")
  text = str(value)
  parts = text.split(sep) if sep and isinstance(value, str) else [text]
  return [p.strip() for p in parts if p.strip()]


def _is_numeric_column(column: pd.Series) -> bool:
  return (pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column))


def _user_column(column: pd.Series, sep):
  """A user feature column: numbers as [U] float64 (NaN: none), list cells or strings
  holding `sep` as a MultiValued, anything else as [U] str ("" : none)."""
  if _is_numeric_column(column):
    return column.to_numpy(np.float64)
  column_sep = sep.get(column.name, "|") if isinstance(sep, dict) else sep
  cells = column.to_numpy(dtype=object)
  multi = any(isinstance(v, (list, tuple, set, np.ndarray)) for v in cells) or bool(
      column_sep and column.astype(str).str.contains(column_sep, regex=False).any())
  if multi:
    return MultiValued.from_lists([split_values(v, column_sep) for v in cells])
  return column.fillna("").astype(str).to_numpy(dtype=object)


def _id_column(frame: pd.DataFrame, column: str, what: str) -> np.ndarray:
  if column not in frame.columns:
    raise DataError(f"The {what} table has no {column!r} column; its columns are "
                     f"{list(frame.columns)}.")
  ids = frame[column]
  if ids.isna().any():
    raise DataError(f"The {what} table has {int(ids.isna().sum())} rows without {column}.")
  return ids.astype(str).to_numpy(dtype=object)


def from_dataframes(interactions: pd.DataFrame, items: pd.DataFrame,
                    users: Optional[pd.DataFrame] = None, *,
                    attributes: Optional[Sequence[str]] = None,
                    sep: Union[str, Dict[str, Optional[str]], None] = "|",
                    title: Optional[str] = None, year: Optional[str] = None,
                    user_features: Optional[Sequence[str]] = None,
                    user_id: str = "user_id", item_id: str = "item_id",
                    timestamp: Optional[str] = "timestamp", rating: Optional[str] = "rating",
                    name: str = "dataframes") -> RecData:
  """Builds a validated `RecData` from DataFrames (see the module docstring).

  Args:
    interactions: user_id, item_id and optionally timestamp (any sortable numbers or
      datetimes; default: row order, the last rows are held out for evaluation) and
      rating (default 1.0).
    items: item_id plus attribute columns.
    users: optional user table; default: the users of `interactions`, no features.
    attributes: the item columns that become categorical features (condition
      candidates); default: every column except the id, title and year.
    sep: separator of multi-valued string cells, or {column: separator} (None: a
      cell is one value).
    title, year: optional item columns kept as display metadata ("title", "year"):
      shown by clients; the year can give the derived `decade` condition.
    user_features: user columns to use; default: all but the id.
    user_id, item_id, timestamp, rating: column names.
    name: the data set's name.

  Raises:
    DataError: a required column is missing, ids are missing, or nothing is left.
  """
  inter_users = _id_column(interactions, user_id, "interactions")
  inter_items = _id_column(interactions, item_id, "interactions")

  item_ids_all = _id_column(items, item_id, "items")
  item_rows = ids_lib.first_rows(item_ids_all, "item")
  items = items.iloc[item_rows]
  item_ids = item_ids_all[item_rows]
  for column, what in ((title, "title"), (year, "year")):
    if column is not None and column not in items.columns:
      raise DataError(f"The items table has no {column!r} column ({what}).")
  if attributes is None:
    attributes = [c for c in items.columns if c not in (item_id, title, year)]
  features = {}
  for column in attributes:
    if column not in items.columns:
      raise DataError(f"The items table has no {column!r} column; its columns are "
                       f"{list(items.columns)}.")
    column_sep = sep.get(column, "|") if isinstance(sep, dict) else sep
    features[str(column)] = MultiValued.from_lists(
        [split_values(v, column_sep) for v in items[column]])
  # Numeric attributes (a price, a year) are also kept as numbers: a candidate tower
  # reads them bucketized by quantiles (tfcr.data.features).
  metadata = {str(c): pd.to_numeric(items[c], errors="coerce").to_numpy(np.float64)
              for c in attributes if _is_numeric_column(items[c])}
  if title:
    metadata["title"] = items[title].fillna("").astype(str).to_numpy(dtype=object)
  if year:
    metadata["year"] = (pd.to_numeric(items[year], errors="coerce").fillna(0)
                        .astype(np.int32).to_numpy())
  catalog = Catalog(item_id=item_ids, features=features, metadata=metadata)

  if users is None:
    user_ids = pd.unique(inter_users).astype(object)
    user_table = Users(user_id=np.asarray(user_ids, dtype=object))
  else:
    all_ids = _id_column(users, user_id, "users")
    rows = ids_lib.first_rows(all_ids, "user")
    users = users.iloc[rows]
    columns = (list(user_features) if user_features is not None
               else [c for c in users.columns if c != user_id])
    missing = [c for c in columns if c not in users.columns]
    if missing:
      raise DataError(f"The users table has no {missing} column(s).")
    user_table = Users(user_id=all_ids[rows],
                       features={str(c): _user_column(users[c], sep) for c in columns})

  user_index = ids_lib.rows_of(user_table.user_id, inter_users)
  item_index = ids_lib.rows_of(item_ids, inter_items)
  keep = ids_lib.known_interactions(user_index, item_index, name)
  if timestamp and timestamp in interactions.columns:
    times = interactions[timestamp]
    if pd.api.types.is_datetime64_any_dtype(times):
      times = times.astype("int64") // 10**9
    times = pd.to_numeric(times, errors="raise").to_numpy().astype(np.int64)
  else:
    times = np.arange(len(interactions), dtype=np.int64)
  ratings = (pd.to_numeric(interactions[rating], errors="raise").to_numpy(np.float32)
             if rating and rating in interactions.columns
             else np.ones(len(interactions), np.float32))
  return RecData(
      name=name, users=user_table, catalog=catalog,
      default_condition_feature=str(attributes[0]) if len(attributes) == 1 else None,
      interactions=Interactions(user_index=user_index[keep].astype(np.int32),
                                item_index=item_index[keep].astype(np.int32),
                                rating=ratings[keep], timestamp=times[keep]),
  ).validate()


def to_dataframes(data: RecData):
  """The inverse view: (interactions, items, users) DataFrames of a `RecData`, with
  multi-valued features as lists."""
  inter = data.interactions
  interactions = pd.DataFrame({
      "user_id": data.users.user_id[inter.user_index],
      "item_id": data.catalog.item_id[inter.item_index],
      "timestamp": inter.timestamp, "rating": inter.rating})
  items = pd.DataFrame({"item_id": data.catalog.item_id, **data.catalog.metadata,
                        **{k: v.to_lists() for k, v in data.catalog.features.items()}})
  users = pd.DataFrame({"user_id": data.users.user_id, **{
      k: v.to_lists() if isinstance(v, MultiValued) else v
      for k, v in data.users.features.items()}})
  return interactions, items, users
