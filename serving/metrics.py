"""Prometheus metrics in TF Serving's names and text format (version 0.0.4).

Families (TF monitoring names with non-[a-zA-Z0-9_] characters turned into ':'):

* `:tensorflow:serving:request_count{model_name,status}` counter;
* `:tensorflow:serving:request_latency{model_name,API,entrypoint}` histogram, microseconds,
  buckets 10 * 1.8^k for k < 33 (TF Serving's);
* `:tensorflow:serving:runtime_latency{model_name,API,runtime}` histogram, the model call
  alone;
* `:tensorflow:serving:request_example_counts{model}` histogram of request batch sizes;
* `:tensorflow:serving:batching_session:processed_batch_size{model_name,version,signature}`
  histogram of merged batch sizes;
* `:tensorflow:cc:saved_model:load_attempt_count{model_path,status}` counter.

Our request families also carry `version` and `signature` labels: TF Serving's do not, but
a tfcr deployment wants latency per version and signature (extra labels don't break
Prometheus queries on the upstream ones).
"""

import collections
import threading
from typing import Dict, Sequence, Tuple

LATENCY_BUCKETS_US = tuple(10 * 1.8 ** k for k in range(33))
BATCH_SIZE_BUCKETS = tuple(2 ** k for k in range(17))

REQUEST_COUNT = ":tensorflow:serving:request_count"
REQUEST_LATENCY = ":tensorflow:serving:request_latency"
RUNTIME_LATENCY = ":tensorflow:serving:runtime_latency"
REQUEST_EXAMPLES = ":tensorflow:serving:request_example_counts"
BATCH_SIZE = ":tensorflow:serving:batching_session:processed_batch_size"
LOAD_ATTEMPTS = ":tensorflow:cc:saved_model:load_attempt_count"

Labels = Tuple[Tuple[str, str], ...]


def _escape(value: str) -> str:
  return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _render_labels(labels: Labels, extra: Sequence[Tuple[str, str]] = ()) -> str:
  items = list(labels) + list(extra)
  if not items:
    return ""
  return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in items) + "}"


def _number(value: float) -> str:
  if value == int(value):
    return str(int(value))
  return repr(float(value))


class _Histogram:
  __slots__ = ("counts", "sum", "count")

  def __init__(self, size: int):
    self.counts = [0] * (size + 1)  # the last one is +Inf
    self.sum = 0.0
    self.count = 0


class Registry:
  """Thread-safe counters and histograms, rendered as Prometheus text."""

  def __init__(self):
    self._lock = threading.Lock()
    self._counters: Dict[str, Dict[Labels, float]] = collections.defaultdict(dict)
    self._histograms: Dict[str, Dict[Labels, _Histogram]] = collections.defaultdict(dict)
    self._buckets: Dict[str, Tuple[float, ...]] = {}

  def increment(self, name: str, labels: Dict[str, str], amount: float = 1) -> None:
    key = tuple(sorted(labels.items()))
    with self._lock:
      family = self._counters[name]
      family[key] = family.get(key, 0) + amount

  def observe(self, name: str, labels: Dict[str, str], value: float,
              buckets: Sequence[float]) -> None:
    key = tuple(sorted(labels.items()))
    with self._lock:
      self._buckets.setdefault(name, tuple(buckets))
      family = self._histograms[name]
      histogram = family.get(key)
      if histogram is None:
        histogram = family[key] = _Histogram(len(self._buckets[name]))
      limits = self._buckets[name]
      index = next((i for i, limit in enumerate(limits) if value <= limit), len(limits))
      histogram.counts[index] += 1
      histogram.sum += value
      histogram.count += 1

  def counter_value(self, name: str, labels: Dict[str, str]) -> float:
    with self._lock:
      return self._counters[name].get(tuple(sorted(labels.items())), 0)

  def render(self) -> str:
    """Prometheus text format with `# TYPE` lines only, as TF Serving writes it."""
    lines = []
    with self._lock:
      for name in sorted(self._counters):
        lines.append(f"# TYPE {name} counter")
        for labels, value in sorted(self._counters[name].items()):
          lines.append(f"{name}{_render_labels(labels)} {_number(value)}")
      for name in sorted(self._histograms):
        lines.append(f"# TYPE {name} histogram")
        limits = self._buckets[name]
        for labels, histogram in sorted(self._histograms[name].items()):
          cumulative = 0
          for limit, count in zip(list(limits) + [float("inf")], histogram.counts):
            cumulative += count
            le = "+Inf" if limit == float("inf") else _number(limit)
            lines.append(f"{name}_bucket{_render_labels(labels, [('le', le)])} "
                         f"{cumulative}")
          lines.append(f"{name}_sum{_render_labels(labels)} {_number(histogram.sum)}")
          lines.append(f"{name}_count{_render_labels(labels)} {histogram.count}")
    return "\n".join(lines) + "\n"
