"""TF Serving's gRPC services on `grpc.aio`, with the messages of tensorflow-serving-api.

PredictionService (Predict, GetModelMetadata, Classify, Regress) and ModelService
(GetModelStatus), so the official Python client works unchanged. Every request is a
coroutine on one asyncio event loop, in a thread of its own (`GrpcServer`); the model call
goes through the Dispatcher (batching, metrics) on its worker threads and is awaited there,
within the client's deadline. Predict replies are serialized off the loop, by the
dispatcher's reply encoder (`serving.grpc_codec.PredictReplies`: once per batch with
batching), and sent as they are.

The synchronous grpcio server this replaces held a thread per request in flight, each
waking up to build and serialize its reply: ~0.5 ms of Python per request, which capped
what batching could give the gRPC path (1.1-1.9x at 32 clients, against REST's 2-3x).
"""

import asyncio
import threading
import time
from typing import Callable, Optional

import grpc
import numpy as np
from google.protobuf import any_pb2
from tensorflow_serving.apis import classification_pb2
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc
from tensorflow_serving.apis import regression_pb2

from serving.deadlines import wait_on
from serving.dispatch import Dispatcher, error_status
from serving.errors import ServingError, invalid_argument
from serving.grpc_codec import PredictReplies, read_tensor_proto, write_tensor_proto
from serving.model_manager import ModelManager, UnknownSignature, _serialized_examples

__all__ = ["GrpcServer", "make_grpc_server", "write_tensor_proto"]

_MAX_DETAILS = 1024
MAX_MESSAGE_BYTES = 2**31 - 1


async def _abort(context, error: ServingError):
  message = error.message
  if len(message) > _MAX_DETAILS:
    message = message[:_MAX_DETAILS] + "...TRUNCATED"
  await context.abort(error.code, message)


def _spec(model_spec):
  """(name, version or None, label or None) of a request's ModelSpec."""
  if not model_spec.name:
    raise invalid_argument("ModelSpec has no name specified.")
  choice = model_spec.WhichOneof("version_choice")
  version = model_spec.version.value if choice == "version" else None
  label = model_spec.version_label if choice == "version_label" else None
  return model_spec.name, version, label


class _Servicer:
  """Shared request plumbing: resolve, run within the deadline, record metrics.

  in_flight: at most this many requests wait on the model at once (--grpc_max_threads:
  what the thread pool of the synchronous server bounded); the others queue.
  """

  def __init__(self, manager: ModelManager, dispatcher: Dispatcher, in_flight: int = 64):
    self._manager = manager
    self._dispatcher = dispatcher
    self._in_flight = in_flight
    self._slots: Optional[asyncio.Semaphore] = None  # made on the serving loop

  async def _call(self, context, api, request, handler):
    started = time.perf_counter()
    name = request.model_spec.name if request.HasField("model_spec") else ""
    try:
      if not request.HasField("model_spec"):
        raise invalid_argument("Missing ModelSpec")
      response, version, signature = await handler(request, context)
      self._dispatcher.record(name, api, "GRPC", "OK", time.perf_counter() - started,
                              str(version), signature)
      return response
    except ServingError as e:
      self._dispatcher.record(name, api, "GRPC", error_status(e),
                              time.perf_counter() - started)
      await _abort(context, e)

  async def _run(self, context, loaded, signature, inputs, output_filter=None, encoder=None):
    if self._slots is None:
      self._slots = asyncio.Semaphore(self._in_flight)
    async with self._slots:
      waiter = asyncio.get_running_loop().create_future()
      self._dispatcher.submit(loaded, signature, inputs, output_filter, encoder, waiter)
      try:
        return await wait_on(waiter, context.time_remaining())
      except asyncio.TimeoutError:
        raise ServingError(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded") from None
      except UnknownSignature:
        raise ServingError(grpc.StatusCode.FAILED_PRECONDITION,
                           f'Serving signature key "{signature}" not found.') from None


class PredictionServicer(_Servicer, prediction_service_pb2_grpc.PredictionServiceServicer):
  """Predict, GetModelMetadata, Classify, Regress."""

  async def Predict(self, request, context):  # pylint: disable=invalid-name
    return await self._call(context, "Predict", request, self._predict)

  async def _predict(self, request, context):
    name, version, label = _spec(request.model_spec)
    loaded = self._manager.resolve(name, version, label)
    signature = request.model_spec.signature_name or "serving_default"
    try:
      loaded.check_inputs(signature, request.inputs.keys())
    except UnknownSignature:
      raise ServingError(grpc.StatusCode.FAILED_PRECONDITION,
                         f'Serving signature key "{signature}" not found.') from None
    inputs = {alias: read_tensor_proto(proto) for alias, proto in request.inputs.items()}
    output_filter = list(request.output_filter)
    if output_filter:  # rare: the outputs come back and are encoded here
      outputs = await self._run(context, loaded, signature, inputs, output_filter)
      reply = PredictReplies(name, loaded.version, signature).one(outputs)
    else:  # the serialized reply, encoded on the batch (or model) thread
      reply = await self._run(context, loaded, signature, inputs,
                              encoder=PredictReplies(name, loaded.version, signature))
    return reply, loaded.version, signature

  async def GetModelMetadata(self, request, context):  # pylint: disable=invalid-name
    return await self._call(context, "GetModelMetadata", request, self._metadata)

  async def _metadata(self, request, context):  # pylint: disable=unused-argument
    name, version, label = _spec(request.model_spec)
    fields = list(request.metadata_field)
    if not fields:
      raise invalid_argument("GetModelMetadataRequest must specify at least one "
                             "metadata_field")
    for field in fields:
      if field != "signature_def":
        raise invalid_argument(f"Metadata field {field} is not supported")
    loaded = self._manager.resolve(name, version, label)
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = name
    response.model_spec.version.value = loaded.version
    packed = any_pb2.Any()
    packed.Pack(loaded.signature_def_map())
    response.metadata["signature_def"].CopyFrom(packed)
    return response, loaded.version, ""

  async def Classify(self, request, context):  # pylint: disable=invalid-name
    return await self._call(context, "Classify", request, self._classify)

  async def Regress(self, request, context):  # pylint: disable=invalid-name
    return await self._call(context, "Regress", request, self._regress)

  async def _examples_call(self, request, context, expected_outputs):
    name, version, label = _spec(request.model_spec)
    loaded = self._manager.resolve(name, version, label)
    signature = request.model_spec.signature_name or "serving_default"
    info = loaded.signatures.get(signature)
    if info is None:
      raise invalid_argument(f"No signature was found with the name: {signature}")
    if list(info.inputs) != ["inputs"]:
      raise invalid_argument("Expected one input Tensor.")
    if not expected_outputs & set(info.outputs):
      raise invalid_argument(f"No {'/'.join(sorted(expected_outputs))} outputs found in "
                             f"SignatureDef: {signature}")
    examples = np.array(_serialized_examples(request.input), dtype=object)
    outputs = await self._run(context, loaded, signature, {"inputs": examples})
    return loaded, signature, outputs

  async def _classify(self, request, context):
    loaded, signature, outputs = await self._examples_call(request, context,
                                                           {"classes", "scores"})
    response = classification_pb2.ClassificationResponse()
    classes, scores = outputs.get("classes"), outputs.get("scores")
    rows = len(classes) if classes is not None else len(scores)
    for row in range(rows):
      result = response.result.classifications.add()
      width = classes.shape[1] if classes is not None else scores.shape[1]
      for i in range(width):
        entry = result.classes.add()
        if classes is not None:
          entry.label = classes[row][i].decode("utf-8", "surrogateescape") \
              if isinstance(classes[row][i], bytes) else str(classes[row][i])
        if scores is not None:
          entry.score = float(scores[row][i])
    response.model_spec.name = loaded.name
    response.model_spec.version.value = loaded.version
    response.model_spec.signature_name = signature
    return response, loaded.version, signature

  async def _regress(self, request, context):
    loaded, signature, outputs = await self._examples_call(request, context, {"outputs"})
    response = regression_pb2.RegressionResponse()
    for value in np.reshape(outputs["outputs"], [-1]):
      response.result.regressions.add().value = float(value)
    response.model_spec.name = loaded.name
    response.model_spec.version.value = loaded.version
    response.model_spec.signature_name = signature
    return response, loaded.version, signature


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
  """GetModelStatus."""

  def __init__(self, manager: ModelManager):
    self._manager = manager

  async def GetModelStatus(self, request, context):  # pylint: disable=invalid-name
    try:
      if not request.HasField("model_spec"):
        raise invalid_argument("Missing ModelSpec")
      name, version, _ = _spec(request.model_spec)
      return self._manager.status(name, version)
    except ServingError as e:
      await _abort(context, e)


def _serialize(message) -> bytes:
  """Replies already serialized (Predict's) go out as they are."""
  return message if isinstance(message, bytes) else message.SerializeToString()


def _unary(method: Callable, request_class):
  return grpc.unary_unary_rpc_method_handler(method,
                                             request_deserializer=request_class.FromString,
                                             response_serializer=_serialize)


def _handlers(manager: ModelManager, dispatcher: Dispatcher, in_flight: int):
  """The two services' method handlers (the generated `add_..._to_server` functions would
  serialize every reply again)."""
  prediction = PredictionServicer(manager, dispatcher, in_flight)
  model = ModelServicer(manager)
  return [
      grpc.method_handlers_generic_handler("tensorflow.serving.PredictionService", {
          "Predict": _unary(prediction.Predict, predict_pb2.PredictRequest),
          "GetModelMetadata": _unary(prediction.GetModelMetadata,
                                     get_model_metadata_pb2.GetModelMetadataRequest),
          "Classify": _unary(prediction.Classify,
                             classification_pb2.ClassificationRequest),
          "Regress": _unary(prediction.Regress, regression_pb2.RegressionRequest),
      }),
      grpc.method_handlers_generic_handler("tensorflow.serving.ModelService", {
          "GetModelStatus": _unary(model.GetModelStatus,
                                   get_model_status_pb2.GetModelStatusRequest),
      }),
  ]


class GrpcServer:
  """A `grpc.aio` server on its own event loop thread: `start()`, then `stop(grace)`.

  Its own loop (not uvicorn's) so that the REST front end keeps uvloop and neither front
  end's requests queue behind the other's on one loop.
  """

  def __init__(self, manager: ModelManager, dispatcher: Dispatcher, host: str, port: int,
               in_flight: int = 64):
    self._args = (manager, dispatcher, in_flight)
    self._address = f"{host}:{port}"
    self._loop = asyncio.new_event_loop()
    self._server = None
    self._thread: Optional[threading.Thread] = None

  def start(self) -> None:
    """Binds and starts serving; raises OSError when the port cannot be bound."""
    started = threading.Event()
    outcome = {}

    def serve():
      asyncio.set_event_loop(self._loop)
      try:
        self._loop.run_until_complete(self._start())
      except BaseException as e:  # pylint: disable=broad-except
        outcome["error"] = e
        started.set()
        return
      started.set()
      self._loop.run_forever()

    self._thread = threading.Thread(target=serve, name="grpc-loop", daemon=True)
    self._thread.start()
    started.wait()
    if "error" in outcome:
      raise outcome["error"]

  async def _start(self):
    self._server = grpc.aio.server(
        options=[("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                 ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)])
    self._server.add_generic_rpc_handlers(_handlers(*self._args))
    try:
      bound = self._server.add_insecure_port(self._address)
    except RuntimeError:
      bound = 0
    if not bound:
      raise OSError(f"could not bind gRPC to {self._address}")
    await self._server.start()

  def stop(self, grace: Optional[float] = None) -> None:
    """Stops taking requests; waits up to `grace` seconds for those in flight."""
    if self._thread is None:
      return
    done = asyncio.run_coroutine_threadsafe(self._server.stop(grace), self._loop)
    done.result()
    self._loop.call_soon_threadsafe(self._loop.stop)
    self._thread.join()
    self._thread = None


def make_grpc_server(manager: ModelManager, dispatcher: Dispatcher, host: str, port: int,
                     max_workers: int = 64) -> GrpcServer:
  """A ready (not started) GrpcServer for host:port; max_workers: requests in flight."""
  return GrpcServer(manager, dispatcher, host, port, max_workers)
