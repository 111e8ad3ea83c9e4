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


def interval_of_samples(values: np.ndarray, fn: Callable[[np.ndarray], np.ndarray],
                        samples: int, seed: int, level: float = 0.95) -> Interval:
  """CI of fn over its own resamples of `values` (e.g. latencies of a query sample)."""
  return Resamples(len(values), samples, seed, level).statistic(values, fn)
