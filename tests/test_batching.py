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
  batcher = Batcher(model, BatchingParameters(max_batch_size=64, num_batch_threads=1),
                    threading.Semaphore(1))
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
                                              num_batch_threads=1), threading.Semaphore(1))
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
  batcher = Batcher(model, params, threading.Semaphore(1))
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
  batcher = Batcher(broken, BatchingParameters(), threading.Semaphore(2))
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
  batcher = Batcher(model, BatchingParameters(max_batch_size=64, num_batch_threads=1),
                    threading.Semaphore(1))
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
