"""A RecData written as the files source's tables: the inverse of `tfcr.data.files`.

    write_tables(data, "data/synthetic", file_format="parquet")
    # data/synthetic/interactions/part-00000.parquet ..., items.parquet, users.parquet

Columns: interactions `user_id, item_id, timestamp, rating`; items `item_id`, every
feature (Parquet: a list column; CSV: values joined by "|") and the metadata; users
`user_id` and its features. Ids are written dictionary-encoded from the row numbers, so
no Python object is made per interaction. Everything goes to a temporary folder beside
`output_dir`, renamed into place at the end: an interrupted run leaves nothing behind.
"""

import os
import shutil
import tempfile
from typing import Callable, Optional

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from tfcr.data.schema import MultiValued, RecData
from tfcr.errors import ConfigError

WRITE_FORMATS = ("parquet", "csv")
LIST_SEPARATOR = "|"


def _strings(values: np.ndarray) -> pa.Array:
  return pa.array(np.asarray(values, dtype=object).astype(str), type=pa.string())


def _list_column(feature: MultiValued) -> pa.Array:
  values = _strings(feature.vocabulary).take(pa.array(feature.value_ids))
  return pa.ListArray.from_arrays(pa.array(feature.row_splits.astype(np.int32)), values)


def _joined(feature: MultiValued) -> pa.Array:
  import pyarrow.compute as pc  # pylint: disable=g-import-not-at-top
  return pc.binary_join(_list_column(feature), LIST_SEPARATOR)


def _column(values, file_format: str) -> pa.Array:
  if isinstance(values, MultiValued):
    return _list_column(values) if file_format == "parquet" else _joined(values)
  values = np.asarray(values)
  return _strings(values) if values.dtype == object else pa.array(values)


def _write(table: pa.Table, path: str, file_format: str) -> None:
  if file_format == "parquet":
    pq.write_table(table, path)
  else:
    pa_csv.write_csv(table, path)


def write_tables(data: RecData, output_dir: str, file_format: str = "parquet",
                 shard_rows: int = 1_000_000,
                 log: Optional[Callable[[str], None]] = None) -> str:
  """Writes `data` under output_dir (see the module docstring); returns its path.
  Raises ConfigError for a bad format or shard size, or an output_dir that exists."""
  if file_format not in WRITE_FORMATS:
    raise ConfigError(f"Unknown format={file_format!r}; valid values: "
                      f"{', '.join(WRITE_FORMATS)}.")
  if shard_rows < 1:
    raise ConfigError(f"shard_rows must be >= 1, got {shard_rows}.")
  output_dir = os.path.abspath(os.path.expanduser(output_dir))
  if os.path.exists(output_dir):
    raise ConfigError(f"output_dir={output_dir} exists; give a new folder.")
  log = log or (lambda message: None)
  parent = os.path.dirname(output_dir)
  os.makedirs(parent, exist_ok=True)
  temp = tempfile.mkdtemp(prefix=".writing-", dir=parent)
  try:
    extension = "." + file_format
    catalog, users, inter = data.catalog, data.users, data.interactions
    items = {"item_id": _strings(catalog.item_id)}
    items.update({name: _column(values, file_format)
                  for name, values in catalog.features.items()})
    items.update({name: _column(values, file_format)
                  for name, values in catalog.metadata.items() if name not in items})
    _write(pa.table(items), os.path.join(temp, "items" + extension), file_format)
    log(f"items: {len(catalog)} rows")
    user_table = {"user_id": _strings(users.user_id)}
    user_table.update({name: _column(values, file_format)
                       for name, values in users.features.items()})
    _write(pa.table(user_table), os.path.join(temp, "users" + extension), file_format)
    log(f"users: {len(users)} rows")

    shards = os.path.join(temp, "interactions")
    os.makedirs(shards)
    user_ids, item_ids = user_table["user_id"], items["item_id"]
    for number, start in enumerate(range(0, len(inter), shard_rows)):
      rows = slice(start, start + shard_rows)
      if file_format == "parquet":  # dictionary-encoded: the ids are written once per shard
        user = pa.DictionaryArray.from_arrays(pa.array(inter.user_index[rows]), user_ids)
        item = pa.DictionaryArray.from_arrays(pa.array(inter.item_index[rows]), item_ids)
      else:
        user = user_ids.take(pa.array(inter.user_index[rows]))
        item = item_ids.take(pa.array(inter.item_index[rows]))
      table = pa.table({"user_id": user, "item_id": item,
                        "timestamp": pa.array(inter.timestamp[rows]),
                        "rating": pa.array(inter.rating[rows])})
      _write(table, os.path.join(shards, f"part-{number:05d}{extension}"), file_format)
      log(f"interactions: {min(start + shard_rows, len(inter))}/{len(inter)} rows")
    os.rename(temp, output_dir)
  except BaseException:
    shutil.rmtree(temp, ignore_errors=True)
    raise
  return output_dir
