"""Server-side batching: concurrent requests merged along dimension 0 into one model call.

Like TF Serving's batching session: one queue per (model, version, signature), a shared
pool of `num_batch_threads` threads (`BatchScheduler`). A batch is formed when a thread is
free: it takes the queued requests, up to `max_batch_size` rows, once they fill a batch or
the oldest has waited `batch_timeout_micros`, concatenates their inputs along dimension 0,
runs the model once and splits every output back by the requests' sizes. Requests whose
inputs differ in their inner dimensions (e.g. a different number of exclusions) run in
separate sub-batches.

A request is answered through a `concurrent.futures.Future`, or through an asyncio future
of the front end's event loop (`waiter`): those of a batch are all handed to their loop in
one call (`serving.loop_delivery`), with no thread-safe future per request.

A request may come with a reply encoder (`ReplyEncoder`): the requests of a batch that
share one get their replies encoded in one pass over the merged outputs, on the batch
thread, instead of one by one on the front end's event loop.

Errors, as TF Serving's: a request larger than `max_batch_size` is INVALID_ARGUMENT
`Task size N is larger than maximum input batch size M`; a request that would make more
than `max_enqueued_batches` batches wait is UNAVAILABLE (the queue is full).
"""

import asyncio
import collections
import concurrent.futures
import dataclasses
import itertools
import os
import re
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import grpc
import numpy as np

from serving import loop_delivery
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
  target: Any  # a concurrent.futures.Future, or an asyncio future answered on its loop
  shape_key: tuple
  encoder: ReplyEncoder
  enqueued: float  # time.monotonic()


def _batch_size(inputs: Tensors) -> int:
  sizes = {np.shape(v)[0] if np.ndim(v) else None for v in inputs.values()}
  if len(sizes) != 1 or None in sizes:
    raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                       "Batching session requires every input tensor to have the same "
                       "0th dimension size.")
  return int(sizes.pop())


def _settle(outcomes: List[Tuple[Any, Any, Optional[BaseException]]]) -> None:
  """Answers each (target, value, error): concurrent futures here, asyncio futures on their
  loops, all of a loop's in one hand-over."""
  on_loops = []
  for target, value, error in outcomes:
    if isinstance(target, concurrent.futures.Future):
      if error is not None:
        target.set_exception(error)
      else:
        target.set_result(value)
    else:
      on_loops.append((target, value, error))
  if on_loops:
    loop_delivery.post(on_loops)


class BatchScheduler:
  """`num_batch_threads` threads shared by batchers, as TF Serving's shared batch scheduler.

  A free thread takes the next ready batch itself and runs it: the batcher whose oldest
  request has waited longest, once its queue fills a batch or that request has waited
  `batch_timeout_micros` (or the batcher is closing). So a batch is formed only when a
  thread is free, and requests keep accumulating while the model is busy; requests that
  waited through a model call are taken at once, with no further timeout.

  Why no dispatcher thread: a dispatcher handing batches to a pool woke two threads per
  batch, and each waited for the GIL behind the event loop that was busy answering the
  previous batch. In the gRPC benchmark that left the model idle ~4.5 ms between calls of
  ~3 ms, and batches half full.
  """

  def __init__(self, num_threads: int, name: str = "batch"):
    self._cond = threading.Condition()
    self._batchers: List["Batcher"] = []
    self._closed = False
    self._threads = [threading.Thread(target=self._work, daemon=True, name=f"{name}_{i}")
                     for i in range(num_threads)]
    for thread in self._threads:
      thread.start()

  @property
  def lock(self) -> threading.Condition:
    """Guards every registered batcher's queue."""
    return self._cond

  def register(self, batcher: "Batcher") -> None:
    with self._cond:
      if self._closed:
        raise RuntimeError("The batch scheduler is closed.")
      self._batchers.append(batcher)

  def close(self) -> None:
    """Threads finish the batches queued and exit; does not wait for them."""
    with self._cond:
      self._closed = True
      for batcher in self._batchers:
        batcher._closed = True  # pylint: disable=protected-access
      self._cond.notify_all()

  def _next(self, now: float) -> Tuple[Optional["Batcher"], Optional[float]]:
    """(a batcher with a ready batch, None) or (None, seconds until one may be ready, or
    None: nothing queued). Lock held."""
    ready, ready_since, wait = None, None, None
    for batcher in list(self._batchers):
      if not batcher._queue:  # pylint: disable=protected-access
        if batcher._closed:  # pylint: disable=protected-access
          self._batchers.remove(batcher)
        continue
      oldest = batcher._queue[0].enqueued  # pylint: disable=protected-access
      due = oldest + batcher._timeout  # pylint: disable=protected-access
      if batcher._full() or batcher._closed or due <= now:  # pylint: disable=protected-access
        if ready is None or oldest < ready_since:
          ready, ready_since = batcher, oldest
      elif wait is None or due - now < wait:
        wait = due - now
    return (ready, None) if ready is not None else (None, wait)

  def _work(self) -> None:
    with self._cond:
      while True:
        batcher, wait = self._next(time.monotonic())
        if batcher is not None:
          batch = batcher._pop_batch()  # pylint: disable=protected-access
          if batcher._queue:  # pylint: disable=protected-access
            self._cond.notify()  # what is left may be another free thread's batch
          self._cond.release()
          try:
            batcher._execute(batch)  # pylint: disable=protected-access
          except Exception as e:  # pylint: disable=broad-except
            # Not a model error (those reach their requests in _run_group): whatever it
            # is, the batch's requests get it, and the thread lives on for the next batch.
            _settle([(task.target, None, e) for task in batch if not task.target.done()])
          finally:
            self._cond.acquire()
        elif self._closed and wait is None:
          return
        else:
          self._cond.wait(wait)


class Batcher:
  """Batches calls of one (model version, signature): `submit(inputs)` -> Future of outputs.

  run: the model call, {alias: [N, ...]} -> {alias: [N, ...]}; scheduler: the threads that
  run batches, shared by every batcher of a server so that at most num_batch_threads
  batches run at once server-wide (None: a scheduler of the batcher's own, closed with it).
  """

  def __init__(self, run: Callable[[Tensors], Tensors], params: BatchingParameters,
               scheduler: Optional[BatchScheduler] = None,
               on_batch: Optional[Callable[[int], None]] = None):
    self._run = run
    self._params = params
    self._timeout = params.batch_timeout_micros / 1e6
    self._owns_scheduler = scheduler is None
    self._scheduler = scheduler or BatchScheduler(params.num_batch_threads)
    self._on_batch = on_batch
    self._queue: collections.deque = collections.deque()
    self._queued_size = 0
    self._closed = False
    self._scheduler.register(self)

  def submit(self, inputs: Tensors, encoder: Optional[ReplyEncoder] = None,
             waiter: Optional[asyncio.Future] = None):
    """Future of the request's outputs ({alias: its rows}), or of `encoder`'s reply: a
    concurrent.futures.Future, or `waiter` (an asyncio future) when given."""
    size = _batch_size(inputs)
    limit = self._params.max_batch_size
    if size > limit:
      raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                         f"Task size {size} is larger than maximum input batch size {limit}")
    future = waiter if waiter is not None else concurrent.futures.Future()
    shape_key = tuple(sorted((k, np.shape(v)[1:], np.asarray(v).dtype.str)
                             for k, v in inputs.items()))
    task = _Task(inputs, size, future, shape_key,
                 encoder if encoder is not None else _OUTPUTS, time.monotonic())
    with self._scheduler.lock:
      if self._closed:
        raise ServingError(grpc.StatusCode.UNAVAILABLE, "The batcher is closed")
      waiting_batches = -(-(self._queued_size + size) // limit)  # ceil
      if waiting_batches > self._params.max_enqueued_batches:
        raise ServingError(grpc.StatusCode.UNAVAILABLE,
                           "The batch scheduling queue to which this task was submitted is "
                           "full")
      was_empty = not self._queue
      self._queue.append(task)
      self._queued_size += size
      # Only a new oldest request (a new deadline, or ready now) or a full batch changes
      # what a waiting thread waits for: the other submits wake nobody.
      if was_empty or self._full():
        self._scheduler.lock.notify()
    return future

  def close(self) -> None:
    """No new requests; the queued ones still run."""
    with self._scheduler.lock:
      self._closed = True
      self._scheduler.lock.notify_all()
    if self._owns_scheduler:
      self._scheduler.close()

  def _full(self) -> bool:
    return self._queued_size >= self._params.max_batch_size

  def _pop_batch(self) -> List[_Task]:
    """The oldest requests, up to max_batch_size rows (scheduler lock held)."""
    batch, total = [], 0
    while self._queue and total + self._queue[0].size <= self._params.max_batch_size:
      task = self._queue.popleft()
      batch.append(task)
      total += task.size
    self._queued_size -= total
    return batch

  def _execute(self, batch: List[_Task]) -> None:
    groups = collections.defaultdict(list)
    for task in batch:
      groups[task.shape_key].append(task)
    for tasks in groups.values():
      self._run_group(tasks)

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
      _settle([(task.target, None, e) for task in tasks])
      return
    offsets = list(itertools.accumulate(sizes, initial=0))
    by_encoder = collections.defaultdict(list)
    for task, start, stop in zip(tasks, offsets[:-1], offsets[1:]):
      by_encoder[task.encoder].append((task, (start, stop)))
    outcomes = []
    for encoder, members in by_encoder.items():
      try:
        results = encoder.many(outputs, [span for _, span in members])
      except Exception as e:  # pylint: disable=broad-except
        outcomes.extend((task.target, None, e) for task, _ in members)
        continue
      outcomes.extend((task.target, result, None)
                      for (task, _), result in zip(members, results))
    _settle(outcomes)

  def _padded_size(self, total: int) -> int:
    for size in self._params.allowed_batch_sizes:
      if size >= total:
        return size
    return total
