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

Interactions naming a user or item absent from its table are dropped with a counted
warning (an error when none remain). Every problem is a DataError naming the file and
the column. The tables become DataFrames and then a RecData through
`tfcr.data.dataframes.from_dataframes`, the one place that turns tables into tfcr's schema.
"""

import dataclasses
import glob
import os
from typing import List

import pandas as pd

from tfcr.data.dataframes import from_dataframes
from tfcr.data.schema import RecData
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


def read_table(path: str, file_format: str = "") -> pd.DataFrame:
  """All shards of `path` as one DataFrame (list cells as Python lists)."""
  import pyarrow as pa  # pylint: disable=g-import-not-at-top
  import pyarrow.csv as pa_csv  # pylint: disable=g-import-not-at-top
  import pyarrow.json as pa_json  # pylint: disable=g-import-not-at-top
  import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
  tables = []
  for shard in shard_paths(path):
    kind = _format_of(shard, file_format)
    try:
      if kind == "parquet":
        table = pq.read_table(shard)
      elif kind == "json":
        table = pa_json.read_json(shard)
      else:
        # Ids stay strings: "007" is not 7.
        table = pa_csv.read_csv(shard, parse_options=pa_csv.ParseOptions(
            delimiter="\t" if kind == "tsv" else ","))
    except (OSError, pa.ArrowException) as e:
      first = (str(e).strip().splitlines() or [""])[0]
      raise DataError(f"{shard}: cannot read it as {kind} ({first}).") from None
    tables.append(table)
  try:
    table = pa.concat_tables(tables, promote_options="default") if len(tables) > 1 else tables[0]
  except pa.ArrowException as e:
    raise DataError(f"{path}: its shards have different columns or types ({e}).") from None
  if table.num_rows == 0:
    raise DataError(f"{path}: the table is empty.")
  return table.to_pandas()


def _need(frame: pd.DataFrame, column: str, path: str) -> None:
  if column not in frame.columns:
    raise DataError(f"{path}: no column {column!r}; its columns are "
                    f"{', '.join(map(str, frame.columns))}.")


def _check_repeated_items(items: pd.DataFrame, column: str, path: str) -> pd.DataFrame:
  """One row per item; a repeated item must repeat the same attributes."""
  repeated = items[column].astype(str).duplicated(keep=False)
  if not repeated.any():
    return items
  text = items[repeated].astype(str).drop_duplicates()
  conflicting = text[column][text[column].duplicated()]
  if len(conflicting):
    raise DataError(f"{path}: item {conflicting.iloc[0]!r} is listed twice with different "
                    f"attributes (column {column!r}).")
  return items[~items[column].astype(str).duplicated()]


def _seconds(times: pd.Series, path: str, column: str) -> pd.Series:
  if pd.api.types.is_numeric_dtype(times):
    return times
  try:
    parsed = pd.to_datetime(times, utc=True, format="ISO8601")
  except (ValueError, TypeError):
    raise DataError(f"{path}: column {column!r} holds neither integer seconds nor "
                    f"ISO-8601 times (e.g. {str(times.iloc[0])!r}).") from None
  return (parsed - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)


def load_files(tables: FileTables, name: str = "files") -> RecData:
  """The RecData of the tables (see the module docstring); raises DataError."""
  tables.validate()
  interactions = read_table(tables.interactions, tables.file_format)
  for column in (tables.user_column, tables.item_column):
    _need(interactions, column, tables.interactions)
  timestamp = tables.timestamp_column if tables.timestamp_column in interactions else None
  if timestamp:
    interactions[timestamp] = _seconds(interactions[timestamp], tables.interactions,
                                       timestamp)
  if tables.rating_column:
    _need(interactions, tables.rating_column, tables.interactions)
    if not pd.api.types.is_numeric_dtype(interactions[tables.rating_column]):
      raise DataError(f"{tables.interactions}: column {tables.rating_column!r} is not "
                      f"numeric.")
  items = read_table(tables.items, tables.file_format)
  _need(items, tables.item_column, tables.items)
  items = _check_repeated_items(items, tables.item_column, tables.items)
  attributes = [c for c in items.columns if c != tables.item_column]
  if not attributes:
    raise DataError(f"{tables.items}: no attribute column besides {tables.item_column!r}: "
                    f"nothing to condition on.")
  users = None
  if tables.users:
    users = read_table(tables.users, tables.file_format)
    _need(users, tables.user_column, tables.users)
  try:
    return from_dataframes(
        interactions, items, users, attributes=attributes, sep=tables.list_separator,
        user_id=tables.user_column, item_id=tables.item_column, timestamp=timestamp,
        rating=tables.rating_column or None, name=name)
  except DataError as e:
    raise DataError(f"{name} ({tables.interactions}, {tables.items}): {e}") from None

