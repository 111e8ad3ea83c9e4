"""TFDS's own `movielens/*-ratings` data sets, converted to tfcr's schema.

TFDS ships MovieLens as one denormalized table of ratings: every example carries the
movie's title and genres and (100k, 1m) the user's demographics. We rebuild the users
and items tables from the distinct ids, with the same features as
`files.load_movielens_100k`. TFDS downloads from grouplens.org, so this needs
internet (e.g. Colab); elsewhere use `load_movielens_100k`, which goes through PyPI.
"""

import re
import socket
from typing import Dict, List, Optional, Tuple

import numpy as np
import requests
import tensorflow_datasets as tfds

from tfcr.data import ids as ids_lib
from tfcr.data.movielens.tables import age_group, to_recdata, zip3
from tfcr.data.schema import RecData
from tfcr.errors import ConfigError, DataError, DataUnavailableError

_BATCH = 100_000
# TFDS renamed two MovieLens genres; use MovieLens's (and RecBole's) spelling so both
# sources share a vocabulary. Others (IMAX, "(no genres listed)") are kept as they are.
_GENRE_SPELLING = {"Children": "Children's", "Unknown": "unknown"}
_TITLE_YEAR = re.compile(r"^(.*?)\s*\((\d{4})\)\s*$")
# Errors by which TFDS reports that it could not download (or verify) the files.
_DOWNLOAD_ERRORS = (tfds.download.DownloadError, requests.exceptions.RequestException,
                    ConnectionError, TimeoutError, socket.gaierror)


def split_title_year(title: str) -> Tuple[str, int]:
  """"Toy Story (1995)" -> ("Toy Story", 1995); no trailing "(yyyy)" -> (title, 0)."""
  match = _TITLE_YEAR.match(title.strip())
  if not match:
    return title.strip(), 0
  return match.group(1), int(match.group(2))


def _is_download_failure(error: BaseException) -> bool:
  """True when `error`, or an exception it was raised from, is a download failure."""
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if isinstance(error, _DOWNLOAD_ERRORS):
      return True
    if "NonMatchingChecksumError" in type(error).__name__:  # E.g. a proxy's HTML page.
      return True
    error = error.__cause__ or error.__context__
  return False


def _load(name: str, data_dir: Optional[str]):
  try:
    return tfds.load(name, split="train", data_dir=data_dir, with_info=True)
  except ModuleNotFoundError as e:
    # TFDS 4.9.x needs `importlib_resources` to download on Python >= 3.9 yet does not
    # declare it.
    raise DataUnavailableError(
        f"{name}: TFDS could not prepare the data set ({e}). Fix: pip install "
        f"{e.name or 'the missing module'}, or use load_movielens_100k.") from e
  except Exception as e:  # pylint: disable=broad-except
    if not _is_download_failure(e):
      raise
    first_line = (str(e).strip().splitlines() or [""])[0]
    if len(first_line) > 160:
      first_line = first_line[:160] + "..."
    raise DataUnavailableError(
        f"{name}: TFDS could not download the data set ({type(e).__name__}: "
        f"{first_line}). Fix: run with internet access to files.grouplens.org (e.g. "
        f"Colab), or use load_movielens_100k, which fetches through PyPI.") from e


def _genre_lists(genres, rows: np.ndarray, names: List[str]) -> List[List[str]]:
  """Selected rows of a ragged [B, None] batch of genre codes -> lists of genre names."""
  values, splits = genres.values.numpy(), genres.row_splits.numpy()
  return [[names[c] for c in values[splits[r]:splits[r + 1]]] for r in rows]


def load_tfds_movielens(name: str = "movielens/100k-ratings",
                        data_dir: Optional[str] = None) -> RecData:
  """Loads a TFDS `movielens/*-ratings` config as a `RecData`.

  users: [U] distinct raters; features age_group, gender, occupation, zip3 where the
    config has demographics (100k, 1m), none otherwise.
  catalog: [I] distinct rated movies: title and year split from "Title (1995)"
    (0 when absent), genres.
  interactions: [N] ratings in TFDS's order.
  The RecData is named after the config, e.g. "movielens-100k".

  Raises:
    ConfigError: `name` is not a `movielens/*-ratings` config.
    DataUnavailableError: TFDS could not download the data.
  """
  config = name.split("/", 1)[-1].split(":", 1)[0]
  if not (name.startswith("movielens/") and config.endswith("-ratings")):
    raise ConfigError(f"Expected a movielens/*-ratings config, e.g. "
                     f"movielens/100k-ratings; got {name!r}.")
  ds, info = _load(name, data_dir)
  genre_names = [_GENRE_SPELLING.get(g, g)
                 for g in info.features["movie_genres"].feature.names]
  has_demographics = "user_gender" in info.features
  age_key = "raw_user_age" if "raw_user_age" in info.features else "bucketized_user_age"
  user_keys = ["user_id"] + ([age_key, "user_gender", "user_occupation_text",
                              "user_zip_code"] if has_demographics else [])

  inter: Dict[str, list] = {"user_id": [], "movie_id": [], "user_rating": [],
                            "timestamp": []}
  items: Dict[str, list] = {"movie_id": [], "movie_title": [], "genres": []}
  users: Dict[str, list] = {k: [] for k in user_keys}
  # Every rating repeats its movie's and user's fields: keep only each batch's first
  # row per movie and per user, so memory stays O(items + users) beyond the ratings.
  for batch in tfds.as_numpy(ds.ragged_batch(_BATCH)):
    for key in inter:
      inter[key].append(batch[key])
    rows = ids_lib.first_rows(batch["movie_id"])
    items["movie_id"].append(batch["movie_id"][rows])
    items["movie_title"].append(batch["movie_title"][rows])
    items["genres"].extend(_genre_lists(batch["movie_genres"], rows, genre_names))
    rows = ids_lib.first_rows(batch["user_id"])
    for key in user_keys:
      users[key].append(batch[key][rows])
  if not inter["user_id"]:
    raise DataError(f"{name}: the train split is empty.")

  inter = {k: np.concatenate(v) for k, v in inter.items()}
  items = {k: (v if k == "genres" else np.concatenate(v)) for k, v in items.items()}
  users = {k: np.concatenate(v) for k, v in users.items()}
  # Across batches the same movie/user appears again; keep its first row overall.
  item_rows = ids_lib.first_rows(items["movie_id"])
  user_rows = ids_lib.first_rows(users["user_id"])
  titles, years = zip(*(split_title_year(t.decode("utf-8"))
                        for t in items["movie_title"][item_rows]))
  user_features = {}
  if has_demographics:
    user_features = {
        "age_group": age_group(users[age_key][user_rows]),
        "gender": np.where(users["user_gender"][user_rows], "M", "F").astype(object),
        "occupation": users["user_occupation_text"][user_rows],
        "zip3": zip3(users["user_zip_code"][user_rows]),
    }
  return to_recdata(
      "movielens-" + config[:-len("-ratings")],
      user_id=users["user_id"][user_rows], user_features=user_features,
      item_id=items["movie_id"][item_rows], title=np.array(titles, dtype=object),
      year=np.array(years, np.int32), genres=[items["genres"][i] for i in item_rows],
      inter_user_id=inter["user_id"], inter_item_id=inter["movie_id"],
      rating=inter["user_rating"], timestamp=inter["timestamp"])
