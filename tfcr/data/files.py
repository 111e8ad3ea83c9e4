"""Your own data from files: interactions, items and optional users tables on disk.

    tables = FileTables(interactions="logs/*.parquet", items="items.csv",
                        user_column="uid", item_column="sku")
    data = load_files(tables)              # a validated RecData

Each path is a file, a directory (every file in it) or a glob of shards, in Parquet, CSV,
TSV or JSON lines, told by the extension or by `file_format`; read with pyarrow.

* interactions: `user_column`, `item_column`, and optionally `timestamp_column` (integer
  seconds or ISO-8601 strings; without it, file order: the last rows are held out) and
  `rating_column` (for min_rating).
* items: `item_column` and any other columns; every one of them is an item feature that
  can be the condition. Multi-valued cells are Arrow lists, or strings joined by
  `list_separator`. An item listed twice must list the same attributes.
* users (optional): `user_column` and categorical feature columns.

* numeric columns (items' and users') are also features the towers can read bucketized
  by quantiles (`tfcr.data.features`); an items column named `year` gives `decade`.

Interactions naming a user or item absent from its table are dropped with a counted
warning (an error when none remain). Every problem is a DataError naming the file and
the column. The tables stay Arrow columns until they are tfcr's schema
(`tfcr.data.arrow_columns`): no Python object per interaction, so tens of millions of
rows load in seconds.
"""

import dataclasses
import glob
import os
from typing import List, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq
from absl import logging

from tfcr.data import arrow_columns
from tfcr.data import ids as ids_lib
from tfcr.data.schema import Catalog, Interactions, RecData, Users
from tfcr.errors import ConfigError, DataError

FORMATS = ("parquet", "csv", "tsv", "json")
_EXTENSIONS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".tsv": "tsv",
               ".tab": "tsv", ".json": "json", ".jsonl": "json", ".ndjson": "json"}


@dataclasses.dataclass(frozen=True)
class FileTables:
  """Where the tables are and what their columns are called (see the module docstring)."""
  interactions: str
  items: str
  users: str = ""
  file_format: str = ""  # "": from each file's extension
  user_column: str = "user_id"
  item_column: str = "item_id"
  timestamp_column: str = "timestamp"
  rating_column: str = ""
  list_separator: str = "|"

  def validate(self) -> "FileTables":
    if not self.interactions or not self.items:
      raise ConfigError("The files data set needs interactions=PATH and items=PATH.")
    if self.file_format and self.file_format not in FORMATS:
      raise ConfigError(f"Unknown file_format={self.file_format!r}; valid values: "
                        f"{', '.join(FORMATS)} (or none: from the extension).")
    return self


def shard_paths(path: str) -> List[str]:
  """The files of a path: itself, a directory's files (sorted, hidden ones skipped), or a
  glob's matches (sorted). Raises DataError when there are none."""
  path = os.path.expanduser(path)
  if os.path.isdir(path):
    found = sorted(os.path.join(path, n) for n in os.listdir(path)
                   if not n.startswith((".", "_"))
                   and os.path.isfile(os.path.join(path, n)))
  elif any(c in path for c in "*?["):
    found = sorted(p for p in glob.glob(path) if os.path.isfile(p))
  else:
    found = [path] if os.path.isfile(path) else []
  if not found:
    raise DataError(f"{path}: no such file, or no file in that directory or glob.")
  return found


def _format_of(path: str, file_format: str) -> str:
  if file_format:
    return file_format
  extension = os.path.splitext(path[:-3] if path.endswith(".gz") else path)[1].lower()
  if extension not in _EXTENSIONS:
    raise DataError(f"{path}: cannot tell the format from the extension {extension!r}; "
                    f"set file_format to one of {', '.join(FORMATS)}.")
  return _EXTENSIONS[extension]


def read_table(path: str, file_format: str = "", text_columns: Sequence[str] = ()):
  """All shards of `path` as one Arrow table. CSV/TSV columns in `text_columns` (ids)
  stay strings: "007" is not 7."""
  tables = []
  for shard in shard_paths(path):
    kind = _format_of(shard, file_format)
    try:
      if kind == "parquet":
        table = pq.read_table(shard)
      elif kind == "json":
        table = pa_json.read_json(shard)
      else:
        table = pa_csv.read_csv(
            shard, parse_options=pa_csv.ParseOptions(delimiter="\t" if kind == "tsv" else ","),
            convert_options=pa_csv.ConvertOptions(
                column_types={c: pa.string() for c in text_columns},
                strings_can_be_null=True))  # an empty cell is a missing value
    except (OSError, pa.ArrowException) as e:
      first = (str(e).strip().splitlines() or [""])[0]
      raise DataError(f"{shard}: cannot read it as {kind} ({first}).") from None
    tables.append(table)
  try:
    table = pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]
  except pa.ArrowException as e:
    raise DataError(f"{path}: its shards have different columns or types ({e}).") from None
  if table.num_rows == 0:
    raise DataError(f"{path}: the table is empty.")
  return table


def _need(table, column: str, path: str) -> None:
  if column not in table.column_names:
    raise DataError(f"{path}: no column {column!r}; its columns are "
                    f"{', '.join(map(str, table.column_names))}.")


def _unique_items(items, ids, column: str, path: str):
  """(rows to keep, their ids): one row per item; a repeated item must repeat the same
  attributes (checked on the repeated rows only)."""
  rows = arrow_columns.first_occurrences(ids)
  if len(rows) == len(ids):
    return rows, ids
  frame = items.to_pandas()
  repeated = frame[column].astype(str).duplicated(keep=False)
  text = frame[repeated].astype(str).drop_duplicates()
  conflicting = text[column][text[column].duplicated()]
  if len(conflicting):
    raise DataError(f"{path}: item {conflicting.iloc[0]!r} is listed twice with different "
                    f"attributes (column {column!r}).")
  return rows, ids.take(rows)


def _item_catalog(items, tables: FileTables) -> Catalog:
  path, id_column = tables.items, tables.item_column
  _need(items, id_column, path)
  ids = arrow_columns.id_strings(items[id_column], f"{path}, column {id_column!r}")
  rows, ids = _unique_items(items, ids, id_column, path)
  items = items.take(rows)
  attributes = [c for c in items.column_names if c != id_column]
  if not attributes:
    raise DataError(f"{path}: no attribute column besides {id_column!r}: nothing to "
                    f"condition on.")
  features, metadata = {}, {}
  for name in attributes:
    where = f"{path}, column {name!r}"
    column = items[name]
    features[name] = arrow_columns.multi_valued(column, tables.list_separator, where)
    if arrow_columns.is_numeric(column):
      # Kept as numbers too: a candidate tower reads them bucketized by quantiles.
      metadata[name] = arrow_columns.numbers(column, where)
  return Catalog(item_id=arrow_columns.to_numpy_strings(ids), features=features,
                 metadata=metadata)


def _user_table(users, tables: FileTables):
  """(Users, their ids as Arrow strings) of the users table."""
  path, id_column = tables.users, tables.user_column
  _need(users, id_column, path)
  ids = arrow_columns.id_strings(users[id_column], f"{path}, column {id_column!r}")
  rows = arrow_columns.first_occurrences(ids)
  if len(rows) < len(ids):
    logging.warning("%s: %d rows repeat a user id; keeping the first of each.", path,
                    len(ids) - len(rows))
  users, ids = users.take(rows), ids.take(rows)
  features = {}
  for name in users.column_names:
    if name == id_column:
      continue
    column, where = users[name], f"{path}, column {name!r}"
    if arrow_columns.is_numeric(column):
      features[name] = arrow_columns.numbers(column, where)
    elif arrow_columns.is_list(column) or arrow_columns.has_separator(
        column, tables.list_separator):
      features[name] = arrow_columns.multi_valued(column, tables.list_separator, where)
    else:
      features[name] = arrow_columns.categorical_strings(column)
  return Users(user_id=arrow_columns.to_numpy_strings(ids), features=features), ids


def load_files(tables: FileTables, name: str = "files") -> RecData:
  """The RecData of the tables (see the module docstring); raises DataError."""
  tables.validate()
  path = tables.interactions
  id_columns = (tables.user_column, tables.item_column)
  interactions = read_table(path, tables.file_format, text_columns=id_columns)
  for column in id_columns:
    _need(interactions, column, path)
  user_ids = arrow_columns.id_strings(interactions[tables.user_column],
                                      f"{path}, column {tables.user_column!r}")
  item_ids = arrow_columns.id_strings(interactions[tables.item_column],
                                      f"{path}, column {tables.item_column!r}")
  count = interactions.num_rows
  if tables.timestamp_column in interactions.column_names:
    times = arrow_columns.seconds(interactions[tables.timestamp_column],
                                  f"{path}, column {tables.timestamp_column!r}")
  else:  # file order: the last rows are held out
    times = np.arange(count, dtype=np.int64)
  ratings = np.ones(count, np.float32)
  if tables.rating_column:
    _need(interactions, tables.rating_column, path)
    column = interactions[tables.rating_column]
    if not arrow_columns.is_numeric(column):
      raise DataError(f"{path}: column {tables.rating_column!r} is not numeric.")
    ratings = arrow_columns.numbers(column, path).astype(np.float32)
  del interactions

  catalog = _item_catalog(read_table(tables.items, tables.file_format,
                                     text_columns=(tables.item_column,)), tables)
  if tables.users:
    users, table_user_ids = _user_table(
        read_table(tables.users, tables.file_format, text_columns=(tables.user_column,)),
        tables)
  else:  # the users of the interactions, in order of first appearance
    table_user_ids = user_ids.take(arrow_columns.first_occurrences(user_ids))
    users = Users(user_id=arrow_columns.to_numpy_strings(table_user_ids))

  user_index = arrow_columns.rows_in(user_ids, table_user_ids)
  item_index = arrow_columns.rows_in(item_ids, pa.array(catalog.item_id, type=pa.string()))
  keep = ids_lib.known_interactions(user_index, item_index,
                                    f"{name} ({tables.interactions}, {tables.items})")
  attributes = sorted(catalog.features)
  return RecData(
      name=name, users=users, catalog=catalog,
      default_condition_feature=attributes[0] if len(attributes) == 1 else None,
      interactions=Interactions(user_index=user_index[keep].astype(np.int32),
                                item_index=item_index[keep].astype(np.int32),
                                rating=ratings[keep], timestamp=times[keep]),
  ).validate()
