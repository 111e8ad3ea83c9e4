"""Runs model calls off the event loop, with optional server-side batching and metrics.

Both front ends (REST and gRPC) hand a resolved `LoadedVersion`, a signature, input
arrays and an asyncio future of their event loop to `Dispatcher.submit`; the outputs (or
the encoder's reply) are set on that future on its loop (`serving.loop_delivery`), and the
front end awaits it within its deadline (`serving.deadlines`). Without a future, `submit`
returns a `concurrent.futures.Future`.
"""

import asyncio
import concurrent.futures
import threading
import time
from typing import Dict, Optional, Sequence

import numpy as np

from serving import loop_delivery
from serving import metrics
from serving.batching import Batcher, BatchingParameters, BatchScheduler, ReplyEncoder
from serving.errors import ServingError

Tensors = Dict[str, np.ndarray]


class Dispatcher:
  """Model calls for both front ends: a thread pool, or batchers when batching is on."""

  def __init__(self, registry: Optional[metrics.Registry] = None,
               batching: Optional[BatchingParameters] = None, max_workers: int = 8):
    self.registry = registry
    self._batching = batching
    self._executor = concurrent.futures.ThreadPoolExecutor(
        max_workers=max_workers, thread_name_prefix="model")
    self._batchers: Dict[tuple, Batcher] = {}
    self._lock = threading.Lock()
    # One pool for every batcher: num_batch_threads batches run at once server-wide.
    self._scheduler = BatchScheduler(batching.num_batch_threads) if batching else None

  def submit(self, loaded, signature: str, inputs: Tensors,
             output_filter: Optional[Sequence[str]] = None,
             encoder: Optional[ReplyEncoder] = None,
             waiter: Optional[asyncio.Future] = None):
    """Future of the signature's outputs (only `output_filter`'s when given), or of
    `encoder`'s reply to them, encoded off the event loop (per batch when batching).

    The future is a concurrent.futures.Future, or `waiter` when given: an asyncio future
    that is answered on its own loop (`serving.loop_delivery`), a batch's requests in one
    hand-over.

    Raises ServingError at once for batching refusals (oversized request, full queue).
    """
    if encoder is not None and output_filter:
      raise ValueError("A reply encoder gets every output: no output_filter with it.")
    if waiter is not None and (self._batching is None or output_filter):
      future = self.submit(loaded, signature, inputs, output_filter, encoder)
      future.add_done_callback(loop_delivery.deliver_to(waiter))
      return waiter
    if self._batching is None:
      if encoder is not None:
        return self._executor.submit(
            lambda: encoder.one(self._timed_run(loaded, signature, inputs)))
      return self._executor.submit(self._timed_run, loaded, signature, inputs,
                                   output_filter)
    batched = self._batcher(loaded, signature).submit(inputs, encoder, waiter)
    if not output_filter:
      return batched
    # Batches always fetch every output; each request keeps the ones it asked for, after
    # the same checks an unbatched call makes.
    loaded._output_aliases(signature, output_filter)  # pylint: disable=protected-access
    filtered = concurrent.futures.Future()

    def keep(done):
      if done.exception() is not None:
        filtered.set_exception(done.exception())
      else:
        filtered.set_result({a: done.result()[a] for a in output_filter})

    batched.add_done_callback(keep)
    return filtered

  def forget_version(self, name: str, version: int) -> None:
    """Closes the batchers of an unloaded version."""
    with self._lock:
      for key in [k for k in self._batchers if k[:2] == (name, version)]:
        self._batchers.pop(key).close()

  def _timed_run(self, loaded, signature, inputs, output_filter=None):
    started = time.perf_counter()
    try:
      return loaded.run(signature, inputs, output_filter)
    finally:
      if self.registry is not None:
        self.registry.observe(metrics.RUNTIME_LATENCY,
                              {"model_name": loaded.name, "API": "Predict",
                               "runtime": "TF2"},
                              (time.perf_counter() - started) * 1e6,
                              metrics.LATENCY_BUCKETS_US)

  def _batcher(self, loaded, signature: str) -> Batcher:
    key = (loaded.name, loaded.version, signature)
    with self._lock:
      batcher = self._batchers.get(key)
      if batcher is None:
        def on_batch(size, key=key):
          if self.registry is not None:
            self.registry.observe(metrics.BATCH_SIZE,
                                  {"model_name": key[0], "version": str(key[1]),
                                   "signature": key[2]}, size, metrics.BATCH_SIZE_BUCKETS)

        batcher = Batcher(lambda inputs: self._timed_run(loaded, signature, inputs),
                          self._batching, self._scheduler, on_batch)
        self._batchers[key] = batcher
      return batcher

  def record(self, model: str, api: str, entrypoint: str, status: str, seconds: float,
             version: str = "", signature: str = "", examples: int = 0) -> None:
    """Counts one request and its latency (microseconds, TF Serving's buckets)."""
    if self.registry is None:
      return
    self.registry.increment(metrics.REQUEST_COUNT, {"model_name": model, "status": status})
    self.registry.observe(metrics.REQUEST_LATENCY,
                          {"model_name": model, "API": api, "entrypoint": entrypoint,
                           "version": version, "signature": signature},
                          seconds * 1e6, metrics.LATENCY_BUCKETS_US)
    if examples:
      self.registry.observe(metrics.REQUEST_EXAMPLES, {"model": model}, examples,
                            metrics.BATCH_SIZE_BUCKETS)

  def shutdown(self) -> None:
    with self._lock:
      for batcher in self._batchers.values():
        batcher.close()
      self._batchers.clear()
    # Calls abandoned by a timeout may still be running: do not wait for them.
    self._executor.shutdown(wait=False, cancel_futures=True)
    if self._scheduler is not None:
      self._scheduler.close()


def error_status(error: BaseException) -> str:
  """The status label of a failed request (e.g. INVALID_ARGUMENT)."""
  return error.code_name if isinstance(error, ServingError) else "UNKNOWN"
