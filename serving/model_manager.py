"""Loads, hot-swaps and looks up the served model versions, like TF Serving's ServerCore.

`ModelManager(configs, poll_seconds).start()` loads every model's aspired versions (see
`ModelConfig.aspired_versions`), then a daemon thread re-scans the base paths every
`poll_seconds` (0: scan once at start; negative: never scan, call `poll_once()`), loading
new versions and unloading the ones no longer aspired. Swaps preserve availability
(upstream AvailabilityPreservingPolicy): a version is unloaded only once an aspired one
is AVAILABLE (or nothing is aspired any more), so no request finds no version; requests
that already hold a `LoadedVersion` finish on it.

Failed loads are retried `max_num_load_retries` times, `load_retry_interval_seconds`
apart (blocking the poll thread meanwhile), then the version shows END with the error
and is not retried until its directory changes (mtime/size of the folder,
saved_model.pb(txt) and variables index). Every (model, version) ever seen keeps its
state for `status()` (START/LOADING/AVAILABLE/UNLOADING/END).

`resolve()` returns a `LoadedVersion`: the SavedModel's signatures (`signatures`,
`signature_def_map()` for metadata), upstream's Predict checks (`check_inputs`) and
`run()`. An unknown signature raises `UnknownSignature` (a KeyError): its message
differs between REST predict, gRPC Predict and classify/regress, so callers word it.
"""

import collections
import dataclasses
import os
import re
import threading
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from absl import logging
import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import prediction_log_pb2

from serving.errors import ServingError
from serving.model_config import ModelConfig, SPECIFIC, check_unique_names
from serving.session_model import SessionModel

State = get_model_status_pb2.ModelVersionStatus.State
Listener = Callable[[str, int, int, Optional[ServingError]], None]
_MAX_INT64 = 2**63 - 1


def register_custom_ops() -> bool:
  """Registers ScaNN's TF ops (needed by tfcr's ScaNN servables); False if missing."""
  try:
    from tfcr.index.scann_cpu import load_scann_ops  # pylint: disable=g-import-not-at-top
    load_scann_ops()
  except ImportError as e:
    logging.warning("ScaNN is not installed (%s): SavedModels with ScaNN ops will fail "
                    "to load (END, 'Op type not registered').", e)
    return False
  return True


def _stat(path: str):
  """(mtime ns, size) of a file or folder, None if absent; nanoseconds for local paths."""
  try:
    if "://" in path:
      st = tf.io.gfile.stat(path)
      return st.mtime_nsec, st.length
    st = os.stat(path)
    return st.st_mtime_ns, st.st_size
  except (OSError, tf.errors.OpError):
    return None


def _fingerprint(path: str) -> tuple:
  """Changes when a version folder is rewritten (decides retrying a failed load)."""
  names = ("", "saved_model.pb", "saved_model.pbtxt", "variables/variables.index")
  return tuple(_stat(os.path.join(path, n) if n else path) for n in names)


_GRPC_CODES = {code.value[0]: code for code in grpc.StatusCode}
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_WARMUP_RECORDS = 1000


_ASSERTION = re.compile(r"assertion failed: \[(.*?)\](?: \[|$|\n)", re.S)


def _assertion_text(message: str) -> str:
  """A model's tf.debugging assertion as its own words.

  TF wraps it in "Graph execution error: ... Detected at node ... assertion failed:
  [k must be in 1..100 (max_k)] [Condition x <= y ...]"; the client needs the first
  bracket, the rest is graph plumbing. Other messages are kept whole.
  """
  match = _ASSERTION.search(message)
  return match.group(1).replace('\\"', '"') if match else message


def to_serving_error(e: BaseException) -> ServingError:
  """A load or run exception as a ServingError with TF's status code and message."""
  if isinstance(e, ServingError):
    return e
  if isinstance(e, tf.errors.OpError):
    return ServingError(_GRPC_CODES.get(e.error_code, grpc.StatusCode.UNKNOWN),
                        _assertion_text(e.message))
  message = str(e)
  if (isinstance(e, FileNotFoundError) or "does not exist" in message
      or "Op type not registered" in message):
    code = grpc.StatusCode.NOT_FOUND
  elif "Cannot parse file" in message:
    code = grpc.StatusCode.DATA_LOSS  # As upstream's ReadBinaryProto.
  elif isinstance(e, (ValueError, TypeError)):
    code = grpc.StatusCode.INVALID_ARGUMENT
  else:
    code = grpc.StatusCode.UNKNOWN
  return ServingError(code, message)


class UnknownSignature(KeyError):
  """The model has no such signature; the caller picks the message (REST predict,
  gRPC Predict and classify/regress each word it differently)."""

  def __init__(self, signature_name: str):
    super().__init__(signature_name)
    self.signature_name = signature_name


DTypeAndShape = Tuple[tf.DType, Optional[List[Optional[int]]]]


@dataclasses.dataclass(frozen=True)
class SignatureInfo:
  """A runnable signature. Shapes: None per unknown dim; None for unknown rank."""
  inputs: Dict[str, DTypeAndShape]
  outputs: Dict[str, DTypeAndShape]
  method_name: str


def _tensor_spec(info) -> DTypeAndShape:
  dims = info.tensor_shape.dim
  shape = (None if info.tensor_shape.unknown_rank
           else [d.size if d.size >= 0 else None for d in dims])
  return tf.as_dtype(info.dtype), shape


def _serialized_examples(input_proto) -> List[bytes]:
  """tensorflow.serving.Input -> serialized Examples (context merged into each)."""
  kind = input_proto.WhichOneof("kind")
  if kind == "example_list":
    return [e.SerializeToString() for e in input_proto.example_list.examples]
  if kind == "example_list_with_context":
    with_context = input_proto.example_list_with_context
    context = with_context.context.SerializeToString()
    return [context + e.SerializeToString() for e in with_context.examples]
  return []


class LoadedVersion:
  """One loaded SavedModel version. `run` is thread-safe."""

  def __init__(self, name: str, version: int, path: str,
               tags: Sequence[str] = ("serve",), inter_op_threads: int = -1,
               intra_op_threads: int = 0):
    """inter_op_threads, intra_op_threads: the model's Session threads
    (`serving.session_model.SessionModel`; -1: each call on its caller's thread)."""
    self.name = name
    self.version = version
    self.path = path
    self._model = SessionModel(path, tags, inter_op_threads, intra_op_threads)
    self._functions = self._model.signatures
    self._signature_defs = get_model_metadata_pb2.SignatureDefMap()
    for key, signature_def in self._model.signature_defs.items():
      self._signature_defs.signature_def[key].CopyFrom(signature_def)
    self.signatures: Dict[str, SignatureInfo] = {
        key: SignatureInfo({a: _tensor_spec(i) for a, i in sig.inputs.items()},
                           {a: _tensor_spec(i) for a, i in sig.outputs.items()},
                           sig.method_name)
        for key, sig in self._signature_defs.signature_def.items()
        if key in self._functions}

  def signature_def_map(self) -> get_model_metadata_pb2.SignatureDefMap:
    """Every SignatureDef of the MetaGraphDef, `__saved_model_init_op` included."""
    result = get_model_metadata_pb2.SignatureDefMap()
    result.CopyFrom(self._signature_defs)
    return result

  def check_inputs(self, signature_name: str, aliases: Iterable[str]) -> None:
    """Upstream's Predict input checks (predict_util.cc, saved_model/util.cc).

    Raises:
      UnknownSignature: no such signature.
      ServingError: INVALID_ARGUMENT `input size does not match signature: ...`,
        `Signature input alias: ... not found in request ...` or
        `Inputs contains invalid name. ...`.
    """
    if signature_name not in self._signature_defs.signature_def:
      raise UnknownSignature(signature_name)
    signature = self._signature_defs.signature_def[signature_name]
    request, expected = set(aliases), set(signature.inputs)
    if len(request) > len(expected) or (len(request) < len(expected) and
                                        not signature.defaults):
      raise ServingError(
          grpc.StatusCode.INVALID_ARGUMENT,
          f"input size does not match signature: {len(request)}!={len(expected)} "
          f"len({{{','.join(sorted(request))}}}) != len({{{','.join(sorted(expected))}}})"
          f". Sent extra: {{{','.join(sorted(request - expected))}}}. "
          f"Missing but required: {{{','.join(sorted(expected - request))}}}.")
    for alias in sorted(expected - request):
      if alias not in signature.defaults:
        raise ServingError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"Signature input alias: {alias}(feed name: {signature.inputs[alias].name}) "
            "not found in request and no default value provided. Inputs expected to be "
            f"in the request {{{','.join(sorted(request))}}}, or default input alias "
            f"set: {','.join(sorted(signature.defaults))}")
    if request - expected:
      raise ServingError(
          grpc.StatusCode.INVALID_ARGUMENT,
          "Inputs contains invalid name. Used request inputs: "
          f"{','.join(sorted(request & expected))}, request input: "
          f"{','.join(sorted(request))}")

  def _output_aliases(self, signature_name: str,
                      output_filter: Optional[Sequence[str]]) -> List[str]:
    info = self.signatures.get(signature_name)
    if info is None:
      raise UnknownSignature(signature_name)
    outputs = info.outputs
    if not output_filter:
      return list(outputs)
    seen = []
    for alias in output_filter:
      if alias not in outputs:
        raise ServingError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"output tensor alias not found in signature: {alias} Outputs expected to "
            f"be in the set {{{','.join(sorted(outputs))}}}.")
      if alias in seen:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"duplicate output tensor alias: {alias}")
      seen.append(alias)
    return seen

  def run(self, signature_name: str, inputs: Dict[str, np.ndarray],
          output_filter: Optional[Sequence[str]] = None) -> Dict[str, np.ndarray]:
    """Calls a signature; returns its outputs (only `output_filter`'s when given).

    Raises:
      UnknownSignature: no such (runnable) signature.
      ServingError: upstream's output_filter messages, INVALID_ARGUMENT naming the
        input for a wrong dtype or shape (`serving.session_model`), or the TF error's
        code and message (call `check_inputs` first for upstream's wording of missing
        or extra aliases).
    """
    function = self._functions.get(signature_name)
    if function is None:
      raise UnknownSignature(signature_name)
    aliases = self._output_aliases(signature_name, output_filter)
    try:
      outputs = function(inputs)
      return {alias: outputs[alias] for alias in aliases}
    except Exception as e:  # pylint: disable=broad-except
      raise to_serving_error(e) from e

  def warm_up(self) -> int:
    """Replays assets.extra/tf_serving_warmup_requests; returns the records replayed.

    Predict, classify and regress logs are replayed; other kinds are skipped with a
    warning. Any failure (bad file, failing request, > 1000 records) fails the load.
    """
    path = os.path.join(self.path, WARMUP_FILE)
    if not tf.io.gfile.exists(path):
      return 0
    count = 0
    for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
      count += 1
      if count > MAX_WARMUP_RECORDS:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"Number of warmup records exceeds the maximum "
                           f"({MAX_WARMUP_RECORDS}) at {path}")
      self._replay(prediction_log_pb2.PredictionLog.FromString(record))
    logging.info("Finished warming up model %s version %d with %d records", self.name,
                 self.version, count)
    return count

  def _replay(self, log) -> None:
    kind = log.WhichOneof("log_type")
    if kind not in ("predict_log", "classify_log", "regress_log"):
      logging.warning("Skipping warmup record of unsupported type %s", kind)
      return
    request = getattr(log, kind).request
    signature_name = request.model_spec.signature_name or "serving_default"
    try:
      if kind == "predict_log":
        self.check_inputs(signature_name, request.inputs)
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        self.run(signature_name, inputs, list(request.output_filter))
        return
      info = self.signatures.get(signature_name)
      if info is None:
        raise UnknownSignature(signature_name)
      if len(info.inputs) != 1:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"Expected one input (serialized Examples) in signature "
                           f"{signature_name} for warmup {kind}, got {len(info.inputs)}")
      examples = np.array(_serialized_examples(request.input), dtype=object)
      self.run(signature_name, {next(iter(info.inputs)): examples})
    except UnknownSignature as e:
      raise ServingError(grpc.StatusCode.FAILED_PRECONDITION,
                         f'Serving signature key "{signature_name}" not found.') from e


class _Model:
  """Mutable per-model state; guarded by ModelManager._lock."""

  def __init__(self, name: str):
    self.name = name
    self.loaded: Dict[int, LoadedVersion] = {}  # the AVAILABLE versions
    self.states: Dict[int, tuple] = {}  # version -> (State, ServingError or None)
    self.failed: Dict[int, tuple] = {}  # version -> fingerprint when it failed for good
    self.labels: Dict[str, int] = {}
    self.last_warning = None


class ModelManager:
  """Serves the versions of the configured models; thread-safe."""

  def __init__(self, configs: Sequence[ModelConfig], poll_seconds: float = 1.0, *,
               max_num_load_retries: int = 2, load_retry_interval_seconds: float = 1.0,
               enable_model_warmup: bool = True,
               saved_model_tags: Sequence[str] = ("serve",),
               allow_version_labels_for_unavailable_models: bool = False,
               inter_op_threads: int = -1, intra_op_threads: int = 0):
    """inter_op_threads, intra_op_threads: each version's Session threads (`LoadedVersion`)."""
    register_custom_ops()
    self._threads = (inter_op_threads, intra_op_threads)
    check_unique_names(configs)
    self._poll_seconds = poll_seconds
    self._max_retries = max(0, max_num_load_retries)
    self._retry_interval = load_retry_interval_seconds
    self._warmup = enable_model_warmup
    self._tags = tuple(saved_model_tags)
    self._allow_unavailable_labels = allow_version_labels_for_unavailable_models
    self._configs = {c.name: c for c in configs}
    self._models = {c.name: _Model(c.name) for c in configs}
    self._lock = threading.RLock()  # guards _configs, _models and their contents
    self._sync_lock = threading.Lock()  # one scan/load/unload pass at a time
    self._stop = threading.Event()
    self._thread: Optional[threading.Thread] = None
    self._listeners: List[Listener] = []
    # (model, status code name) -> number of load attempts; "OK" counts successes.
    self.load_attempts: collections.Counter = collections.Counter()

  # Life cycle.

  def start(self) -> None:
    """Loads the aspired versions, then starts polling (poll_seconds > 0).

    Raises:
      ServingError: UNKNOWN `N model(s) did not become available: {...}` when a model's
        highest aspired version failed to load (upstream then exits), FAILED_PRECONDITION
        when a version label points at a version that is not AVAILABLE.
    """
    self._stop.clear()
    configs = list(self._configs.values())
    if self._poll_seconds >= 0:
      self.poll_once()
      self._raise_if_unavailable(self._configs)
    labels = self._check_labels(configs, check=self._poll_seconds >= 0)
    with self._lock:
      for name, model in self._models.items():
        model.labels = labels.get(name, {})
    if self._poll_seconds > 0 and self._thread is None:
      self._thread = threading.Thread(target=self._poll_loop, name="model-poll",
                                      daemon=True)
      self._thread.start()

  def stop(self) -> None:
    """Stops polling (and any load retry wait); loaded versions keep serving."""
    self._stop.set()
    if self._thread is not None:
      self._thread.join(timeout=60)
      self._thread = None

  def poll_once(self) -> None:
    """Scans every base path once and loads/unloads accordingly (blocking)."""
    with self._sync_lock:
      for name in list(self._models):
        self._sync_model(name)

  def reload_config(self, configs: Sequence[ModelConfig]) -> None:
    """Replaces the config (HandleReloadConfigRequest, config-file polling).

    Models missing from `configs` are unloaded. As upstream, labels are checked against
    the versions AVAILABLE before the reload, then new models are loaded and awaited.

    Raises:
      ServingError: as `start()`; the old config stays when labels are rejected.
    """
    configs = list(configs)
    check_unique_names(configs)
    with self._sync_lock:
      labels = self._check_labels(configs, check=True)
      with self._lock:
        new_names = [c.name for c in configs if c.name not in self._configs]
        self._configs = {c.name: c for c in configs}
        for c in configs:
          self._models.setdefault(c.name, _Model(c.name))
        for name, model in self._models.items():
          model.labels = labels.get(name, {})
      for name in list(self._models):
        self._sync_model(name)
    self._raise_if_unavailable(new_names)

  def add_listener(self, listener: Listener) -> None:
    """Calls `listener(model, version, state, error)` on each state change.

    It runs on the loading thread, sometimes with the manager's lock held: keep it
    quick and do not wait on other threads from it.
    """
    self._listeners.append(listener)

  # Lookups.

  def model_names(self) -> List[str]:
    """The configured model names, sorted."""
    with self._lock:
      return sorted(self._configs)

  def available_versions(self, name: str) -> List[int]:
    """The AVAILABLE versions of `name`, highest first ([] for unknown models)."""
    with self._lock:
      model = self._models.get(name)
      return sorted(model.loaded, reverse=True) if model else []

  def resolve(self, name: str, version: Optional[int] = None,
              label: Optional[str] = None) -> LoadedVersion:
    """The version serving a request: `version`, `label`'s version, or the latest.

    Raises:
      ServingError: INVALID_ARGUMENT for an unknown label (also of an unknown model),
        NOT_FOUND `Servable not found for request: Latest(<name>)` or
        `Specific(<name>, <version>)` when that version is not AVAILABLE.
    """
    with self._lock:
      model = self._models.get(name)
      if label is not None:
        if model is None or label not in model.labels:
          raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                             f"Unrecognized servable version label: {label}")
        version = model.labels[label]
      if version is not None:
        if model is not None and version in model.loaded:
          return model.loaded[version]
        raise ServingError(grpc.StatusCode.NOT_FOUND,
                           f"Servable not found for request: Specific({name}, {version})")
      if model is None or not model.loaded:
        raise ServingError(grpc.StatusCode.NOT_FOUND,
                           f"Servable not found for request: Latest({name})")
      return model.loaded[max(model.loaded)]

  def status(self, name: str, version: Optional[int] = None
            ) -> get_model_status_pb2.GetModelStatusResponse:
    """Every tracked version of `name` (highest first), or just `version`.

    Raises:
      ServingError: NOT_FOUND `Could not find any versions of model <name>` /
        `Could not find version <v> of model <name>`.
    """
    with self._lock:
      model = self._models.get(name)
      if model is None or not model.states:
        raise ServingError(grpc.StatusCode.NOT_FOUND,
                           f"Could not find any versions of model {name}")
      if version is not None and version not in model.states:
        raise ServingError(grpc.StatusCode.NOT_FOUND,
                           f"Could not find version {version} of model {name}")
      versions = [version] if version is not None else sorted(model.states, reverse=True)
      response = get_model_status_pb2.GetModelStatusResponse()
      for v in versions:
        state, error = model.states[v]
        entry = response.model_version_status.add(version=v, state=state)
        entry.status.error_code = error.code.value[0] if error else 0
        entry.status.error_message = error.message if error else ""
      return response

  # Polling, loading and unloading.

  def _poll_loop(self) -> None:
    while not self._stop.wait(self._poll_seconds):
      try:
        self.poll_once()
      except Exception:  # pylint: disable=broad-except
        logging.exception("Model poll failed")

  def _discover(self, config: ModelConfig) -> Optional[Dict[int, str]]:
    """Integer-named children of the base path -> their paths; None if unreadable."""
    try:
      children = sorted(c.rstrip("/") for c in tf.io.gfile.listdir(config.base_path))
    except (OSError, tf.errors.OpError) as e:
      self._warn_once(config.name, f"Could not list base path {config.base_path} of "
                      f"servable {config.name}: {e}")
      return None
    versions = {}
    for child in children:
      if not (child.isascii() and child.isdigit()) or int(child) > _MAX_INT64:
        continue  # e.g. ".tmp-3-xyz" staging folders, "assets", notes.
      version = int(child)
      if version in versions:
        logging.warning("Duplicate version directories detected: version %d will be "
                        "loaded from %s, %s is ignored", version, child, versions[version])
      versions[version] = os.path.join(config.base_path, child)
    if not versions:
      self._warn_once(config.name, f"No versions of servable {config.name} found under "
                      f"base path {config.base_path}. Did you forget to name your leaf "
                      "directory as a number (eg. '/1/')?")
    return versions

  def _warn_once(self, name: str, message: str) -> None:
    model = self._models[name]
    if model.last_warning != message:
      model.last_warning = message
      logging.warning("%s", message)

  def _sync_model(self, name: str) -> None:
    """One scan of a model: loads new aspired versions, then unloads per policy."""
    model = self._models[name]
    config = self._configs.get(name)
    on_disk = {} if config is None else self._discover(config)
    if on_disk is None:
      return  # An unreadable base path changes nothing (no mass unload).
    if on_disk:
      model.last_warning = None
    aspired = config.aspired_versions(on_disk) if config else set()
    keep = set(config.versions) if config and config.version_policy == SPECIFIC else set()
    for version in sorted(aspired, reverse=True):
      if self._stop.is_set():
        return
      if version in model.loaded:
        continue
      fingerprint = _fingerprint(on_disk[version])
      if model.failed.get(version) == fingerprint:
        continue  # Failed for good; retried once the folder changes.
      self._load(model, version, on_disk[version], fingerprint)
      self._unload_unaspired(model, aspired, keep)
    self._unload_unaspired(model, aspired, keep)

  def _load(self, model: _Model, version: int, path: str, fingerprint: tuple) -> None:
    self._set_state(model, version, State.START)
    self._set_state(model, version, State.LOADING)
    error = None
    for attempt in range(self._max_retries + 1):
      if attempt and (self._stop.wait(self._retry_interval)
                      or not tf.io.gfile.exists(path)):
        break  # Stopping, or the version was deleted meanwhile.
      try:
        loaded = LoadedVersion(model.name, version, path, self._tags, *self._threads)
        if self._warmup:
          loaded.warm_up()
      except Exception as e:  # pylint: disable=broad-except
        error = to_serving_error(e)
        self._count(model.name, error.code_name)
        logging.warning("Loading version %d of model %s failed (attempt %d of %d): %s",
                        version, model.name, attempt + 1, self._max_retries + 1,
                        error.message)
        continue
      self._count(model.name, "OK")
      with self._lock:
        model.loaded[version] = loaded
        model.failed.pop(version, None)
        self._set_state(model, version, State.AVAILABLE)
      logging.info("Successfully loaded version %d of model %s from %s", version,
                   model.name, path)
      return
    model.failed[version] = fingerprint
    self._set_state(model, version, State.END, error)

  def _unload_unaspired(self, model: _Model, aspired: set, keep: set) -> None:
    """Unloads the lowest unaspired version while availability allows (upstream)."""
    while True:
      with self._lock:
        unaspired = sorted(v for v in model.loaded if v not in aspired)
        aspired_serving = any(v in model.loaded for v in aspired)
        if (not unaspired or unaspired[0] in keep or
            not (not aspired or aspired_serving or len(unaspired) > 1)):
          return
        version = unaspired[0]
        model.loaded.pop(version)  # New requests can no longer resolve it.
        self._set_state(model, version, State.UNLOADING)
      logging.info("Unloading version %d of model %s", version, model.name)
      self._set_state(model, version, State.END)

  def _set_state(self, model: _Model, version: int, state: int,
                 error: Optional[ServingError] = None) -> None:
    with self._lock:
      model.states[version] = (state, error)
    for listener in list(self._listeners):
      try:
        listener(model.name, version, state, error)
      except Exception:  # pylint: disable=broad-except
        logging.exception("Model state listener failed")

  def _count(self, name: str, code_name: str) -> None:
    with self._lock:
      self.load_attempts[(name, code_name)] += 1

  # Config checks.

  def _check_labels(self, configs: Iterable[ModelConfig],
                    check: bool) -> Dict[str, Dict[str, int]]:
    """Upstream UpdateModelVersionLabelMap: labels must name AVAILABLE versions."""
    labels = {}
    with self._lock:
      for config in configs:
        model = self._models.get(config.name)
        for label, version in config.version_labels.items():
          allowed = not check or (model is not None and version in model.loaded)
          if not allowed and self._allow_unavailable_labels:
            existing = model.labels.get(label) if model else None
            allowed = existing is None or existing == version
          if not allowed:
            raise ServingError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"Request to assign label to version {version} of model "
                f"{config.name}, which is not currently available for inference")
          labels.setdefault(config.name, {})[label] = version
    return labels

  def _raise_if_unavailable(self, names: Iterable[str]) -> None:
    """Upstream WaitUntilModelsAvailable: each model's latest version must load."""
    failures = []
    with self._lock:
      for name in names:
        states = self._models[name].states
        if states and states[max(states)][1] is not None:
          error = states[max(states)][1]
          failures.append(f"{{{{name: {name} version: {max(states)}}} due to error: "
                          f"{error.code_name}: {error.message}}}, ")
    if failures:
      raise ServingError(grpc.StatusCode.UNKNOWN,
                         f"{len(failures)} model(s) did not become available: "
                         f"{{{''.join(failures)}}}")
