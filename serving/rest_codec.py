"""JSON <-> tensor codec of TF Serving's REST API: the row ("instances") and columnar
("inputs") request formats, their responses, base64 bytes and the errors.

Pure functions, independent of any HTTP framework or model: request bodies become
NumPy arrays (predict) or serialized `tf.train.Example`s (classify/regress), and
output arrays become response bodies. Every request error is a `ServingError`
carrying TF Serving's code and exact message (`json_tensor.cc`).

Choices where a Python server has to pick (see also `serving/json_format.py`):

* Row-format (`instances`) requests are converted as one tensor when every element
  is well formed; otherwise each element is converted in turn, which reproduces
  upstream's first error exactly.
* Inputs and outputs are visited in sorted name order (upstream's protobuf map order
  is unspecified); so are the keys of multi-output responses.
* DT_STRING outputs are written as raw bytes: invalid UTF-8 goes out unchanged, as
  upstream does (the body is then not valid JSON). Name an output `*_bytes` to get
  `{"b64": ...}` instead.
* Tensors of more than 32 dimensions (NumPy's portable limit) are rejected.
"""

import base64
import dataclasses
import functools
import itertools
import math
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2

from serving.batching import ReplyEncoder
from serving.errors import ServingError, invalid_argument
from serving.json_format import (PrettyWriter, decode_b64_object, error_body,
                                 format_floats, from_bytes, is_b64_object, json_type,
                                 json_value_to_string, parse_json_body, quote_string,
                                 quote_strings, quoted_rows, to_bytes, write_tensor)

__all__ = [
    "DEFAULT_SIGNATURE", "parse_json_body", "signature_name_of",
    "predict_request_tensors", "predict_response_body", "error_body",
    "examples_from_request", "classify_response_body", "regress_response_body",
]

DEFAULT_SIGNATURE = "serving_default"
_MAX_RANK = 32
_INT32 = (-(1 << 31), (1 << 31) - 1)
_INT64 = (-(1 << 63), (1 << 63) - 1)
_UINT64_MAX = (1 << 64) - 1
_INT_RANGES = {
    tf.int32: _INT32, tf.int16: _INT32, tf.int8: _INT32, tf.uint8: _INT32,
    tf.int64: _INT64, tf.uint32: (0, (1 << 32) - 1), tf.uint64: (0, _UINT64_MAX),
}
_DTYPE_STRINGS = {tf.float32: "float", tf.float64: "double", tf.float16: "half"}


class _Kind(NamedTuple):
  """How JSON values convert to one input dtype."""
  kind: str  # "float", "int", "bool", "string" or "" (no JSON mapping).
  name: str  # TF's DataTypeString, used in messages.
  np_dtype: object
  lo: int = 0
  hi: int = 0


def dtype_string(dtype: tf.DType) -> str:
  """TF's DataTypeString (float, double, int32, string), as TF Serving's messages print it."""
  return _DTYPE_STRINGS.get(dtype, dtype.name)


@functools.lru_cache(maxsize=None)
def _kind_of(dtype) -> _Kind:
  """Cached: it is asked for every input of every request (~6 us each uncached)."""
  dtype = tf.as_dtype(dtype)
  try:
    np_dtype = np.dtype(dtype.as_numpy_dtype)
  except TypeError:
    np_dtype = np.dtype(object)
  name = dtype_string(dtype)
  if dtype in (tf.float32, tf.float64):
    return _Kind("float", name, np_dtype)
  if dtype in _INT_RANGES:
    return _Kind("int", name, np_dtype, *_INT_RANGES[dtype])
  kind = {tf.bool: "bool", tf.string: "string"}.get(dtype, "")
  return _Kind(kind, name, np_dtype)


def _is_named_object(value) -> bool:
  return isinstance(value, dict) and not is_b64_object(value)


def _format_error(doc, text: str) -> ServingError:
  return invalid_argument(f"JSON Value: {json_value_to_string(doc)} {text}")


def _type_error(value, kind: _Kind) -> ServingError:
  return invalid_argument(
      f"JSON Value: {json_value_to_string(value)} Type: {json_type(value)}"
      f" is not of expected type: {kind.name}")


def _shape_string(shape) -> str:
  return "[" + ",".join(str(d) for d in shape) + "]"


# JSON value -> tensor -----------------------------------------------------------------


def _dense_shape(value) -> List[int]:
  """The shape read from the first element at each depth (`GetDenseTensorShape`)."""
  shape = []
  while isinstance(value, list):
    shape.append(len(value))
    if not value:
      break
    value = value[0]
  return shape


def _convert_leaf(value, kind: _Kind):
  """One JSON scalar (or b64 object) as a Python value of `kind` (`AddValueToTensor`)."""
  if isinstance(value, dict):
    if kind.kind == "string":
      return decode_b64_object(value)
    raise _type_error(value, kind)
  if not kind.kind:
    raise ServingError(grpc.StatusCode.UNIMPLEMENTED,
                       f"Conversion of JSON Value: {json_value_to_string(value)}"
                       f" to type: {kind.name}")
  if kind.kind == "float" and type(value) in (float, int):
    try:
      return float(value)
    except OverflowError:
      return float("inf") if value > 0 else float("-inf")
  if kind.kind == "int" and type(value) is int and kind.lo <= value <= kind.hi:
    return value
  if kind.kind == "bool" and type(value) is bool:
    return value
  if kind.kind == "string" and type(value) is str:
    return to_bytes(value)
  raise _type_error(value, kind)


def _to_array(values: list, kind: _Kind) -> np.ndarray:
  """A flat array of the input's dtype from converted Python values."""
  if kind.np_dtype == np.dtype(object):
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array
  if kind.kind == "int":
    wide = np.uint64 if kind.hi > (1 << 63) else np.int64
    return np.array(values, dtype=wide).astype(kind.np_dtype)
  with np.errstate(over="ignore"):
    return np.array(values, dtype=np.float64 if kind.kind == "float" else None
                    ).astype(kind.np_dtype)


def _fast_leaves(value, shape) -> Optional[list]:
  """All leaves when every list matches `shape` exactly, else None."""
  nodes = [value]
  for size in shape:
    if any(type(node) is not list or len(node) != size for node in nodes):
      return None
    nodes = list(itertools.chain.from_iterable(nodes))
  return nodes


def _fast_convert(leaves: list, kind: _Kind) -> Optional[np.ndarray]:
  """Leaves of the expected JSON type, converted in bulk; None if any is not."""
  types = set(map(type, leaves))
  if kind.kind == "float" and types <= {float, int}:
    try:
      return _to_array(leaves, kind)
    except OverflowError:  # An integer literal beyond double range.
      return None
  if kind.kind == "int" and types <= {int}:
    if not leaves or (min(leaves) >= kind.lo and max(leaves) <= kind.hi):
      return _to_array(leaves, kind)
  if (kind.kind == "bool" and types <= {bool}) or (
      kind.kind == "string" and types <= {str}):
    return _to_array([to_bytes(v) for v in leaves] if kind.kind == "string"
                     else leaves, kind)
  return None


def _checked_leaves(value, shape, kind: _Kind) -> list:
  """Depth-first walk with `FillTensorProto`'s checks and messages, in its order."""
  rank, leaves, stack = len(shape), [], [(value, 0)]
  while stack:
    node, level = stack.pop()
    if not isinstance(node, list):
      if level != rank:
        raise invalid_argument(
            f"JSON Value: {json_value_to_string(node)} found at incorrect level: "
            f"{level + 1} in the JSON DOM. Expected at level: {rank}")
      leaves.append(_convert_leaf(node, kind))
    elif level >= rank:
      raise invalid_argument(
          f"Encountered list at unexpected level: {level} expected < {rank}")
    elif len(node) != shape[level]:
      raise invalid_argument(
          f"Encountered list at unexpected size: {len(node)} at level: {level}"
          f" expected size: {shape[level]}")
    else:
      stack.extend((child, level + 1) for child in reversed(node))
  return leaves


def _fast_tensor(value, shape, kind: _Kind) -> Optional[np.ndarray]:
  leaves = _fast_leaves(value, shape)
  array = None if leaves is None else _fast_convert(leaves, kind)
  return None if array is None else array.reshape(shape)


def _tensor_from_json(value, kind: _Kind, max_rank: int = _MAX_RANK) -> np.ndarray:
  """One tensor from a JSON value: scalar, (nested) list or b64 object."""
  shape = _dense_shape(value)
  if len(shape) > max_rank:
    raise invalid_argument(f"Tensors of rank {len(shape)} are not supported"
                           f" (at most {max_rank} dimensions)")
  array = _fast_tensor(value, shape, kind)
  if array is None:
    array = _to_array(_checked_leaves(value, shape, kind), kind).reshape(shape)
  return array


def _add_instance_item(value, name, kinds, items, prefix):
  """Converts one element's value for `name` (`AddInstanceItem`), wrapping errors."""
  try:
    if name not in kinds:
      raise invalid_argument(f"JSON object: does not have named input: {name}")
    array = _tensor_from_json(value, kinds[name], _MAX_RANK - 1)
    first = items.setdefault(name, [array])[0]
    if first.size != array.size:
      raise invalid_argument(
          f"Expecting tensor size: {first.size} but got: {array.size}")
    if first.shape != array.shape:
      raise invalid_argument(f"Expecting shape {_shape_string(first.shape)}"
                             f" but got: {_shape_string(array.shape)}")
    if array is not first:
      items[name].append(array)
  except ServingError as e:
    raise invalid_argument(f"{prefix}{e.code_name}: {e.message}") from None


def _instances_fast(instances, kinds, objects) -> Optional[Dict[str, np.ndarray]]:
  """The whole `instances` list as one tensor per input, if it is well formed."""
  names = sorted(kinds)
  if objects:
    if not all(_is_named_object(e) and e.keys() == set(names) for e in instances):
      return None
    columns = {name: [e[name] for e in instances] for name in names}
  else:
    columns = {names[0]: instances}
  tensors = {}
  for name, column in columns.items():
    shape = [len(column)] + _dense_shape(column[0])
    tensor = None if len(shape) > _MAX_RANK else _fast_tensor(
        column, shape, kinds[name])
    if tensor is None:
      return None
    tensors[name] = tensor
  return tensors


def _instances_tensors(instances: list, kinds) -> Dict[str, np.ndarray]:
  """Row format (`FillTensorMapFromInstancesList`)."""
  if not isinstance(instances[0], dict) and len(kinds) > 1:
    raise invalid_argument(
        "instances is a plain list, but expecting list of objects as multiple "
        "input tensors required as per tensorinfo_map")
  objects = _is_named_object(instances[0])
  tensors = _instances_fast(instances, kinds, objects)
  if tensors is not None:
    return tensors
  names, items = sorted(kinds), {}
  for i, elem in enumerate(instances):
    where = f"Failed to process element: {i}"
    if objects:
      if not _is_named_object(elem):
        raise invalid_argument(
            f"Expecting object but got list at item {i} of input list")
      for name, value in elem.items():
        _add_instance_item(value, name, kinds, items,
                           f"{where} key: {name} of 'instances' list. Error: ")
      if set(elem) != set(names):
        raise invalid_argument(
            f"{where} of 'instances' list. JSON object: "
            f"{json_value_to_string(elem)} keys must be equal to: {','.join(names)}")
    else:
      if _is_named_object(elem):
        raise invalid_argument(
            f"Expecting value/list but got object at item {i} of input list")
      _add_instance_item(elem, names[0], kinds, items,
                         f"{where} of 'instances' list. Error: ")
  return {name: np.stack(arrays) for name, arrays in items.items()}


def _inputs_tensors(value, kinds) -> Dict[str, np.ndarray]:
  """Columnar format (`FillTensorMapFromInputsMap`)."""
  if not isinstance(value, dict) or is_b64_object(value):
    if len(kinds) > 1:
      raise invalid_argument(
          "inputs is a plain value/list, but expecting an object as multiple "
          "input tensors required as per tensorinfo_map")
    name = next(iter(kinds))
    return {name: _tensor_from_json(value, kinds[name])}
  tensors = {}
  for name in sorted(kinds):
    if name not in value:
      raise invalid_argument(f"Missing named input: {name} in 'inputs' object.")
    tensors[name] = _tensor_from_json(value[name], kinds[name])
  return tensors


def signature_name_of(obj: dict) -> str:
  """The request's `signature_name`; missing or empty means `serving_default`."""
  name = obj.get("signature_name", "")
  if not isinstance(name, str):
    raise _format_error(
        obj, "not formatted correctly. 'signature_name' key must be a string value.")
  return name or DEFAULT_SIGNATURE


def predict_request_tensors(
    obj: dict, input_dtypes: Dict[str, tf.DType]
) -> Tuple[bool, Dict[str, np.ndarray]]:
  """Converts a parsed predict body to input arrays (`FillPredictRequestFromJson`).

  Args:
    obj: the body from `parse_json_body`.
    input_dtypes: the signature's inputs, alias -> dtype.

  Returns:
    (is_row, arrays): whether `instances` (row format) was used, and one array per
    input alias, of the dtype's NumPy type (strings: object arrays of bytes).

  Raises:
    ServingError: INVALID_ARGUMENT (or UNIMPLEMENTED for dtypes without a JSON
      mapping in the columnar format) with TF Serving's message.
  """
  if not input_dtypes:
    signature = obj.get("signature_name")
    if not (signature and isinstance(signature, str)):
      signature = "DEFAULT"
    raise invalid_argument(f"Failed to get input map for signature: {signature}")
  kinds = {name: _kind_of(dtype) for name, dtype in input_dtypes.items()}
  if "instances" in obj:
    if "inputs" in obj:
      raise _format_error(obj, "Not formatted correctly expecting only one of "
                          "'inputs' or 'instances' keys to exist ")
    instances = obj["instances"]
    if not isinstance(instances, list):
      raise _format_error(obj, "Expecting 'instances' to be an list/array")
    if not instances:
      raise _format_error(obj, "No values in 'instances' array")
    return True, _instances_tensors(instances, kinds)
  if "inputs" in obj:
    return False, _inputs_tensors(obj["inputs"], kinds)
  raise invalid_argument("Missing 'inputs' or 'instances' key")


# Tensors -> response body ----------------------------------------------------------


def _output_tokens(name: str, array: np.ndarray) -> Tuple[List[str], bool]:
  """JSON tokens of every element (`AddSingleValueAndAdvance`) and the b64 flag."""
  flat = array.ravel()
  kind = array.dtype.kind
  if array.dtype in (np.float32, np.float64):
    return format_floats(flat), False
  if kind in "iu" and array.dtype != np.uint16:
    return list(map(str, flat.tolist())), False
  if kind == "b":
    return np.where(flat, "true", "false").tolist(), False
  if kind in "OSU":
    values = flat.tolist()  # bytes or str; _decoded and _as_bytes take either
    if name.endswith("_bytes"):
      return quote_strings([base64.b64encode(_as_bytes(v)).decode("ascii")
                            for v in values]), True
    return quote_strings(_decoded(values)), False
  if flat.size == 0:  # Upstream fails only when it writes a value.
    return [], False
  try:
    dtype_name = dtype_string(tf.as_dtype(array.dtype))
  except TypeError:
    dtype_name = str(array.dtype)
  raise invalid_argument(f"Failed to write JSON value for tensor type: {dtype_name}")


def _as_bytes(value) -> bytes:
  return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def _decoded(values: list) -> List[str]:
  """`from_bytes` of each value (bytes or str), decoding them all in one call when
  they can be joined unambiguously (no NUL inside)."""
  if not values:
    return []
  try:
    joined = b"\x00".join(values)
  except TypeError:  # Some values are str (or other objects).
    values = [_as_bytes(v) for v in values]
    joined = b"\x00".join(values)
  if joined.count(b"\x00") == len(values) - 1:
    return from_bytes(joined).split("\x00")
  return [from_bytes(v) for v in values]


def _row_body(arrays: Dict[str, np.ndarray]) -> bytes:
  """`{"predictions": [...]}`, one entry per batch row (`MakeRowFormatJson...`)."""
  batch = -1
  for name, array in arrays.items():
    if array.ndim == 0:
      raise invalid_argument(f"Tensor name: {name} has no shape information ")
    if batch >= 0 and array.shape[0] != batch:
      raise invalid_argument(f"Tensor name: {name} has inconsistent batch size: "
                             f"{array.shape[0]} expecting: {batch}")
    batch = array.shape[0]
  if _is_flat(arrays):
    return _flat_row_body(arrays, batch)
  return to_bytes(_written_row_text(arrays, batch))


_FRAME_SLOT = "\x00"  # never in a written frame: quote_string escapes NUL in keys
_frames: Dict[tuple, List[str]] = {}


def _row_frame(arrays: Dict[str, np.ndarray], batch: int) -> List[str]:
  """The row-format body of a batch of rows whose outputs are scalars or flat arrays,
  with every value (a scalar, or an array's contents) left out: the text around the
  values. It depends only on the outputs' names, ranks and the batch size, so it is
  written once (by the same PrettyWriter as `_written_row_text`) and cached."""
  key = (tuple((name, a.ndim) for name, a in arrays.items()), batch)
  frame = _frames.get(key)
  if frame is None:
    slots = {name: (np.array([_FRAME_SLOT] * batch, object) if a.ndim == 1 else
                    np.array([[_FRAME_SLOT]] * batch, object))
             for name, a in arrays.items()}
    frame = _written_row_text(slots, batch, lambda name, a: (a.ravel().tolist(), False)
                              ).split(_FRAME_SLOT)
    if len(_frames) >= 1024:
      _frames.clear()
    _frames[key] = frame
  return frame


def _row_values(name: str, array: np.ndarray) -> List[str]:
  """Per batch row, the JSON text of this output's value: a scalar's token, or a flat
  array's tokens joined by ", " as a single-line array holds them."""
  if array.ndim == 1:
    return _output_tokens(name, array)[0]
  width = array.shape[1]
  if width == 0:
    return [""] * array.shape[0]
  if array.dtype.kind in "OSU":
    return quoted_rows(_decoded(array.ravel().tolist()), width)
  tokens = _output_tokens(name, array)[0]
  return [", ".join(tokens[i:i + width]) for i in range(0, len(tokens), width)]


def _flat_row_body(arrays: Dict[str, np.ndarray], batch: int) -> bytes:
  """`_written_row_text`'s bytes, built as frame + values: the common case (outputs of
  rank 1 or 2, no b64) costs a third as much, which matters on a busy event loop."""
  values = [_row_values(name, a) for name, a in arrays.items()]
  return _joined_row_body(arrays, values, 0, batch)


def _joined_row_body(arrays: Dict[str, np.ndarray], values: List[List[str]], start: int,
                     stop: int) -> bytes:
  """The flat row body of rows [start, stop), from every output's per-row value texts."""
  frame = _row_frame(arrays, stop - start)
  parts = [""] * (2 * len(frame) - 1)
  parts[0::2] = frame
  parts[1::2] = [row[item] for item in range(start, stop) for row in values]
  return to_bytes("".join(parts))


def _is_flat(arrays: Dict[str, np.ndarray]) -> bool:
  """Whether the frame + values writer applies: outputs of rank 1 or 2, no b64."""
  return all(a.ndim <= 2 and not (name.endswith("_bytes") and a.dtype.kind in "OSU")
             for name, a in arrays.items())


def _written_row_text(arrays: Dict[str, np.ndarray], batch: int, tokens_of=None) -> str:
  """The row-format body written token by token (any rank, b64 objects)."""
  tokens_of = tokens_of or _output_tokens
  encoded = {name: tokens_of(name, a) for name, a in arrays.items()}
  objects = len(arrays) > 1
  writer = PrettyWriter()
  writer.start_object()
  writer.key(quote_string("predictions"))
  writer.start_array()
  layout = [(quote_string(name), tokens, b64, arrays[name].shape[1:],
             math.prod(arrays[name].shape[1:]))
            for name, (tokens, b64) in encoded.items()]
  for item in range(batch):
    if objects:
      writer.start_object()
    writer.single_line_arrays = True
    for key, tokens, b64, row_shape, row_size in layout:
      if objects:
        writer.key(key)
      write_tensor(writer, tokens, row_shape, item * row_size, b64)
    writer.single_line_arrays = False
    if objects:
      writer.end_object()
  writer.end_array()
  writer.end_object()
  return writer.getvalue()


def _columnar_body(arrays: Dict[str, np.ndarray]) -> bytes:
  """`{"outputs": ...}` (`MakeColumnarFormatJsonFromTensors`)."""
  objects = len(arrays) > 1
  writer = PrettyWriter()
  writer.start_object()
  writer.key(quote_string("outputs"))
  if objects:
    writer.start_object()
  for name, array in arrays.items():
    tokens, b64 = _output_tokens(name, array)
    if objects:
      writer.key(quote_string(name))
    write_tensor(writer, tokens, array.shape, 0, b64)
  if objects:
    writer.end_object()
  writer.end_object()
  return writer.to_bytes()


def predict_response_body(outputs: Dict[str, np.ndarray], is_row: bool) -> bytes:
  """The predict response for `outputs` (alias -> array), in the request's format.

  Raises:
    ServingError: INVALID_ARGUMENT for inconsistent batch sizes or 0-d outputs (row
      format) and for dtypes without a JSON mapping.
  """
  if not outputs:
    raise invalid_argument("Cannot convert empty tensor map to JSON")
  arrays = {name: np.asarray(outputs[name]) for name in sorted(outputs)}
  return _row_body(arrays) if is_row else _columnar_body(arrays)


@dataclasses.dataclass(frozen=True)
class PredictReplies(ReplyEncoder):
  """Predict response bodies in one request format, for the dispatcher: the batching
  server encodes the row-format replies of a whole batch in one pass over its merged
  outputs (the per-output work, e.g. float formatting, is done once per batch)."""
  is_row: bool

  def one(self, outputs) -> bytes:
    return predict_response_body(outputs, self.is_row)

  def many(self, outputs, ranges: Sequence[Tuple[int, int]]) -> List[bytes]:
    arrays = {name: np.asarray(outputs[name]) for name in sorted(outputs)}
    batch_sizes = {a.shape[0] if a.ndim else None for a in arrays.values()}
    if not self.is_row or len(batch_sizes) != 1 or None in batch_sizes or not _is_flat(
        arrays):  # errors and the other writers: reply by reply
      return super().many(outputs, ranges)
    values = [_row_values(name, a) for name, a in arrays.items()]
    return [_joined_row_body(arrays, values, start, stop) for start, stop in ranges]


# Classify / regress ---------------------------------------------------------------


def _feature_kind(name: str, value) -> str:
  """The Feature list a JSON value belongs in (`AddValueToFeature`)."""
  if value is None or isinstance(value, list) or _is_named_object(value):
    raise invalid_argument(f"Feature: {name} has element with unexpected JSON "
                           f"type: {json_type(value)}")
  if isinstance(value, (str, dict)):
    return "bytes"
  if isinstance(value, int) and _INT64[0] <= value <= _UINT64_MAX:  # Bools too.
    return "int64"
  return "float"  # Decimal literals, and integers rapidjson keeps as double.


def _feature_value(name: str, value, kind: str):
  """A JSON value converted for a Feature list of `kind`."""
  if kind == "bytes":
    return to_bytes(value) if isinstance(value, str) else decode_b64_object(value)
  if kind == "float":
    return _convert_leaf(value, _Kind("float", "float", np.float32))
  if value > _INT64[1]:
    raise invalid_argument(
        f"Feature: {name} has uint64 element. Only int64_t is supported.")
  return int(value)


def _example_bytes(value) -> bytes:
  """A JSON object of features as a serialized tf.train.Example."""
  if not isinstance(value, dict):
    raise invalid_argument(
        f"Example must be JSON object but got JSON {json_type(value)}")
  example = tf.train.Example()
  for name, content in value.items():
    kind, items = None, []
    for element in content if isinstance(content, list) else [content]:
      element_kind = _feature_kind(name, element)
      if kind not in (None, element_kind):
        raise invalid_argument(
            f"Unexpected element type in feature: {name} expecting type: {kind}")
      kind = element_kind
      items.append(_feature_value(name, element, kind))
    try:
      feature = example.features.feature[name]
    except UnicodeError:
      raise invalid_argument(f"Feature name is not valid UTF-8: {name!r}") from None
    if kind:
      getattr(feature, kind + "_list").value.extend(items)
  return example.SerializeToString()


def examples_from_request(obj: dict) -> List[bytes]:
  """Serialized tf.train.Examples of a classify/regress body, context merged in.

  With `context`, each example is the serialized context followed by the serialized
  example, exactly as TF Serving feeds `ExampleListWithContext` (parsing merges the
  two, the example's features winning).
  """
  context = _example_bytes(obj["context"]) if "context" in obj else b""
  if "examples" not in obj:
    raise _format_error(obj, "When method is classify, key 'examples' is expected "
                        "and was not found")
  examples = obj["examples"]
  if not isinstance(examples, list):
    raise _format_error(obj, "Expecting 'examples' value to be an list/array")
  if not examples:
    raise _format_error(obj, "'examples' value is an empty array")
  return [context + _example_bytes(example) for example in examples]


def _check_classify_output(array: np.ndarray, name: str, string: bool):
  """The shape and dtype checks of TF Serving's classifier post-processing."""
  if array.ndim != 2:
    raise invalid_argument("Expected Tensor shape: [batch_size num_classes] but got "
                           + _shape_string(array.shape))
  if (array.dtype.kind in "OSU") != string:
    got = types_pb2.DataType.Name(tf.as_dtype(array.dtype).as_datatype_enum)
    expected = "DT_STRING" if string else "DT_FLOAT"
    raise invalid_argument(f"Expected {name} Tensor of {expected}. Got: {got}")


def classify_response_body(classes: Optional[np.ndarray],
                           scores: Optional[np.ndarray]) -> bytes:
  """`{"results": [[[label, score], ...], ...]}` from a classify signature's outputs.

  Args:
    classes: string [batch, num_classes] or None (labels are then "").
    scores: float [batch, num_classes] or None (scores are then 0.0).
  """
  classes = None if classes is None else np.asarray(classes)
  scores = None if scores is None else np.asarray(scores)
  arrays = [a for a in (classes, scores) if a is not None]
  if not arrays:
    raise invalid_argument("Classification needs a 'classes' or 'scores' output")
  if classes is not None:
    _check_classify_output(classes, "classes", string=True)
  if scores is not None:
    _check_classify_output(scores, "scores", string=False)
  if len(arrays) == 2 and arrays[0].shape[1] != arrays[1].shape[1]:
    raise invalid_argument("Tensors class and score should match in dim[1]. Got "
                           f"{arrays[0].shape[1]} vs. {arrays[1].shape[1]}")
  if len(arrays) == 2 and arrays[0].shape[0] != arrays[1].shape[0]:
    raise invalid_argument(f"Expected scores output batch size of "
                           f"{arrays[0].shape[0]}. Got: {arrays[1].shape[0]}")
  batch, width = arrays[0].shape
  if not batch:
    raise invalid_argument("Cannot convert empty ClassificationResults to JSON")
  labels = (_output_tokens("classes", classes)[0] if classes is not None
            else ['""'] * (batch * width))
  values = (format_floats(scores.astype(np.float32)) if scores is not None
            else ["0.0"] * (batch * width))
  writer = PrettyWriter()
  writer.start_object()
  writer.key(quote_string("results"))
  writer.start_array()
  for row in range(batch):
    writer.single_line_arrays = True
    writer.start_array()
    for i in range(row * width, (row + 1) * width):
      writer.start_array()
      writer.scalars([labels[i], values[i]])
      writer.end_array()
    writer.end_array()
    writer.single_line_arrays = False
  writer.end_array()
  writer.end_object()
  return writer.to_bytes()


def regress_response_body(values: np.ndarray) -> bytes:
  """`{"results": [v1, v2, ...]}` from a regress signature's [batch] or [batch, 1]."""
  values = np.asarray(values)
  if not (values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 1)):
    raise invalid_argument("Expected output Tensor shape to be either [batch_size] "
                           f"or [batch_size, 1] but got {_shape_string(values.shape)}")
  if not values.shape[0]:
    raise invalid_argument("Cannot convert empty RegressionResults to JSON")
  writer = PrettyWriter(single_line_arrays=True)
  writer.start_object()
  writer.key(quote_string("results"))
  writer.start_array()
  writer.scalars(format_floats(values.astype(np.float32)))
  writer.end_array()
  writer.end_object()
  return writer.to_bytes()
