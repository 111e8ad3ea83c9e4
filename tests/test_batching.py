"""Server-side batching: merge, split, limits and the parameters file."""

import dataclasses
import threading
import time

import grpc
import numpy as np
import pytest

from serving.batching import (Batcher, BatchingParameters, ReplyEncoder,
                              parse_batching_parameters)
from serving.errors import ServingError


class SlowModel:
  """y = 2x + row index within the call; records the batch sizes it was called with."""

  def __init__(self, seconds=0.05):
    self.calls = []
    self.seconds = seconds
    self.lock = threading.Lock()

  def __call__(self, inputs):
    time.sleep(self.seconds)
    x = inputs["x"]
    with self.lock:
      self.calls.append(len(x))
    return {"y": 2 * x, "n": np.full(len(x), len(x))}


def test_concurrent_requests_are_merged_and_split_back():
  model = SlowModel()
  batcher = Batcher(model, BatchingParameters(max_batch_size=64, num_batch_threads=1))
  futures = [batcher.submit({"x": np.arange(i, i + 3, dtype=np.float32)}) for i in range(20)]
  results = [f.result(timeout=10) for f in futures]
  for i, result in enumerate(results):
    np.testing.assert_array_equal(result["y"], 2 * np.arange(i, i + 3))
  # The first call runs alone; the 19 others queue meanwhile and go in one or two calls.
  assert sum(model.calls) == 60
  assert len(model.calls) <= 3 and max(model.calls) >= 27
  batcher.close()


def test_oversized_request_and_full_queue():
  model = SlowModel(seconds=0.3)
  batcher = Batcher(model, BatchingParameters(max_batch_size=4, max_enqueued_batches=2,
                                              num_batch_threads=1))
  with pytest.raises(ServingError) as error:
    batcher.submit({"x": np.zeros(5, np.float32)})
  assert error.value.code == grpc.StatusCode.INVALID_ARGUMENT
  assert error.value.message == "Task size 5 is larger than maximum input batch size 4"
  first = batcher.submit({"x": np.zeros(4, np.float32)})
  time.sleep(0.1)  # the first batch is running; the queue holds at most 2 batches of 4
  queued = [batcher.submit({"x": np.zeros(4, np.float32)}) for _ in range(2)]
  with pytest.raises(ServingError) as error:
    batcher.submit({"x": np.zeros(1, np.float32)})
  assert error.value.code == grpc.StatusCode.UNAVAILABLE
  assert error.value.http_status == 503
  for f in [first] + queued:
    f.result(timeout=10)
  batcher.close()


def test_different_inner_shapes_run_separately_and_allowed_sizes_pad():
  model = SlowModel(seconds=0.1)
  params = BatchingParameters(max_batch_size=8, allowed_batch_sizes=(4, 8),
                              num_batch_threads=1)
  batcher = Batcher(model, params)
  blocker = batcher.submit({"x": np.zeros((1, 2), np.float32)})
  time.sleep(0.03)
  a = batcher.submit({"x": np.ones((1, 2), np.float32)})
  b = batcher.submit({"x": np.ones((2, 3), np.float32)})
  assert a.result(timeout=10)["y"].shape == (1, 2)
  assert b.result(timeout=10)["y"].shape == (2, 3)
  blocker.result(timeout=10)
  assert model.calls == [4, 4, 4]  # each group padded up to the allowed size 4
  batcher.close()


def test_model_errors_reach_every_request_of_the_batch():
  def broken(inputs):
    raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "bad x")
  batcher = Batcher(broken, BatchingParameters())
  futures = [batcher.submit({"x": np.zeros(2)}) for _ in range(3)]
  for f in futures:
    with pytest.raises(ServingError, match="bad x"):
      f.result(timeout=10)
  batcher.close()


@dataclasses.dataclass(frozen=True)
class Texts(ReplyEncoder):
  """Replies "<prefix>:<y values>"; counts its `many` calls and the rows they saw."""
  prefix: str
  fail: bool = False
  log: list = dataclasses.field(default_factory=list, compare=False, hash=False)

  def one(self, outputs):
    if self.fail:
      raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"{self.prefix} cannot encode")
    return f"{self.prefix}:{outputs['y'].tolist()}"

  def many(self, outputs, ranges):
    self.log.append((len(outputs["y"]), list(ranges)))
    return super().many(outputs, ranges)


def test_requests_sharing_an_encoder_get_their_replies_encoded_once_per_batch():
  model = SlowModel(seconds=0.2)
  batcher = Batcher(model, BatchingParameters(max_batch_size=64, num_batch_threads=1))
  log = []
  row, col, bad = Texts("row", log=log), Texts("col", log=log), Texts("bad", True, log)
  blocker = batcher.submit({"x": np.zeros(1, np.float32)})
  time.sleep(0.05)  # the rest queue while the first call runs, and form one batch
  plan = [(row, 1), (None, 2), (col, 1), (row, 3), (bad, 1), (Texts("row", log=[]), 2)]
  futures = []
  for i, (encoder, size) in enumerate(plan):
    x = np.arange(size, dtype=np.float32) + 10 * i
    futures.append((x, encoder, batcher.submit({"x": x}, encoder)))
  blocker.result(timeout=10)
  for x, encoder, future in futures:
    if encoder is None:
      np.testing.assert_array_equal(future.result(timeout=10)["y"], 2 * x)
    elif encoder.fail:
      with pytest.raises(ServingError, match="bad cannot encode"):
        future.result(timeout=10)
    else:
      assert future.result(timeout=10) == f"{encoder.prefix}:{(2 * x).tolist()}"
  assert model.calls == [1, 10]
  # Equal encoders share one pass over the merged outputs, with their requests' rows.
  # Rows 0-9 of the batch: sizes 1, 2, 1, 3, 1, 2. Equal encoders (the two "row" ones)
  # share one pass over the merged outputs, given their requests' rows.
  assert log == [(10, [(0, 1), (4, 7), (8, 10)]), (10, [(3, 4)]), (10, [(7, 8)])]
  batcher.close()


def test_parse_batching_parameters():
  params = parse_batching_parameters("""
      max_batch_size { value: 128 }
      batch_timeout_micros { value: 0 }
      max_enqueued_batches { value: 1000000 }
      num_batch_threads { value: 8 }
      thread_pool_name { value: "model_server_batch_threads" }
  """)
  assert (params.max_batch_size, params.max_enqueued_batches, params.num_batch_threads) == \
      (128, 1000000, 8)
  assert parse_batching_parameters("max_batch_size { value: 8 } allowed_batch_sizes: 4 "
                                   "allowed_batch_sizes: 8").allowed_batch_sizes == (4, 8)
  with pytest.raises(ValueError, match="end with max_batch_size"):
    parse_batching_parameters("max_batch_size { value: 8 } allowed_batch_sizes: 4")
  with pytest.raises(ValueError, match="Unknown batching parameter 'max_batchsize'"):
    parse_batching_parameters("max_batchsize { value: 8 }")
  with pytest.raises(ValueError, match="Error parsing"):
    parse_batching_parameters("max_batch_size: 8")


def test_the_batch_timeout_counts_from_the_oldest_request_not_from_a_free_thread():
  # TF Serving's batch timeout: a batch waits for company until its oldest request has
  # waited batch_timeout_micros. Requests that queued through a longer model call have
  # waited long enough: they run as soon as the thread is free, with no timeout of their own.
  spans = []

  def model(inputs):
    started = time.monotonic()
    time.sleep(0.6)
    spans.append((started, time.monotonic(), len(inputs["x"])))
    return {"y": 2 * inputs["x"]}

  batcher = Batcher(model, BatchingParameters(max_batch_size=64, batch_timeout_micros=200_000,
                                              num_batch_threads=1))
  submitted = time.monotonic()
  blocker = batcher.submit({"x": np.zeros(20, np.float32)})
  time.sleep(0.35)  # the blocker waited 0.2 s for company and is running now
  queued = [batcher.submit({"x": np.full(1, i, np.float32)}) for i in range(3)]
  for i, f in enumerate(queued):
    np.testing.assert_array_equal(f.result(timeout=10)["y"], [2 * i])
  blocker.result(timeout=10)
  (first_start, first_end, first_size), (second_start, _, second_size) = spans
  assert (first_size, second_size) == (20, 3)
  assert first_start - submitted >= 0.19  # the lone request waited its timeout
  # Queued ~0.45 s before the first call ended: the second started on its heels (a wait
  # for the thread's wake-up), not 0.2 s later.
  assert second_start - first_end < 0.1, second_start - first_end
  batcher.close()


def test_batchers_share_the_scheduler_threads():
  # Two models' batchers on one thread: their calls never overlap, and both get served.
  from serving.batching import BatchScheduler  # pylint: disable=g-import-not-at-top
  running, overlaps, lock = [0], [0], threading.Lock()

  def model(inputs):
    with lock:
      running[0] += 1
      overlaps[0] = max(overlaps[0], running[0])
    time.sleep(0.02)
    with lock:
      running[0] -= 1
    return {"y": inputs["x"] + 1}

  scheduler = BatchScheduler(1)
  params = BatchingParameters(max_batch_size=4, num_batch_threads=1)
  first, second = Batcher(model, params, scheduler), Batcher(model, params, scheduler)
  futures = [(b, b.submit({"x": np.full(1, i, np.float32)}))
             for i in range(12) for b in (first, second)]
  for i, (_, f) in enumerate(futures):
    np.testing.assert_array_equal(f.result(timeout=10)["y"], [i // 2 + 1])
  assert overlaps[0] == 1
  # Two threads run two batches at once: a queue of two full batches is split between
  # them (the thread that takes the first wakes the other for the rest).
  overlaps[0] = 0
  wide = BatchScheduler(2)
  batcher = Batcher(model, BatchingParameters(max_batch_size=4, batch_timeout_micros=0,
                                              num_batch_threads=2), wide)
  blocker = batcher.submit({"x": np.zeros(4, np.float32)})
  futures = [batcher.submit({"x": np.zeros(4, np.float32)}) for _ in range(4)]
  for f in [blocker] + futures:
    f.result(timeout=10)
  assert overlaps[0] == 2
  scheduler.close()
  wide.close()


def test_close_runs_what_is_queued_and_refuses_new_requests():
  model = SlowModel(seconds=0.1)
  batcher = Batcher(model, BatchingParameters(max_batch_size=4, batch_timeout_micros=10**7,
                                              num_batch_threads=1))
  queued = [batcher.submit({"x": np.full(1, i, np.float32)}) for i in range(3)]
  batcher.close()  # long before the 10 s timeout: the queued requests still run now
  for i, f in enumerate(queued):
    np.testing.assert_array_equal(f.result(timeout=5)["y"], [2 * i])
  with pytest.raises(ServingError) as error:
    batcher.submit({"x": np.zeros(1, np.float32)})
  assert error.value.code == grpc.StatusCode.UNAVAILABLE


def test_asyncio_waiters_of_a_batch_are_answered_in_one_hand_over():
  import asyncio  # pylint: disable=g-import-not-at-top
  from serving import loop_delivery  # pylint: disable=g-import-not-at-top
  model = SlowModel(seconds=0.1)
  batcher = Batcher(model, BatchingParameters(max_batch_size=64, num_batch_threads=1))

  async def scenario():
    loop = asyncio.get_running_loop()
    drains = [0]
    box = loop_delivery._mailbox(loop)  # pylint: disable=protected-access
    drain = box._drain  # pylint: disable=protected-access

    def counted():
      drains[0] += 1
      drain()
    box._drain = counted  # pylint: disable=protected-access
    blocker = batcher.submit({"x": np.zeros(1, np.float32)}, waiter=loop.create_future())
    await asyncio.sleep(0.03)  # the rest queue behind the running call: one batch
    waiters = [loop.create_future() for _ in range(32)]
    late = loop.create_future()
    for i, waiter in enumerate(waiters):
      batcher.submit({"x": np.full(1, i, np.float32)}, waiter=waiter)
    batcher.submit({"x": np.zeros(1, np.float32)}, waiter=late)
    late.cancel()  # its client went away: its answer is dropped, not set on a done future
    await blocker
    before = drains[0]
    results = await asyncio.gather(*waiters)
    return results, drains[0] - before, late.cancelled()

  results, drains, cancelled = asyncio.run(scenario())
  assert [r["y"].tolist() for r in results] == [[2.0 * i] for i in range(32)]
  assert drains == 1 and cancelled
  assert model.calls == [1, 33]
  batcher.close()


def test_a_failure_outside_the_model_fails_its_batch_and_the_thread_serves_on():
  calls = []

  def on_batch(size):
    calls.append(size)
    if len(calls) == 1:
      raise RuntimeError("metrics broke")

  batcher = Batcher(lambda inputs: {"y": inputs["x"] * 3},
                    BatchingParameters(max_batch_size=8, num_batch_threads=1),
                    on_batch=on_batch)
  with pytest.raises(RuntimeError, match="metrics broke"):
    batcher.submit({"x": np.ones(2, np.float32)}).result(timeout=10)
  np.testing.assert_array_equal(
      batcher.submit({"x": np.ones(2, np.float32)}).result(timeout=10)["y"], [3, 3])
  assert calls == [2, 2]
  batcher.close()
