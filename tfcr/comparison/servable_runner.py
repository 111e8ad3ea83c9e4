"""Runs the test queries through an exported servable (`tfcr.export.servable`).

Every call goes through the `serving_exclusions` signature with the query's excluded items
(the user's training items), so the servable answers under the same protocol as INDEX and
`tfcr.metrics.exact`. Metrics use batched calls; latency uses single-row calls on a sample.
"""

import time
from typing import Callable, Optional

from absl import logging
import numpy as np
import tensorflow as tf

from tfcr.data import ids as ids_lib
from tfcr.client.saved_model import load_servable

SIGNATURE = "serving_exclusions"


class ServableClient:
  """An exported servable, loaded in this process, answering `Queries`.

  export_path: EXPORT_DIR/<version>; item_ids: [I] the catalog's item id strings, in row
  order (to turn the servable's ids back into rows and the exclusions into ids).
  """

  def __init__(self, export_path: str, item_ids: np.ndarray):
    self.export_path, self.servable = load_servable(export_path)
    self.signature = self.servable.signatures[SIGNATURE]
    self.item_ids = ids_lib.id_strings(item_ids)

  def _inputs(self, queries, index: np.ndarray, k: int, filter_: str):
    excluded = [queries.excluded(q) for q in index]
    width = max((len(x) for x in excluded), default=0)
    exclude = np.full((len(index), width), "", dtype=object)
    for r, items in enumerate(excluded):
      exclude[r, :len(items)] = self.item_ids[items]
    return {"user_id": tf.constant(queries.user_ids[index].astype(object)),
            "condition": tf.constant(queries.condition_values[index].astype(object)),
            "k": tf.fill([len(index)], tf.constant(k, tf.int32)),
            "filter": tf.fill([len(index)], tf.constant(filter_)),
            "exclude": tf.constant(exclude, dtype=tf.string)}

  def rows_of(self, ids: np.ndarray) -> np.ndarray:
    """Servable item ids (bytes) -> catalog rows, -1 for the "" padding."""
    return ids_lib.rows_of(self.item_ids, ids.ravel()).reshape(ids.shape)

  def run_batched(self, queries, k: int, filter_: str, batch_size: int = 256,
                  progress: Optional[Callable[[int], None]] = None):
    """All queries -> (rows [Q, k] item rows, condition_match [Q, k] bool, scanned [Q])."""
    rows, match, scanned = [], [], []
    for start in range(0, len(queries), batch_size):
      index = np.arange(start, min(start + batch_size, len(queries)))
      out = self.signature(**self._inputs(queries, index, k, filter_))
      rows.append(self.rows_of(out["item_ids"].numpy()[:, :k]))
      match.append(out["condition_match"].numpy()[:, :k])
      scanned.append(out["num_scanned"].numpy().astype(np.int64))
      if progress:
        progress(int(index[-1]) + 1)
    return np.concatenate(rows), np.concatenate(match), np.concatenate(scanned)

  def measure_latency(self, queries, sample: np.ndarray, k: int, filter_: str,
                      warmup: int = 10) -> np.ndarray:
    """Wall milliseconds of single-row calls on the queries `sample` (inputs built
    beforehand; the time includes fetching the outputs)."""
    calls = [self._inputs(queries, np.array([q]), k, filter_) for q in sample]
    for inputs in calls[:warmup]:
      self.signature(**inputs)
    times = np.empty(len(calls))
    for i, inputs in enumerate(calls):
      start = time.perf_counter()
      out = self.signature(**inputs)
      _ = out["item_ids"].numpy(), out["num_scanned"].numpy()
      times[i] = (time.perf_counter() - start) * 1000.0
    logging.info("  latency (filter=%s): p50 %.2f ms, p99 %.2f ms over %d single-row calls",
                 filter_, np.median(times), np.quantile(times, 0.99), len(times))
    return times
