"""TensorProtos to and from NumPy, and Predict replies encoded per batch, for the gRPC front end.

`read_tensor_proto` and `write_tensor_proto` give what `tf.make_ndarray` and
`tf.make_tensor_proto` give, several times faster for the dtypes servables take and
return (both ran on the request's path, ~100 us per 4-tensor request or reply).

`PredictReplies` is the gRPC side's reply encoder for the dispatcher
(`serving.batching.ReplyEncoder`): a request's reply comes back as the serialized
PredictResponse, built on the batch thread (once per batch when batching is on) instead of
on the gRPC event loop, and sent as it is.
"""

import dataclasses
import math
from typing import List, Sequence, Tuple

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import model_pb2

from serving.batching import ReplyEncoder

# dtype -> (DataType, the repeated field make_tensor_proto uses for 0 or 1 element).
_CONTENT_DTYPES = {np.dtype(np.float32): (types_pb2.DT_FLOAT, "float_val"),
                   np.dtype(np.float64): (types_pb2.DT_DOUBLE, "double_val"),
                   np.dtype(np.int32): (types_pb2.DT_INT32, "int_val"),
                   np.dtype(np.int64): (types_pb2.DT_INT64, "int64_val")}
# DataType -> (NumPy dtype, its repeated field) for the inputs read without TensorFlow.
_READ_DTYPES = {types_pb2.DT_FLOAT: (np.dtype(np.float32), "float_val"),
                types_pb2.DT_DOUBLE: (np.dtype(np.float64), "double_val"),
                types_pb2.DT_INT32: (np.dtype(np.int32), "int_val"),
                types_pb2.DT_INT64: (np.dtype(np.int64), "int64_val"),
                types_pb2.DT_BOOL: (np.dtype(np.bool_), "bool_val")}


def write_tensor_proto(proto, value) -> None:
  """Fills `proto` as `tf.make_tensor_proto(value)` would."""
  array = np.asarray(value)
  content = _CONTENT_DTYPES.get(array.dtype)
  if content is not None:
    proto.dtype = content[0]
    if array.size > 1:
      proto.tensor_content = np.ascontiguousarray(array).astype(
          array.dtype.newbyteorder("<"), copy=False).tobytes()
    else:
      getattr(proto, content[1]).extend(array.ravel().tolist())
  elif array.dtype == np.bool_:
    proto.dtype = types_pb2.DT_BOOL
    proto.bool_val.extend(array.ravel().tolist())
  elif array.dtype == object and all(isinstance(v, bytes) for v in array.flat):
    proto.dtype = types_pb2.DT_STRING
    proto.string_val.extend(array.ravel().tolist())
  else:
    proto.CopyFrom(tf.make_tensor_proto(array))
    return
  proto.tensor_shape.SetInParent()  # a scalar still has an (empty) shape
  for size in array.shape:
    proto.tensor_shape.dim.add().size = size


def read_tensor_proto(proto) -> np.ndarray:
  """`tf.make_ndarray(proto)`: the common layouts (every element given, or tensor_content)
  read directly, anything else (padding by the last value, other dtypes) by TensorFlow.
  (Each protobuf field access costs ~1-2 us here: read each once.)"""
  shape = [d.size for d in proto.tensor_shape.dim]
  if not shape and proto.tensor_shape.unknown_rank:
    return tf.make_ndarray(proto)
  count = math.prod(shape)
  dtype = proto.dtype
  content = proto.tensor_content
  if dtype == types_pb2.DT_STRING and not content:
    values = list(proto.string_val)
    if len(values) != count or count == 0:
      return tf.make_ndarray(proto)
    return np.array(values, dtype=object).reshape(shape)
  read = _READ_DTYPES.get(dtype)
  if read is None:
    return tf.make_ndarray(proto)
  numpy_dtype, field = read
  if content:
    return np.frombuffer(content, dtype=numpy_dtype).copy().reshape(shape)
  values = getattr(proto, field)
  if len(values) != count or count == 0:
    return tf.make_ndarray(proto)
  return np.array(values, dtype=numpy_dtype).reshape(shape)


def _varint(value: int) -> bytes:
  out = bytearray()
  while value > 0x7F:
    out.append((value & 0x7F) | 0x80)
    value >>= 7
  out.append(value)
  return bytes(out)


def _length_delimited(tag: int, payload: bytes) -> bytes:
  size = len(payload)
  if size < 128:  # a one-byte varint: the common case, kept cheap
    return bytes((tag, size)) + payload
  return bytes((tag,)) + _varint(size) + payload


# Wire tags (field number << 3 | wire type 2, length-delimited) of the fields written here.
# PredictResponse { map<string, TensorProto> outputs = 1; ModelSpec model_spec = 2; }, a map
# entry being a message { key = 1; value = 2 }; TensorProto's tensor_content = 4, its
# repeated string_val = 8 and its packed bool_val = 11.
_OUTPUTS_ENTRY, _ENTRY_KEY, _ENTRY_VALUE, _MODEL_SPEC = 0x0A, 0x0A, 0x12, 0x12
_TENSOR_CONTENT, _BOOL_VAL = 0x22, 0x5A


def _one_tensor(array: np.ndarray) -> bytes:
  proto = tensor_pb2.TensorProto()
  write_tensor_proto(proto, array)
  return proto.SerializeToString()


def tensor_slices(array: np.ndarray, ranges: Sequence[Tuple[int, int]]) -> List[bytes]:
  """The serialized TensorProto `write_tensor_proto` fills for `array[start:stop]`, for
  each range, with the per-element work done once for the whole array: a slice's
  elements are a contiguous run of bytes in the encoding of all of them (tensor_content,
  packed bools, or the string_val entries), so each reply is a cached header (dtype,
  shape) and one bytes slice. Other dtypes, 0-d arrays and one-element slices (written as
  typed fields) go through `write_tensor_proto`."""
  array = np.asarray(array)
  if array.ndim == 0:
    return [_one_tensor(array) for _ in ranges]
  per_row = math.prod(array.shape[1:])
  content = _CONTENT_DTYPES.get(array.dtype)
  if content is not None:
    tag = _TENSOR_CONTENT
    data = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"),
                                             copy=False).tobytes()
    offsets = np.arange(array.shape[0] * per_row + 1) * array.dtype.itemsize
  elif array.dtype == np.bool_:
    tag = _BOOL_VAL
    data = np.ascontiguousarray(array).view(np.uint8).tobytes()
    offsets = np.arange(array.shape[0] * per_row + 1)
  elif array.dtype == object:
    flat = array.ravel().tolist()
    if set(map(type, flat)) - {bytes}:
      return [_one_tensor(array[start:stop]) for start, stop in ranges]
    tag = None  # string_val entries carry their own tags
    data = tensor_pb2.TensorProto(string_val=flat).SerializeToString()
    lengths = np.fromiter(map(len, flat), np.int64, len(flat))
    encoded = 1 + lengths + 1  # tag, varint length (1 byte below 128), the bytes
    for bound in (1 << 7, 1 << 14, 1 << 21, 1 << 28, 1 << 35):
      encoded += lengths >= bound
    offsets = np.concatenate([[0], np.cumsum(encoded)])
  else:
    return [_one_tensor(array[start:stop]) for start, stop in ranges]
  offsets = offsets.tolist()
  headers = {}
  replies = []
  for start, stop in ranges:
    rows = stop - start
    count = rows * per_row
    if count == 1 and content is not None:  # a typed field, not tensor_content
      replies.append(_one_tensor(array[start:stop]))
      continue
    header = headers.get(rows)
    if header is None:
      proto = tensor_pb2.TensorProto()
      write_tensor_proto(proto, array[:0])
      proto.tensor_shape.dim[0].size = rows
      header = headers[rows] = proto.SerializeToString()
    if count == 0:
      replies.append(header)
      continue
    payload = data[offsets[start * per_row]:offsets[stop * per_row]]
    replies.append(header + (payload if tag is None else _length_delimited(tag, payload)))
  return replies


@dataclasses.dataclass(frozen=True)
class PredictReplies(ReplyEncoder):
  """Serialized PredictResponses of one model version and signature.

  Protobuf's wire format is a concatenation of fields, so a reply is its output entries
  (`tensor_slices`) and the model spec (serialized once per batch) joined as bytes: no
  message is built per request, and the per-element work is done once per batch.
  """
  name: str
  version: int
  signature: str

  def _model_spec(self) -> bytes:
    spec = model_pb2.ModelSpec(name=self.name, signature_name=self.signature)
    spec.version.value = self.version
    return _length_delimited(_MODEL_SPEC, spec.SerializeToString())

  def one(self, outputs) -> bytes:
    rows = {np.shape(v)[0] for v in outputs.values() if np.ndim(v)}
    if len(rows) > 1:  # outputs of different batch sizes: each one whole
      return self._join({alias: [_one_tensor(np.asarray(value))]
                         for alias, value in outputs.items()}, 1)[0]
    return self.many(outputs, [(0, rows.pop() if rows else 0)])[0]

  def many(self, outputs, ranges: Sequence[Tuple[int, int]]) -> List[bytes]:
    return self._join({alias: tensor_slices(value, ranges)
                       for alias, value in outputs.items()}, len(ranges))

  def _join(self, tensors, count: int) -> List[bytes]:
    spec = self._model_spec()
    keys = {alias: _length_delimited(_ENTRY_KEY, alias.encode()) for alias in tensors}
    return [b"".join([_length_delimited(
        _OUTPUTS_ENTRY, keys[alias] + _length_delimited(_ENTRY_VALUE, parts[i]))
                      for alias, parts in tensors.items()] + [spec])
            for i in range(count)]
