"""serving.grpc_service.write_tensor_proto against tf.make_tensor_proto (the reference)."""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2

from serving.grpc_service import write_tensor_proto

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
