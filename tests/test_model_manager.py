"""ModelManager and model config tests on real SavedModels (no mocks).

Versions are tiny "half plus N" modules, y = 0.5 * x + offset: versions 1 and 2 use
offset 2 (half_plus_two), version 3 offset 3, so outputs tell versions apart.
"""

import os
import shutil
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import prediction_log_pb2

from serving.errors import ServingError
from serving.model_config import ALL, SPECIFIC, ModelConfig, ModelConfigError
from serving.model_config import load_model_config_file, parse_model_config_text
from serving.model_manager import ModelManager, UnknownSignature

State = get_model_status_pb2.ModelVersionStatus.State
OFFSETS = {1: 2.0, 2: 2.0, 3: 3.0}
X = np.array([1.0, 2.0, 4.0], np.float32)


class _HalfPlus(tf.Module):

  def __init__(self, offset):
    super().__init__()
    self.scale = tf.Variable(0.5)
    self.offset = tf.Variable(offset)

  @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
  def serve(self, x):
    return {"y": self.scale * x + self.offset}


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
  """Template version folders: {1, 2, 3: SavedModel dir, "corrupt": garbage pb}."""
  root = tmp_path_factory.mktemp("exports")
  paths = {}
  for version, offset in OFFSETS.items():
    module = _HalfPlus(offset)
    paths[version] = str(root / f"v{version}")
    tf.saved_model.save(module, paths[version], signatures={"serving_default": module.serve})
  corrupt = root / "corrupt"
  corrupt.mkdir()
  (corrupt / "saved_model.pb").write_bytes(b"\x0bnot a saved model\xff\xff")
  paths["corrupt"] = str(corrupt)
  paths["bad_op"] = str(root / "bad_op")  # Like a ScaNN model without ScaNN's ops.
  shutil.copytree(paths[1], paths["bad_op"])
  proto = saved_model_pb2.SavedModel()
  with open(os.path.join(paths["bad_op"], "saved_model.pb"), "rb") as f:
    proto.ParseFromString(f.read())
  for function in proto.meta_graphs[0].graph_def.library.function:
    for node in function.node_def:
      if node.op == "Mul":
        node.op = "NoSuchOpForTest"
  with open(os.path.join(paths["bad_op"], "saved_model.pb"), "wb") as f:
    f.write(proto.SerializeToString())
  return paths


def _base(tmp_path, exports, versions, name="base"):
  """A base path holding copies of `versions` ({dirname: export key})."""
  base = tmp_path / name
  base.mkdir()
  for dirname, key in versions.items():
    shutil.copytree(exports[key], base / dirname)
  return str(base)


def _manager(base, poll=0.0, name="half", config=None, **kwargs):
  """A manager of one model; poll 0: loads in start(), later polls are poll_once()."""
  kwargs.setdefault("max_num_load_retries", 1)
  kwargs.setdefault("load_retry_interval_seconds", 0.01)
  return ModelManager([ModelConfig(name, base, **(config or {}))], poll, **kwargs)


def _states(manager, name="half"):
  return [(s.version, s.state) for s in manager.status(name).model_version_status]


def _y(loaded):
  return loaded.run("serving_default", {"x": X})["y"]


def _raises(code, message, fn, *args, **kwargs):
  with pytest.raises(ServingError) as info:
    fn(*args, **kwargs)
  assert (info.value.code, info.value.message) == (code, message)


def test_discovery_and_latest_policy(tmp_path, exports):
  base = _base(tmp_path, exports, {"1": 1, "00000002": 2, "0003": 3, ".tmp-4-xyz": 3,
                                   "assets": 1})
  (tmp_path / "base" / "notes.txt").write_text("not a version")
  manager = _manager(base)
  manager.start()
  assert manager.model_names() == ["half"]
  assert _states(manager) == [(3, State.AVAILABLE)]  # Unaspired versions never appear.
  latest = manager.resolve("half")
  assert latest.version == 3 and manager.resolve("half", version=3) is latest
  np.testing.assert_allclose(_y(latest), 0.5 * X + 3.0)
  two = _manager(base, config={"num_versions": 2})
  two.start()
  assert _states(two) == [(3, State.AVAILABLE), (2, State.AVAILABLE)]
  np.testing.assert_allclose(_y(two.resolve("half", version=2)), 0.5 * X + 2.0)


def test_all_and_specific_policies(tmp_path, exports):
  base = _base(tmp_path, exports, {"1": 1, "2": 2, "3": 3})
  every = _manager(base, config={"version_policy": ALL})
  every.start()
  assert every.available_versions("half") == [3, 2, 1]
  specific = _manager(base, config={"version_policy": SPECIFIC, "versions": (3, 1, 9)})
  specific.start()
  assert _states(specific) == [(3, State.AVAILABLE), (1, State.AVAILABLE)]
  _raises(grpc.StatusCode.NOT_FOUND, "Servable not found for request: Specific(half, 2)",
          specific.resolve, "half", version=2)


def test_labels(tmp_path, exports):
  base = _base(tmp_path, exports, {"1": 1, "2": 2})
  config = {"version_policy": ALL, "version_labels": {"stable": 1, "canary": 2}}
  manager = _manager(base, config=config)
  manager.start()
  assert manager.resolve("half", label="stable").version == 1
  assert manager.resolve("half", label="canary").version == 2
  for name in ("half", "nope"):
    _raises(grpc.StatusCode.INVALID_ARGUMENT, "Unrecognized servable version label: beta",
            manager.resolve, name, label="beta")
  bad = dict(config, version_labels={"future": 5})
  _raises(grpc.StatusCode.FAILED_PRECONDITION, "Request to assign label to version 5 of "
          "model half, which is not currently available for inference",
          _manager(base, config=bad).start)
  # Allowed with the flag; the label then resolves to a missing version.
  lenient = _manager(base, config=bad, allow_version_labels_for_unavailable_models=True)
  lenient.start()
  _raises(grpc.StatusCode.NOT_FOUND, "Servable not found for request: Specific(half, 5)",
          lenient.resolve, "half", label="future")


def test_resolve_and_status_errors(tmp_path, exports):
  manager = _manager(_base(tmp_path, exports, {"1": 1, "2": 2}))
  manager.start()
  not_found = grpc.StatusCode.NOT_FOUND
  _raises(not_found, "Servable not found for request: Latest(nope)", manager.resolve, "nope")
  _raises(not_found, "Servable not found for request: Specific(nope, 1)",
          manager.resolve, "nope", 1)
  _raises(not_found, "Servable not found for request: Specific(half, 1)",
          manager.resolve, "half", 1)
  _raises(not_found, "Could not find any versions of model nope", manager.status, "nope")
  _raises(not_found, "Could not find version 1 of model half", manager.status, "half", 1)
  status = manager.status("half", 2).model_version_status
  assert [(s.version, s.state, s.status.error_code, s.status.error_message)
          for s in status] == [(2, State.AVAILABLE, 0, "")]
  empty = tmp_path / "empty"
  empty.mkdir()
  nothing = _manager(str(empty), name="empty")
  nothing.start()  # No versions: a warning, nothing served, no error.
  _raises(not_found, "Could not find any versions of model empty", nothing.status, "empty")


def test_failed_version_keeps_previous_serving(tmp_path, exports):
  base = _base(tmp_path, exports, {"1": 1, "2": 2})
  events = []
  manager = _manager(base)
  manager.add_listener(lambda *event: events.append(event))
  manager.start()
  shutil.copytree(exports["corrupt"], os.path.join(base, "3"))
  manager.poll_once()
  (v3, v2) = manager.status("half").model_version_status
  assert (v3.version, v3.state, v2.version, v2.state) == (3, State.END, 2, State.AVAILABLE)
  assert v3.status.error_code == grpc.StatusCode.DATA_LOSS.value[0]
  assert "saved_model.pb" in v3.status.error_message
  assert manager.resolve("half").version == 2
  assert manager.load_attempts == {("half", "OK"): 1, ("half", "DATA_LOSS"): 2}
  manager.poll_once()  # Given up until the folder changes: no new attempt.
  assert manager.load_attempts[("half", "DATA_LOSS")] == 2
  assert [e[:3] for e in events if e[1] == 3] == [
      ("half", 3, State.START), ("half", 3, State.LOADING), ("half", 3, State.END)]
  # Repairing the folder makes it load, and only then is version 2 unloaded.
  shutil.rmtree(os.path.join(base, "3"))
  shutil.copytree(exports[3], os.path.join(base, "3"))
  manager.poll_once()
  assert _states(manager) == [(3, State.AVAILABLE), (2, State.END)]
  np.testing.assert_allclose(_y(manager.resolve("half")), 0.5 * X + 3.0)


def test_startup_fails_when_latest_version_fails(tmp_path, exports):
  manager = _manager(_base(tmp_path, exports, {"1": 1, "2": "corrupt"}))
  with pytest.raises(ServingError) as info:
    manager.start()
  assert info.value.code == grpc.StatusCode.UNKNOWN
  assert info.value.message.startswith("1 model(s) did not become available: "
                                       "{{{name: half version: 2} due to error: DATA_LOSS: ")


def test_unregistered_op_is_not_found(tmp_path, exports):
  manager = _manager(_base(tmp_path, exports, {"1": 1, "2": "bad_op"}),
                     config={"version_policy": ALL})
  with pytest.raises(ServingError):
    manager.start()
  (v2, v1) = manager.status("half").model_version_status
  assert (v1.state, v2.state) == (State.AVAILABLE, State.END)
  assert v2.status.error_code == grpc.StatusCode.NOT_FOUND.value[0]
  assert "Op type not registered 'NoSuchOpForTest'" in v2.status.error_message


def test_hot_swap_without_failed_requests(tmp_path, exports):
  base = _base(tmp_path, exports, {"1": 1, "2": 2})
  manager = _manager(base, poll=0.2)
  manager.start()
  held = manager.resolve("half")  # A request that holds version 2 across the swap.
  failures, seen, calls, done = [], set(), [], threading.Event()

  def client():
    while not done.is_set():
      try:
        loaded = manager.resolve("half")
        np.testing.assert_allclose(_y(loaded), 0.5 * X + OFFSETS[loaded.version])
        seen.add(loaded.version)
        calls.append(loaded.version)
      except Exception as e:  # pylint: disable=broad-except
        failures.append(repr(e))
      time.sleep(0.001)

  threads = [threading.Thread(target=client) for _ in range(2)]
  for thread in threads:
    thread.start()
  start = time.time()
  try:
    time.sleep(0.5)
    staging = os.path.join(base, ".tmp-3-abc")  # Hidden while written, then renamed.
    shutil.copytree(exports[3], staging)
    os.rename(staging, os.path.join(base, "3"))
    deadline = time.time() + 20
    while _states(manager) != [(3, State.AVAILABLE), (2, State.END)]:
      assert time.time() < deadline, _states(manager)
      time.sleep(0.05)
    time.sleep(max(0.5, 3.0 - (time.time() - start)))  # A few seconds of traffic.
  finally:
    done.set()
    for thread in threads:
      thread.join()
    manager.stop()
  assert not failures
  assert seen == {2, 3} and len(calls) > 200 and calls[-1] == 3
  assert held.version == 2
  np.testing.assert_allclose(_y(held), 0.5 * X + 2.0)  # Completes on the old version.


def test_negative_poll_never_scans(tmp_path, exports):
  manager = _manager(_base(tmp_path, exports, {"1": 1}), poll=-1)
  manager.start()  # Upstream's test-only mode: nothing is scanned until poll_once().
  assert manager.available_versions("half") == []
  manager.poll_once()
  assert manager.available_versions("half") == [1]


def test_deleted_version_is_unloaded(tmp_path, exports):
  base = _base(tmp_path, exports, {"2": 2, "3": 3})
  manager = _manager(base)
  manager.start()
  shutil.rmtree(os.path.join(base, "3"))
  manager.poll_once()
  assert _states(manager) == [(3, State.END), (2, State.AVAILABLE)]


def test_reload_config(tmp_path, exports):
  manager = _manager(_base(tmp_path, exports, {"1": 1}))
  manager.start()
  other = _base(tmp_path, exports, {"3": 3}, name="other")
  manager.reload_config([ModelConfig("other", other)])
  assert manager.model_names() == ["other"]
  assert manager.resolve("other").version == 3
  assert _states(manager) == [(1, State.END)]  # Removed models keep their history.
  _raises(grpc.StatusCode.NOT_FOUND, "Servable not found for request: Latest(half)",
          manager.resolve, "half")


def test_metadata_and_signatures(tmp_path, exports):
  manager = _manager(_base(tmp_path, exports, {"1": 1}))
  manager.start()
  loaded = manager.resolve("half")
  sigdefs = loaded.signature_def_map().signature_def
  assert set(sigdefs) == {"serving_default", "__saved_model_init_op"}
  x = sigdefs["serving_default"].inputs["x"]
  assert x.dtype == tf.float32.as_datatype_enum
  assert [d.size for d in x.tensor_shape.dim] == [-1]
  assert sigdefs["serving_default"].method_name == "tensorflow/serving/predict"
  info = loaded.signatures["serving_default"]
  assert info.inputs == {"x": (tf.float32, [None])}
  assert info.outputs == {"y": (tf.float32, [None])}
  assert "__saved_model_init_op" not in loaded.signatures


def test_run_errors_and_input_checks(tmp_path, exports):
  manager = _manager(_base(tmp_path, exports, {"1": 1}))
  manager.start()
  loaded = manager.resolve("half")
  invalid = grpc.StatusCode.INVALID_ARGUMENT
  with pytest.raises(UnknownSignature):
    loaded.run("nope", {"x": X})
  with pytest.raises(ServingError) as info:
    loaded.run("serving_default", {"x": X.astype(np.float64)})
  assert info.value.code == invalid and "double" in info.value.message
  assert list(loaded.run("serving_default", {"x": X}, output_filter=["y"])) == ["y"]
  _raises(invalid, "output tensor alias not found in signature: z Outputs expected to be "
          "in the set {y}.", loaded.run, "serving_default", {"x": X}, ["z"])
  _raises(invalid, "duplicate output tensor alias: y",
          loaded.run, "serving_default", {"x": X}, ["y", "y"])
  loaded.check_inputs("serving_default", ["x"])
  _raises(invalid, "input size does not match signature: 2!=1 len({x,z}) != len({x}). "
          "Sent extra: {z}. Missing but required: {}.",
          loaded.check_inputs, "serving_default", ["x", "z"])
  _raises(invalid, "Signature input alias: x(feed name: serving_default_x:0) not found in "
          "request and no default value provided. Inputs expected to be in the request "
          "{z}, or default input alias set: ", loaded.check_inputs, "serving_default", ["z"])
  with pytest.raises(UnknownSignature):
    loaded.check_inputs("nope", ["x"])


def _write_warmup(version_dir, alias):
  extra = os.path.join(version_dir, "assets.extra")
  os.makedirs(extra)
  log = prediction_log_pb2.PredictionLog()
  log.predict_log.request.inputs[alias].CopyFrom(tf.make_tensor_proto(X))
  with tf.io.TFRecordWriter(os.path.join(extra, "tf_serving_warmup_requests")) as writer:
    writer.write(log.SerializeToString())


def test_warmup(tmp_path, exports):
  base = _base(tmp_path, exports, {"1": 1, "2": 2})
  _write_warmup(os.path.join(base, "1"), "x")
  _write_warmup(os.path.join(base, "2"), "wrong")
  manager = _manager(base, config={"version_policy": ALL})
  with pytest.raises(ServingError):
    manager.start()  # Version 2, the latest, fails its warmup.
  (v2, v1) = manager.status("half").model_version_status
  assert (v1.state, v2.state) == (State.AVAILABLE, State.END)
  assert v2.status.error_code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
  assert v2.status.error_message.startswith("Signature input alias: x(")


def test_config_file(tmp_path):
  path = tmp_path / "models.config"
  path.write_text("""
model_config_list {
  config {
    name: "half"  base_path: "/models/half"  model_platform: "tensorflow"
    model_version_policy { specific { versions: 42 versions: 43 } }
    version_labels { key: "stable" value: 42 }
    version_labels { key: "canary" value: 43 }
  }
  config { name: "all" base_path: "/models/all" model_version_policy { all {} } }
  config { name: "two" base_path: "gs://bucket/two"
           model_version_policy { latest { num_versions: 2 } } }
  config { name: "one" base_path: "/models/one" }
}
""")
  half, every, two, one = load_model_config_file(str(path))
  assert half == ModelConfig("half", "/models/half", SPECIFIC, versions=(42, 43),
                             version_labels={"stable": 42, "canary": 43})
  assert every.version_policy == ALL
  assert (two.version_policy, two.num_versions) == ("latest", 2)
  assert (one.version_policy, one.num_versions) == ("latest", 1)
  assert one.aspired_versions([1, 5, 3]) == {5}
  assert two.aspired_versions([1, 5, 3]) == {5, 3}
  assert half.aspired_versions([41, 42]) == {42}
  assert parse_model_config_text("") == []


@pytest.mark.parametrize("text, message", [
    ("model_config_list { config { name: 'm' base_path: '/a' } ",
     "Error parsing text-format tensorflow.serving.ModelServerConfig: "),
    ("model_config_list { config { nme: 'm' } }",
     "Error parsing text-format tensorflow.serving.ModelServerConfig: "),
    ("model_config_list { config { name: 'm' base_path: 'rel/path' } }",
     "Expected model m to have an absolute path or URI; got base_path()=rel/path"),
    ("model_config_list { config { name: 'm' base_path: '/a' model_platform: 'torch' } }",
     "Model m requests unsupported platform torch"),
    ("model_config_list { config { name: 'm' base_path: '/a' } "
     "config { name: 'm' base_path: '/b' } }",
     "Illegal to list model m multiple times in config list"),
])
def test_bad_config(text, message):
  with pytest.raises(ModelConfigError) as info:
    parse_model_config_text(text)
  assert info.value.message.startswith(message)
  assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_missing_config_file(tmp_path):
  with pytest.raises(ModelConfigError) as info:
    load_model_config_file(str(tmp_path / "missing.config"))
  assert info.value.code == grpc.StatusCode.NOT_FOUND
