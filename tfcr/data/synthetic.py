"""A synthetic data set with planted, known structure, for tests and benchmarks.

`generate(...)` returns a `RecData` named "synthetic"; `generate_with_truth(...)` also
returns the planted ground truth (`SyntheticTruth`), which is kept out of the data so
that no model can read it as a feature.

Planted structure (tests and benchmarks rely on it):

* Conditions: `n_conditions` values "c00".."c19" (zero-padded to a fixed width, so the
  sorted vocabulary of the item feature lists condition j at position j).
* Items: ids "i0000".. (zero-padded); metadata title "item <index>" and year uniform in
  1950..2020.
  Each item has 1..3 distinct conditions (at most `n_conditions`), the count uniform and
  the conditions a uniform random subset, stored sorted in the multi-valued item feature
  `condition_feature` (default "topics").
* Popularity: the items' popularity ranks are a random permutation; the item of rank r
  (1-based) has weight proportional to `1 / r**zipf_exponent`
  (`truth.item_popularity_weight`, normalized to sum to 1).
* Users: ids "u0000".. (zero-padded). Each has `affinity_conditions` distinct favourite
  conditions, a uniform random subset in random order (`truth.user_conditions`).
  Categorical user features: "segment" is "s<j>" for the user's first favourite
  condition j with probability 0.8, else a uniformly random segment; "region" is one of
  "r0".."r7" uniformly, independent of everything else.
* Activity: every user has at least 3 interactions; the remaining
  `n_interactions - 3 * n_users` are spread over users by a multinomial draw with
  probabilities proportional to lognormal(0, 1) activity levels. Exactly
  `n_interactions` interactions are generated.
* Each interaction of a user: with probability `affinity_strength`, one of the user's
  favourite conditions is picked uniformly and then an item having that condition with
  probability proportional to its popularity weight; otherwise an item of the whole
  catalog with probability proportional to its popularity weight. (If the picked
  condition has no item at all, possible only for tiny catalogs, the interaction falls
  back to the catalog draw.) Items may repeat for a user. So the share of user u's
  interactions whose item has one of u's favourite conditions is, in expectation,
  `affinity_strength + (1 - affinity_strength) * P_u`, P_u being the total popularity
  weight of the items that have one of u's favourite conditions.
* Ratings are integers 1..5 (float32): an interaction whose item has any of the user's
  favourite conditions (whichever branch drew it) is rated 4 or 5 with probability
  0.8, any other with probability 0.3, so `min_rating` filtering keeps mostly
  on-affinity interactions.
* Timestamps (int64 Unix seconds) strictly increase per user: a random start in the
  year after 2020-09-13 plus cumulative gaps of 1 s + exponential(1 day).
  Interactions are ordered by user, then chronologically.
* Everything is a deterministic function of `seed`.

Everything is vectorized with NumPy (no Python loop per user, item or interaction):
1M items, 100k users and 10M interactions take a few seconds and about 1 GB.
"""

import dataclasses
import math
from typing import Tuple

import numpy as np

from tfcr.data.schema import Catalog, Interactions, MultiValued, RecData, Users
from tfcr.errors import ConfigError

_MAX_CONDITIONS_PER_ITEM = 3
_SEGMENT_NOISE = 0.2  # Share of users whose segment is random instead of their top condition.
_N_REGIONS = 8
# P(rating = 1..5) for interactions that do / do not match a favourite condition.
_RATING_P_MATCH = np.array([0.02, 0.05, 0.13, 0.40, 0.40])
_RATING_P_OTHER = np.array([0.15, 0.25, 0.30, 0.20, 0.10])
_START_TIME = 1_600_000_000  # 2020-09-13, in Unix seconds.
_START_SPREAD = 365 * 86_400
_MEAN_GAP = 86_400
# The argsort path of `_sample_distinct` holds at most this many random keys at once.
_MAX_KEYS_PER_CHUNK = 1 << 22


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
  """The parameters of `generate`; see the module docstring for their meaning."""
  n_users: int = 1000
  n_items: int = 2000
  n_conditions: int = 20
  n_interactions: int = 50000
  seed: int = 0
  zipf_exponent: float = 1.0
  affinity_conditions: int = 3
  affinity_strength: float = 0.9
  condition_feature: str = "topics"

  def validate(self) -> "SyntheticConfig":
    """Raises ConfigError naming the first out-of-range parameter."""
    _check_int("n_users", self.n_users, 1)
    _check_int("n_items", self.n_items, 1)
    _check_int("n_conditions", self.n_conditions, 1)
    _check_int("affinity_conditions", self.affinity_conditions, 1, self.n_conditions)
    _check_int("n_interactions", self.n_interactions, 3 * self.n_users,
               low_text=f"3 * n_users = {3 * self.n_users}")
    _check_float("affinity_strength", self.affinity_strength, 0.0, 1.0)
    _check_float("zipf_exponent", self.zipf_exponent, 0.0, math.inf)
    if not isinstance(self.condition_feature, str) or not self.condition_feature:
      raise ConfigError(f"condition_feature must be a non-empty string, got "
                       f"{self.condition_feature!r}")
    return self


@dataclasses.dataclass(frozen=True)
class SyntheticTruth:
  """The planted structure behind one generated data set.

  user_conditions: [U, affinity_conditions] int32, each user's favourite conditions as
    indices into `condition_names` (= the vocabulary of the item condition feature),
    in the order drawn; column 0 drives the "segment" user feature.
  item_popularity_weight: [I] float64, each item's Zipf weight, summing to 1.
  condition_names: [C] str (object), "c00".., sorted.
  config: the parameters the data set was generated with.
  """
  user_conditions: np.ndarray
  item_popularity_weight: np.ndarray
  condition_names: np.ndarray
  config: SyntheticConfig


def generate(n_users: int = 1000, n_items: int = 2000, n_conditions: int = 20,
             n_interactions: int = 50000, seed: int = 0, zipf_exponent: float = 1.0,
             affinity_conditions: int = 3, affinity_strength: float = 0.9,
             condition_feature: str = "topics") -> RecData:
  """Generates the synthetic data set described in the module docstring.

  Returns a `RecData` named "synthetic" with `n_users` users (features "segment",
  "region"), `n_items` items (multi-valued feature `condition_feature`) and exactly
  `n_interactions` interactions. Raises ConfigError on out-of-range parameters.
  """
  data, _ = generate_with_truth(
      n_users=n_users, n_items=n_items, n_conditions=n_conditions,
      n_interactions=n_interactions, seed=seed, zipf_exponent=zipf_exponent,
      affinity_conditions=affinity_conditions, affinity_strength=affinity_strength,
      condition_feature=condition_feature)
  return data


def generate_with_truth(n_users: int = 1000, n_items: int = 2000, n_conditions: int = 20,
                        n_interactions: int = 50000, seed: int = 0,
                        zipf_exponent: float = 1.0, affinity_conditions: int = 3,
                        affinity_strength: float = 0.9,
                        condition_feature: str = "topics"
                        ) -> Tuple[RecData, SyntheticTruth]:
  """Like `generate`, and also returns the planted `SyntheticTruth`."""
  config = SyntheticConfig(
      n_users=n_users, n_items=n_items, n_conditions=n_conditions,
      n_interactions=n_interactions, seed=seed, zipf_exponent=zipf_exponent,
      affinity_conditions=affinity_conditions, affinity_strength=affinity_strength,
      condition_feature=condition_feature).validate()
  return _generate(config)


def _generate(config: SyntheticConfig) -> Tuple[RecData, SyntheticTruth]:
  rng = np.random.default_rng(config.seed)
  n_users, n_items, n_cond = config.n_users, config.n_items, config.n_conditions
  condition_names = _padded_names("c", n_cond, min_width=2)

  # Items: conditions as a padded [I, 3] matrix (-1 = none), valid ones first, sorted.
  # The first m values of a uniform ordered sample are a uniform m-subset.
  max_per_item = min(_MAX_CONDITIONS_PER_ITEM, n_cond)
  n_item_cond = rng.integers(1, max_per_item + 1, size=n_items)
  item_cond = _sample_distinct(rng, n_cond, max_per_item, n_items)
  item_cond[np.arange(max_per_item)[None, :] >= n_item_cond[:, None]] = n_cond
  item_cond = np.sort(item_cond, axis=1)  # n_cond (the padding) sorts last.
  item_cond[item_cond == n_cond] = -1
  has_cond = item_cond >= 0
  row_splits = np.concatenate([[0], np.cumsum(n_item_cond)]).astype(np.int64)
  value_ids = item_cond[has_cond].astype(np.int32)  # Row-major, so rows stay in order.

  # Zipf popularity over a random permutation of ranks.
  rank = rng.permutation(n_items)
  weight = np.power(rank + 1.0, -config.zipf_exponent)
  weight /= weight.sum()

  # Users: favourite conditions, features, activity.
  k = config.affinity_conditions
  user_cond = _sample_distinct(rng, n_cond, k, n_users).astype(np.int32)
  segment_names = _padded_names("s", n_cond, min_width=2)
  segment = np.where(rng.random(n_users) < _SEGMENT_NOISE,
                     rng.integers(0, n_cond, size=n_users), user_cond[:, 0])
  region = rng.integers(0, _N_REGIONS, size=n_users)
  activity = rng.lognormal(0.0, 1.0, size=n_users)
  counts = 3 + rng.multinomial(config.n_interactions - 3 * n_users, activity / activity.sum())
  user_index = np.repeat(np.arange(n_users, dtype=np.int32), counts)
  n = config.n_interactions

  # Interactions: which rows draw from a favourite condition, and which condition.
  on_affinity = rng.random(n) < config.affinity_strength
  slot = rng.integers(0, k, size=int(on_affinity.sum()))
  chosen = user_cond[user_index[on_affinity], slot]
  item_of_value = np.repeat(np.arange(n_items, dtype=np.int32), n_item_cond)
  by_cond = np.argsort(value_ids, kind="stable")
  group_items = item_of_value[by_cond]  # Items grouped by condition.
  group_start = np.concatenate([[0], np.cumsum(np.bincount(value_ids, minlength=n_cond))])
  drawable = group_start[chosen + 1] > group_start[chosen]
  affinity_rows = np.flatnonzero(on_affinity)[drawable]  # Others: catalog fallback.
  chosen = chosen[drawable]
  item_index = np.empty(n, dtype=np.int32)
  catalog_rows = np.ones(n, dtype=bool)
  catalog_rows[affinity_rows] = False
  catalog_rows = np.flatnonzero(catalog_rows)
  item_index[catalog_rows] = _sample(rng, np.arange(n_items, dtype=np.int32), weight,
                                     len(catalog_rows))
  # Affinity rows sorted by condition, so each condition's draws fill one block. Radix
  # sort (int16) is several times faster than the int32 one.
  sort_dtype = np.int16 if n_cond <= np.iinfo(np.int16).max else np.int32
  affinity_rows = affinity_rows[np.argsort(chosen.astype(sort_dtype), kind="stable")]
  block_start = np.concatenate([[0], np.cumsum(np.bincount(chosen, minlength=n_cond))])
  for c in np.flatnonzero(np.diff(block_start)):  # A loop over conditions, not rows.
    group = slice(group_start[c], group_start[c + 1])
    rows = affinity_rows[block_start[c]:block_start[c + 1]]
    item_index[rows] = _sample(rng, group_items[group], weight[group_items[group]],
                               len(rows))

  # Ratings: does the item carry any of the user's favourite conditions? Affinity draws
  # do by construction; the others are looked up as (user, condition) keys.
  match = np.zeros(n, dtype=bool)
  match[affinity_rows] = True
  rest = np.flatnonzero(~match)
  favourite_keys = np.sort((np.arange(n_users, dtype=np.int64)[:, None] * n_cond
                            + user_cond).ravel())
  rest_user = user_index[rest].astype(np.int64) * n_cond
  rest_conds = item_cond[item_index[rest]]
  rest_match = np.zeros(len(rest), dtype=bool)
  for j in range(max_per_item):
    key = rest_user + rest_conds[:, j]
    found = np.minimum(np.searchsorted(favourite_keys, key), len(favourite_keys) - 1)
    rest_match |= (rest_conds[:, j] >= 0) & (favourite_keys[found] == key)
  match[rest] = rest_match
  uniform = rng.random(n)
  rating = np.where(match, _draw(np.cumsum(_RATING_P_MATCH), uniform),
                    _draw(np.cumsum(_RATING_P_OTHER), uniform))
  rating = (rating + 1).astype(np.float32)

  # Timestamps: per-user start plus a cumulative sum of gaps restarted at each user.
  gaps = 1 + np.floor(rng.exponential(_MEAN_GAP, size=n)).astype(np.int64)
  elapsed = np.cumsum(gaps)
  first_row = np.concatenate([[0], np.cumsum(counts)[:-1]])
  start = _START_TIME + rng.integers(0, _START_SPREAD, size=n_users, dtype=np.int64)
  timestamp = elapsed - (elapsed[first_row] - gaps[first_row])[user_index] + start[user_index]

  users = Users(
      user_id=_padded_names("u", n_users, min_width=4),
      features={"segment": segment_names[segment],
                "region": _padded_names("r", _N_REGIONS, min_width=1)[region]})
  catalog = Catalog(
      item_id=_padded_names("i", n_items, min_width=4),
      features={config.condition_feature:
                MultiValued.from_codes(condition_names, row_splits, value_ids)},
      metadata={"title": np.array([f"item {i}" for i in range(n_items)], dtype=object),
                "year": rng.integers(1950, 2021, size=n_items, dtype=np.int32)})
  interactions = Interactions(user_index=user_index, item_index=item_index,
                              rating=rating, timestamp=timestamp)
  data = RecData("synthetic", users, catalog, interactions,
                 default_condition_feature=config.condition_feature)
  truth = SyntheticTruth(user_conditions=user_cond, item_popularity_weight=weight,
                         condition_names=condition_names, config=config)
  return data, truth


def _draw(cdf: np.ndarray, uniform: np.ndarray) -> np.ndarray:
  """[N] indices drawn with P(i) ∝ the increments of the [K] increasing `cdf`."""
  index = np.searchsorted(cdf, uniform * cdf[-1], side="right")
  return np.minimum(index, len(cdf) - 1)  # Guards against rounding at the top end.


def _sample(rng: np.random.Generator, values: np.ndarray, weights: np.ndarray,
            n: int) -> np.ndarray:
  """[n] i.i.d. draws from [K] `values` with P ∝ [K] `weights`, in random order.

  Multinomial counts then a shuffle give exactly that distribution, and run several
  times faster than `searchsorted` of n uniforms into a large cumulative array (whose
  random memory accesses dominate at millions of items).
  """
  total = weights.sum()
  if total > 0:
    p = weights / total
  else:  # Every weight underflowed (huge zipf_exponent): draw uniformly instead.
    p = np.full(len(weights), 1.0 / len(weights))
  drawn = np.repeat(values, rng.multinomial(n, p))
  rng.shuffle(drawn)
  return drawn


def _sample_distinct(rng: np.random.Generator, n: int, k: int, size: int) -> np.ndarray:
  """[size, k] int64: per row, k distinct values of 0..n-1, a uniform ordered sample."""
  if k <= 8:
    # Draw the j-th value among the n - j values not drawn yet, mapping the draw past
    # the taken ones in increasing order: O(size * k^2), independent of n.
    out = np.empty((size, k), dtype=np.int64)
    taken = np.empty((size, 0), dtype=np.int64)  # Sorted ascending per row.
    for j in range(k):
      x = rng.integers(0, n - j, size=size)
      for t in range(j):
        x += x >= taken[:, t]
      out[:, j] = x
      taken = np.sort(np.concatenate([taken, x[:, None]], axis=1), axis=1)
    return out
  # Many values per row: rank random keys, in chunks of rows to bound memory.
  rows = max(1, _MAX_KEYS_PER_CHUNK // n)
  return np.concatenate(
      [np.argsort(rng.random((min(rows, size - s), n)), axis=1)[:, :k]
       for s in range(0, size, rows)])


def _padded_names(prefix: str, count: int, min_width: int) -> np.ndarray:
  """[count] object array prefix + zero-padded index, all of one width so they sort."""
  width = max(min_width, len(str(count - 1)))
  return np.array([f"{prefix}{i:0{width}d}" for i in range(count)], dtype=object)


def _check_int(name, value, low, high=None, low_text=None):
  valid = f">= {low_text or low}" if high is None else f"in {low}..{high}"
  if (isinstance(value, bool) or not isinstance(value, (int, np.integer))
      or value < low or (high is not None and value > high)):
    raise ConfigError(f"{name} must be an integer {valid}, got {value!r}")


def _check_float(name, value, low, high):
  valid = f"in [{low}, {high}]" if high != math.inf else f">= {low}"
  if (isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating))
      or not low <= value <= high or math.isnan(value) or math.isinf(value)):
    raise ConfigError(f"{name} must be a finite number {valid}, got {value!r}")
