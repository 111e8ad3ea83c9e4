"""Tests for serving/rest_codec.py and serving/json_format.py (TF Serving REST codec).

Expected values are what TF Serving itself answers (its request formats, JSON dialect and errors)
and upstream's json_tensor.cc messages.
"""

import json
import math

import grpc
import numpy as np
import pytest
import tensorflow as tf

from serving import json_format
from serving import rest_codec as rc
from serving.errors import ServingError

INVALID = grpc.StatusCode.INVALID_ARGUMENT


def _error(fn, *args) -> ServingError:
  with pytest.raises(ServingError) as info:
    fn(*args)
  return info.value


def _message(fn, *args, code=INVALID) -> str:
  error = _error(fn, *args)
  assert error.code == code, error.message
  return error.message


def _predict(body: bytes, dtypes):
  return rc.predict_request_tensors(rc.parse_json_body(body), dtypes)


def _row_error(inner: str, element: int = 0, code: str = "INVALID_ARGUMENT") -> str:
  return (f"Failed to process element: {element} of 'instances' list. "
          f"Error: {code}: {inner}")


# parse_json_body ---------------------------------------------------------------------


@pytest.mark.parametrize("body, message", [
    (b"", "JSON Parse error: The document is empty"),
    (b" \n\t", "JSON Parse error: The document is empty. at offset: 3"),
    (b'{"a": }', "JSON Parse error: Invalid value. at offset: 6"),
    (b'{"\xc3\xa9": }', "JSON Parse error: Invalid value. at offset: 7"),  # Bytes.
    (b'{"a" 1}', "JSON Parse error: Missing a colon after a name of object member."
     " at offset: 5"),
    (b'{"a": 1 "b": 2}', "JSON Parse error: Missing a comma or '}' after an object"
     " member. at offset: 8"),
    (b'[1, [2 3]]', "JSON Parse error: Missing a comma or ']' after an array element."
     " at offset: 7"),
    (b'{"a": "[", "b": 1 "c": 2}', "JSON Parse error: Missing a comma or '}' after"
     " an object member. at offset: 18"),
    (b"{'a': 1}", "JSON Parse error: Missing a name for object member. at offset: 1"),
    (b'{"a": "x', "JSON Parse error: Missing a closing quotation mark in string."
     " at offset: 8"),
    (b'{"a": [1, ' + b"9" * 5000 + b"]}", "JSON Parse error: Number too big to be"
     " stored in double. at offset: 10"),
    (b'[1, 2]', "JSON Value: [1, 2] Is not object"),
    (b'"x"', 'JSON Value: "x" Is not object'),
    (b'[1.5, {"a": null}]',
     'JSON Value: [1.5, {\n        "a": null\n    }] Is not object'),
])
def test_parse_errors(body, message):
  assert _message(rc.parse_json_body, body) == message


def test_parse_accepts_nan_and_infinity_tokens():
  obj = rc.parse_json_body(b'{"v": [NaN, Infinity, -Infinity]}')
  assert math.isnan(obj["v"][0]) and obj["v"][1:] == [math.inf, -math.inf]


def test_parse_ignores_trailing_data_bom_and_leading_whitespace():
  assert rc.parse_json_body(b'\xef\xbb\xbf \r\n{"a": 1} trailing {garbage') == {"a": 1}


def test_parse_keeps_first_duplicate_key():
  obj = rc.parse_json_body(b'{"a": 1, "b": {"c": 1, "c": 2}, "a": 2}')
  assert obj == {"a": 1, "b": {"c": 1}}
  assert list(obj) == ["a", "b"]


def test_parse_keeps_ints_exact_and_bools_distinct():
  obj = rc.parse_json_body(b'{"i": 4611686018427387905, "f": 1.0, "t": true}')
  assert type(obj["i"]) is int and obj["i"] == 2**62 + 1
  assert type(obj["f"]) is float and type(obj["t"]) is bool


@pytest.mark.parametrize("body", [
    b"[" * 100000 + b"]" * 100000,
    b'{"instances": ' + b"[" * 100000 + b"1" + b"]" * 100000 + b"}",
    b"[" * 100000,
])
def test_parse_deep_nesting_is_a_400_not_a_crash(body):
  assert _message(rc.parse_json_body, body).startswith("JSON Parse error: ")


def test_deep_values_are_handled_without_recursion():
  deep = []
  for _ in range(100000):
    deep = [deep]
  assert json_format.json_value_to_string(deep) == "[" * 256
  assert "rank 100001" in _message(rc.predict_request_tensors, {"inputs": deep},
                                   {"x": tf.float32})


def test_parse_keeps_invalid_utf8_bytes_in_strings():
  _, tensors = _predict(b'{"instances": ["\xff\xfe", "\xc3\xa9"]}', {"s": tf.string})
  assert tensors["s"].tolist() == [b"\xff\xfe", "\u00e9".encode()]
  _, tensors = _predict(b'{"inputs": "\\ud800\\u00e9"}', {"s": tf.string})
  assert tensors["s"].tolist() == b"\xed\xa0\x80\xc3\xa9"  # Lone surrogate kept.


# signature_name_of -------------------------------------------------------------------


@pytest.mark.parametrize("obj, name", [
    ({}, "serving_default"), ({"signature_name": ""}, "serving_default"),
    ({"signature_name": "classify"}, "classify")])
def test_signature_name(obj, name):
  assert rc.signature_name_of(obj) == name


def test_signature_name_must_be_a_string():
  assert _message(rc.signature_name_of, {"signature_name": 5}) == (
      'JSON Value: {\n    "signature_name": 5\n} not formatted correctly. '
      "'signature_name' key must be a string value.")


# predict_request_tensors: formats ----------------------------------------------------


def test_row_format_half_plus_two():
  is_row, tensors = _predict(b'{"instances": [1.0, 2, 5.0]}', {"x": tf.float32})
  assert is_row and list(tensors) == ["x"]
  assert tensors["x"].dtype == np.float32 and tensors["x"].tolist() == [1, 2, 5]


def test_columnar_scalar_is_0d():
  is_row, tensors = _predict(b'{"inputs": 2.0}', {"x": tf.float32})
  assert not is_row and tensors["x"].shape == () and tensors["x"] == 2.0


def test_row_objects_for_a_single_input():
  _, tensors = _predict(b'{"instances": [{"x": [1.0]}, {"x": [2.0]}]}',
                        {"x": tf.float64})
  assert tensors["x"].dtype == np.float64 and tensors["x"].tolist() == [[1], [2]]


def test_row_objects_for_several_inputs():
  body = b'{"instances": [{"a": [1, 2], "b": "s"}, {"b": "t", "a": [3, 4]}]}'
  _, tensors = _predict(body, {"a": tf.int32, "b": tf.string})
  assert tensors["a"].dtype == np.int32 and tensors["a"].tolist() == [[1, 2], [3, 4]]
  assert tensors["b"].dtype == object and tensors["b"].tolist() == [b"s", b"t"]


def test_columnar_named_inputs_have_own_shapes_and_extra_keys_are_ignored():
  body = b'{"inputs": {"a": [[1], [2], [3]], "b": true, "extra": "x"}}'
  _, tensors = _predict(body, {"a": tf.int64, "b": tf.bool})
  assert tensors["a"].shape == (3, 1) and tensors["a"].dtype == np.int64
  assert tensors["b"].shape == () and tensors["b"].dtype == bool and tensors["b"]


def test_empty_lists_give_zero_size_dimensions():
  assert _predict(b'{"inputs": []}', {"x": tf.float32})[1]["x"].shape == (0,)
  assert _predict(b'{"instances": [[], []]}', {"x": tf.int32})[1]["x"].shape == (2, 0)


def test_slow_path_matches_fast_path_and_reports_the_first_bad_element():
  rows = np.arange(3000, dtype=np.float32).reshape(1000, 3).tolist()
  body = json.dumps({"instances": rows}).encode()
  assert _predict(body, {"x": tf.float32})[1]["x"].tolist() == rows
  # A huge integer literal forces element-wise conversion; it becomes inf.
  rows_big = [[1, 2, 10**400]] + rows[1:]
  got = _predict(json.dumps({"instances": rows_big}).encode(), {"x": tf.float32})
  assert got[1]["x"][0, 2] == np.inf and got[1]["x"][1:].tolist() == rows[1:]
  rows[999][1] = "z"
  body = json.dumps({"instances": rows}).encode()
  assert _message(_predict, body, {"x": tf.float32}) == _row_error(
      'JSON Value: "z" Type: String is not of expected type: float', 999)


# predict_request_tensors: values -----------------------------------------------------


@pytest.mark.parametrize("value, dtype, expected", [
    ("-2147483648", tf.int32, -2**31),
    ("2147483647", tf.int8, 2147483647 % 256 - 256),  # Stored like a C cast.
    ("4611686018427387905", tf.int64, 2**62 + 1),
    ("18446744073709551615", tf.uint64, 2**64 - 1),
    ("4294967295", tf.uint32, 2**32 - 1),
    ("true", tf.bool, True),
    ("7", tf.float32, 7.0),
    ("1e39", tf.float32, math.inf),
    ('"abc"', tf.string, b"abc"),
])
def test_accepted_values(value, dtype, expected):
  _, tensors = _predict(b'{"inputs": [%s]}' % value.encode(), {"x": dtype})
  assert tensors["x"].dtype == dtype.as_numpy_dtype
  assert tensors["x"].tolist() == [expected]


@pytest.mark.parametrize("value, dtype, message", [
    ("1.0", tf.int32, "JSON Value: 1.0 Type: Number is not of expected type: int32"),
    ("2147483648", tf.int32,
     "JSON Value: 2147483648 Type: Number is not of expected type: int32"),
    ("9223372036854775808", tf.int64,
     "JSON Value: 9223372036854775808 Type: Number is not of expected type: int64"),
    ("-1", tf.uint32, "JSON Value: -1 Type: Number is not of expected type: uint32"),
    ("1", tf.bool, "JSON Value: 1 Type: Number is not of expected type: bool"),
    ("null", tf.float32, "JSON Value: null Type: Null is not of expected type: float"),
    ("true", tf.float64, "JSON Value: true Type: True is not of expected type: double"),
    ("false", tf.int64, "JSON Value: false Type: False is not of expected type: int64"),
    ('"1"', tf.float32, 'JSON Value: "1" Type: String is not of expected type: float'),
    ("5", tf.string, "JSON Value: 5 Type: Number is not of expected type: string"),
    ("0.1", tf.int64, "JSON Value: 0.1 Type: Number is not of expected type: int64"),
    ('{"b64": "AA=="}', tf.float32, 'JSON Value: {\n    "b64": "AA=="\n} Type: '
     "Object is not of expected type: float"),
    ('{"a": 1, "b64": "AA=="}', tf.string, 'JSON Value: {\n    "a": 1,\n    "b64": '
     '"AA=="\n} not formatted correctly for base64 data'),
])
def test_value_type_mismatch(value, dtype, message):
  body = b'{"inputs": [%s]}' % value.encode()
  assert _message(_predict, body, {"x": dtype}) == message
  row_body = b'{"instances": [[%s]]}' % value.encode()
  assert _message(_predict, row_body, {"x": dtype}) == _row_error(message)


def test_dtype_without_json_mapping():
  message = "Conversion of JSON Value: 1.5 to type: half"
  error = _error(_predict, b'{"inputs": [1.5]}', {"x": tf.float16})
  assert error.code == grpc.StatusCode.UNIMPLEMENTED and error.message == message
  assert _message(_predict, b'{"instances": [1.5]}', {"x": tf.float16}) == (
      _row_error(message, code="UNIMPLEMENTED"))


def test_echoed_values_are_cut_at_256():
  message = _message(_predict, b'{"inputs": ["%s"]}' % (b"a" * 1000),
                     {"x": tf.float32})
  assert message == ('JSON Value: "' + "a" * 255 +
                     " Type: String is not of expected type: float")


# predict_request_tensors: base64 -----------------------------------------------------


@pytest.mark.parametrize("text, decoded", [
    ("aGVsbG8=", b"hello"), ("aGVsbG8", b"hello"), ("aGVsbG8.", b"hello"),
    (" aGVs\nbG8= ", b"hello"), ("+/8=", b"\xfb\xff"), ("", b""), ("YQ", b"a"),
])
def test_b64_inputs(text, decoded):
  body = json.dumps({"instances": [{"b64": text}]}).encode()
  assert _predict(body, {"x": tf.string})[1]["x"].tolist() == [decoded]


@pytest.mark.parametrize("text", ["-_8=", "aGVsbG8==", "YQ=", "Y", "YQ==YQ==", "AA=A"])
def test_bad_b64(text):
  body = json.dumps({"inputs": {"b64": text}}).encode()
  assert _message(_predict, body, {"x": tf.string}) == "Unable to base64 decode"
  body = json.dumps({"instances": [{"b64": "AA=="}, {"b64": text}]}).encode()
  assert _message(_predict, body, {"x": tf.string}) == _row_error(
      "Unable to base64 decode", 1)


# predict_request_tensors: structure errors -------------------------------------------


XY = {"x": tf.float32, "y": tf.float32}


@pytest.mark.parametrize("body, dtypes, message", [
    (b'{"instances": [1], "inputs": [1]}', {"x": tf.float32},
     'JSON Value: {\n    "instances": [1],\n    "inputs": [1]\n} Not formatted '
     "correctly expecting only one of 'inputs' or 'instances' keys to exist "),
    (b'{"signature_name": "s"}', {"x": tf.float32},
     "Missing 'inputs' or 'instances' key"),
    (b'{"instances": 1}', {"x": tf.float32},
     "JSON Value: {\n    \"instances\": 1\n} Expecting 'instances' to be an list/array"),
    (b'{"instances": []}', {"x": tf.float32},
     "JSON Value: {\n    \"instances\": []\n} No values in 'instances' array"),
    (b'{"instances": [1.0]}', XY, "instances is a plain list, but expecting list of "
     "objects as multiple input tensors required as per tensorinfo_map"),
    (b'{"instances": [{"x": 1.0, "z": 2.0}]}', XY,
     "Failed to process element: 0 key: z of 'instances' list. Error: "
     "INVALID_ARGUMENT: JSON object: does not have named input: z"),
    (b'{"instances": [{"x": 1.0, "y": 1.0}, {"y": 2.0}]}', XY,
     "Failed to process element: 1 of 'instances' list. JSON object: {\n"
     '    "y": 2.0\n} keys must be equal to: x,y'),
    (b'{"instances": [{"x": 1.0, "y": "a"}]}', XY,
     "Failed to process element: 0 key: y of 'instances' list. Error: "
     'INVALID_ARGUMENT: JSON Value: "a" Type: String is not of expected type: float'),
    (b'{"instances": [{"x": 1.0}, 2.0]}', {"x": tf.float32},
     "Expecting object but got list at item 1 of input list"),
    (b'{"instances": [1.0, {"x": 2.0}]}', {"x": tf.float32},
     "Expecting value/list but got object at item 1 of input list"),
    (b'{"instances": [[1.0], [1.0, 2.0]]}', {"x": tf.float32},
     _row_error("Expecting tensor size: 1 but got: 2", 1)),
    (b'{"instances": [[1.0, 2.0], [[1.0], [2.0]]]}', {"x": tf.float32},
     _row_error("Expecting shape [2] but got: [2,1]", 1)),
    (b'{"instances": [[1.0, [2.0]]]}', {"x": tf.float32},
     _row_error("Encountered list at unexpected level: 1 expected < 1")),
    (b'{"instances": [[[1.0], 2.0]]}', {"x": tf.float32},
     _row_error("JSON Value: 2.0 found at incorrect level: 2 in the JSON DOM. "
                "Expected at level: 2")),
    (b'{"inputs": [[1.0], [2.0, 3.0]]}', {"x": tf.float32},
     "Encountered list at unexpected size: 2 at level: 1 expected size: 1"),
    (b'{"inputs": [1.0, 2.0]}', XY, "inputs is a plain value/list, but expecting an "
     "object as multiple input tensors required as per tensorinfo_map"),
    (b'{"inputs": {"b64": "AA=="}}', XY, "inputs is a plain value/list, but expecting "
     "an object as multiple input tensors required as per tensorinfo_map"),
    (b'{"inputs": {"x": 1.0}}', XY, "Missing named input: y in 'inputs' object."),
    (b'{"inputs": 1.0}', {}, "Failed to get input map for signature: DEFAULT"),
    (b'{"inputs": 1.0, "signature_name": "sig"}', {},
     "Failed to get input map for signature: sig"),
])
def test_structure_errors(body, dtypes, message):
  assert _message(_predict, body, dtypes) == message


def test_too_many_dimensions_is_a_400():
  body = b'{"inputs": ' + b"[" * 40 + b"1.0" + b"]" * 40 + b"}"
  assert "rank 40" in _message(_predict, body, {"x": tf.float32})


# predict_response_body ---------------------------------------------------------------


@pytest.mark.parametrize("value, text", [
    (0.1, "0.1"), (1 / 3, "0.333333343"), (3, "3.0"), (9000000, "9e+06"),
    (123456789, "123456792.0"), (3e-05, "3e-05"), (-0.0, "-0.0"), (2.5, "2.5"),
    (1e-45, "1.4013e-45"), (3.4028234663852886e38, "3.40282347e+38"),
    (math.nan, "NaN"), (math.inf, "Infinity"), (-math.inf, "-Infinity"),
])
def test_float32_text(value, text):
  assert json_format.format_floats(np.array([value], np.float32)) == [text]


@pytest.mark.parametrize("value, text", [
    (0.1, "0.1"), (1 / 3, "0.33333333333333331"), (3.0, "3.0"), (1e300, "1e+300"),
    (123456789.0, "123456789.0"), (0.1 + 0.2, "0.30000000000000004"),
])
def test_float64_text(value, text):
  assert json_format.format_floats(np.array([value], np.float64)) == [text]


def test_row_response_bytes_for_one_output():
  body = rc.predict_response_body({"y": np.array([2.5, 3.0], np.float32)}, True)
  assert body == b'{\n    "predictions": [2.5, 3.0\n    ]\n}'


def test_row_response_with_several_outputs_is_a_list_of_objects():
  outputs = {"scores": np.array([[0.5, 0.25], [1, 2]], np.float32),
             "ids": np.array([[b"a", b"b"], [b"c", b"d"]], dtype=object)}
  body = rc.predict_response_body(outputs, True)
  assert json.loads(body) == {"predictions": [
      {"ids": ["a", "b"], "scores": [0.5, 0.25]},
      {"ids": ["c", "d"], "scores": [1.0, 2.0]}]}
  assert body.startswith(b'{\n    "predictions": [\n        {\n            "ids": '
                         b'["a", "b"],\n')


def test_columnar_response_layout():
  body = rc.predict_response_body({"y": np.array([[1], [2]], np.int32)}, False)
  assert body == (b'{\n    "outputs": [\n        [\n            1\n        ],\n'
                  b'        [\n            2\n        ]\n    ]\n}')
  scalar = rc.predict_response_body({"y": np.float32(3)}, False)
  assert scalar == b'{\n    "outputs": 3.0\n}'
  several = rc.predict_response_body({"b": np.array([True]), "a": np.array(7)}, False)
  assert json.loads(several) == {"outputs": {"a": 7, "b": [True]}}


def test_response_non_finite_and_exact_integers():
  outputs = {"f": np.array([math.nan, math.inf, -math.inf], np.float32),
             "i": np.array([2**62 + 1, -2**63, 0], np.int64),
             "u": np.array([2**64 - 1, 0, 1], np.uint64)}
  body = rc.predict_response_body(outputs, False)
  assert b"NaN" in body and b"-Infinity" in body
  parsed = json.loads(body)["outputs"]
  assert parsed["i"] == [2**62 + 1, -2**63, 0] and parsed["u"][0] == 2**64 - 1


def test_int64_round_trip():
  _, tensors = _predict(b'{"instances": [4611686018427387905]}', {"x": tf.int64})
  body = rc.predict_response_body({"y": tensors["x"]}, True)
  assert json.loads(body) == {"predictions": [2**62 + 1]}


def test_string_outputs():
  strings = np.array([b"a\"\\/", b"\x01\x1f\n", "\u00e9".encode(), b"\xff"], object)
  body = rc.predict_response_body({"s": strings}, True)
  assert body == (b'{\n    "predictions": ["a\\"\\\\/", "\\u0001\\u001F\\n", '
                  b'"\xc3\xa9", "\xff"\n    ]\n}')
  b64 = rc.predict_response_body({"s_bytes": strings[2:]}, False)
  assert json.loads(b64) == {"outputs": [{"b64": "w6k="}, {"b64": "/w=="}]}


def test_b64_round_trip():
  body = b'{"instances": [{"b64": "/w=="}, {"b64": "AAE"}]}'
  _, tensors = _predict(body, {"x": tf.string})
  out = rc.predict_response_body({"x_bytes": tensors["x"]}, True)
  assert json.loads(out) == {"predictions": [{"b64": "/w=="}, {"b64": "AAE="}]}


def _random_output(rng, rank, batch, width):
  """A random output of one of the JSON-mappable dtypes, with the awkward values."""
  shape = (batch,) if rank == 1 else (batch, width)
  kind = rng.integers(6)
  size = int(np.prod(shape))
  if kind == 0:
    pool = np.array([0.5, -0.0, 1 / 3, 1e-45, 9e6, np.nan, np.inf, -np.inf, -np.inf],
                    np.float32)
    return rng.choice(pool, size).reshape(shape)
  if kind == 1:
    return rng.normal(size=shape) * 1e5  # float64
  if kind == 2:
    return rng.integers(-2**62, 2**62, size=shape, dtype=np.int64)
  if kind == 3:
    return rng.random(shape) > 0.5
  pool = [b"", b"i00042", b'q"uo\\te', b"\x01ctl\n", "\u00e9t\u00e9".encode(), b"\xff\xfe",
          b"a\x00b"]
  clean = kind == 4  # no value needs escaping: the one-pass quoting path
  values = [pool[i] for i in rng.integers(2 if clean else len(pool), size=size)]
  return np.array(values, dtype=object).reshape(shape)


def _random_outputs(rng, names, max_batch, max_width):
  """(batch, width, {name: output}) for 1-3 of `names`, of rank 1 or 2."""
  batch, width = int(rng.integers(0, max_batch + 1)), int(rng.integers(0, max_width + 1))
  chosen = sorted(rng.choice(names, size=int(rng.integers(1, 4)), replace=False))
  return batch, width, {name: _random_output(rng, int(rng.integers(1, 3)), batch, width)
                        for name in chosen}


def test_flat_row_body_equals_the_token_by_token_writer():
  """The fast row encoder (cached frame + joined values) against the PrettyWriter path
  it replaces for outputs of rank 1 and 2, over random layouts and values."""
  rng = np.random.default_rng(7)
  checked = 0
  for _ in range(300):
    batch, width, arrays = _random_outputs(
        rng, ["a", "scores", "item_ids", "z_bytes_not", "n"], max_batch=3, max_width=4)
    fast = rc.predict_response_body(arrays, True)
    written = json_format.to_bytes(rc._written_row_text(  # pylint: disable=protected-access
        {n: np.asarray(a) for n, a in arrays.items()}, batch))
    assert fast == written, (arrays, fast, written)
    checked += batch > 0 and width > 0
  assert checked > 100


def test_zero_batch():
  body = rc.predict_response_body({"y": np.zeros((0, 3), np.float16)}, True)
  assert body == b'{\n    "predictions": []\n}'


@pytest.mark.parametrize("outputs, message", [
    ({"a": np.zeros(2), "b": np.zeros(3)},
     "Tensor name: b has inconsistent batch size: 3 expecting: 2"),
    ({"a": np.float32(1)}, "Tensor name: a has no shape information "),
    ({"a": np.ones(2, np.float16)}, "Failed to write JSON value for tensor type: half"),
    ({"a": np.ones(2, np.uint16)}, "Failed to write JSON value for tensor type: uint16"),
    ({"a": np.ones(2, np.complex64)},
     "Failed to write JSON value for tensor type: complex64"),
    ({}, "Cannot convert empty tensor map to JSON"),
])
def test_response_errors(outputs, message):
  assert _message(rc.predict_response_body, outputs, True) == message


def test_error_body():
  assert rc.error_body('bad "x"\n') == b'{\n    "error": "bad \\"x\\"\\n"\n}'


# Classify / regress ------------------------------------------------------------------


def _examples(obj):
  return [tf.train.Example.FromString(s) for s in rc.examples_from_request(obj)]


def _features(example):
  result = {}
  for name, feature in example.features.feature.items():
    kind = feature.WhichOneof("kind")
    result[name] = (kind, list(getattr(feature, kind).value) if kind else [])
  return result


def test_examples_feature_kinds():
  [example] = _examples({"examples": [{
      "f": [1.5, 2e3], "i": [1, -2], "b": [True, False], "s": "x",
      "bin": [{"b64": "/w=="}, "y"], "big": 18446744073709551616, "empty": []}]})
  assert _features(example) == {
      "f": ("float_list", [1.5, 2000.0]), "i": ("int64_list", [1, -2]),
      "b": ("int64_list", [1, 0]), "s": ("bytes_list", [b"x"]),
      "bin": ("bytes_list", [b"\xff", b"y"]),
      "big": ("float_list", [float(2**64)]), "empty": (None, [])}


def test_context_is_merged_into_every_example():
  obj = rc.parse_json_body(
      b'{"context": {"c": 1, "shared": "ctx"}, '
      b'"examples": [{"x": 0.5, "shared": "ex"}, {"y": [2]}]}')
  first, second = _examples(obj)
  assert _features(first) == {"c": ("int64_list", [1]), "x": ("float_list", [0.5]),
                              "shared": ("bytes_list", [b"ex"])}
  assert _features(second) == {"c": ("int64_list", [1]), "y": ("int64_list", [2]),
                               "shared": ("bytes_list", [b"ctx"])}


@pytest.mark.parametrize("obj, message", [
    ({"x": 1}, 'JSON Value: {\n    "x": 1\n} When method is classify, key '
     "'examples' is expected and was not found"),
    ({"examples": {}}, 'JSON Value: {\n    "examples": {}\n} Expecting '
     "'examples' value to be an list/array"),
    ({"examples": []}, 'JSON Value: {\n    "examples": []\n} '
     "'examples' value is an empty array"),
    ({"examples": [{}, [1]]}, "Example must be JSON object but got JSON Array"),
    ({"context": "c"}, "Example must be JSON object but got JSON String"),
    ({"examples": [{"f": [1, 2.0]}]},
     "Unexpected element type in feature: f expecting type: int64"),
    ({"examples": [{"f": [1.0, "a"]}]},
     "Unexpected element type in feature: f expecting type: float"),
    ({"examples": [{"f": [{"b64": "AA=="}, True]}]},
     "Unexpected element type in feature: f expecting type: bytes"),
    ({"examples": [{"f": None}]},
     "Feature: f has element with unexpected JSON type: Null"),
    ({"examples": [{"f": [[1]]}]},
     "Feature: f has element with unexpected JSON type: Array"),
    ({"examples": [{"f": {"a": 1}}]},
     "Feature: f has element with unexpected JSON type: Object"),
    ({"examples": [{"f": 9223372036854775808}]},
     "Feature: f has uint64 element. Only int64_t is supported."),
    ({"examples": [{"f": {"b64": "*"}}]}, "Unable to base64 decode"),
])
def test_example_errors(obj, message):
  assert _message(rc.examples_from_request, obj) == message


def test_classify_response_bytes():
  body = rc.classify_response_body(np.array([[b"a", b"b"], [b"c", b"d"]], object),
                                   np.array([[0.1, 0.9], [1, 1 / 3]], np.float32))
  assert body == (b'{\n    "results": [[["a", 0.1], ["b", 0.9]], '
                  b'[["c", 1.0], ["d", 0.333333343]]\n    ]\n}')


def test_classify_with_only_scores_or_only_classes():
  scores_only = rc.classify_response_body(None, np.array([[0.5, 2]], np.float32))
  assert json.loads(scores_only) == {"results": [[["", 0.5], ["", 2.0]]]}
  classes_only = rc.classify_response_body(np.array([[b"x"]], object), None)
  assert json.loads(classes_only) == {"results": [[["x", 0.0]]]}


def test_classify_shape_errors():
  assert _message(rc.classify_response_body, None, np.zeros(3)) == (
      "Expected Tensor shape: [batch_size num_classes] but got [3]")
  assert _message(rc.classify_response_body, np.zeros((2, 2), object),
                  np.zeros((2, 3))) == (
                      "Tensors class and score should match in dim[1]. Got 2 vs. 3")
  assert _message(rc.classify_response_body, np.zeros((2, 2), np.int32), None) == (
      "Expected classes Tensor of DT_STRING. Got: DT_INT32")
  assert _message(rc.classify_response_body, None, np.zeros((2, 2), object)) == (
      "Expected scores Tensor of DT_FLOAT. Got: DT_STRING")


def test_regress_response_bytes():
  body = rc.regress_response_body(np.array([[3.5], [0.1]], np.float32))
  assert body == b'{\n    "results": [3.5, 0.1]\n}'
  assert rc.regress_response_body(np.array([4.0])) == (
      b'{\n    "results": [4.0]\n}')
  assert _message(rc.regress_response_body, np.zeros((2, 2))) == (
      "Expected output Tensor shape to be either [batch_size] or [batch_size, 1] "
      "but got [2,2]")


def _reference_float_text(value: float, float32: bool) -> str:
  """The WriteDecimal rule written out for one value, independently of format_floats."""
  if value != value:
    return "NaN"
  if math.isinf(value):
    return "Infinity" if value > 0 else "-Infinity"
  cast = np.float32 if float32 else np.float64
  text = "%.6g" % value
  if cast(float(text)) != cast(value):
    text = ("%.9g" if float32 else "%.17g") % value
  return text if ("." in text or "e" in text) else text + ".0"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_format_floats_mixed_arrays_match_the_rule_value_by_value(dtype):
  # Padded model outputs: finite scores followed by -inf, with NaN and +inf mixed in.
  rng = np.random.default_rng(7)
  values = (rng.normal(size=300) * 10.0 ** rng.integers(-8, 9, 300)).astype(dtype)
  values[rng.random(300) < 0.4] = -np.inf
  values[[3, 50]] = np.nan
  values[[7, 8]] = np.inf
  values[100:] = np.where(np.arange(200) % 2, values[100:], np.round(values[100:]))
  expected = [_reference_float_text(float(v), dtype == np.float32) for v in values]
  assert json_format.format_floats(values.reshape(10, 30)) == expected
  assert json_format.format_floats(np.full(5, -np.inf, dtype)) == ["-Infinity"] * 5
  assert json_format.format_floats(np.zeros(0, dtype)) == []


@pytest.mark.parametrize("values", [
    [b"a", b"", b"caf\xc3\xa9", b"x"],
    [b"a\x00b", b"c"],                    # a NUL inside a value
    [b"\xff\xfe", b"ok", b"\xc3"],        # invalid UTF-8 kept as-is
    [b'quote"d', b"back\\slash", b"tab\t", b"\x01"],
    ["str", b"bytes", "\u00e9"],           # str and bytes mixed in an object array
    [],
])
def test_string_output_tokens_match_quote_string_value_by_value(values):
  array = np.array(values + [b""], dtype=object)[:len(values)]
  tokens, b64 = rc._output_tokens("item_ids", array)  # pylint: disable=protected-access
  expected = [json_format.quote_string(json_format.from_bytes(
      v.encode("utf-8") if isinstance(v, str) else v)) for v in values]
  assert (tokens, b64) == (expected, False)
  if values:
    body = rc.predict_response_body({"item_ids": array.reshape(1, -1)}, True)
    assert body.decode("utf-8", "surrogateescape").split("[", 2)[2].startswith(
        ", ".join(expected))


def _random_ranges(rng, batch):
  """Consecutive row ranges covering [0, batch), some empty, as a batch's requests."""
  cuts = sorted(rng.integers(0, batch + 1, size=int(rng.integers(0, 4))).tolist())
  edges = [0] + cuts + [batch]
  return list(zip(edges[:-1], edges[1:]))


@pytest.mark.parametrize("is_row", [True, False])
def test_batch_replies_equal_each_request_encoded_alone(is_row):
  """PredictReplies.many (one pass over a merged batch) against predict_response_body of
  each request's own rows, over random layouts: flat outputs, rank 3, b64 outputs."""
  rng = np.random.default_rng(11)
  encoder = rc.PredictReplies(is_row)
  for _ in range(200):
    batch, width, arrays = _random_outputs(
        rng, ["a", "scores", "item_ids", "n", "s_bytes"], max_batch=5, max_width=3)
    if rng.random() < 0.2:  # rank 3: the token-by-token writer
      arrays["r3"] = rng.normal(size=(batch, 2, width)).astype(np.float32)
    ranges = _random_ranges(rng, batch)
    expected = [rc.predict_response_body({n: a[s:e] for n, a in arrays.items()}, is_row)
                for s, e in ranges]
    assert encoder.many(arrays, ranges) == expected, (arrays, ranges)
    assert encoder.one(arrays) == rc.predict_response_body(arrays, is_row)


def test_batch_replies_of_bad_outputs_fail_as_a_single_reply_would():
  encoder = rc.PredictReplies(True)
  with pytest.raises(ServingError, match="Failed to write JSON value for tensor type: half"):
    encoder.many({"a": np.ones((4, 2), np.float16)}, [(0, 1), (1, 4)])
  # Outputs of different lengths (never from a batch): each request gets its own rows.
  ragged = {"a": np.arange(4.0), "b": np.arange(3)}
  assert encoder.many(ragged, [(0, 1), (1, 3)]) == [
      rc.predict_response_body({n: a[s:e] for n, a in ragged.items()}, True)
      for s, e in [(0, 1), (1, 3)]]
  assert rc.PredictReplies(True) == encoder and hash(rc.PredictReplies(True)) == hash(encoder)
  assert rc.PredictReplies(False) != encoder
