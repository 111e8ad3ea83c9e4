"""MovieLens's tables in tfcr's schema: what both MovieLens sources (RecBole's files and
TFDS's ratings) share, so they produce the same features.

Users get `age_group`, `gender`, `occupation` and `zip3`; items the multi-valued `genres`
(the default condition) and display metadata `title` ("Toy Story (1995)") and `year`
(0 = unknown, the input of the derived `decade`).
"""

from typing import Dict, List

import numpy as np
from absl import logging

from tfcr.data import ids as ids_lib
from tfcr.data.schema import Catalog, Interactions, MultiValued, RecData, Users

CONDITION_FEATURE = "genres"
_AGE_BOUNDS = np.array([18, 25, 35, 45, 50, 56])
# MovieLens-1M's age buckets, so 100k's exact ages and 1M's buckets give the same labels.
_AGE_LABELS = np.array(["<18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+"],
                       dtype=object)


def age_group(age: np.ndarray) -> np.ndarray:
  """[U] ages (exact, or 1M's bucket starts 1/18/25/...) -> [U] labels; "" if age <= 0."""
  age = np.asarray(age, dtype=np.float64)
  labels = _AGE_LABELS[np.searchsorted(_AGE_BOUNDS, age, side="right")]
  return np.where(age > 0, labels, "").astype(object)


def zip3(zip_code: np.ndarray) -> np.ndarray:
  """[U] zip codes -> [U] first three characters (a coarse region)."""
  return np.array([z[:3] for z in ids_lib.id_strings(zip_code)], dtype=object)


def _sorted_unique(ids: np.ndarray, what: str) -> np.ndarray:
  """Row order for a table: sorted by id, keeping the first row of a repeated id."""
  first = ids_lib.first_rows(ids, what)
  return first[ids_lib.id_order(ids[first])]


def display_title(title: str, year: int) -> str:
  """"Star Wars", 1977 -> "Star Wars (1977)"; as it is when the year is unknown or in it."""
  return f"{title} ({year})" if year > 0 and f"({year})" not in title else title


def to_recdata(name: str, *, user_id, user_features: Dict[str, np.ndarray], item_id,
               title, year, genres: List[List[str]], inter_user_id, inter_item_id,
               rating, timestamp) -> RecData:
  """Assembles a validated `RecData` from plain columns (str or bytes).

  Users and items are sorted by id; interactions are mapped to row numbers, and those
  naming a user or item missing from its table are dropped (and counted in the log).

  Args:
    name: the data set's name.
    user_id: [U] ids; user_features: {name: [U] values}.
    item_id, title, year: [I] each; genres: I lists of genre names.
    inter_user_id, inter_item_id, rating, timestamp: [N] each.
  """
  user_id, item_id = ids_lib.id_strings(user_id), ids_lib.id_strings(item_id)
  users = _sorted_unique(user_id, "user")
  items = _sorted_unique(item_id, "item")
  user_index = ids_lib.rows_of(user_id[users], inter_user_id)
  item_index = ids_lib.rows_of(item_id[items], inter_item_id)
  keep = (user_index >= 0) & (item_index >= 0)
  if not keep.all():
    logging.warning("%s: dropped %d of %d interactions whose user (%d) or item (%d) is "
                    "not in the tables.", name, int((~keep).sum()), len(keep),
                    int((user_index < 0).sum()), int((item_index < 0).sum()))
  years = np.asarray(year, np.int32)[items]
  titles = ids_lib.id_strings(np.asarray(title)[items])
  return RecData(
      name=name,
      users=Users(user_id=user_id[users],
                  features={k: ids_lib.id_strings(np.asarray(v)[users])
                            for k, v in user_features.items()}),
      catalog=Catalog(
          item_id=item_id[items],
          features={CONDITION_FEATURE: MultiValued.from_lists([genres[i] for i in items])},
          metadata={"title": np.array([display_title(t, int(y)) for t, y in
                                       zip(titles, years)], dtype=object),
                    "year": years}),
      interactions=Interactions(
          user_index=user_index[keep].astype(np.int32),
          item_index=item_index[keep].astype(np.int32),
          rating=np.asarray(rating, np.float32)[keep],
          timestamp=np.asarray(timestamp, np.int64)[keep]),
      default_condition_feature=CONDITION_FEATURE,
  ).validate()
