"""TF Serving's REST API as an ASGI app (on uvicorn, with Starlette requests), over a ModelManager and a Dispatcher.

Routing, status codes and messages are TF Serving's own: the same `/v1/models/...` routes
(case-insensitive prefix, percent-decoded names, `versions/N` and `labels/L`), errors as
`{"error": message}` with the HTTP status of the error's code (INVALID_ARGUMENT and
FAILED_PRECONDITION 400, NOT_FOUND 404, DEADLINE_EXCEEDED 504...), the same message texts
and the same order of checks (URL, JSON, model and signature, inputs). Model
calls run in worker threads (the event loop never blocks); `timeout_ms` bounds each call
(504). Request bodies over `max_body_bytes` get 413 with a JSON error before they are
parsed.
"""

import asyncio
import json
import re
import time
import zlib
from typing import Optional
from urllib.parse import unquote

import grpc
import numpy as np
from absl import logging
from google.protobuf import json_format as proto_json
from starlette.requests import Request
from starlette.responses import Response

from serving import rest_codec
from serving.deadlines import Deadlines
from serving.dispatch import Dispatcher, error_status
from serving.errors import ServingError, invalid_argument
from serving.json_format import error_body, parse_json_body
from serving.model_manager import ModelManager, UnknownSignature

_V1 = re.compile(r"(?i)/v1/.*")
_POST = re.compile(r"(?i)/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?"
                   r":(classify|regress|predict)")
_GET = re.compile(r"(?i)/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?"
                  r"(?:/(metadata))?")
_HTML_404 = (b"<HTML><HEAD>\n<TITLE>404 Not Found</TITLE>\n</HEAD><BODY>\n"
             b"<H1>Not Found</H1>\n</BODY></HTML>\n")
_MAX_INT64 = 2**63 - 1
_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]


class BodyTooLarge(Exception):
  pass


def _json(body: bytes, status: int = 200) -> Response:
  return Response(body, status_code=status, media_type="application/json")


def _error(error: ServingError) -> Response:
  return _json(error_body(error.message), error.http_status)


def _proto_json(message) -> bytes:
  return proto_json.MessageToJson(message, preserving_proto_field_name=True,
                                  always_print_fields_with_no_presence=True,
                                  indent=1).encode()


class RestApi:
  """The ASGI app: `RestApi(...).app` is served by uvicorn."""

  def __init__(self, manager: ModelManager, dispatcher: Dispatcher, timeout_ms: int = 30000,
               max_body_bytes: int = 64 << 20, monitoring_path: Optional[str] = None,
               enable_cors: bool = False):
    self._manager = manager
    self._dispatcher = dispatcher
    self._deadlines = Deadlines(timeout_ms / 1000 if timeout_ms > 0 else None)
    self._max_body_bytes = max_body_bytes
    self._monitoring_path = monitoring_path
    self._cors = enable_cors
    self.app = self

  async def __call__(self, scope, receive, send) -> None:
    """The ASGI entry point. One catch-all handler, so Starlette's router and middleware
    stack are not needed; Request and Response still come from Starlette."""
    if scope["type"] == "lifespan":
      while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
          await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
          await send({"type": "lifespan.shutdown.complete"})
          return
    if scope["type"] != "http":
      return
    request = Request(scope, receive)
    if request.method not in _METHODS:
      response = Response(b"Method Not Allowed", status_code=405, media_type="text/plain")
    else:
      try:
        response = await self._handle(request)
      except Exception:  # pylint: disable=broad-except
        logging.exception("Unhandled error serving %s %s", request.method, scope["path"])
        response = _json(error_body("Internal server error"), 500)
    await response(scope, receive, send)

  async def _handle(self, request: Request) -> Response:
    path = request.scope["path"]  # request.url builds a URL object: slow per request
    if self._monitoring_path and path == self._monitoring_path:
      return self._metrics(request)
    if not _V1.fullmatch(path):
      return Response(_HTML_404, status_code=404, media_type="text/html",
                      headers={"Connection": "close"})
    if request.method == "OPTIONS":
      origin = request.headers.get("origin", "")
      return Response(b"", status_code=200 if re.match(r"https?://", origin) else 400)
    response = await self._dispatch_v1(request, path)
    if self._cors:
      response.headers.update({"Access-Control-Allow-Origin": "*",
                               "Access-Control-Allow-Methods": "POST, GET",
                               "Access-Control-Allow-Headers": "Content-Type"})
    return response

  def _metrics(self, request: Request) -> Response:
    if request.scope["query_string"]:
      return _error(invalid_argument(f"Unexpected path: {path_with_query(request)}. "
                                     f"Should be {self._monitoring_path}"))
    registry = self._dispatcher.registry
    return Response(registry.render() if registry else "", media_type="text/plain")

  async def _dispatch_v1(self, request: Request, path: str) -> Response:
    method = request.method
    try:
      if method == "GET":
        match = _GET.fullmatch(path)
        if match:
          return self._get(*match.groups())
      elif method == "POST":
        match = _POST.fullmatch(path)
        if match:
          return await self._post(request, *match.groups())
      raise invalid_argument(f"Malformed request: {method} {path}")
    except ServingError as e:
      return _error(e)
    except _VersionOverflow:
      return Response(b"", status_code=400, media_type="application/json")

  # GET: status and metadata.

  def _get(self, name, version, label, metadata) -> Response:
    if name is None:
      raise invalid_argument("Missing model name in request.")
    name = _unquote(name)
    version = _version(version)
    if metadata:
      loaded = self._manager.resolve(name, version, _unquote(label) if label else None)
      body = {"model_spec": {"name": name, "signature_name": "",
                             "version": str(loaded.version)},
              "metadata": {"signature_def": proto_json.MessageToDict(
                  loaded.signature_def_map(), preserving_proto_field_name=True,
                  always_print_fields_with_no_presence=True)}}
      return _json(json.dumps(body, indent=1).encode())
    # Upstream ignores the label for status and lists every version.
    return _json(_proto_json(self._manager.status(name, version)))

  # POST: predict, classify, regress.

  async def _post(self, request: Request, name, version, label, verb) -> Response:
    started = time.perf_counter()
    name = _unquote(name)
    api = verb
    signature, resolved_version, examples = "", "", 0
    try:
      body = await self._read_body(request)
      obj = parse_json_body(body)
      signature = rest_codec.signature_name_of(obj)
      if verb == "predict":
        loaded = self._manager.resolve(name, _version(version),
                                       _unquote(label) if label else None)
        resolved_version = str(loaded.version)
        info = loaded.signatures.get(signature)
        if info is None:
          raise invalid_argument(f'Serving signature name: "{signature}" not found in '
                                 f"signature def")
        if not info.inputs:
          raise invalid_argument(f"Failed to get input map for signature: {signature}")
        is_row, tensors = rest_codec.predict_request_tensors(
            obj, {alias: dtype for alias, (dtype, _) in info.inputs.items()})
        examples = _examples(tensors)
        # The reply is encoded off the event loop (per batch when batching is on).
        response = await self._run(loaded, signature, tensors,
                                   rest_codec.PredictReplies(is_row))
      else:
        serialized = rest_codec.examples_from_request(obj)
        examples = len(serialized)
        loaded = self._manager.resolve(name, _version(version),
                                       _unquote(label) if label else None)
        resolved_version = str(loaded.version)
        response = await self._classify_or_regress(loaded, signature, verb, serialized)
      self._dispatcher.record(name, api, "REST", "OK", time.perf_counter() - started,
                              resolved_version, signature, examples)
      return _json(response)
    except BodyTooLarge as e:
      error = ServingError(grpc.StatusCode.RESOURCE_EXHAUSTED, str(e))
      self._dispatcher.record(name, api, "REST", error.code_name,
                              time.perf_counter() - started)
      return _json(error_body(error.message), 413)
    except ServingError as e:
      self._dispatcher.record(name, api, "REST", error_status(e),
                              time.perf_counter() - started, resolved_version, signature)
      raise

  async def _read_body(self, request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > self._max_body_bytes:
      raise BodyTooLarge(f"Request body of {declared} bytes exceeds the limit of "
                         f"{self._max_body_bytes} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
      size += len(chunk)
      if size > self._max_body_bytes:
        raise BodyTooLarge(f"Request body exceeds the limit of {self._max_body_bytes} bytes")
      chunks.append(chunk)
    body = b"".join(chunks)
    if "gzip" in request.headers.get("content-encoding", ""):
      try:
        body = _gunzip(body, self._max_body_bytes)
      except (OSError, zlib.error, EOFError) as e:
        raise invalid_argument(f"Failed to decompress gzip request body: {e}") from None
    return body

  async def _run(self, loaded, signature, tensors, encoder=None):
    waiter = asyncio.get_running_loop().create_future()
    self._dispatcher.submit(loaded, signature, tensors, encoder=encoder, waiter=waiter)
    try:
      return await self._deadlines.wait_on(waiter)
    except asyncio.TimeoutError:
      raise ServingError(grpc.StatusCode.DEADLINE_EXCEEDED,
                         "Deadline Exceeded") from None
    except UnknownSignature as e:
      raise invalid_argument(f'Serving signature name: "{e.signature_name}" not found in '
                             f"signature def") from None

  async def _classify_or_regress(self, loaded, signature, verb, serialized) -> bytes:
    info = loaded.signatures.get(signature)
    if info is None:
      raise invalid_argument(f"No signature was found with the name: {signature}")
    if list(info.inputs) != ["inputs"]:
      kind = "classification" if verb == "classify" else "regression"
      raise invalid_argument(f"No {kind} inputs found in SignatureDef: {signature}")
    tensors = {"inputs": np.array(serialized, dtype=object)}
    outputs = await self._run(loaded, signature, tensors)
    if verb == "classify":
      if not {"classes", "scores"} & set(outputs):
        raise invalid_argument(f"Expected classification signature outputs in "
                               f"SignatureDef: {signature}")
      return rest_codec.classify_response_body(outputs.get("classes"), outputs.get("scores"))
    if "outputs" not in outputs:
      raise invalid_argument(f"No regression outputs found in SignatureDef: {signature}")
    return rest_codec.regress_response_body(outputs["outputs"])


class _VersionOverflow(Exception):
  pass


def _version(text: Optional[str]) -> Optional[int]:
  if text is None:
    return None
  value = int(text)
  if value > _MAX_INT64:
    raise _VersionOverflow()  # upstream answers 400 with an empty body
  return value


def _unquote(text: str) -> str:
  return unquote(text)  # "+" stays "+", as with curl_easy_unescape


def _examples(tensors) -> int:
  sizes = [np.shape(v)[0] for v in tensors.values() if np.ndim(v)]
  return int(sizes[0]) if sizes else 1


def _gunzip(body: bytes, limit: int) -> bytes:
  decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
  out = decompressor.decompress(body, limit + 1)
  if len(out) > limit:
    raise BodyTooLarge(f"Decompressed request body exceeds the limit of {limit} bytes")
  return out


def path_with_query(request: Request) -> str:
  return f"{request.url.path}?{request.url.query}" if request.url.query else request.url.path
