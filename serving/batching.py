"""Server-side batching: concurrent requests merged along dimension 0 into one model call.

Like TF Serving's batching session: one queue per (model, version, signature), a shared
pool of `num_batch_threads` workers. A batch is formed when a worker is free: it takes the
queued requests (waiting up to `batch_timeout_micros` for more while below
`max_batch_size`), concatenates their inputs along dimension 0, runs the model once and
splits every output back by the requests' sizes. Requests whose inputs differ in their
inner dimensions (e.g. a different number of exclusions) run in separate sub-batches.

A request may come with a reply encoder (`ReplyEncoder`): the requests of a batch that
share one get their replies encoded in one pass over the merged outputs, on the batch
thread, instead of one by one on the front end's event loop.

Errors, as TF Serving's: a request larger than `max_batch_size` is INVALID_ARGUMENT
`Task size N is larger than maximum input batch size M`; a request that would make more
than `max_enqueued_batches` batches wait is UNAVAILABLE (the queue is full).
"""

import collections
import concurrent.futures
import dataclasses
import os
import re
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import grpc
import numpy as np

from serving.errors import ServingError

Tensors = Dict[str, np.ndarray]


class ReplyEncoder:
  """Turns model outputs into a front end's replies. Encoders that compare equal are
  applied to their requests of a batch together, so they must be hashable."""

  def one(self, outputs: Tensors) -> Any:
    """The reply of one call's outputs."""
    raise NotImplementedError

  def many(self, outputs: Tensors, ranges: Sequence[Tuple[int, int]]) -> List[Any]:
    """The reply of each request whose rows of the merged `outputs` are [start, stop):
    the same as `one` of those rows' slices."""
    return [self.one({a: v[start:stop] for a, v in outputs.items()})
            for start, stop in ranges]


class _Outputs(ReplyEncoder):
  """The reply of a request without an encoder: its rows of the outputs."""

  def one(self, outputs: Tensors) -> Tensors:
    return outputs


_OUTPUTS = _Outputs()


@dataclasses.dataclass
class BatchingParameters:
  """The fields of TF Serving's BatchingParameters text proto that we honour."""
  max_batch_size: int = 1000
  batch_timeout_micros: int = 0
  max_enqueued_batches: int = 10
  num_batch_threads: int = os.cpu_count() or 1
  allowed_batch_sizes: Tuple[int, ...] = ()

  def validate(self) -> "BatchingParameters":
    if self.max_batch_size < 1 or self.max_enqueued_batches < 1 or self.num_batch_threads < 1:
      raise ValueError("Batching parameters max_batch_size, max_enqueued_batches and "
                       "num_batch_threads must be positive.")
    sizes = list(self.allowed_batch_sizes)
    if sizes and (sizes != sorted(set(sizes)) or sizes[-1] != self.max_batch_size):
      raise ValueError("allowed_batch_sizes must be increasing and end with max_batch_size "
                       f"({self.max_batch_size}); got {sizes}.")
    return self


_WRAPPED = re.compile(r"(\w+)\s*\{\s*value\s*:\s*(\S+?)\s*\}")
_REPEATED = re.compile(r"allowed_batch_sizes\s*:\s*(\d+)")
_KNOWN_IGNORED = {"thread_pool_name", "pad_variable_length_inputs",
                  "enable_large_batch_splitting", "max_execution_batch_size"}


def parse_batching_parameters(text: str) -> BatchingParameters:
  """Parses the text proto (`max_batch_size { value: 128 }`...); raises ValueError."""
  fields = {f.name for f in dataclasses.fields(BatchingParameters)}
  values = {}
  for name, raw in _WRAPPED.findall(text):
    if name in fields and name != "allowed_batch_sizes":
      values[name] = int(raw)
    elif name not in _KNOWN_IGNORED:
      raise ValueError(f"Unknown batching parameter {name!r}; known: {sorted(fields)}.")
  sizes = tuple(int(s) for s in _REPEATED.findall(text))
  leftover = _REPEATED.sub("", _WRAPPED.sub("", text))
  leftover = re.sub(r"#[^\n]*", "", leftover).strip()
  if leftover:
    raise ValueError(f"Error parsing text-format BatchingParameters near {leftover[:60]!r}.")
  return BatchingParameters(**values, allowed_batch_sizes=sizes).validate()


@dataclasses.dataclass
class _Task:
  inputs: Tensors
  size: int
  future: concurrent.futures.Future
  shape_key: tuple
  encoder: ReplyEncoder = _OUTPUTS


def _batch_size(inputs: Tensors) -> int:
  sizes = {np.shape(v)[0] if np.ndim(v) else None for v in inputs.values()}
  if len(sizes) != 1 or None in sizes:
    raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                       "Batching session requires every input tensor to have the same "
                       "0th dimension size.")
  return int(sizes.pop())


class Batcher:
  """Batches calls of one (model version, signature): `submit(inputs)` -> Future of outputs.

  run: the model call, {alias: [N, ...]} -> {alias: [N, ...]}; workers: a semaphore shared
  by all batchers, so at most num_batch_threads batches run at once server-wide.
  """

  def __init__(self, run: Callable[[Tensors], Tensors], params: BatchingParameters,
               workers: threading.Semaphore, on_batch: Optional[Callable[[int], None]] = None,
               executor: Optional[concurrent.futures.Executor] = None):
    self._run = run
    self._params = params
    self._workers = workers
    # Batches run on long-lived threads: a fresh thread per batch cost ~0.3 ms per model
    # call in the server benchmark (cold thread-local TF state).
    self._executor = executor or concurrent.futures.ThreadPoolExecutor(
        max_workers=params.num_batch_threads, thread_name_prefix="batch")
    self._on_batch = on_batch
    self._queue: collections.deque = collections.deque()
    self._queued_size = 0
    self._lock = threading.Condition()
    self._closed = False
    self._thread = threading.Thread(target=self._dispatch, daemon=True, name="batcher")
    self._thread.start()

  def submit(self, inputs: Tensors,
             encoder: Optional[ReplyEncoder] = None) -> concurrent.futures.Future:
    """Future of the request's outputs ({alias: its rows}), or of `encoder`'s reply."""
    size = _batch_size(inputs)
    limit = self._params.max_batch_size
    if size > limit:
      raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                         f"Task size {size} is larger than maximum input batch size {limit}")
    future = concurrent.futures.Future()
    shape_key = tuple(sorted((k, np.shape(v)[1:], np.asarray(v).dtype.str)
                             for k, v in inputs.items()))
    with self._lock:
      waiting_batches = -(-(self._queued_size + size) // limit)  # ceil
      if waiting_batches > self._params.max_enqueued_batches:
        raise ServingError(grpc.StatusCode.UNAVAILABLE,
                           "The batch scheduling queue to which this task was submitted is "
                           "full")
      self._queue.append(_Task(inputs, size, future, shape_key,
                               encoder if encoder is not None else _OUTPUTS))
      self._queued_size += size
      self._lock.notify_all()
    return future

  def close(self) -> None:
    with self._lock:
      self._closed = True
      self._lock.notify_all()

  def _take_batch(self) -> List[_Task]:
    """Waits up to the timeout for a full batch, then pops one (lock held)."""
    deadline = time.monotonic() + self._params.batch_timeout_micros / 1e6
    while (self._queued_size < self._params.max_batch_size and not self._closed
           and time.monotonic() < deadline):
      self._lock.wait(deadline - time.monotonic())
    batch, total = [], 0
    while self._queue and total + self._queue[0].size <= self._params.max_batch_size:
      task = self._queue.popleft()
      batch.append(task)
      total += task.size
    self._queued_size -= total
    return batch

  def _dispatch(self) -> None:
    while True:
      with self._lock:
        while not self._queue and not self._closed:
          self._lock.wait()
        if self._closed and not self._queue:
          return
      # A batch is formed only once a worker is free, so requests keep accumulating
      # while the model is busy: that is what makes batches big under load.
      self._workers.acquire()
      with self._lock:
        batch = self._take_batch()
      if not batch:
        self._workers.release()
        continue
      self._executor.submit(self._execute, batch)

  def _execute(self, batch: List[_Task]) -> None:
    try:
      groups = collections.defaultdict(list)
      for task in batch:
        groups[task.shape_key].append(task)
      for tasks in groups.values():
        self._run_group(tasks)
    finally:
      self._workers.release()

  def _run_group(self, tasks: List[_Task]) -> None:
    sizes = [t.size for t in tasks]
    total = sum(sizes)
    padded = self._padded_size(total)
    merged = {}
    for alias in tasks[0].inputs:
      parts = [np.asarray(t.inputs[alias]) for t in tasks]
      if padded > total:  # allowed_batch_sizes: repeat the last row up to the next size
        parts.append(np.repeat(parts[-1][-1:], padded - total, axis=0))
      merged[alias] = np.concatenate(parts, axis=0)
    if self._on_batch:
      self._on_batch(padded)
    try:
      outputs = self._run(merged)
      for alias, value in outputs.items():
        if np.ndim(value) == 0 or np.shape(value)[0] != padded:
          raise ServingError(grpc.StatusCode.FAILED_PRECONDITION,
                             "Batched output tensor's 0th dimension does not equal the sum "
                             "of the 0th dimension sizes of the input tensors")
    except Exception as e:  # pylint: disable=broad-except
      for task in tasks:
        task.future.set_exception(e)
      return
    offsets = np.cumsum([0] + sizes).tolist()
    by_encoder = collections.defaultdict(list)
    for task, start, stop in zip(tasks, offsets[:-1], offsets[1:]):
      by_encoder[task.encoder].append((task, (start, stop)))
    for encoder, members in by_encoder.items():
      try:
        results = encoder.many(outputs, [span for _, span in members])
      except Exception as e:  # pylint: disable=broad-except
        for task, _ in members:
          task.future.set_exception(e)
        continue
      for (task, _), result in zip(members, results):
        task.future.set_result(result)

  def _padded_size(self, total: int) -> int:
    for size in self._params.allowed_batch_sizes:
      if size >= total:
        return size
    return total
