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
from typing import List, Optional, Sequence, Tuple

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


# The typed field make_tensor_proto writes a one-element tensor's value into: its wire tag
# (packed repeated, length-delimited) and how the value is encoded.
_ONE_VALUE_FIELDS = {np.dtype(np.float32): (0x2A, "<f4"),   # float_val = 5, fixed32
                     np.dtype(np.float64): (0x32, "<f8"),   # double_val = 6, fixed64
                     np.dtype(np.int32): (0x3A, None),      # int_val = 7, varint
                     np.dtype(np.int64): (0x52, None)}      # int64_val = 10, varint


def _one_values(array: np.ndarray, rows: int) -> List[bytes]:
  """Each row's one value as the typed field make_tensor_proto writes (`array`: [rows])."""
  tag, fixed = _ONE_VALUE_FIELDS[array.dtype]
  if fixed is not None:
    data = np.ascontiguousarray(array, dtype=fixed).tobytes()
    width = np.dtype(fixed).itemsize
    head = bytes((tag, width))
    return [head + data[i * width:(i + 1) * width] for i in range(rows)]
  # Negative int32/int64 values are varints of their 64-bit two's complement.
  encoded = [_varint(v & 0xFFFFFFFFFFFFFFFF) for v in array.tolist()]
  return [bytes((tag, len(v))) + v for v in encoded]


def _row_payloads(array: np.ndarray) -> Optional[Tuple[Optional[int], List[bytes]]]:
  """(wire tag or None, each row's encoded values) of `array` [rows, ...], or None where
  the dtype is not one of the direct encodings: tensor_content or packed bools (tag given;
  the payload still needs its length), or string_val entries (tag None: each entry
  carries its own tag and length)."""
  rows, per_row = array.shape[0], math.prod(array.shape[1:])
  content = _CONTENT_DTYPES.get(array.dtype)
  if content is not None or array.dtype == np.bool_:
    tag = _TENSOR_CONTENT if content is not None else _BOOL_VAL
    flat = np.ascontiguousarray(array)
    if content is not None:
      flat = flat.astype(array.dtype.newbyteorder("<"), copy=False)
    else:
      flat = flat.view(np.uint8)
    data = flat.tobytes()
    width = len(data) // rows if rows else 0
    return tag, [data[i * width:(i + 1) * width] for i in range(rows)]
  if array.dtype == object:
    try:  # bytes only (what make_tensor_proto writes as is); anything else falls back
      return None, [tensor_pb2.TensorProto(string_val=row).SerializeToString()
                    for row in array.reshape(rows, per_row).tolist()]
    except TypeError:
      return None
  return None


def tensor_slices(array: np.ndarray, ranges: Sequence[Tuple[int, int]]) -> List[bytes]:
  """The serialized TensorProto `write_tensor_proto` fills for `array[start:stop]`, for
  each range, with the per-element work done once per row for the whole array: a slice's
  elements are a contiguous run of bytes in the encoding of all of them (tensor_content,
  packed bools, or the string_val entries), so each reply is a cached header (dtype,
  shape) and the bytes of its rows. One-element slices of numbers are written as
  make_tensor_proto writes them, as one typed value (float_val, int_val...); other dtypes
  and 0-d arrays go through `write_tensor_proto`."""
  array = np.asarray(array)
  if array.ndim == 0:
    return [_one_tensor(array) for _ in ranges]
  per_row = math.prod(array.shape[1:])
  encoded = _row_payloads(array)
  if encoded is None:
    return [_one_tensor(array[start:stop]) for start, stop in ranges]
  tag, rows = encoded
  one_values = None
  if per_row == 1 and array.dtype in _ONE_VALUE_FIELDS:
    one_values = _one_values(array.reshape(-1), array.shape[0])
  headers = {}
  replies = []
  for start, stop in ranges:
    count = (stop - start) * per_row
    header = headers.get(stop - start)
    if header is None:
      proto = tensor_pb2.TensorProto()
      write_tensor_proto(proto, array[:0])
      proto.tensor_shape.dim[0].size = stop - start
      header = headers[stop - start] = proto.SerializeToString()
    if count == 0:
      replies.append(header)
    elif count == 1 and one_values is not None:  # a typed field, not tensor_content
      replies.append(header + one_values[start])
    else:
      payload = rows[start] if stop - start == 1 else b"".join(rows[start:stop])
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
    entries = []  # per alias: each reply's map entry {key, value}
    for alias, parts in tensors.items():
      key = _length_delimited(_ENTRY_KEY, alias.encode())
      entries.append([_length_delimited(_OUTPUTS_ENTRY,
                                        key + _length_delimited(_ENTRY_VALUE, part))
                      for part in parts])
    return [b"".join(reply) + spec for reply in zip(*entries)] if entries else \
        [spec] * count
