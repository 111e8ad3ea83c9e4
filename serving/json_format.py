"""The JSON dialect of TF Serving's REST API: parsing, number text and layout.

TF Serving parses request bodies with rapidjson and writes responses with rapidjson's
`PrettyWriter`, whatever the request format (row or columnar). This module reproduces the parts a
client can see, independently of tensors:

* `parse_json_body`: rapidjson's dialect on top of Python's C JSON scanner (NaN and
  Infinity tokens, first duplicate key wins, trailing data ignored, ints stay ints).
* `format_floats`: `WriteDecimal`'s number text (`%.6g` when it round-trips, else
  `%.9g` / `%.17g`, then `.0` for whole numbers).
* `PrettyWriter`: the byte layout of rapidjson's PrettyWriter (4-space indent, with
  the single-line-array option upstream toggles while writing).
* `json_value_to_string`: a parsed value echoed into an error message, cut at
  `ECHO_LIMIT` characters.
* `{"b64": ...}` binary objects (`absl::Base64Unescape` rules) and `error_body`.

Strings travel as `str` decoded with `surrogateescape`, so bytes that are not UTF-8
come back out unchanged (`to_bytes`), as rapidjson passes them through.

Known differences from rapidjson, all on malformed or extreme input: nesting deeper
than Python's recursion limit (~1000) is a 400 parse error (rapidjson parses it);
`Inf`/`-Inf` tokens are rejected (only `NaN`, `Infinity`, `-Infinity` are read);
decimal literals beyond double range read as +-inf (rapidjson: "Number too big");
parse-error texts are mapped to rapidjson's wording where the cause is clear, and
their offsets are Python's (in bytes), which can differ slightly from rapidjson's.
"""

import binascii
import json
import math
import re
from typing import Iterable, List, Sequence

import numpy as np

from serving.errors import invalid_argument

ECHO_LIMIT = 256  # JSON values quoted in error messages are cut to this length.
B64_KEY = "b64"
_INDENT = "    "
_JSON_WHITESPACE = re.compile(r"[ \t\n\r]*")
_LONG_INTEGER = re.compile(r"-?[0-9]{4000,}")
_INT64_MIN, _UINT64_END = -(1 << 63), 1 << 64

_ESCAPES = {i: "\\u%04X" % i for i in range(0x20)}
_NEEDS_ESCAPE = re.compile(r'[\x00-\x1f"\\]')
_ESCAPES.update({0x08: "\\b", 0x09: "\\t", 0x0A: "\\n", 0x0C: "\\f", 0x0D: "\\r",
                 ord('"'): '\\"', ord("\\"): "\\\\"})

# Python's JSONDecodeError texts -> rapidjson's (GetParseError_En).
_PARSE_ERRORS = {
    "Expecting value": "Invalid value.",
    "Expecting property name enclosed in double quotes":
        "Missing a name for object member.",
    "Expecting ':' delimiter": "Missing a colon after a name of object member.",
    "Unterminated string starting at": "Missing a closing quotation mark in string.",
    "Invalid control character at": "Invalid encoding in string.",
    "Invalid \\escape": "Invalid escape character in string.",
    "Invalid \\uXXXX escape": "Incorrect hex digit after \\u escape in string.",
}
_B64_BODY = re.compile(r"([A-Za-z0-9+/]*)([=.]*)")
_ASCII_SPACE = {ord(c): None for c in " \t\n\v\f\r"}
_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def _first_key_wins(pairs):
  """object_pairs_hook: rapidjson's FindMember returns the first duplicate key."""
  obj = dict(pairs)
  if len(obj) != len(pairs):
    obj = {}
    for key, value in pairs:
      obj.setdefault(key, value)
  return obj


_DECODER = json.JSONDecoder(object_pairs_hook=_first_key_wins)


def to_bytes(text: str) -> bytes:
  """UTF-8 bytes of a parsed string, restoring undecodable request bytes as-is."""
  try:
    return text.encode("utf-8", "surrogateescape")
  except UnicodeEncodeError:  # A lone surrogate written as a \uXXXX escape.
    return text.encode("utf-8", "surrogatepass")


def from_bytes(data: bytes) -> str:
  """Inverse of `to_bytes`: invalid UTF-8 survives as surrogate escapes."""
  return data.decode("utf-8", "surrogateescape")


def _byte_offset(text: str, pos: int) -> int:
  return len(to_bytes(text[:pos]))


def _comma_error(text: str, pos: int) -> str:
  """rapidjson names the innermost open container when a ',' is missing."""
  stack = []
  for match in _STRING_OR_BRACKET.finditer(text, 0, pos):
    token = match.group()
    if token in "[{":
      stack.append(token)
    elif token in "]}" and stack:
      stack.pop()
  if stack and stack[-1] == "{":
    return "Missing a comma or '}' after an object member."
  return "Missing a comma or ']' after an array element."


def parse_json_body(body: bytes) -> dict:
  """Parses a request body the way TF Serving's `ParseJson` does.

  Args:
    body: the raw HTTP body.

  Returns:
    The top-level JSON object as a dict (ints as `int`, bools as `bool`, strings
    as `str` with invalid UTF-8 kept as surrogate escapes).

  Raises:
    ServingError: INVALID_ARGUMENT with `JSON Parse error: ...` or
      `JSON Value: <json> Is not object`.
  """
  if not body:
    raise invalid_argument("JSON Parse error: The document is empty")
  text = body.decode("utf-8", "surrogateescape")
  # rapidjson skips a UTF-8 BOM, then whitespace.
  start = _JSON_WHITESPACE.match(text, 1 if text.startswith("\ufeff") else 0).end()
  if start == len(text):
    raise invalid_argument(
        f"JSON Parse error: The document is empty. at offset: {len(body)}")
  try:
    value, _ = _DECODER.raw_decode(text, start)  # Trailing data is ignored.
  except json.JSONDecodeError as e:
    if e.msg == "Expecting ',' delimiter":
      message = _comma_error(text, e.pos)
    else:
      message = _PARSE_ERRORS.get(e.msg, e.msg)
    offset = len(body) if e.msg.startswith("Unterminated") else _byte_offset(
        text, e.pos)
    raise invalid_argument(
        f"JSON Parse error: {message} at offset: {offset}") from None
  except RecursionError:
    raise invalid_argument(
        "JSON Parse error: The document is nested too deeply. at offset: "
        f"{_byte_offset(text, start)}") from None
  except ValueError:  # An integer literal over Python's int digit limit.
    match = _LONG_INTEGER.search(text, start)
    raise invalid_argument(
        "JSON Parse error: Number too big to be stored in double. at offset: "
        f"{_byte_offset(text, match.start() if match else start)}") from None
  if not isinstance(value, dict):
    raise invalid_argument(f"JSON Value: {json_value_to_string(value)} Is not object")
  return value


def format_floats(values: np.ndarray) -> List[str]:
  """JSON number text of float32/float64 values, as TF Serving's `WriteDecimal`.

  Six significant digits when they parse back to the same value (of the array's
  own precision), else 9 (float32) or 17 (float64); `.0` is appended when the
  text has neither `.` nor `e`. NaN and infinities become bare `NaN`,
  `Infinity` and `-Infinity` tokens.

  Args:
    values: a float32 or float64 array of any shape.

  Returns:
    One string per element, in C order.
  """
  flat = np.ascontiguousarray(values).ravel()
  finite = np.isfinite(flat)
  if finite.all():
    return _format_finite(flat)
  # Padded outputs (e.g. -inf scores past k) are mostly non-finite: only the finite
  # values need the printf round trip.
  if np.all(flat[~finite] == -np.inf):
    texts = ["-Infinity"] * flat.size
  else:
    texts = ["NaN" if v != v else ("Infinity" if v > 0 else "-Infinity")
             for v in flat.tolist()]
  for i, text in zip(np.flatnonzero(finite).tolist(), _format_finite(flat[finite])):
    texts[i] = text
  return texts


def _format_finite(flat: np.ndarray) -> List[str]:
  if not flat.size:
    return []
  doubles = flat.astype(np.float64).tolist()
  texts = ["%.6g" % v for v in doubles]
  parsed = np.array([float(t) for t in texts], dtype=np.float64).astype(flat.dtype)
  long_format = "%.9g" if flat.dtype == np.float32 else "%.17g"
  for i in np.flatnonzero(parsed != flat).tolist():
    texts[i] = long_format % doubles[i]
  return [t if ("." in t or "e" in t) else t + ".0" for t in texts]


def format_float(value: float, float32: bool = True) -> str:
  """`format_floats` for a single value."""
  return format_floats(np.array([value], np.float32 if float32 else np.float64))[0]


def quote_string(text: str) -> str:
  """A JSON string literal as rapidjson writes it (uppercase \\u00XX, raw non-ASCII)."""
  return '"' + text.translate(_ESCAPES) + '"'


def quote_strings(texts: List[str]) -> List[str]:
  """`quote_string` of each text; one scan decides whether any needs escaping."""
  if _NEEDS_ESCAPE.search("".join(texts)):
    return [quote_string(t) for t in texts]
  return ['"' + t + '"' for t in texts]


def quoted_rows(texts: List[str], width: int) -> List[str]:
  """Rows of `width` texts, each row's `quote_string`s joined by ", " (a single-line
  array's contents); one scan decides whether any text needs escaping."""
  starts = range(0, len(texts), width)
  if _NEEDS_ESCAPE.search("".join(texts)):
    return [", ".join(map(quote_string, texts[i:i + width])) for i in starts]
  return ['"' + '", "'.join(texts[i:i + width]) + '"' for i in starts]


def _number_token(value) -> str:
  """Echo text of a parsed JSON number (rapidjson keeps 64-bit ints, else double)."""
  if isinstance(value, int):
    if _INT64_MIN <= value < _UINT64_END:
      return str(value)
    try:
      value = float(value)
    except OverflowError:
      value = math.copysign(math.inf, value)
  is_float = abs(value) <= 3.4028234663852886e38 and float(np.float32(value)) == value
  return format_float(value, float32=is_float)


class PrettyWriter:
  """The output layout of rapidjson's `PrettyWriter` with a 4-space indent.

  `single_line_arrays` is rapidjson's `kFormatSingleLineArray` option; like upstream,
  callers may toggle it while writing. Scalars are passed as finished JSON tokens.
  """

  def __init__(self, single_line_arrays: bool = False):
    self.single_line_arrays = single_line_arrays
    self._chunks: List[str] = []
    self._levels: List[list] = []  # [in_array, value_count] per open container.
    self.size = 0  # Characters written so far.

  def _put(self, text: str):
    self._chunks.append(text)
    self.size += len(text)

  def _prefix(self):
    """rapidjson's PrettyPrefix: separators and indentation before a value."""
    if not self._levels:
      return
    level = self._levels[-1]
    indent = _INDENT * len(self._levels)
    if level[0]:
      sep = "," if level[1] else ""
      if self.single_line_arrays:
        self._put(sep + " " if sep else "")
      else:
        self._put(sep + "\n" + indent)
    elif level[1] % 2:
      self._put(": ")
    else:
      self._put((",\n" if level[1] else "\n") + indent)
    level[1] += 1

  def scalar(self, token: str):
    self._prefix()
    self._put(token)

  key = scalar  # Object keys are quoted strings, written like any scalar.

  def scalars(self, tokens: Sequence[str]):
    """Many scalars into the open array at once (same bytes as `scalar` each)."""
    if not tokens:
      return
    level = self._levels[-1]
    if self.single_line_arrays:
      self._put((", " if level[1] else "") + ", ".join(tokens))
    else:
      indent = "\n" + _INDENT * len(self._levels)
      self._put(("," if level[1] else "") + indent + ("," + indent).join(tokens))
    level[1] += len(tokens)

  def start_object(self):
    self._prefix()
    self._put("{")
    self._levels.append([False, 0])

  def end_object(self):
    if self._levels.pop()[1]:
      self._put("\n" + _INDENT * len(self._levels))
    self._put("}")

  def start_array(self):
    self._prefix()
    self._put("[")
    self._levels.append([True, 0])

  def end_array(self):
    if self._levels.pop()[1] and not self.single_line_arrays:
      self._put("\n" + _INDENT * len(self._levels))
    self._put("]")

  def getvalue(self) -> str:
    return "".join(self._chunks)

  def to_bytes(self) -> bytes:
    return to_bytes(self.getvalue())


class _Key(str):
  """Marks an object key in `json_value_to_string`'s event stream."""


def _object_events(obj: dict) -> Iterable:
  for key, value in obj.items():
    yield _Key(key)
    yield value


def json_value_to_string(value, limit: int = ECHO_LIMIT) -> str:
  """A parsed JSON value as TF Serving echoes it in messages, cut at `limit` chars.

  Objects span several lines, arrays stay on one (`[1, 2]`). Iterative, so deeply
  nested values are safe, and it stops writing once `limit` is reached.
  """
  writer = PrettyWriter(single_line_arrays=True)
  stack = [(iter((value,)), None)]
  while stack and writer.size < limit:
    events, close = stack[-1]
    item = next(events, _Key)  # The `_Key` class itself marks the end.
    if item is _Key:
      stack.pop()
      if close:
        close()
    elif isinstance(item, _Key):
      writer.key(quote_string(item))
    elif isinstance(item, dict):
      writer.start_object()
      stack.append((_object_events(item), writer.end_object))
    elif isinstance(item, list):
      writer.start_array()
      stack.append((iter(item), writer.end_array))
    elif isinstance(item, str):
      writer.scalar(quote_string(item))
    elif isinstance(item, bool):
      writer.scalar("true" if item else "false")
    elif item is None:
      writer.scalar("null")
    else:
      writer.scalar(_number_token(item))
  return writer.getvalue()[:limit]


def json_type(value) -> str:
  """rapidjson's type name of a parsed value, as used in messages."""
  if value is None:
    return "Null"
  if isinstance(value, bool):
    return "True" if value else "False"
  return {dict: "Object", list: "Array", str: "String"}.get(type(value), "Number")


def is_b64_object(value) -> bool:
  """Binary data is an object with exactly one key, `b64`, holding a string."""
  return (isinstance(value, dict) and len(value) == 1 and
          isinstance(value.get(B64_KEY), str))


def b64_decode(text: str) -> bytes:
  """`absl::Base64Unescape`: standard alphabet, whitespace skipped, padding optional.

  Padding may be `=` or `.`; if present it must be complete.

  Raises:
    ServingError: INVALID_ARGUMENT `Unable to base64 decode`.
  """
  match = _B64_BODY.fullmatch(text.translate(_ASCII_SPACE))
  data, pads = (match.group(1), len(match.group(2))) if match else ("", -1)
  missing = (4 - len(data) % 4) % 4
  if pads < 0 or missing == 3 or pads not in (0, missing):
    raise invalid_argument("Unable to base64 decode")
  return binascii.a2b_base64(data + "=" * missing)


def decode_b64_object(value) -> bytes:
  """The bytes of a `{"b64": ...}` object (`JsonDecodeBase64Object`)."""
  if not is_b64_object(value):
    raise invalid_argument(f"JSON Value: {json_value_to_string(value)}"
                           " not formatted correctly for base64 data")
  return b64_decode(value[B64_KEY])


def write_tensor(writer: PrettyWriter, tokens: Sequence[str], shape: Sequence[int],
                 offset: int = 0, b64: bool = False) -> int:
  """Writes a (sub)tensor of `shape` from `tokens[offset:]` (`AddTensorValues`).

  Args:
    writer: where to write.
    tokens: finished JSON tokens of the whole tensor, in C order.
    shape: the shape to write; () writes one bare value.
    offset: index of the first token to write.
    b64: write each token as `{"b64": token}`.

  Returns:
    The offset after the last token written.
  """
  if not shape:
    if b64:
      writer.start_object()
      writer.key(quote_string(B64_KEY))
      writer.scalar(tokens[offset])
      writer.end_object()
    else:
      writer.scalar(tokens[offset])
    return offset + 1
  writer.start_array()
  if len(shape) == 1 and not b64:
    writer.scalars(tokens[offset:offset + shape[0]])
    offset += shape[0]
  else:
    for _ in range(shape[0]):
      offset = write_tensor(writer, tokens, shape[1:], offset, b64)
  writer.end_array()
  return offset


def error_body(message: str) -> bytes:
  """`{"error": message}` as TF Serving lays it out."""
  writer = PrettyWriter()
  writer.start_object()
  writer.key(quote_string("error"))
  writer.scalar(quote_string(message))
  writer.end_object()
  return writer.to_bytes()
