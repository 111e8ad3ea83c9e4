"""The model server on real sockets: REST with httpx, gRPC with the official stubs."""

import concurrent.futures
import json
import os
import subprocess
import sys
import threading
import time

import grpc
import httpx
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2,
                                     get_model_status_pb2, model_service_pb2_grpc,
                                     predict_pb2, prediction_service_pb2_grpc,
                                     regression_pb2)

from server_fixtures import REPO, Server, copy_version, save_half_plus_two


@pytest.fixture(scope="module")
def models(tmp_path_factory):
  root = tmp_path_factory.mktemp("models")
  sources = {"v1": save_half_plus_two(root / "src1", 0.5, 2.0),
             "v2": save_half_plus_two(root / "src2", 0.5, 3.0),
             "v3": save_half_plus_two(root / "src3", 1.0, 0.0)}
  base = root / "half"
  base.mkdir()
  copy_version(sources["v1"], base, 1)
  return root, base, sources


@pytest.fixture(scope="module")
def server(models, tmp_path_factory):
  root, base, _ = models
  monitoring = root / "monitoring.config"
  monitoring.write_text('prometheus_config { enable: true, '
                        'path: "/monitoring/prometheus/metrics" }')
  srv = Server(f"--model_name=half", f"--model_base_path={base}",
               "--file_system_poll_wait_seconds=0.3", f"--monitoring_config_file={monitoring}",
               "--rest_api_max_body_bytes=100000", "--rest_api_timeout_in_ms=2000",
               "--max_num_load_retries=1", "--load_retry_interval_micros=100000",
               log_path=str(root / "server.log"))
  yield srv
  assert srv.stop() == 0


def post(server, path, body, **kwargs):
  data = body if isinstance(body, (bytes, str)) else json.dumps(body)
  return httpx.post(server.url(path), content=data, timeout=30, **kwargs)


def test_rest_predict_row_and_columnar(server):
  row = post(server, "/v1/models/half:predict", {"instances": [1.0, 2.0, 5.0]})
  assert row.status_code == 200 and row.headers["content-type"] == "application/json"
  assert row.json() == {"predictions": [2.5, 3.0, 4.5]}
  columnar = post(server, "/v1/models/half/versions/1:predict", {"inputs": {"x": [1.0, 3.0]}})
  assert columnar.json() == {"outputs": [2.5, 3.5]}
  # Float32 values are printed with the digits that round-trip, not float64 noise.
  text = post(server, "/v1/models/half:predict", {"instances": [0.2]}).text
  assert "2.0999999" not in text and "2.1" in text


def test_rest_classify_regress_status_metadata(server):
  examples = {"signature_name": "regress_x_to_y", "examples": [{"x": 2.0}, {"x": 4.0}]}
  assert post(server, "/v1/models/half:regress", examples).json() == {"results": [3.0, 4.0]}
  examples["signature_name"] = "classify_x_to_y"
  assert post(server, "/v1/models/half:classify", examples).json() == \
      {"results": [[["pos", 3.0], ["neg", -3.0]], [["pos", 4.0], ["neg", -4.0]]]}
  status = httpx.get(server.url("/v1/models/half")).json()
  assert status["model_version_status"][0]["state"] == "AVAILABLE"
  assert status["model_version_status"][0]["status"] == {"error_code": "OK",
                                                         "error_message": ""}
  metadata = httpx.get(server.url("/v1/models/half/metadata")).json()
  signature = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
  assert signature["inputs"]["x"]["dtype"] == "DT_FLOAT"
  assert metadata["model_spec"] == {"name": "half", "signature_name": "", "version": "1"}


@pytest.mark.parametrize("method, path, body, status, message", [
    ("POST", "/v1/models/nope:predict", {"instances": [1.0]}, 404,
     "Servable not found for request: Latest(nope)"),
    ("POST", "/v1/models/half/labels/x:predict", {"instances": [1.0]}, 400,
     "Unrecognized servable version label: x"),
    ("POST", "/v1/models/half:predict", b"", 400, "JSON Parse error: The document is empty"),
    ("POST", "/v1/models/half:predict", b"{nope", 400, "JSON Parse error"),
    ("POST", "/v1/models/half:predict", {"instances": ["a"]}, 400, "is not of expected type"),
    ("POST", "/v1/models/half:predict", {"signature_name": "zz", "instances": [1.0]}, 400,
     'Serving signature name: "zz" not found in signature def'),
    ("POST", "/v1/models/half:predict", {"x": 1}, 400, "Missing 'inputs' or 'instances' key"),
    ("POST", "/v1/models/half:predict", b"[" * 40000 + b"]" * 40000, 400, ""),
    ("POST", "/v1/models/half:predict", b" " * 200001, 413, "exceeds the limit"),
    ("PUT", "/v1/models/half:predict", b"{}", 400, "Malformed request: PUT"),
    ("GET", "/v1/models", None, 400, "Missing model name in request."),
    ("GET", "/v1/models/half/versions/9", None, 404,
     "Could not find version 9 of model half"),
])
def test_rest_errors_keep_the_server_serving(server, method, path, body, status, message):
  response = httpx.request(method, server.url(path), content=None if body is None else (
      body if isinstance(body, bytes) else json.dumps(body)), timeout=30)
  assert response.status_code == status, response.text[:500]
  assert message in response.json()["error"]
  assert post(server, "/v1/models/half:predict", {"instances": [2.0]}).status_code == 200


def test_rest_unknown_http_method_is_405_and_the_server_keeps_serving(server):
  response = httpx.request("TRACE", server.url("/v1/models/half"), timeout=30)
  assert response.status_code == 405
  assert post(server, "/v1/models/half:predict", {"instances": [2.0]}).json() == {
      "predictions": [3.0]}


def test_rest_non_v1_is_html_404_and_timeout_is_504(server):
  response = httpx.get(server.url("/statuspage"))
  assert response.status_code == 404 and "404 Not Found" in response.text
  slow = post(server, "/v1/models/half:predict",
              {"signature_name": "slow", "instances": [1_000_000]})  # ~6 s
  assert slow.status_code == 504, slow.text
  assert post(server, "/v1/models/half:predict", {"instances": [2.0]}).status_code == 200


def test_grpc_with_the_official_client(server):
  channel = grpc.insecure_channel(server.grpc_target)
  stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
  request = predict_pb2.PredictRequest()
  request.model_spec.name = "half"
  request.inputs["x"].CopyFrom(tf.make_tensor_proto([1.0, 4.0], dtype=tf.float32))
  response = stub.Predict(request, 30)
  np.testing.assert_allclose(tf.make_ndarray(response.outputs["y"]), [2.5, 4.0])
  assert response.model_spec.signature_name == "serving_default"
  assert response.model_spec.version.value >= 1

  metadata_request = get_model_metadata_pb2.GetModelMetadataRequest()
  metadata_request.model_spec.name = "half"
  metadata_request.metadata_field.append("signature_def")
  metadata = stub.GetModelMetadata(metadata_request, 30)
  signatures = get_model_metadata_pb2.SignatureDefMap()
  metadata.metadata["signature_def"].Unpack(signatures)
  assert "serving_default" in signatures.signature_def

  regress = regression_pb2.RegressionRequest()
  regress.model_spec.name = "half"
  regress.model_spec.signature_name = "regress_x_to_y"
  example = regress.input.example_list.examples.add()
  example.features.feature["x"].float_list.value.append(6.0)
  assert stub.Regress(regress, 30).result.regressions[0].value == pytest.approx(5.0)

  classify = classification_pb2.ClassificationRequest()
  classify.model_spec.name = "half"
  classify.model_spec.signature_name = "classify_x_to_y"
  classify.input.example_list.examples.add().CopyFrom(example)
  classes = stub.Classify(classify, 30).result.classifications[0].classes
  assert [(c.label, round(c.score, 3)) for c in classes] == [("pos", 5.0), ("neg", -5.0)]

  status_request = get_model_status_pb2.GetModelStatusRequest()
  status_request.model_spec.name = "half"
  status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(status_request, 30)
  assert status.model_version_status[0].state == \
      get_model_status_pb2.ModelVersionStatus.AVAILABLE

  request.model_spec.name = "nope"
  with pytest.raises(grpc.RpcError) as error:
    stub.Predict(request, 30)
  assert error.value.code() == grpc.StatusCode.NOT_FOUND
  assert "Servable not found" in error.value.details()
  request.model_spec.name = "half"
  request.model_spec.signature_name = "zz"
  with pytest.raises(grpc.RpcError) as error:
    stub.Predict(request, 30)
  assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_prometheus_page_counts_requests(server):
  post(server, "/v1/models/half:predict", {"instances": [1.0]})
  page = httpx.get(server.url("/monitoring/prometheus/metrics"))
  assert page.status_code == 200 and page.headers["content-type"].startswith("text/plain")
  assert "# TYPE :tensorflow:serving:request_count counter" in page.text
  assert ':tensorflow:serving:request_count{model_name="half",status="OK"}' in page.text
  assert ":tensorflow:serving:request_latency_bucket{" in page.text
  assert ':tensorflow:cc:saved_model:load_attempt_count{model_path="half",status="OK"}' \
      in page.text


def test_hot_swap_under_load_and_failed_version(server, models):
  """Versions 2 (good) then 3 (corrupt) appear while clients send: 0 failures."""
  _, base, sources = models
  failures, answers = [], []
  stop = threading.Event()

  def client():
    with httpx.Client(timeout=30) as http:
      while not stop.is_set():
        response = http.post(server.url("/v1/models/half:predict"),
                             content=json.dumps({"instances": [2.0]}))
        if response.status_code != 200:
          failures.append(response.text)
        else:
          answers.append(response.json()["predictions"][0])

  threads = [threading.Thread(target=client) for _ in range(4)]
  for t in threads:
    t.start()
  time.sleep(0.5)
  copy_version(sources["v2"], base, 2)
  deadline = time.time() + 60
  while time.time() < deadline and (not answers or answers[-1] != 4.0):
    time.sleep(0.1)
  corrupt = base / ".tmp-3"
  corrupt.mkdir()
  (corrupt / "saved_model.pb").write_bytes(b"not a saved model")
  os.rename(corrupt, base / "3")
  time.sleep(2)
  stop.set()
  for t in threads:
    t.join()
  assert not failures, failures[:3]
  assert 3.0 in answers and answers[-1] == 4.0  # v1 (0.5x+2) then v2 (0.5x+3)
  status = httpx.get(server.url("/v1/models/half")).json()["model_version_status"]
  by_version = {s["version"]: s for s in status}
  assert [s["version"] for s in status] == ["3", "2", "1"]  # highest first
  assert by_version["3"]["state"] == "END" and by_version["3"]["status"]["error_code"] != "OK"
  assert by_version["2"]["state"] == "AVAILABLE" and by_version["1"]["state"] == "END"


def test_batching_merges_and_limits(models, tmp_path):
  sources = models[2]
  base = tmp_path / "half"
  base.mkdir()
  copy_version(sources["v2"], base, 2)
  params = tmp_path / "batching.config"
  params.write_text("max_batch_size { value: 8 } batch_timeout_micros { value: 20000 } "
                    "max_enqueued_batches { value: 100 } num_batch_threads { value: 1 }")
  monitoring = tmp_path / "monitoring.config"
  monitoring.write_text("prometheus_config { enable: true }")
  srv = Server(f"--model_name=half", f"--model_base_path={base}", "--enable_batching",
               f"--batching_parameters_file={params}",
               f"--monitoring_config_file={monitoring}",
               "--tensorflow_inter_op_parallelism=2", "--tensorflow_intra_op_parallelism=1")
  try:
    def one(i):  # row and columnar requests in the same batches
      return post(srv, "/v1/models/half/versions/2:predict",
                  {"instances" if i % 3 else "inputs": [float(i), float(i + 1)]})
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
      responses = list(pool.map(one, range(48)))
    for i, response in enumerate(responses):
      expected = [0.5 * i + 3, 0.5 * (i + 1) + 3]
      assert response.json() == ({"predictions": expected} if i % 3 else
                                 {"outputs": expected}), (i, response.text)
    too_big = post(srv, "/v1/models/half/versions/2:predict", {"instances": [1.0] * 9})
    assert too_big.status_code == 400
    assert too_big.json()["error"] == "Task size 9 is larger than maximum input batch size 8"
    page = httpx.get(srv.url("/monitoring/prometheus/metrics")).text
    sizes = [line for line in page.splitlines()
             if line.startswith(":tensorflow:serving:batching_session:processed_batch_size_sum")]
    counts = [line for line in page.splitlines()
              if line.startswith(":tensorflow:serving:batching_session:processed_batch_size_count")]
    total, calls = float(sizes[0].split()[-1]), float(counts[0].split()[-1])
    assert total == 96 and calls < 48  # 48 requests of 2 rows merged into fewer calls
    _grpc_batching(srv, calls)
  finally:
    assert srv.stop() == 0


def _grpc_batching(srv, rest_calls):
  """Concurrent gRPC Predicts (official client) merged into batches: each gets its own
  rows, as y = 0.5 x + 3 computes them; errors keep TF Serving's status codes."""
  channel = grpc.insecure_channel(srv.grpc_target)
  stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

  def request(values, **spec):
    message = predict_pb2.PredictRequest()
    message.model_spec.name = "half"
    for field, value in spec.items():
      setattr(message.model_spec, field, value)
    message.inputs["x"].CopyFrom(tf.make_tensor_proto(values, dtype=tf.float32))
    return message

  def one(i):
    message = request([float(i)] * (1 + i % 3))  # batches mixing 1-, 2- and 3-row requests
    if i % 4 == 0:
      message.output_filter.append("y")
    return stub.Predict(message, 30)

  with concurrent.futures.ThreadPoolExecutor(16) as pool:
    responses = list(pool.map(one, range(48)))
  for i, response in enumerate(responses):
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["y"]),
                               [0.5 * i + 3] * (1 + i % 3))
    assert response.model_spec.name == "half" and response.model_spec.version.value == 2
    assert response.model_spec.signature_name == "serving_default"
  page = httpx.get(srv.url("/monitoring/prometheus/metrics")).text
  calls = float(next(line for line in page.splitlines() if line.startswith(
      ":tensorflow:serving:batching_session:processed_batch_size_count")).split()[-1])
  assert calls - rest_calls < 48  # merged into fewer model calls

  def code_and_details(message, timeout=30):
    with pytest.raises(grpc.RpcError) as error:
      stub.Predict(message, timeout)
    return error.value.code(), error.value.details()

  assert code_and_details(request([1.0] * 9)) == (
      grpc.StatusCode.INVALID_ARGUMENT, "Task size 9 is larger than maximum input batch size 8")
  assert code_and_details(predict_pb2.PredictRequest()) == (
      grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")
  assert code_and_details(request([1.0], name="nope"))[0] == grpc.StatusCode.NOT_FOUND
  assert code_and_details(request([1.0], signature_name="zz")) == (
      grpc.StatusCode.FAILED_PRECONDITION, 'Serving signature key "zz" not found.')
  filtered = request([1.0])
  filtered.output_filter.append("nope")
  code, details = code_and_details(filtered)
  assert code == grpc.StatusCode.INVALID_ARGUMENT
  assert details.startswith("output tensor alias not found in signature: nope")
  slow = predict_pb2.PredictRequest()
  slow.model_spec.name = "half"
  slow.model_spec.signature_name = "slow"
  slow.inputs["n"].CopyFrom(tf.make_tensor_proto([300_000], dtype=tf.int32))  # ~2 s
  assert code_and_details(slow, timeout=0.3)[0] == grpc.StatusCode.DEADLINE_EXCEEDED
  # The server still answers (the slow batch finishes behind the expired request).
  np.testing.assert_allclose(tf.make_ndarray(stub.Predict(request([2.0]), 30).outputs["y"]),
                             [4.0])


def test_sigterm_drains_in_flight_requests(models, tmp_path):
  base = tmp_path / "half"
  base.mkdir()
  copy_version(models[2]["v1"], base, 1)
  srv = Server(f"--model_name=half", f"--model_base_path={base}")
  result = {}

  def slow_call():
    result["response"] = post(srv, "/v1/models/half:predict",
                              {"signature_name": "slow", "instances": [400_000]})  # ~2 s

  thread = threading.Thread(target=slow_call)
  thread.start()
  time.sleep(0.7)
  code = srv.stop()
  thread.join()
  assert code == 0
  assert result["response"].status_code == 200, result["response"].text


def test_config_file_labels_and_a_tfcr_servable(models, tmp_path):
  """Two models from --model_config_file: half (two pinned versions with labels) and a
  real tfcr ScaNN export, queried over REST and gRPC and compared with an in-process
  call of the same SavedModel."""
  from test_servable import run_requests  # pylint: disable=g-import-not-at-top
  from tfcr.data.sources import DataSource  # pylint: disable=g-import-not-at-top
  from tfcr.data.synthetic import SyntheticConfig  # pylint: disable=g-import-not-at-top
  from tfcr.export.exporter import export_servable  # pylint: disable=g-import-not-at-top
  from tfcr.training.config import TrainConfig  # pylint: disable=g-import-not-at-top
  from tfcr.training.loop import train_and_evaluate  # pylint: disable=g-import-not-at-top
  sources = models[2]
  half = tmp_path / "half"
  half.mkdir()
  copy_version(sources["v1"], half, 1)
  copy_version(sources["v2"], half, 2)
  data = DataSource("synthetic", synthetic=SyntheticConfig(
      n_users=60, n_items=80, n_conditions=6, n_interactions=1500, seed=42))
  train_and_evaluate(TrainConfig(epochs=1, batch_size=64, embedding_dim=8,
                                 model_dir=str(tmp_path / "run"), verbose=0), data)
  export = export_servable(str(tmp_path / "run"), str(tmp_path / "cr"), "scann", 10)
  config = tmp_path / "models.config"
  config.write_text(f"""
model_config_list {{
  config {{
    name: "half" base_path: "{half}" model_platform: "tensorflow"
    model_version_policy {{ specific {{ versions: 1 versions: 2 }} }}
    version_labels {{ key: "stable" value: 1 }}
    version_labels {{ key: "canary" value: 2 }}
  }}
  config {{ name: "cr" base_path: "{tmp_path / 'cr'}" }}
}}""")
  srv = Server(f"--model_config_file={config}")
  try:
    for label, expected in (("stable", 3.0), ("canary", 4.0)):
      response = post(srv, f"/v1/models/half/labels/{label}:predict", {"instances": [2.0]})
      assert response.json() == {"predictions": [expected]}
    assert post(srv, "/v1/models/half/versions/1:predict",
                {"instances": [2.0]}).json() == {"predictions": [3.0]}

    query = {"user_id": ["u0001", "u0002", "stranger"], "condition": ["c01", "c02", ""],
             "k": [5, 3, 4], "filter": ["strict", "none", "none"]}
    # The same SavedModel called in a separate plain Python process, as the reference.
    local = run_requests(export, [{"signature": "serving_default", "inputs": query}],
                         tmp_path)[0]
    rest = post(srv, "/v1/models/cr:predict", {"inputs": query}).json()["outputs"]
    assert rest["item_ids"] == local["item_ids"].tolist()
    np.testing.assert_allclose(np.array(rest["scores"], np.float32), local["scores"],
                               rtol=1e-6)
    assert all(rest["condition_match"][0][:5])  # strict: every item has c01
    rows = post(srv, "/v1/models/cr:predict", {"instances": [
        {name: values[i] for name, values in query.items()} for i in range(3)]}).json()
    assert [r["item_ids"] for r in rows["predictions"]] == rest["item_ids"]

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "cr"
    for name, values in query.items():
      request.inputs[name].CopyFrom(tf.make_tensor_proto(
          values, dtype=tf.int32 if name == "k" else tf.string))
    stub = prediction_service_pb2_grpc.PredictionServiceStub(
        grpc.insecure_channel(srv.grpc_target))
    response = stub.Predict(request, 30)
    np.testing.assert_array_equal(
        tf.make_ndarray(response.outputs["item_ids"]).astype(str), local["item_ids"])
    np.testing.assert_array_equal(tf.make_ndarray(response.outputs["num_scanned"]),
                                  local["num_scanned"])
    bad = post(srv, "/v1/models/cr:predict", {"inputs": {**query, "k": [0, 1, 1]}})
    assert bad.status_code == 400 and bad.json()["error"] == "k must be in 1..10 (max_k)"
    missing = post(srv, "/v1/models/cr:predict", {"inputs": {"user_id": ["u0001"]}})
    assert missing.status_code == 400 and "Missing named input" in missing.json()["error"]
  finally:
    assert srv.stop() == 0


def test_slow_clients_do_not_block_others(server):
  """Clients that trickle a request (headers, then half a body) hold no worker."""
  import socket  # pylint: disable=g-import-not-at-top
  slow = []
  for _ in range(20):
    s = socket.create_connection(("127.0.0.1", server.rest_port))
    s.sendall(b"POST /v1/models/half:predict HTTP/1.1\r\nHost: x\r\n"
              b"Content-Length: 100\r\n\r\n{\"instan")
    slow.append(s)
  try:
    started = time.time()
    for _ in range(5):
      assert post(server, "/v1/models/half:predict", {"instances": [2.0]}).status_code == 200
    assert time.time() - started < 10
  finally:
    for s in slow:
      s.close()
  assert post(server, "/v1/models/half:predict", {"instances": [2.0]}).status_code == 200


def test_negative_thread_counts_are_a_usage_error(models):
  base = models[1]
  result = subprocess.run(
      [sys.executable, "-m", "serving.server", f"--model_base_path={base}",
       "--tensorflow_inter_op_parallelism=-2", "--port=0", "--rest_api_port=0"],
      cwd=REPO, capture_output=True, text=True, timeout=120,
      env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
  assert result.returncode != 0
  assert ("--tensorflow_inter_op_parallelism must be -1 (the caller's thread), 0 "
          "(TensorFlow's choice) or a thread count, got -2." in result.stderr)
  assert "Traceback" not in result.stderr


def test_bad_scann_simd_setting_fails_the_start_with_a_message(models):
  base = models[1]
  result = subprocess.run(
      [sys.executable, "-m", "serving.server", f"--model_base_path={base}", "--port=0",
       "--rest_api_port=0"],
      cwd=REPO, capture_output=True, text=True, timeout=120,
      env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TFCR_SCANN_SIMD": "avx9000"})
  assert result.returncode == 1
  assert ("Failed to start server. Error: TFCR_SCANN_SIMD='avx9000': expected auto, avx2 "
          "or baseline." in result.stderr)
  assert "Traceback" not in result.stderr
