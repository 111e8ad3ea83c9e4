"""MovieLens-100k from RecBole's atomic files, as a TFDS builder and as a `RecData`.

`Movielens100kFiles` turns the three atomic files (see `recbole_files`) into three TFDS
configs, one per table, so that parsing happens once and later runs read TFRecords:

* `interactions`: user_id str, item_id str, rating float32, timestamp int64.
* `items`: item_id str, title str, year int32 (0 = unknown), genres [G] str.
* `users`: user_id str, age int32 (0 = unknown), gender str, occupation str, zip str.

`load_movielens_100k` prepares the three configs and converts them to tfcr's schema
with `tables.to_recdata`, as `tfds_ratings` does, so both MovieLens sources produce the
same features.
"""

import os
from typing import Callable, Dict, Iterator, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from tfcr.data.movielens import recbole_files
from tfcr.data.movielens.tables import age_group, to_recdata, zip3
from tfcr.data.schema import RecData
from tfcr.errors import DataUnavailableError

DATASET_NAME = "movielens-100k"
_BATCH = 100_000  # Whole tables in a few batches: per-example Python is the slow part.

_FEATURES = {
    "interactions": {"user_id": tf.string, "item_id": tf.string, "rating": tf.float32,
                     "timestamp": tf.int64},
    "items": {"item_id": tf.string, "title": tf.string, "year": tf.int32,
              "genres": tfds.features.Sequence(tf.string)},
    "users": {"user_id": tf.string, "age": tf.int32, "gender": tf.string,
              "occupation": tf.string, "zip": tf.string},
}
# Atomic-file columns each config needs (header names without their ":type").
_REQUIRED_COLUMNS = {
    "interactions": ("user_id", "item_id", "rating", "timestamp"),
    "items": ("item_id", "movie_title", "release_year", "class"),
    "users": ("user_id", "age", "gender", "occupation", "zip_code"),
}
_FILE_FOR_CONFIG = {"interactions": "ml-100k.inter", "items": "ml-100k.item",
                    "users": "ml-100k.user"}


def read_atomic_file(path: str, required: Sequence[str] = ()) -> Iterator[Dict[str, str]]:
  """Yields one {column name: raw string} per row of a RecBole atomic file.

  Columns are found by header name ("item_id:token" -> "item_id"), not position, so a
  file with extra or reordered columns still parses. Missing trailing fields read as "".
  """
  with open(path, encoding="utf-8") as f:
    header = f.readline().rstrip("\r\n").split("\t")
    names = [h.split(":", 1)[0].strip() for h in header]
    missing = [c for c in required if c not in names]
    if missing:
      raise DataUnavailableError(f"{path}: header lacks column(s) {missing}; header is "
                                 f"{header}. Delete the file to fetch it again.")
    for line in f:
      line = line.rstrip("\r\n")
      if not line.strip():
        continue
      fields = line.split("\t")
      fields += [""] * (len(names) - len(fields))
      yield dict(zip(names, fields))


def _int_or_zero(text: str) -> int:
  """Years and ages: 0 stands for unknown (RecBole writes e.g. "unkonwn")."""
  text = text.strip()
  return int(text) if text.isdigit() else 0


def _examples(config: str, path: str) -> Iterator[Tuple[int, dict]]:
  rows = read_atomic_file(path, _REQUIRED_COLUMNS[config])
  for key, r in enumerate(rows):
    if config == "interactions":
      yield key, {"user_id": r["user_id"], "item_id": r["item_id"],
                  "rating": float(r["rating"]), "timestamp": int(float(r["timestamp"]))}
    elif config == "items":
      yield key, {"item_id": r["item_id"], "title": r["movie_title"].strip(),
                  "year": _int_or_zero(r["release_year"]), "genres": r["class"].split()}
    else:
      yield key, {"user_id": r["user_id"], "age": _int_or_zero(r["age"]),
                  "gender": r["gender"], "occupation": r["occupation"],
                  "zip": r["zip_code"]}


class Movielens100kFiles(tfds.core.GeneratorBasedBuilder):
  """MovieLens-100k read from RecBole's atomic files; one config per table."""

  name = "tfcr_movielens100k"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {
      "1.0.0": "Initial release: interactions, items and users tables parsed from the "
               "ml-100k atomic files of RecBole 1.2.1.",
  }
  BUILDER_CONFIGS = [
      tfds.core.BuilderConfig(name="interactions",
                              description="100,000 ratings (1-5) with timestamps."),
      tfds.core.BuilderConfig(name="items",
                              description="1,682 movies: title, year, genres."),
      tfds.core.BuilderConfig(name="users",
                              description="943 users: age, gender, occupation, zip."),
  ]

  def __init__(self, *, raw_dir: Optional[str] = None, **kwargs):
    """raw_dir: a directory with the three atomic files; None fetches them (pip)."""
    self._raw_dir = raw_dir
    super().__init__(**kwargs)

  # TFDS resolves `code_path` to find a checksums file, and on Python >= 3.9 that
  # touches `importlib_resources`, which TFDS no longer depends on there
  # (ModuleNotFoundError in a clean venv). We download nothing through TFDS, so there is
  # no checksums file to find.
  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls):
    return None

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description="MovieLens-100k (GroupLens) from RecBole's atomic files.",
        features=tfds.features.FeaturesDict(_FEATURES[self.builder_config.name]),
        homepage="https://grouplens.org/datasets/movielens/100k/",
        # Keep file order, so interactions come out in the order of ml-100k.inter.
        disable_shuffling=True,
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # The files come from pip (or raw_dir), not from a URL.
    raw = self._raw_dir
    if raw is None:
      raw = recbole_files.fetch_movielens_100k(os.fspath(self.data_dir_root))
    elif not recbole_files.has_raw_files(raw):
      raise DataUnavailableError(
          f"MovieLens-100k: raw_dir {raw} lacks some of "
          f"{', '.join(recbole_files.FILE_NAMES)}. Fix: put the three files there, or "
          f"pass raw_dir=None to fetch them with pip.")
    path = os.path.join(raw, _FILE_FOR_CONFIG[self.builder_config.name])
    return {"train": self._generate_examples(path)}

  def _generate_examples(self, path: str):
    yield from _examples(self.builder_config.name, path)


def _read_columns(batches: tf.data.Dataset) -> Dict[str, object]:
  """Reads batches of parsed examples into {name: [N] array}, or N arrays for sequences.

  Sequences arrive as dense [B, L] bytes arrays padded with b"" (what
  `tf.io.parse_example` makes of a TFDS `Sequence`); genre names are never empty.
  """
  parts: Dict[str, list] = {}
  for batch in tfds.as_numpy(batches):
    for key, value in batch.items():
      if value.ndim == 2:
        value = [row[row != b""] for row in value]
      parts.setdefault(key, []).append(value)
  return {k: ([row for part in v for row in part] if isinstance(v[0], list)
              else np.concatenate(v)) for k, v in parts.items()}


def _read_config(config: str, data_dir: str, raw_dir: Optional[str]) -> Dict[str, object]:
  """Prepares one config (a no-op when already prepared) and reads it into columns.

  Reads the TFRecords with `tf.io.parse_example` on whole batches rather than through
  `as_dataset()`, which decodes one example at a time (~0.3 s instead of ~4 s for the
  100k interactions). That is exact for these plain tensor features, whose TFDS decoding
  is only a parse; int32 comes back as int64 and is cast by `to_recdata`.
  """
  builder = Movielens100kFiles(config=config, data_dir=data_dir, raw_dir=raw_dir)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      compute_stats=tfds.download.ComputeStatsMode.SKIP))
  spec = builder.info.features.tf_example_spec
  files = [os.fspath(f) for f in builder.info.splits["train"].filepaths]  # In order.
  records = tf.data.TFRecordDataset(files).batch(_BATCH)
  columns = _read_columns(records.map(lambda x: tf.io.parse_example(x, spec)))
  if "genres" in columns:
    columns["genres"] = [[g.decode("utf-8") for g in row] for row in columns["genres"]]
  return columns


def is_prepared(data_dir: str) -> bool:
  """Whether an earlier load left the prepared TFDS files under `data_dir`."""
  return os.path.isdir(os.path.join(data_dir, Movielens100kFiles.name))


def load_movielens_100k(data_dir: str, raw_dir: Optional[str] = None,
                        log: Optional[Callable[[str], None]] = None) -> RecData:
  """Loads MovieLens-100k as a `RecData` named "movielens-100k".

  users: [943] with features age_group, gender, occupation, zip3.
  catalog: [1682] with title, year (0 = unknown) and the multi-valued feature genres.
  interactions: [100000] in file order.

  Args:
    data_dir: where the raw files (`movielens-100k/raw`) and the prepared TFDS data
      (`tfcr_movielens100k/...`) are kept; both are reused by later calls.
    raw_dir: a directory with ml-100k.{inter,item,user} to read instead of fetching
      them (used by tests with small fixtures).
    log: hears what takes time on a first call (the fetch, the TFDS preparation).

  Raises:
    DataUnavailableError: the raw files are not there and could not be fetched.
  """
  if log and raw_dir is None and not recbole_files.has_raw_files(
      recbole_files.raw_dir(data_dir)):
    log(f"  Fetching MovieLens-100k (inside the {recbole_files.RECBOLE_REQUIREMENT} "
        f"wheel on PyPI) into {data_dir} ...")
  if log and not is_prepared(data_dir):
    log("  Preparing it as a TFDS data set (first time only) ...")
  users = _read_config("users", data_dir, raw_dir)
  items = _read_config("items", data_dir, raw_dir)
  inter = _read_config("interactions", data_dir, raw_dir)
  return to_recdata(
      DATASET_NAME,
      user_id=users["user_id"],
      user_features={"age_group": age_group(users["age"]), "gender": users["gender"],
                     "occupation": users["occupation"], "zip3": zip3(users["zip"])},
      item_id=items["item_id"], title=items["title"], year=items["year"],
      genres=items["genres"],
      inter_user_id=inter["user_id"], inter_item_id=inter["item_id"],
      rating=inter["rating"], timestamp=inter["timestamp"])
