"""serving.grpc_codec against TensorFlow and protobuf: write_tensor_proto against
tf.make_tensor_proto, read_tensor_proto against tf.make_ndarray, the batch replies against
PredictResponse messages built field by field."""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
from tensorflow_serving.apis import predict_pb2

from serving.grpc_codec import PredictReplies, read_tensor_proto, write_tensor_proto

_RNG = np.random.default_rng(0)


@pytest.mark.parametrize("value", [
    _RNG.normal(size=(1, 100)).astype(np.float32),          # scores
    np.array([[0.5, -np.inf, np.nan]], np.float32),
    _RNG.normal(size=(3,)),                                  # float64
    np.arange(6, dtype=np.int32).reshape(2, 3),
    np.array([10], np.int32),                                # num_scanned, one row
    np.array([2**40, -3], np.int64),
    np.array([2**40], np.int64),
    np.array(5, np.int32),                                   # scalars
    np.array(2.5, np.float32),
    np.array(True),
    np.array(b"q", dtype=object),
    _RNG.random((2, 5)) < 0.5,                               # condition_match
    np.array([True]),
    np.array([[b"item1", b""], [b"\xff\xfe", b"x"]], dtype=object),  # item ids
    np.array([b"z"], dtype=object),
    np.zeros((0, 4), np.float32),                            # empty
    np.zeros((2, 0), dtype=object),
    np.array([1, 2], np.uint8),                              # others: the fallback
    np.array([[1.5]], np.float16),
    np.array(["text"]),                                      # numpy unicode
    np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)),  # not C-contiguous
    np.arange(8, dtype=np.int64)[::2],                                # strided
], ids=lambda v: f"{v.dtype}{list(v.shape)}")
def test_same_proto_as_make_tensor_proto(value):
  proto = tensor_pb2.TensorProto()
  write_tensor_proto(proto, value)
  assert proto == tf.make_tensor_proto(value)


@pytest.mark.parametrize("proto", [
    tf.make_tensor_proto([b"u1", b"u2"]),                           # string_val
    tf.make_tensor_proto([[b"a", b""], [b"\xff", b"x"]]),
    tf.make_tensor_proto(["a", "b", "c"], shape=[3]),
    tf.make_tensor_proto([b"a"], shape=[3]),                        # padded with the last
    tf.make_tensor_proto([10, 20], dtype=tf.int32),                 # tensor_content
    tf.make_tensor_proto([7], dtype=tf.int32),                      # int_val
    tf.make_tensor_proto(7, dtype=tf.int32),                        # a scalar
    tf.make_tensor_proto([1.5, -2.0], dtype=tf.float32),
    tf.make_tensor_proto([2**40], dtype=tf.int64),
    tf.make_tensor_proto([0.25], dtype=tf.float64),
    tf.make_tensor_proto([True, False]),
    tf.make_tensor_proto(np.zeros((0, 3), np.float32)),             # empty
    tf.make_tensor_proto(np.zeros((2, 0), object).astype(bytes)),
    tf.make_tensor_proto([1, 2], dtype=tf.uint8),                   # others: TensorFlow
    tf.make_tensor_proto([1.5], dtype=tf.float16),
], ids=lambda p: f"{tf.as_dtype(p.dtype).name}{[d.size for d in p.tensor_shape.dim]}")
def test_read_tensor_proto_reads_what_make_ndarray_reads(proto):
  expected = tf.make_ndarray(proto)
  got = read_tensor_proto(proto)
  assert got.dtype == expected.dtype and got.shape == expected.shape
  np.testing.assert_array_equal(got, expected)


def _reference_reply(outputs, start, stop):
  """A PredictResponse built message by message, as the synchronous servicer built it."""
  response = predict_pb2.PredictResponse()
  for alias, value in outputs.items():
    value = np.asarray(value)
    write_tensor_proto(response.outputs[alias], value[start:stop] if value.ndim else value)
  response.model_spec.name = "cr"
  response.model_spec.version.value = 3
  response.model_spec.signature_name = "serving_default"
  return response


def test_batch_replies_are_the_replies_built_one_by_one():
  long_id = b"i" * 300  # a string_val entry with a two-byte length
  outputs = {"item_ids": np.array([[b"a", b"bc", long_id], [b"", b"\xff", b"d"],
                                   [b"e", b"f", b"g"], [b"h", b"i", b"j"]], dtype=object),
             "scores": _RNG.normal(size=(4, 3)).astype(np.float32),
             "condition_match": _RNG.random((4, 3)) < 0.5,
             "num_scanned": np.array([5, 6, 7, 8], np.int32),     # one element per row
             "ids64": np.arange(8, dtype=np.int64).reshape(4, 2),
             "half": np.ones((4, 2), np.float16),                   # the fallback
             # One value per row, each dtype's typed field; negative varints take 10 bytes.
             "offset": np.array([-1, 0, 2**31 - 1, -2**31], np.int32),
             "big": np.array([[-2**40], [3], [2**62], [-5]], np.int64),
             "score": np.array([[0.5], [-np.inf], [1e-30], [-0.0]], np.float32),
             "weight": np.array([0.25, -1e300, 3.0, 0.0], np.float64),
             "flag": np.array([[True], [False], [True], [True]]),
             "texts": np.array([["a"], ["b"], ["c"], ["d"]], dtype=object),  # str: fallback
             "none": np.zeros((4, 0), dtype=object)}
  replies = PredictReplies("cr", 3, "serving_default")
  ranges = [(0, 1), (1, 3), (3, 3), (3, 4)]
  for (start, stop), reply in zip(ranges, replies.many(outputs, ranges)):
    assert predict_pb2.PredictResponse.FromString(reply) == \
        _reference_reply(outputs, start, stop), (start, stop)
  whole = predict_pb2.PredictResponse.FromString(replies.one(outputs))
  assert whole == _reference_reply(outputs, 0, 4)
  assert tf.make_ndarray(whole.outputs["item_ids"])[0, 2] == long_id
