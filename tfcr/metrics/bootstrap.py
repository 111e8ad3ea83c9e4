"""Percentile bootstrap confidence intervals over test queries.

The test queries are resampled with replacement `samples` times (deterministic by seed);
every method and metric is evaluated on the *same* resamples, so differences and ratios
between methods are paired. A statistic's interval is the (alpha/2, 1 - alpha/2)
percentiles of its values over the resamples.

Catalog coverage is a count of distinct items, not a mean: a resample holds only ~63% of
the distinct queries, so its bootstrap values sit below the full-set value. Its interval is
therefore shifted by the bootstrap estimate of that bias (mean of the resamples minus the
estimate): it keeps the bootstrap's spread and is centred where the estimate is.
"""

import dataclasses
from typing import Callable

import numpy as np

_CHUNK_ENTRIES = 1 << 23  # query indices held at once (64 MiB of int64)


@dataclasses.dataclass(frozen=True)
class Interval:
  """A point estimate and its confidence interval."""
  value: float
  low: float
  high: float

  def to_dict(self):
    return {"value": self.value, "ci_low": self.low, "ci_high": self.high}


class Resamples:
  """`samples` resamples (with replacement) of `n` queries, drawn deterministically from
  `seed`. They are generated in chunks of resamples, so memory stays bounded (about
  `_CHUNK_ENTRIES` indices at a time) however many queries there are; every statistic
  sees the same resamples."""

  def __init__(self, n: int, samples: int, seed: int, level: float = 0.95,
               chunk_entries: int = _CHUNK_ENTRIES):
    if n < 1:
      raise ValueError("Cannot bootstrap an empty set of queries.")
    if samples < 1:
      raise ValueError(f"Bootstrap needs at least one resample, got {samples}.")
    if not 0 < level < 1:
      raise ValueError(f"Confidence level must be in (0, 1), got {level}.")
    self.n, self.samples, self.seed, self.level = n, samples, seed, level
    self.chunk = max(1, min(samples, chunk_entries // n))
    # One chunk holds them all (the usual case): draw once, reuse for every statistic.
    self._cached = list(self._draw()) if self.chunk == samples else None

  def _draw(self):
    for number, start in enumerate(range(0, self.samples, self.chunk)):
      rng = np.random.default_rng(self.seed if number == 0 else [self.seed, number])
      yield rng.integers(0, self.n, size=(min(self.chunk, self.samples - start), self.n))

  def indices(self):
    """Yields [b, n] arrays of query indices, b <= chunk, `samples` rows in all."""
    return iter(self._cached) if self._cached is not None else self._draw()

  def _replicates(self, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """fn(indices [b, n]) -> [b] statistic values, over all resamples -> [samples]."""
    return np.concatenate([fn(index) for index in self.indices()])

  def _percentiles(self, replicates: np.ndarray):
    alpha = 1.0 - self.level
    low, high = np.quantile(replicates, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)

  def mean(self, values: np.ndarray) -> Interval:
    """CI of the mean of per-query `values` [n]."""
    values = np.asarray(values, dtype=np.float64)
    self._check(values)
    return Interval(float(values.mean()),
                    *self._percentiles(self._replicates(lambda i: values[i].mean(axis=1))))

  def statistic(self, values: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> Interval:
    """CI of `fn(values)`; fn maps [..., n] to [...] along the last axis (e.g. a median)."""
    values = np.asarray(values, dtype=np.float64)
    self._check(values)
    return Interval(float(fn(values)),
                    *self._percentiles(self._replicates(lambda i: fn(values[i]))))

  def quantile(self, values: np.ndarray, q: float) -> Interval:
    return self.statistic(values, lambda v: np.quantile(v, q, axis=-1))

  def mean_difference(self, a: np.ndarray, b: np.ndarray) -> Interval:
    """CI of mean(a) - mean(b), paired over queries."""
    return self.mean(np.asarray(a, np.float64) - np.asarray(b, np.float64))

  def quantile_ratio(self, a: np.ndarray, b: np.ndarray, q: float) -> Interval:
    """CI of quantile_q(a) / quantile_q(b), paired over queries."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    self._check(a)
    self._check(b)
    point = np.quantile(a, q) / np.quantile(b, q)
    replicates = self._replicates(lambda i: np.quantile(a[i], q, axis=-1)
                                  / np.quantile(b[i], q, axis=-1))
    return Interval(float(point), *self._percentiles(replicates))

  def coverage(self, rows: np.ndarray, num_items: int, k: int) -> Interval:
    """CI of catalog coverage of the top k of `rows` [n, >= k] (bias-shifted, see above)."""
    top = np.asarray(rows)[:, :k]
    self._check(top)
    query_of_entry = np.repeat(np.arange(self.n), top.shape[1])
    items = top.ravel()
    keep = items >= 0
    query_of_entry, items = query_of_entry[keep], items[keep]
    point = np.unique(items).size / num_items

    def covered(index):
      out = np.empty(len(index))
      for b, drawn_queries in enumerate(index):
        times_drawn = np.bincount(drawn_queries, minlength=self.n)
        drawn = np.bincount(items, weights=times_drawn[query_of_entry], minlength=num_items)
        out[b] = np.count_nonzero(drawn) / num_items
      return out

    replicates = self._replicates(covered)
    shift = point - replicates.mean()
    low, high = self._percentiles(replicates)
    return Interval(float(point), float(low + shift), float(high + shift))

  def _check(self, values: np.ndarray) -> None:
    if values.shape[0] != self.n:
      raise ValueError(f"Expected {self.n} per-query values, got {values.shape[0]}.")


class SeedPooledResamples:
  """The bootstrap of a statistic pooled over several seeds' runs: its estimate is the
  mean over the seeds of each seed's value, its interval the percentiles of that mean over
  resamples.

  sizes: the number of test queries of each seed's run. shared: the runs answer the same
  queries (the same users and held-out items, in the same order; e.g. MovieLens's fixed
  split): then every resample draws the same query indices for every seed, so a query's
  seeds move together (they share the user and the target and are not independent);
  otherwise each seed's queries are resampled on their own (e.g. synthetic data generated
  from each seed). Either way a seed's runs are paired query by query.
  """

  def __init__(self, sizes, samples: int, seed: int, level: float = 0.95,
               shared: bool = False):
    sizes = list(sizes)
    if not sizes:
      raise ValueError("Pooling needs at least one seed's queries.")
    if shared and len(set(sizes)) != 1:
      raise ValueError(f"Shared queries need equal sizes, got {sizes}.")
    self.level, self.shared = level, shared
    self.per_seed = [Resamples(n, samples, seed if shared else seed + 1000003 * i, level)
                     for i, n in enumerate(sizes)]

  def _pooled(self, per_seed_values, fn) -> Interval:
    """fn(resamples, values) -> (estimate, replicates [samples]) for one seed; pooled."""
    if len(per_seed_values) != len(self.per_seed):
      raise ValueError(f"Expected values of {len(self.per_seed)} seeds, got "
                       f"{len(per_seed_values)}.")
    estimates, replicates = zip(*(fn(r, v) for r, v in zip(self.per_seed, per_seed_values)))
    low, high = self.per_seed[0]._percentiles(np.mean(replicates, axis=0))  # pylint: disable=protected-access
    return Interval(float(np.mean(estimates)), low, high)

  def mean(self, per_seed_values) -> Interval:
    """CI of the seeds' mean of per-query means; per_seed_values: one [n_s] per seed."""
    def one(resamples, values):
      values = np.asarray(values, np.float64)
      resamples._check(values)  # pylint: disable=protected-access
      return values.mean(), resamples._replicates(lambda i: values[i].mean(axis=1))  # pylint: disable=protected-access
    return self._pooled(per_seed_values, one)

  def mean_difference(self, per_seed_a, per_seed_b) -> Interval:
    """CI of the seeds' mean of mean(a) - mean(b), paired over each seed's queries."""
    return self.mean([np.asarray(a, np.float64) - np.asarray(b, np.float64)
                      for a, b in zip(per_seed_a, per_seed_b)])

  def quantile_ratio(self, per_seed_a, per_seed_b, q: float) -> Interval:
    """CI of the seeds' mean of quantile_q(a) / quantile_q(b)."""
    def one(resamples, pair):
      a, b = (np.asarray(x, np.float64) for x in pair)
      resamples._check(a)  # pylint: disable=protected-access
      resamples._check(b)  # pylint: disable=protected-access
      return (np.quantile(a, q) / np.quantile(b, q),
              resamples._replicates(lambda i: np.quantile(a[i], q, axis=-1)  # pylint: disable=protected-access
                                    / np.quantile(b[i], q, axis=-1)))
    return self._pooled(list(zip(per_seed_a, per_seed_b)), one)


def interval_of_samples(values: np.ndarray, fn: Callable[[np.ndarray], np.ndarray],
                        samples: int, seed: int, level: float = 0.95) -> Interval:
  """CI of fn over its own resamples of `values` (e.g. latencies of a query sample)."""
  return Resamples(len(values), samples, seed, level).statistic(values, fn)
