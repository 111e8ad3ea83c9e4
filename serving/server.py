r"""A TF Serving drop-in that serves tfcr servables: `python -m serving.server`, `tfcr-serve`.

  tfcr-serve --model_name=cr --model_base_path=$PWD/exports/cr
  tfcr-serve --model_config_file=models.config --enable_batching \
      --batching_parameters_file=batching.config --monitoring_config_file=monitoring.config

Same flags, defaults and behaviour as `tensorflow_model_server` (version polling and
hot swap, --model_config_file, batching, warm-up, Prometheus monitoring):
gRPC on --port, REST on --rest_api_port; ScaNN's ops are registered before any model
loads. Binds 127.0.0.1 unless --host says otherwise. SIGTERM/SIGINT stop accepting new
requests and let in-flight ones finish.
"""

import contextlib
import os
import re
import signal
import sys
import threading

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # pylint: disable=g-import-not-at-top
from tfcr import cli  # pylint: disable=g-import-not-at-top

flags.DEFINE_integer("port", 8500, "gRPC port (0 disables gRPC).")
flags.DEFINE_integer("rest_api_port", 8501, "REST port (0 disables REST).")
flags.DEFINE_string("host", "127.0.0.1", "Interface to bind; 0.0.0.0 for every interface.")
flags.DEFINE_string("model_name", "default", "Model name (without --model_config_file).")
flags.DEFINE_string("model_base_path", None,
                    "Absolute path holding numeric version folders of the model.")
flags.DEFINE_string("model_config_file", None,
                    "Text-format ModelServerConfig: several models, version policies, labels.")
flags.DEFINE_float("file_system_poll_wait_seconds", 1.0,
                   "Seconds between scans for new versions (0: scan once).")
flags.DEFINE_bool("enable_batching", False, "Merge concurrent requests into one model call.")
flags.DEFINE_string("batching_parameters_file", None, "Text-format BatchingParameters.")
flags.DEFINE_string("monitoring_config_file", None,
                    "Text-format MonitoringConfig enabling the Prometheus page.")
flags.DEFINE_integer("rest_api_timeout_in_ms", 30000, "REST call timeout (504 past it).")
flags.DEFINE_integer("rest_api_max_body_bytes", 64 << 20,
                     "REST request bodies larger than this get 413.")
flags.DEFINE_bool("rest_api_enable_cors_support", False, "Add CORS headers to /v1 replies.")
flags.DEFINE_integer("max_num_load_retries", 5, "Retries of a failing version load.")
flags.DEFINE_integer("load_retry_interval_micros", 60_000_000, "Wait between load retries.")
flags.DEFINE_bool("enable_model_warmup", True,
                  "Replay assets.extra/tf_serving_warmup_requests before serving a version.")
flags.DEFINE_string("saved_model_tags", "serve", "MetaGraphDef tags, comma-separated.")
flags.DEFINE_integer("grpc_max_threads", 64,
                     "Concurrent gRPC requests in flight to the model, the others queue "
                     "(with batching, the most requests one batch can gather from gRPC); "
                     "they are coroutines on one grpc.aio event loop, not threads.")
flags.DEFINE_integer("tensorflow_inter_op_parallelism", -1,
                     "Threads that run a model call's ops, as ConfigProto's: -1 (default): "
                     "the request's own thread, no hand-offs (concurrent requests still run "
                     "side by side); 0: TensorFlow's choice; N: a pool of N (docs/server.md).")
flags.DEFINE_integer("tensorflow_intra_op_parallelism", 0,
                     "Threads one large op may use, e.g. a brute-force matmul (0: "
                     "TensorFlow's choice, one per core).")
flags.DEFINE_bool("version", False, "Print versions and exit.")
FLAGS = flags.FLAGS

_PROMETHEUS = re.compile(r"prometheus_config\s*\{([^}]*)\}", re.S)


def monitoring_path(text: str):
  """The Prometheus path of a MonitoringConfig, or None when it is not enabled."""
  match = _PROMETHEUS.search(text)
  if not match or not re.search(r"enable\s*:\s*true", match.group(1)):
    return None
  path = re.search(r'path\s*:\s*"([^"]*)"', match.group(1))
  return (path.group(1) if path and path.group(1) else "/monitoring/prometheus/metrics")


def _read(path: str, what: str) -> str:
  try:
    with open(path) as f:
      return f.read()
  except OSError as e:
    raise app.UsageError(f"cannot read {what} {path}: {e.strerror}")


def _model_configs():
  from serving.model_config import ModelConfig, load_model_config_file  # pylint: disable=g-import-not-at-top
  if FLAGS.model_config_file:
    return load_model_config_file(FLAGS.model_config_file)
  if not FLAGS.model_base_path:
    raise app.UsageError("Give --model_base_path (with --model_name) or --model_config_file.")
  return [ModelConfig(name=FLAGS.model_name, base_path=FLAGS.model_base_path)]


def _check_thread_flags():
  if FLAGS.tensorflow_inter_op_parallelism < -1:
    raise app.UsageError("--tensorflow_inter_op_parallelism must be -1 (the caller's "
                         "thread), 0 (TensorFlow's choice) or a thread count, got "
                         f"{FLAGS.tensorflow_inter_op_parallelism}.")
  if FLAGS.tensorflow_intra_op_parallelism < 0:
    raise app.UsageError("--tensorflow_intra_op_parallelism must be >= 0 (0: TensorFlow's "
                         f"choice), got {FLAGS.tensorflow_intra_op_parallelism}.")


def main(argv):
  if len(argv) > 1:  # as tensorflow_model_server: usage, exit 1
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  if FLAGS.version:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    print(f"TensorFlow ModelServer: tfcr\nTensorFlow Library: {tf.__version__}")
    return 0
  if FLAGS.port and FLAGS.port == FLAGS.rest_api_port:
    raise app.UsageError("--port and --rest_api_port must differ.")
  if FLAGS.batching_parameters_file and not FLAGS.enable_batching:
    raise app.UsageError("--batching_parameters_file needs --enable_batching.")
  _check_thread_flags()
  import uvicorn  # pylint: disable=g-import-not-at-top
  from serving import metrics  # pylint: disable=g-import-not-at-top
  from serving.batching import BatchingParameters, parse_batching_parameters  # pylint: disable=g-import-not-at-top
  from serving.dispatch import Dispatcher  # pylint: disable=g-import-not-at-top
  from serving.errors import ServingError  # pylint: disable=g-import-not-at-top
  from serving.grpc_service import make_grpc_server  # pylint: disable=g-import-not-at-top
  from serving.http_protocol import CoalescingHttpToolsProtocol  # pylint: disable=g-import-not-at-top
  from serving.model_manager import ModelManager  # pylint: disable=g-import-not-at-top
  from serving.rest import RestApi  # pylint: disable=g-import-not-at-top
  _GracefulServer = _graceful_server_class()  # pylint: disable=invalid-name

  batching = None
  if FLAGS.enable_batching:
    batching = BatchingParameters()
    if FLAGS.batching_parameters_file:
      try:
        batching = parse_batching_parameters(_read(FLAGS.batching_parameters_file,
                                                   "--batching_parameters_file"))
      except ValueError as e:
        raise app.UsageError(str(e))
  prometheus = None
  if FLAGS.monitoring_config_file:
    prometheus = monitoring_path(_read(FLAGS.monitoring_config_file,
                                       "--monitoring_config_file"))
  registry = metrics.Registry()
  try:
    manager = ModelManager(
        _model_configs(), FLAGS.file_system_poll_wait_seconds,
        max_num_load_retries=FLAGS.max_num_load_retries,
        load_retry_interval_seconds=FLAGS.load_retry_interval_micros / 1e6,
        enable_model_warmup=FLAGS.enable_model_warmup,
        saved_model_tags=FLAGS.saved_model_tags.split(","),
        inter_op_threads=FLAGS.tensorflow_inter_op_parallelism,
        intra_op_threads=FLAGS.tensorflow_intra_op_parallelism)
  except (ServingError, ValueError) as e:
    print(f"Failed to start server. Error: {e}", file=sys.stderr)
    return 1
  dispatcher = Dispatcher(registry, batching)

  def on_state(model, version, state, error):
    from serving.model_manager import State  # pylint: disable=g-import-not-at-top
    if state == State.AVAILABLE or (state == State.END and error is not None):
      registry.increment(metrics.LOAD_ATTEMPTS,
                         {"model_path": model, "status": error.code_name if error else "OK"})
    if state == State.END:
      dispatcher.forget_version(model, version)

  manager.add_listener(on_state)
  try:
    manager.start()
  except ServingError as e:
    print(f"Failed to start server. Error: {e.message}", file=sys.stderr)
    return 1

  grpc_server = None
  if FLAGS.port:
    grpc_server = make_grpc_server(manager, dispatcher, FLAGS.host, FLAGS.port,
                                   FLAGS.grpc_max_threads)
    grpc_server.start()
    logging.info("Running gRPC ModelServer at %s:%d ...", FLAGS.host, FLAGS.port)
    print(f"Running gRPC ModelServer at {FLAGS.host}:{FLAGS.port} ...", flush=True)

  stopped = threading.Event()
  if FLAGS.rest_api_port:
    api = RestApi(manager, dispatcher, FLAGS.rest_api_timeout_in_ms,
                  FLAGS.rest_api_max_body_bytes, prometheus,
                  FLAGS.rest_api_enable_cors_support)
    # httptools and uvloop come with uvicorn[standard]; TF Serving keeps no access log.
    server = _GracefulServer(uvicorn.Config(api.app, host=FLAGS.host,
                                           port=FLAGS.rest_api_port, log_level="warning",
                                           access_log=False, http=CoalescingHttpToolsProtocol,
                                           interface="asgi3", timeout_graceful_shutdown=30))
    print(f"Exporting HTTP/REST API at:{FLAGS.host}:{FLAGS.rest_api_port} ...", flush=True)
    server.run()  # returns after SIGTERM/SIGINT, once in-flight requests are done
  else:
    for sig in (signal.SIGTERM, signal.SIGINT):
      signal.signal(sig, lambda *_: stopped.set())
    stopped.wait()
  if grpc_server is not None:
    grpc_server.stop(grace=30)
  manager.stop()
  dispatcher.shutdown()
  print("Server stopped.", flush=True)
  return 0


def _graceful_server_class():
  import uvicorn  # pylint: disable=g-import-not-at-top

  class GracefulServer(uvicorn.Server):
    """uvicorn re-raises SIGTERM after draining, which would kill us before the gRPC
    server and the model manager are stopped: handle the signal and return instead."""

    @contextlib.contextmanager
    def capture_signals(self):
      previous = {s: signal.signal(s, self.handle_exit) for s in (signal.SIGINT,
                                                                  signal.SIGTERM)}
      try:
        yield
      finally:
        for s, handler in previous.items():
          signal.signal(s, handler)

  return GracefulServer


def run():
  cli.run_binary(main, __name__)


if __name__ == "__main__":
  run()
