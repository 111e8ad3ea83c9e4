"""Model server under load: `python -m serving.server` serving a tfcr servable.

    .venv/bin/python benchmarks/bench_server.py --rounds=2 --suggestions   # docs/benchmarks.md
    .venv/bin/python benchmarks/bench_server.py --duration=5 --soak_seconds=0
    .venv/bin/python benchmarks/bench_server.py --index=brute_force --clients=1,32

All in one run. The machine is shared (2 cores, other jobs come and go), so configurations
are measured back to back, round after round (order reversed every other round), and
ratios are taken within the run:

1. Servable: `train_and_evaluate(TrainConfig(epochs=...), DataSource("synthetic", ...))`
   (5,000 users, 20,000 items, 100,000 interactions, one epoch by default) and
   `export_servable(model_dir, export_dir, --index, max_k=--max_k)`, in a child process,
   into a temporary folder.
2. Servers: `python -m serving.server --model_name=cr --model_base_path=... --port=P
   --rest_api_port=Q` on free ports, one without batching and one per --batching
   configuration (`--enable_batching --batching_parameters_file=...`), all up for the
   whole run (an idle server costs next to nothing), with Prometheus metrics on: they
   give the mean merged batch size and the mean model-call time of each measurement.
   Every server must answer a few queries exactly as the SavedModel does in-process.
3. Load: N closed-loop clients (--clients, default 1, 8, 32), each sending single-query
   Predict requests (random known user id, random known condition, k=10, filter "none"
   or "strict" at random) for --duration seconds after --warmup seconds. The clients
   run as asyncio tasks in --load_processes separate processes (so this process's GIL
   does not cap them), one connection per client:
   * `rest`: `httpx.AsyncClient`, body `{"instances": [{"user_id": ..., "condition": ...,
     "k": 10, "filter": ...}]}`;
   * `rest_raw`: the same requests over a minimal asyncio HTTP/1.1 keep-alive client.
     httpx costs ~1 ms of client CPU per request, as much as the server, and client and
     server share the 2 cores: this row shows the server with a cheap client;
   * `grpc`: the official `PredictionServiceStub` on a `grpc.aio` channel (local
     subchannel pool: one HTTP/2 connection per client);
   * `rest_h2load`, `grpc_h2load`: nghttp2's h2load (a C client, `apt-get install
     nghttp2-client`), one connection per client, the first query's request repeated:
     the server measured with next to no client CPU on the shared cores (gRPC errors,
     which h2load cannot see, are taken from the server's request_count by status);
     with grpc_h2load, the status rows add GetModelStatus over h2load;
   * at the largest N, status calls (REST GET model status, gRPC GetModelStatus) give the
     server's cost per request without the model.
   Throughput counts the requests completed in the measured window; latency percentiles
   are over them. From /proc: CPU per request of the server (all threads, and its main
   thread, which runs the REST event loop) and of the load generator, the share of a
   core the server's busiest thread used, the cores other jobs used meanwhile and the
   cores left idle.
4. In-process reference: this process loads the same SavedModel as the server does
   (`serving.model_manager.LoadedVersion`: a Session, NumPy in and out, ops on the
   calling thread) and calls it as the server does (`LoadedVersion.run`). A latency
   phase alternates, in blocks of 20 calls, in-process calls, REST (httpx and raw
   socket) and gRPC Predict calls to the unbatched server, and the status calls;
   overhead = p50 - in-process p50.
5. Batching: speed-up = req/s with batching / without at the largest N; the in-process
   ceiling is one batch-B call against B single calls (wall and CPU time).
   --suggestions adds the first batching configuration with --grpc_max_threads=16 (the
   default before the benchmark's findings; 64 now) for comparison.
6. Soak (--soak_seconds, 0 skips it): REST (httpx), the largest N, batching
   configuration --soak_config; errors, requests per 10 s, the server's VmRSS when the
   measured window starts (after at least 5 s of load) and when it ends.

Nothing is written into the repository; the temporary folder (model, export, server
logs) is removed at the end unless --keep_dir. --json=PATH writes every number to PATH.
"""

import argparse
import asyncio
import concurrent.futures
import contextlib
import json
import multiprocessing
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from tfcr.utils.machine import machine_description, machine_line  # noqa: E402
MODEL = "cr"
K = 10
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
SIGNATURE_INPUTS = ("user_id", "condition", "k", "filter")


def log(*args):
  print(f"[{time.strftime('%H:%M:%S')}]", *args, flush=True)


# ------------------------------------------------------------------------- queries --

def make_queries(user_ids, conditions, count, seed):
  """[(user_id, condition, filter)]: random known users and conditions, filters mixed."""
  rng = random.Random(seed)
  return [(rng.choice(user_ids), rng.choice(conditions), rng.choice(("none", "strict")))
          for _ in range(count)]


def rest_body(query) -> bytes:
  user, condition, filter_ = query
  return json.dumps({"instances": [{"user_id": user, "condition": condition, "k": K,
                                    "filter": filter_}]}).encode()


def grpc_request(query, predict_pb2, types_pb2):
  """A PredictRequest built field by field (no TF call needed)."""
  user, condition, filter_ = query
  request = predict_pb2.PredictRequest()
  request.model_spec.name = MODEL
  request.model_spec.signature_name = "serving_default"
  for alias, value in (("user_id", user), ("condition", condition), ("filter", filter_)):
    tensor = request.inputs[alias]
    tensor.dtype = types_pb2.DT_STRING
    tensor.tensor_shape.dim.add().size = 1
    tensor.string_val.append(value.encode())
  tensor = request.inputs["k"]
  tensor.dtype = types_pb2.DT_INT32
  tensor.tensor_shape.dim.add().size = 1
  tensor.int_val.append(K)
  return request


def numpy_inputs(queries):
  return {"user_id": np.array([q[0] for q in queries], dtype=object),
          "condition": np.array([q[1] for q in queries], dtype=object),
          "k": np.full([len(queries)], K, np.int32),
          "filter": np.array([q[2] for q in queries], dtype=object)}


# ------------------------------------------------------------------ /proc helpers --

def cpu_seconds(pid: int, tid: int = None) -> float:
  """utime + stime of a process (all its threads), or of its thread tid, in seconds."""
  with open(f"/proc/{pid}/task/{tid}/stat" if tid else f"/proc/{pid}/stat") as f:
    fields = f.read().rsplit(")", 1)[1].split()
  return (int(fields[11]) + int(fields[12])) / CLK_TCK


def thread_cpu_seconds(pid: int) -> dict:
  """{thread id: utime + stime in seconds} of every thread of a process."""
  seconds = {}
  for tid in os.listdir(f"/proc/{pid}/task"):
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
      seconds[tid] = cpu_seconds(pid, tid)
  return seconds


def busiest_thread_cores(first: dict, last: dict, window: float) -> float:
  """The largest share of a core one thread used between two thread_cpu_seconds readings.
  Near 1.0 with cores idle, that thread is the limit. Python threads that share the GIL
  can be the limit well below it: the server's cores then stay near 1 with cores idle."""
  return max([(last[t] - first.get(t, 0.0)) / window for t in last] or [0.0])


def machine_busy_seconds() -> float:
  """CPU seconds all cores spent busy since boot (for the other jobs' share)."""
  with open("/proc/stat") as f:
    values = [int(v) for v in f.readline().split()[1:]]
  idle = values[3] + values[4]
  return (sum(values[:8]) - idle) / CLK_TCK


def read_cpu(server_pid: int, load_pids) -> dict:
  """CPU seconds so far of the server (all threads, its main thread, each thread), of the
  load generator's processes and of the whole machine, with the time of the reading."""
  return {"server": cpu_seconds(server_pid), "loop": cpu_seconds(server_pid, server_pid),
          "load": sum(cpu_seconds(p) for p in load_pids), "machine": machine_busy_seconds(),
          "wall": time.monotonic(), "threads": thread_cpu_seconds(server_pid)}


def cores_between(first: dict, last: dict) -> dict:
  """Cores used between two read_cpu readings: server, loop, load, machine, other jobs,
  idle, and the server's busiest thread."""
  window = last["wall"] - first["wall"]
  cores = {k: (last[k] - first[k]) / window for k in ("server", "loop", "load", "machine")}
  cores["other"] = cores["machine"] - cores["server"] - cores["load"]
  cores["idle"] = os.cpu_count() - cores["machine"]
  cores["busiest_thread"] = busiest_thread_cores(first["threads"], last["threads"], window)
  return cores


def cpu_ms_per_request(cores: dict, throughput: float) -> dict:
  return {k: cores[k] / throughput * 1e3 if throughput else float("nan")
          for k in ("server", "loop", "load")}


def rss_mb(pid: int) -> float:
  with open(f"/proc/{pid}/status") as f:
    for line in f:
      if line.startswith("VmRSS:"):
        return int(line.split()[1]) / 1024
  return float("nan")


def free_port() -> int:
  with contextlib.closing(socket.socket()) as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


# ------------------------------------------------------------------- the servers --

class ServerProcess:
  """`python -m serving.server` on free ports, with Prometheus metrics on."""

  def __init__(self, label, base_path, workdir, batching=None, flags=()):
    self.label = label
    self.batching = batching
    self.grpc_port, self.rest_port = free_port(), free_port()
    while self.rest_port == self.grpc_port:
      self.rest_port = free_port()
    slug = re.sub(r"[^A-Za-z0-9]+", "_", label)
    monitoring = os.path.join(workdir, "monitoring.config")
    with open(monitoring, "w") as f:
      f.write("prometheus_config { enable: true }\n")
    args = [sys.executable, "-m", "serving.server", f"--model_name={MODEL}",
            f"--model_base_path={base_path}", f"--port={self.grpc_port}",
            f"--rest_api_port={self.rest_port}", f"--monitoring_config_file={monitoring}"]
    if batching is not None:
      path = os.path.join(workdir, f"batching-{slug}.config")
      with open(path, "w") as f:
        f.write(batching_text(batching))
      args += ["--enable_batching", f"--batching_parameters_file={path}"]
    args += list(flags)
    self.log_path = os.path.join(workdir, f"server-{slug}.log")
    self.log = open(self.log_path, "w")
    self.process = subprocess.Popen(args, cwd=REPO, stdout=self.log,
                                    stderr=subprocess.STDOUT,
                                    env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    self.pid = self.process.pid
    self.rest_base = f"http://127.0.0.1:{self.rest_port}"
    self.grpc_target = f"127.0.0.1:{self.grpc_port}"
    self.predict_url = f"{self.rest_base}/v1/models/{MODEL}:predict"

  def wait_ready(self, timeout=300):
    import httpx  # pylint: disable=import-outside-toplevel
    deadline = time.time() + timeout
    while time.time() < deadline:
      if self.process.poll() is not None:
        raise RuntimeError(f"server {self.label} exited with {self.process.returncode}; "
                           f"log:\n{self.tail()}")
      try:
        reply = httpx.get(f"{self.rest_base}/v1/models/{MODEL}", timeout=2)
        if reply.status_code == 200 and '"AVAILABLE"' in reply.text:
          return
      except httpx.TransportError:
        pass
      time.sleep(0.3)
    raise RuntimeError(f"server {self.label} not ready after {timeout} s; log:\n{self.tail()}")

  def metrics(self):
    """{family_suffix: total over label sets} of the Prometheus page."""
    import httpx  # pylint: disable=import-outside-toplevel
    totals = {}
    for line in httpx.get(f"{self.rest_base}/monitoring/prometheus/metrics",
                          timeout=10).text.splitlines():
      if line.startswith("#") or not line.strip():
        continue
      name = re.split(r"[{ ]", line, 1)[0]
      if name.endswith("_sum") or name.endswith("_count"):
        totals[name] = totals.get(name, 0.0) + float(line.rsplit(None, 1)[1])
      if name.endswith(":request_count") and 'status="OK"' not in line:
        totals["failed_requests"] = (totals.get("failed_requests", 0.0)
                                     + float(line.rsplit(None, 1)[1]))
    return totals

  def tail(self, lines=30):
    if not self.log.closed:
      self.log.flush()
    with open(self.log_path, errors="replace") as f:
      return "".join(f.readlines()[-lines:])

  def stop(self):
    if self.process.poll() is None:
      self.process.send_signal(signal.SIGTERM)
      try:
        self.process.wait(60)
      except subprocess.TimeoutExpired:
        self.process.kill()
        self.process.wait()
    self.log.close()
    return self.process.returncode


def parse_batching(spec: str):
  """'32:1000:1' -> dict(max_batch_size=32, batch_timeout_micros=1000, threads=1)."""
  parts = [int(p) for p in spec.split(":")]
  if len(parts) not in (3, 4):
    raise argparse.ArgumentTypeError(f"--batching entries are "
                                     f"max_batch_size:timeout_us:threads[:max_enqueued], "
                                     f"got {spec!r}")
  return {"max_batch_size": parts[0], "batch_timeout_micros": parts[1],
          "num_batch_threads": parts[2],
          "max_enqueued_batches": parts[3] if len(parts) == 4 else 100}


def batching_text(params) -> str:
  return "".join(f"{name} {{ value: {value} }}\n" for name, value in params.items())


def batching_label(params) -> str:
  return (f"batch{params['max_batch_size']}/{params['batch_timeout_micros']}us/"
          f"{params['num_batch_threads']}t")




# ------------------------------------------------------------ load generator side --

def _split(total, parts):
  return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


KINDS = {  # protocol -> what its rows are called
    "rest": "REST (httpx)",
    "rest_raw": "REST (raw socket)",
    "grpc": "gRPC",
    "rest_h2load": "REST (h2load, C)",
    "grpc_h2load": "gRPC (h2load, C)",
    "rest_status": "REST GET status (raw socket)",
    "grpc_status": "gRPC GetModelStatus",
    "grpc_status_h2load": "gRPC GetModelStatus (h2load, C)",
}


def _http_request(method, host, port, path, body=b"") -> bytes:
  head = (f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
          f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
  return head.encode() + body


def _parse_head(lines):
  """(status, content-length or None, chunked) of a reply's status line + header lines."""
  status = int(lines[0].split()[1])
  length, chunked = None, False
  for line in lines[1:]:
    name, _, value = line.partition(b":")
    name = name.strip().lower()
    if name == b"content-length":
      length = int(value)
    elif name == b"transfer-encoding" and b"chunked" in value.lower():
      chunked = True
  return status, length, chunked


class RawHttp:
  """A minimal blocking HTTP/1.1 keep-alive client (one socket): a client-side cost
  floor to set against httpx's."""

  def __init__(self, host, port):
    self.host, self.port = host, port
    self.sock = socket.create_connection((host, port))
    self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    self.file = self.sock.makefile("rb")

  def call(self, request: bytes):
    self.sock.sendall(request)
    lines = [self.file.readline()]
    while lines[-1] not in (b"\r\n", b""):
      lines.append(self.file.readline())
    status, length, chunked = _parse_head(lines[:-1])
    if chunked:
      raise RuntimeError("chunked replies are not expected")
    return status, self.file.read(length or 0)

  def close(self):
    self.file.close()
    self.sock.close()


async def _raw_sender(server, kind, payloads):
  """send(i) -> error or None, over one asyncio keep-alive connection."""
  host, port = "127.0.0.1", server.rest_port
  if kind == "rest_raw":
    path = f"/v1/models/{MODEL}:predict"
    requests = [_http_request("POST", host, port, path, body) for body in payloads["rest"]]
  else:
    requests = [_http_request("GET", host, port, f"/v1/models/{MODEL}")]
  state = {}

  async def connect():
    state["reader"], state["writer"] = await asyncio.open_connection(host, port)

  async def send(i):
    if "writer" not in state:
      await connect()
    reader, writer = state["reader"], state["writer"]
    try:
      writer.write(requests[i % len(requests)])
      lines = [await reader.readline()]
      while lines[-1] not in (b"\r\n", b""):
        lines.append(await reader.readline())
      if lines[0] == b"":
        raise ConnectionError("connection closed")
      status, length, _ = _parse_head(lines[:-1])
      data = await reader.readexactly(length or 0)
    except Exception:
      state.pop("writer", None)
      writer.close()
      raise
    if status != 200:
      return f"HTTP {status}: {data[:200]!r}"
    if kind == "rest_raw" and b'"item_ids"' not in data:
      return f"unexpected reply {data[:200]!r}"
    return None

  async def close():
    if "writer" in state:
      state["writer"].close()

  return send, close


async def _httpx_sender(server, payloads):
  import httpx  # pylint: disable=import-outside-toplevel
  client = httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=1))
  headers = {"Content-Type": "application/json"}
  bodies = payloads["rest"]
  checked = [False]

  async def send(i):
    reply = await client.post(server.predict_url, content=bodies[i % len(bodies)],
                              headers=headers)
    if reply.status_code != 200:
      return f"HTTP {reply.status_code}: {reply.text[:200]}"
    if not checked[0]:
      checked[0] = True
      predictions = reply.json()["predictions"]
      if len(predictions) != 1 or "item_ids" not in predictions[0]:
        return f"unexpected reply {reply.text[:200]}"
    return None

  return send, client.aclose


async def _grpc_sender(server, kind, payloads):
  import grpc  # pylint: disable=import-outside-toplevel
  from tensorflow_serving.apis import model_service_pb2_grpc  # pylint: disable=import-outside-toplevel
  from tensorflow_serving.apis import prediction_service_pb2_grpc  # pylint: disable=import-outside-toplevel
  # A local subchannel pool: each client gets its own HTTP/2 connection.
  channel = grpc.aio.insecure_channel(server.grpc_target,
                                      options=[("grpc.use_local_subchannel_pool", 1)])
  requests = payloads["grpc"]
  if kind == "grpc":
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
  else:
    stub = model_service_pb2_grpc.ModelServiceStub(channel)
  checked = [False]

  async def send(i):
    try:
      if kind == "grpc_status":
        await stub.GetModelStatus(payloads["grpc_status"], timeout=60)
        return None
      reply = await stub.Predict(requests[i % len(requests)], timeout=60)
    except grpc.aio.AioRpcError as e:
      return f"{e.code().name}: {e.details()}"
    if not checked[0]:
      checked[0] = True
      if "item_ids" not in reply.outputs:
        return f"unexpected reply {str(reply)[:200]}"
    return None

  return send, channel.close


async def _client(kind, server, payloads, seed, t_start, t_measure, t_end, record):
  """One closed-loop client: a request, wait for its reply, the next one..."""
  rng = random.Random(seed)
  if kind == "rest":
    send, close = await _httpx_sender(server, payloads)
  elif kind in ("rest_raw", "rest_status"):
    send, close = await _raw_sender(server, kind, payloads)
  else:
    send, close = await _grpc_sender(server, kind, payloads)
  try:
    await asyncio.sleep(max(0.0, t_start - time.monotonic()))
    while time.monotonic() < t_end:
      i = rng.randrange(1 << 30)
      started = time.monotonic()
      try:
        error = await send(i)
      except Exception as e:  # pylint: disable=broad-except
        error = f"{type(e).__name__}: {e}"
      record(started, time.monotonic(), error, t_measure, t_end)
  finally:
    await close()


class _Endpoint:
  """What a load worker needs of a ServerProcess (picklable)."""

  def __init__(self, server):
    self.rest_port = server.rest_port
    self.grpc_target = server.grpc_target
    self.predict_url = server.predict_url


def _load_worker(conn, queries):
  """One load-generator process: runs commands from the parent until told to stop."""
  signal.signal(signal.SIGINT, signal.SIG_IGN)
  from tensorflow.core.framework import types_pb2  # pylint: disable=import-outside-toplevel
  from tensorflow_serving.apis import get_model_status_pb2  # pylint: disable=import-outside-toplevel
  from tensorflow_serving.apis import predict_pb2  # pylint: disable=import-outside-toplevel
  import grpc  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
  import httpx  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
  status_request = get_model_status_pb2.GetModelStatusRequest()
  status_request.model_spec.name = MODEL
  payloads = {"rest": [rest_body(q) for q in queries],
              "grpc": [grpc_request(q, predict_pb2, types_pb2) for q in queries],
              "grpc_status": status_request}
  conn.send("ready")
  while True:
    command = conn.recv()
    if command is None:
      return
    latencies, completions, errors = [], [], []
    counts = {"errors_total": 0, "completed_total": 0}

    def record(started, finished, error, t_measure, t_end):
      counts["completed_total"] += 1
      if error is not None:
        counts["errors_total"] += 1
        if len(errors) < 5:
          errors.append(error)
      if t_measure <= finished <= t_end:
        completions.append(finished)
        latencies.append(-1.0 if error else finished - started)

    async def run_clients():
      await asyncio.gather(*[
          _client(command["kind"], command["endpoint"], payloads, command["seed"] + i,
                  command["t_start"], command["t_measure"], command["t_end"], record)
          for i in range(command["clients"])])

    try:
      asyncio.run(run_clients())
    except Exception as e:  # pylint: disable=broad-except
      errors.append(f"load worker failed: {type(e).__name__}: {e}")
      counts["errors_total"] += 1
    conn.send({"latencies": np.array(latencies), "completions": np.array(completions),
               "errors": errors, **counts})


class LoadPool:
  """--load_processes persistent load-generator processes (spawned: no TF state shared)."""

  def __init__(self, processes, queries, seed, workdir):
    context = multiprocessing.get_context("spawn")
    self.seed = seed
    self.queries, self.workdir = queries, workdir
    self.conns, self.procs = [], []
    for _ in range(processes):
      parent, child = context.Pipe()
      process = context.Process(target=_load_worker, args=(child, queries), daemon=True)
      process.start()
      self.conns.append(parent)
      self.procs.append(process)
    for conn in self.conns:
      if conn.recv() != "ready":
        raise RuntimeError("load worker failed to start")
    self.runs = 0

  def run(self, kind, server, clients, warmup, duration, sampler=None, sample_every=5.0):
    """Runs `clients` closed-loop clients of `kind` against `server`.

    Returns throughput, latency percentiles, errors and the CPU used in the measured
    window by the server (all threads, and its main thread: the REST event loop), the
    load generator and everything else on the machine. sampler: called every
    sample_every seconds during the window (e.g. RSS readings).
    """
    self.runs += 1
    now = time.monotonic()
    t_start = now + 0.5
    t_measure = t_start + warmup
    t_end = t_measure + duration
    used, offset = [], 0
    for conn, share in zip(self.conns, _split(clients, len(self.conns))):
      if share:
        conn.send({"kind": kind, "endpoint": _Endpoint(server), "clients": share,
                   "seed": (self.seed * 1000 + self.runs) * 1000 + offset,
                   "t_start": t_start, "t_measure": t_measure, "t_end": t_end})
        used.append(conn)
        offset += share
    load_pids = [p.pid for p, c in zip(self.procs, self.conns) if c in used]

    time.sleep(max(0.0, t_measure - time.monotonic()))
    first = read_cpu(server.pid, load_pids)
    samples = [(0.0, sampler())] if sampler else []
    while time.monotonic() < t_end:
      time.sleep(max(0.0, min(sample_every, t_end - time.monotonic())))
      if sampler and time.monotonic() < t_end - 0.5:
        samples.append((time.monotonic() - t_measure, sampler()))
    last = read_cpu(server.pid, load_pids)
    if sampler:
      samples.append((last["wall"] - t_measure, sampler()))
    replies = [conn.recv() for conn in used]
    latencies = np.concatenate([r["latencies"] for r in replies])
    completions = np.concatenate([r["completions"] for r in replies])
    ok = latencies[latencies >= 0]
    cores = cores_between(first, last)
    throughput = len(ok) / duration
    per_request = cpu_ms_per_request(cores, throughput)
    return {
        "kind": kind, "server": server.label, "clients": clients,
        "requests": int(len(latencies)), "ok": int(len(ok)),
        "errors": int((latencies < 0).sum()),
        "errors_total": sum(r["errors_total"] for r in replies),
        "completed_total": sum(r["completed_total"] for r in replies),
        "error_samples": [e for r in replies for e in r["errors"]][:5],
        "throughput": throughput,
        "p50_ms": float(np.percentile(ok, 50) * 1e3) if len(ok) else float("nan"),
        "p90_ms": float(np.percentile(ok, 90) * 1e3) if len(ok) else float("nan"),
        "p99_ms": float(np.percentile(ok, 99) * 1e3) if len(ok) else float("nan"),
        "cores": cores, "cpu_ms_per_request": per_request, "samples": samples,
        "per_10s": np.histogram(completions - t_measure,
                                bins=np.arange(0, duration + 1e-9, 10))[0].tolist()
                   if duration >= 20 else [],
    }

  def run_h2load(self, kind, server, clients, warmup, duration):
    """`run` with nghttp2's h2load as the clients (`h2load_run`), the first query repeated."""
    return h2load_run(kind, server, clients, warmup, duration, self.queries[0], self.workdir)

  def close(self):
    for conn in self.conns:
      with contextlib.suppress(OSError):
        conn.send(None)
    for process in self.procs:
      process.join(10)
      if process.is_alive():
        process.kill()


# ------------------------------------------------------------ the C load generator --

H2LOAD_KINDS = ("rest_h2load", "grpc_h2load", "grpc_status_h2load")


def h2load_path() -> str:
  """nghttp2's h2load, or a one-line error naming the package that has it."""
  path = shutil.which("h2load")
  if path is None:
    raise SystemExit("--protocols rest_h2load/grpc_h2load need nghttp2's h2load on PATH "
                     "(Debian/Ubuntu: apt-get install nghttp2-client)")
  return path


def grpc_frame(message: bytes) -> bytes:
  """A gRPC length-prefixed message: uncompressed flag, 4-byte big-endian length."""
  return b"\x00" + len(message).to_bytes(4, "big") + message


def h2load_run(kind, server, clients, warmup, duration, query, workdir):
  """`clients` closed-loop connections of nghttp2's h2load (one request in flight each),
  for --duration seconds after --warmup: the server measured with a client that costs
  next to nothing (0.02-0.05 ms of CPU per request, against ~0.3 ms for the official gRPC
  stub on grpc.aio).

  h2load sends one body over and over, so every request is `query` (the model's cost does
  not depend on which user asks: the index is scanned the same way). A gRPC error comes
  back as HTTP 200 with a grpc-status trailer that h2load does not read: errors are
  counted from the server's own request_count by status instead (`measure`).
  """
  from tensorflow.core.framework import types_pb2  # pylint: disable=import-outside-toplevel
  from tensorflow_serving.apis import get_model_status_pb2  # pylint: disable=import-outside-toplevel
  from tensorflow_serving.apis import predict_pb2  # pylint: disable=import-outside-toplevel
  body = os.path.join(workdir, f"{kind}.body")
  handle, log_file = tempfile.mkstemp(prefix=f"{kind}-", suffix=".log", dir=workdir)
  os.close(handle)  # h2load writes it
  command = [h2load_path(), f"-c{clients}", "-m1", "-t1", f"-D{duration:g}",
             f"--warm-up-time={warmup:g}", "-d", body, f"--log-file={log_file}"]
  if kind in ("grpc_h2load", "grpc_status_h2load"):
    if kind == "grpc_h2load":
      message = grpc_request(query, predict_pb2, types_pb2)
      path = "tensorflow.serving.PredictionService/Predict"
    else:  # the server's cost per gRPC call without the model
      message = get_model_status_pb2.GetModelStatusRequest()
      message.model_spec.name = MODEL
      path = "tensorflow.serving.ModelService/GetModelStatus"
    with open(body, "wb") as f:
      f.write(grpc_frame(message.SerializeToString()))
    command += ["-H", "content-type: application/grpc", "-H", "te: trailers",
                f"http://{server.grpc_target}/{path}"]
  else:
    with open(body, "wb") as f:
      f.write(rest_body(query))
    command += ["--h1", "-H", "content-type: application/json", server.predict_url]
  process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

  # CPU is read over the middle of the measured window (h2load starts measuring once its
  # connections are up and the warm-up is over, which a reader outside cannot see exactly).
  time.sleep(warmup + 0.5)
  first = read_cpu(server.pid, [process.pid])
  time.sleep(max(0.5, duration - 1.0))
  last = read_cpu(server.pid, [process.pid])
  output = process.communicate()[0].decode("utf-8", "replace")
  if process.returncode != 0:
    raise RuntimeError(f"h2load exited with {process.returncode}:\n{output[-2000:]}")
  with open(log_file) as f:  # start (us since the epoch), HTTP status, elapsed (us)
    rows = np.array([[float(v) for v in line.split()[:3]] for line in f if line.strip()])
  os.remove(log_file)
  rows = rows.reshape(-1, 3)
  # The log has the warm-up's requests too: keep those finished in the last `duration`
  # seconds, the window h2load measures.
  finished = rows[:, 0] + rows[:, 2]
  rows = rows[finished > (finished.max() if len(rows) else 0.0) - duration * 1e6]
  ok = rows[(rows[:, 1] >= 200) & (rows[:, 1] < 300), 2] / 1e6
  cores = cores_between(first, last)
  throughput = len(ok) / duration
  per_request = cpu_ms_per_request(cores, throughput)
  http_errors = int(len(rows) - len(ok))
  pct = lambda q: float(np.percentile(ok, q) * 1e3) if len(ok) else float("nan")  # noqa: E731
  return {"kind": kind, "server": server.label, "clients": clients,
          "requests": int(len(rows)), "ok": int(len(ok)), "errors": http_errors,
          "errors_total": http_errors, "completed_total": int(len(rows)),
          "error_samples": [f"{http_errors} non-2xx replies"] if http_errors else [],
          "throughput": throughput, "p50_ms": pct(50), "p90_ms": pct(90), "p99_ms": pct(99),
          "cores": cores, "cpu_ms_per_request": per_request, "samples": [], "per_10s": []}


# --------------------------------------------------------------------- in-process --

class InProcess:
  """The SavedModel in this process, called as the server calls it: `LoadedVersion.run`
  (a Session callable on the calling thread), NumPy in and out."""

  def __init__(self, path):
    from serving.model_manager import LoadedVersion, register_custom_ops  # pylint: disable=import-outside-toplevel
    register_custom_ops()  # as the server does before loading (ScaNN's ops)
    self.version = LoadedVersion("bench", 1, path)

  def __call__(self, inputs):
    return self.version.run("serving_default", inputs)


def latency_phase(inproc, server, queries, rounds, block=20, skip=2):
  """Single queries, one at a time: in-process vs REST vs gRPC (to the unbatched server)
  vs the transport floor (status calls, no model).

  Contenders take turns in blocks of `block` calls (order shuffled every round); the
  first `skip` calls of a block are dropped, so what the previous contender left running
  (the server's threads finishing up) does not land on the next one.
  """
  import grpc  # pylint: disable=import-outside-toplevel
  import httpx  # pylint: disable=import-outside-toplevel
  from tensorflow.core.framework import types_pb2  # pylint: disable=import-outside-toplevel
  from tensorflow_serving.apis import get_model_status_pb2  # pylint: disable=import-outside-toplevel
  from tensorflow_serving.apis import model_service_pb2_grpc  # pylint: disable=import-outside-toplevel
  from tensorflow_serving.apis import predict_pb2  # pylint: disable=import-outside-toplevel
  from tensorflow_serving.apis import prediction_service_pb2_grpc  # pylint: disable=import-outside-toplevel

  client = httpx.Client(timeout=60)
  raw = RawHttp("127.0.0.1", server.rest_port)
  channel = grpc.insecure_channel(server.grpc_target)
  stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
  model_stub = model_service_pb2_grpc.ModelServiceStub(channel)
  status_request = get_model_status_pb2.GetModelStatusRequest()
  status_request.model_spec.name = MODEL
  status_url = f"{server.rest_base}/v1/models/{MODEL}"
  headers = {"Content-Type": "application/json"}
  path = f"/v1/models/{MODEL}:predict"
  inputs = [numpy_inputs([q]) for q in queries]
  bodies = [rest_body(q) for q in queries]
  raw_requests = [_http_request("POST", "127.0.0.1", server.rest_port, path, b)
                  for b in bodies]
  raw_status = _http_request("GET", "127.0.0.1", server.rest_port, f"/v1/models/{MODEL}")
  requests = [grpc_request(q, predict_pb2, types_pb2) for q in queries]

  def run_raw(request):
    status, data = raw.call(request)
    if status != 200:
      raise RuntimeError(f"HTTP {status}: {data[:200]!r}")

  contenders = {
      "in-process": lambda i: inproc(inputs[i]),
      "REST (httpx)": lambda i: client.post(server.predict_url, content=bodies[i],
                                            headers=headers).raise_for_status(),
      "REST (raw socket)": lambda i: run_raw(raw_requests[i]),
      "gRPC": lambda i: stub.Predict(requests[i], timeout=60),
      "REST GET status (httpx)": lambda i: client.get(status_url).raise_for_status(),
      "REST GET status (raw socket)": lambda i: run_raw(raw_status),
      "gRPC GetModelStatus": lambda i: model_stub.GetModelStatus(status_request, timeout=60),
  }
  times = {name: [] for name in contenders}
  rng = random.Random(7)
  for r in range(rounds + 1):  # round 0 warms up
    order = list(contenders)
    rng.shuffle(order)
    for name in order:
      for j in range(block):
        i = (r * block + j) % len(queries)
        started = time.perf_counter()
        contenders[name](i)
        if r > 0 and j >= skip:
          times[name].append(time.perf_counter() - started)
  client.close()
  raw.close()
  channel.close()
  return {name: np.array(t) for name, t in times.items()}


def ceiling_phase(inproc, queries, sizes, rounds):
  """One batch-B call vs B single calls, alternated: median wall and CPU seconds of each
  (CPU: this process, TF's threads included)."""
  results = {}
  for size in sizes:
    batch = numpy_inputs(queries[:size])
    singles = [numpy_inputs([q]) for q in queries[:size]]
    for _ in range(3):
      inproc(batch)
      for s in singles:
        inproc(s)
    timings = {"batch": [], "singles": [], "batch_cpu": [], "singles_cpu": []}
    for r in range(rounds):
      for which in (("batch", "singles") if r % 2 == 0 else ("singles", "batch")):
        started, cpu = time.perf_counter(), time.process_time()
        if which == "batch":
          inproc(batch)
        else:
          for s in singles:
            inproc(s)
        timings[which].append(time.perf_counter() - started)
        timings[which + "_cpu"].append(time.process_time() - cpu)
    results[size] = {k: float(np.median(v)) for k, v in timings.items()}
  return results


# ------------------------------------------------------------------------ servable --

def measure(pool, kind, server, clients, args):
  """One load cell: pool.run's result plus the server's metric deltas over the cell."""
  before = server.metrics()
  if kind in H2LOAD_KINDS:
    result = pool.run_h2load(kind, server, clients, args.warmup, args.duration)
  else:
    result = pool.run(kind, server, clients, args.warmup, args.duration)
  after = server.metrics()
  result["server_metrics"] = {k: after.get(k, 0) - before.get(k, 0) for k in after}
  failed = int(result["server_metrics"].get("failed_requests", 0))
  if kind in H2LOAD_KINDS and failed:  # gRPC errors are trailers h2load does not read
    result["errors_total"] = max(result["errors_total"], failed)
    result["error_samples"].append(f"the server counted {failed} failed requests")
  return result


def build_servable(args, workdir):
  """Trains the synthetic CR model and exports it; (export dir, version dir, users,
  conditions)."""
  from tfcr.data.sources import DEFAULT_SYNTHETIC, DataSource  # pylint: disable=import-outside-toplevel
  from tfcr.data.synthetic import SyntheticConfig  # pylint: disable=import-outside-toplevel
  from tfcr.export.exporter import export_servable  # pylint: disable=import-outside-toplevel
  from tfcr.training.config import TrainConfig  # pylint: disable=import-outside-toplevel
  from tfcr.training.loop import train_and_evaluate  # pylint: disable=import-outside-toplevel
  from tfcr.training.model_dir import ModelDir  # pylint: disable=import-outside-toplevel
  model_dir = os.path.join(workdir, "model")
  export_dir = os.path.join(workdir, "export")
  config = TrainConfig(model_dir=model_dir, epochs=args.epochs, verbose=0)
  data = DataSource(dataset="synthetic", data_dir=os.path.join(workdir, "data"),
                    synthetic=SyntheticConfig(
                        n_users=args.users, n_items=args.items,
                        n_conditions=DEFAULT_SYNTHETIC.n_conditions,
                        n_interactions=args.interactions, seed=config.seed))
  started = time.perf_counter()
  train_and_evaluate(config, data)
  trained = time.perf_counter() - started
  path = export_servable(model_dir, export_dir, args.index, max_k=args.max_k)
  log(f"trained in {trained:.1f} s, exported {args.index} servable to {path} "
      f"in {time.perf_counter() - started - trained:.1f} s")
  vocabularies = ModelDir(model_dir).read_vocabularies()
  users = [str(u) for u in vocabularies.user_ids]
  conditions = [str(c) for c in vocabularies.conditions.vocabulary
                if not str(c).startswith("[")]  # not [OOV] / [NONE]
  return export_dir, path, users, conditions


# ------------------------------------------------------------------------ reporting --

def fmt(value, digits=1):
  if value is None or (isinstance(value, float) and np.isnan(value)):
    return "-"
  return f"{value:,.{digits}f}"


def print_table(header, rows):
  print("| " + " | ".join(header) + " |")
  print("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|")
  for row in rows:
    print("| " + " | ".join(str(c) for c in row) + " |")
  print()


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--index", choices=("scann", "brute_force"), default="scann")
  parser.add_argument("--users", type=int, default=5000)
  parser.add_argument("--items", type=int, default=20000)
  parser.add_argument("--interactions", type=int, default=100000)
  parser.add_argument("--epochs", type=int, default=1)
  parser.add_argument("--max_k", type=int, default=100,
                      help="export_servable's max_k: every reply has max_k columns")
  parser.add_argument("--clients", default="1,8,32", help="comma-separated client counts")
  parser.add_argument("--protocols", default="rest,rest_raw,grpc",
                      help="rest (httpx), rest_raw (minimal asyncio HTTP/1.1 client: "
                           "less client CPU), grpc, and rest_h2load, grpc_h2load (nghttp2's "
                           "h2load, a C client: next to no client CPU)")
  parser.add_argument("--batching", default="32:1000:1,64:2000:2",
                      help="comma-separated batching configurations "
                           "max_batch_size:batch_timeout_micros:num_batch_threads"
                           "[:max_enqueued_batches (default 100)]")
  parser.add_argument("--duration", type=float, default=10.0,
                      help="measured seconds per configuration")
  parser.add_argument("--warmup", type=float, default=2.0,
                      help="seconds of load before each measured window")
  parser.add_argument("--rounds", type=int, default=1,
                      help="repeat the load table (order reversed every other round); "
                           "medians are reported")
  parser.add_argument("--load_processes", type=int, default=2,
                      help="load-generator processes the clients are spread over")
  parser.add_argument("--no_floor", action="store_true",
                      help="skip the status-call rows (server cost without the model)")
  parser.add_argument("--latency_rounds", type=int, default=20,
                      help="rounds of the latency phase (18 measured calls per contender "
                           "each)")
  parser.add_argument("--ceiling_sizes", default="8,32,64")
  parser.add_argument("--ceiling_rounds", type=int, default=20)
  parser.add_argument("--suggestions", action="store_true",
                      help="also measure the first --batching configuration with "
                           "--grpc_max_threads=16 (the old default) against 64 (the default)")
  parser.add_argument("--suggestion_rounds", type=int, default=2)
  parser.add_argument("--soak_seconds", type=float, default=60.0, help="0 skips the soak")
  parser.add_argument("--soak_config", type=int, default=0,
                      help="index into --batching of the soak's server")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--keep_dir", action="store_true",
                      help="keep the temporary folder (model, export, server logs)")
  parser.add_argument("--json", default=None, help="write all results to this path")
  args = parser.parse_args()
  clients = [int(c) for c in args.clients.split(",")]
  protocols = [p.strip().lower() for p in args.protocols.split(",") if p.strip()]
  if not set(protocols) <= {"rest", "rest_raw", "grpc", "rest_h2load", "grpc_h2load"}:
    parser.error("--protocols: any of rest, rest_raw, grpc, rest_h2load, grpc_h2load")
  if set(protocols) & set(H2LOAD_KINDS):
    h2load_path()
  batchings = [parse_batching(s) for s in args.batching.split(",") if s]

  workdir = tempfile.mkdtemp(prefix="bench_server_")
  servers, pool = [], None
  results = {"args": vars(args), "machine": machine_description()}
  try:
    # Trained and exported in a child process: this one stays free of the training state.
    with concurrent.futures.ProcessPoolExecutor(
        1, mp_context=multiprocessing.get_context("spawn")) as executor:
      export_dir, version_path, users, conditions = executor.submit(
          build_servable, args, workdir).result()
    log(f"{len(users)} users, {len(conditions)} conditions ({conditions[0]}...)")
    queries = make_queries(users, conditions, 2000, args.seed)

    servers.append(ServerProcess("no batching", export_dir, workdir))
    for params in batchings:
      servers.append(ServerProcess(batching_label(params), export_dir, workdir, params))
    trials = []
    if args.suggestions and batchings:
      label = batching_label(batchings[0])
      # The persistent batch pool and 64 gRPC threads are built in now; this compares
      # the thread count against the old default of 16.
      trials = [ServerProcess(f"{label} +grpc16", export_dir, workdir, batchings[0],
                              flags=["--grpc_max_threads=16"])]
      servers += trials
    pool = LoadPool(args.load_processes, queries, args.seed + 1, workdir)
    for server in servers:
      server.wait_ready()
    log("servers ready: " + ", ".join(f"{s.label} (pid {s.pid}, RSS {rss_mb(s.pid):.0f} MB)"
                                      for s in servers))

    inproc = InProcess(version_path)
    # The server answers what the SavedModel answers in-process (sanity).
    import httpx  # pylint: disable=import-outside-toplevel
    for server in servers:
      for q in queries[:4]:
        expected = [x.decode() for x in inproc(numpy_inputs([q]))["item_ids"][0]]
        reply = httpx.post(server.predict_url, content=rest_body(q), timeout=60,
                           headers={"Content-Type": "application/json"})
        got = reply.json()["predictions"][0]["item_ids"]
        if got != expected:
          raise RuntimeError(f"{server.label}: REST and in-process disagree for {q}: "
                             f"{got[:K]} vs {expected[:K]}")
    log(f"sanity: REST == in-process on every server, e.g. {queries[0]} -> "
        f"{expected[:3]}...")

    # 4. Latency phase (overhead), then the in-process batching ceiling.
    log(f"latency phase: {args.latency_rounds} rounds")
    times = latency_phase(inproc, servers[0], queries, args.latency_rounds)
    results["latency"] = {name: {"p50_ms": float(np.median(t) * 1e3),
                                 "p90_ms": float(np.percentile(t, 90) * 1e3),
                                 "p99_ms": float(np.percentile(t, 99) * 1e3),
                                 "calls": len(t)}
                          for name, t in times.items()}
    sizes = [int(s) for s in args.ceiling_sizes.split(",") if s]
    log(f"batching ceiling in-process: sizes {sizes}")
    results["ceiling"] = {str(b): c for b, c in
                          ceiling_phase(inproc, queries, sizes, args.ceiling_rounds).items()}

    # 3. The load table: for each client count, every protocol against every server,
    # back to back; the order reversed every other round.
    main_servers = [s for s in servers if s not in trials]
    cells = [(n, kind, server) for n in clients for kind in protocols
             for server in main_servers]
    if not args.no_floor:
      cells += [(max(clients), kind, servers[0]) for kind in ("rest_status", "grpc_status")]
      if "grpc_h2load" in protocols:
        cells.append((max(clients), "grpc_status_h2load", servers[0]))
    runs = {}
    for r in range(args.rounds):
      for n, kind, server in (cells if r % 2 == 0 else cells[::-1]):
        result = measure(pool, kind, server, n, args)
        runs.setdefault((n, kind, server.label), []).append(result)
        c, per = result["cores"], result["cpu_ms_per_request"]
        log(f"round {r + 1} {KINDS[kind]:28} {server.label:18} {n:3} clients: "
            f"{result['throughput']:7.1f} req/s p50 {result['p50_ms']:6.2f} ms "
            f"p99 {result['p99_ms']:7.2f} ms errors {result['errors_total']} | server "
            f"{c['server']:.2f} cores ({per['server']:.2f} ms/req, loop {per['loop']:.2f}) "
            f"busiest thread {c['busiest_thread']:.2f}, load {c['load']:.2f} other "
            f"{c['other']:.2f} idle {c['idle']:.2f}"
            + (f" | mean batch {mean_batch(result):.1f}" if server.batching else ""))
        if result["error_samples"]:
          log(f"  errors: {result['error_samples']}")
    results["load"] = [summarize(key, rs) for key, rs in runs.items()]

    # 5b. Suggested fixes, side by side with the unpatched servers.
    if trials:
      compared = [servers[0], servers[1]] + trials
      cells = [(n, kind, server) for n in sorted({1, max(clients)})
               for kind in ("rest_raw", "grpc") for server in compared]
      runs = {}
      for r in range(args.suggestion_rounds):
        for n, kind, server in (cells if r % 2 == 0 else cells[::-1]):
          result = measure(pool, kind, server, n, args)
          runs.setdefault((n, kind, server.label), []).append(result)
          log(f"suggestions round {r + 1} {KINDS[kind]:18} {server.label:28} {n:3} clients: "
              f"{result['throughput']:7.1f} req/s p50 {result['p50_ms']:6.2f} ms, server "
              f"{result['cpu_ms_per_request']['server']:.2f} ms/req, other "
              f"{result['cores']['other']:.2f} cores"
              + (f", mean batch {mean_batch(result):.1f}" if server.batching else ""))
      results["suggestions"] = [summarize(key, rs) for key, rs in runs.items()]

    # 6. Soak.
    if args.soak_seconds > 0:
      server = servers[1 + args.soak_config] if batchings else servers[0]
      n = max(clients)
      log(f"soak: REST (httpx), {server.label}, {n} clients, {args.soak_seconds:.0f} s")
      result = pool.run("rest", server, n, max(args.warmup, 5.0), args.soak_seconds,
                        sampler=lambda: rss_mb(server.pid), sample_every=10.0)
      rss = [v for _, v in result["samples"]]
      result["rss_before_mb"], result["rss_after_mb"] = rss[0], rss[-1]
      result["rss_growth_pct"] = (rss[-1] - rss[0]) / rss[0] * 100
      results["soak"] = result
      log(f"soak: {result['throughput']:.1f} req/s, errors {result['errors_total']}, RSS "
          f"{rss[0]:.0f} -> {rss[-1]:.0f} MB ({result['rss_growth_pct']:+.1f}%)")
    results["final_rss_mb"] = {s.label: rss_mb(s.pid) for s in servers}
    report(results, main_servers, clients, protocols)
    if args.json:
      with open(args.json, "w") as f:
        json.dump(results, f, indent=1, default=_jsonable)
  finally:
    if pool is not None:
      pool.close()
    for server in servers:
      try:
        code = server.stop()
        if code not in (0, None):
          log(f"server {server.label} exited with {code}; log tail:\n{server.tail()}")
      except Exception as e:  # pylint: disable=broad-except
        log(f"stopping server {server.label}: {type(e).__name__}: {e}")
    if args.keep_dir:
      log(f"kept {workdir}")
    else:
      shutil.rmtree(workdir, ignore_errors=True)


def _jsonable(value):
  if isinstance(value, np.ndarray):
    return value.tolist()
  if isinstance(value, (np.floating, np.integer)):
    return value.item()
  return str(value)


def _metric(result, name):
  return result.get("server_metrics", {}).get(name, 0.0)


def mean_batch(result):
  count = _metric(result, ":tensorflow:serving:batching_session:processed_batch_size_count")
  return (_metric(result, ":tensorflow:serving:batching_session:processed_batch_size_sum")
          / count if count else float("nan"))


def mean_runtime_ms(result):
  """Mean wall time of one model call in the server (convert, call, .numpy())."""
  count = _metric(result, ":tensorflow:serving:runtime_latency_count")
  return (_metric(result, ":tensorflow:serving:runtime_latency_sum") / count / 1e3
          if count else float("nan"))


def summarize(key, rs):
  n, kind, label = key
  median = lambda f: float(np.median([f(r) for r in rs]))  # noqa: E731
  return {"clients": n, "kind": kind, "server": label,
          "throughput": median(lambda r: r["throughput"]),
          "p50_ms": median(lambda r: r["p50_ms"]), "p99_ms": median(lambda r: r["p99_ms"]),
          "errors": sum(r["errors_total"] for r in rs),
          "requests": sum(r["completed_total"] for r in rs),
          "rounds": [r["throughput"] for r in rs],
          "mean_batch": median(mean_batch), "runtime_ms": median(mean_runtime_ms),
          "server_ms": median(lambda r: r["cpu_ms_per_request"]["server"]),
          "loop_ms": median(lambda r: r["cpu_ms_per_request"]["loop"]),
          "load_ms": median(lambda r: r["cpu_ms_per_request"]["load"]),
          "server_cores": median(lambda r: r["cores"]["server"]),
          "load_cores": median(lambda r: r["cores"]["load"]),
          "other_cores": median(lambda r: r["cores"]["other"]),
          "busiest_thread_cores": median(lambda r: r["cores"]["busiest_thread"]),
          "idle_cores": median(lambda r: r["cores"]["idle"]),
          "error_samples": [e for r in rs for e in r["error_samples"]][:3]}


def report(results, servers, clients, protocols):
  m = results["machine"]
  print(f"\n## Results ({m['date']})\n\nMachine: {machine_line(m)}\n")
  lat = results["latency"]
  base = lat["in-process"]["p50_ms"]
  print("### Single-query latency, one call at a time (unbatched server)\n")
  rows = []
  for name, v in lat.items():
    over = f"{v['p50_ms'] - base:+.2f}" if name != "in-process" else ""
    rows.append([name, fmt(v["p50_ms"], 2), fmt(v["p90_ms"], 2), fmt(v["p99_ms"], 2), over])
  print_table(["call", "p50 ms", "p90 ms", "p99 ms", "p50 - in-process p50 (ms)"], rows)

  print("### In-process batching ceiling: one batch-B call vs B single calls\n")
  rows = []
  for b, c in results["ceiling"].items():
    rows.append([b, fmt(c["batch"] * 1e3, 2), fmt(c["singles"] * 1e3, 2),
                 fmt(c["batch"] * 1e3 / int(b), 3), fmt(c["singles"] / c["batch"], 2) + "x",
                 fmt(c["batch_cpu"] * 1e3 / int(b), 3), fmt(c["singles_cpu"] * 1e3 / int(b), 3),
                 fmt(c["singles_cpu"] / c["batch_cpu"], 2) + "x"])
  print_table(["B", "batch call ms", "B single calls ms", "ms/query batched", "speed-up",
               "CPU ms/query batched", "CPU ms/query single", "CPU speed-up"], rows)

  print("### Load: closed loop, single-query requests\n")
  by_key = {(r["clients"], r["kind"], r["server"]): r for r in results["load"]}
  rows = []
  for kind in protocols + ["rest_status", "grpc_status", "grpc_status_h2load"]:
    for n in clients:
      for server in servers:
        r = by_key.get((n, kind, server.label))
        if r is None:
          continue
        rows.append([KINDS[kind], server.label, n, fmt(r["throughput"]), fmt(r["p50_ms"], 2),
                     fmt(r["p99_ms"], 2), r["errors"],
                     fmt(r["mean_batch"]) if server.batching else "-",
                     fmt(r["runtime_ms"], 2), fmt(r["server_ms"], 2), fmt(r["loop_ms"], 2),
                     fmt(r["load_ms"], 2), fmt(r["server_cores"], 2),
                     fmt(r["busiest_thread_cores"], 2), fmt(r["other_cores"], 2),
                     fmt(r["idle_cores"], 2)])
  print_table(["client", "server", "clients", "req/s", "p50 ms", "p99 ms", "errors",
               "mean batch", "model call ms", "server CPU ms/req", "main thread CPU ms/req",
               "load-gen CPU ms/req", "server cores", "busiest server thread (cores)",
               "other jobs (cores)", "idle (cores)"], rows)

  n = max(clients)
  print(f"### Batching speed-up at {n} clients (req/s with batching / without)\n")
  rows = []
  for kind in protocols:
    unbatched = by_key.get((n, kind, servers[0].label))
    for server in servers[1:]:
      r = by_key.get((n, kind, server.label))
      if unbatched and r:
        rows.append([KINDS[kind], server.label,
                     fmt(r["throughput"] / unbatched["throughput"], 2) + "x",
                     fmt(unbatched["server_ms"] / r["server_ms"], 2) + "x"])
  print_table(["client", "batching", "speed-up (req/s)", "server CPU/req ratio"], rows)

  for kind in protocols:
    one = by_key.get((1, kind, servers[0].label))
    if one:
      print(f"{KINDS[kind]}: 1-client p50 in the load table - in-process p50 = "
            f"{one['p50_ms'] - base:.2f} ms")
  if "suggestions" in results:
    print("\n### gRPC thread count, 16 against the default 64 (--suggestions)\n")
    by_key = {(r["clients"], r["kind"], r["server"]): r for r in results["suggestions"]}
    labels = list(dict.fromkeys(r["server"] for r in results["suggestions"]))
    rows = []
    for kind in ("rest_raw", "grpc"):
      for n in sorted({r["clients"] for r in results["suggestions"]}):
        unbatched = by_key.get((n, kind, labels[0]))
        for label in labels:
          r = by_key.get((n, kind, label))
          if r is None:
            continue
          rows.append([KINDS[kind], label, n, fmt(r["throughput"]), fmt(r["p50_ms"], 2),
                       fmt(r["p99_ms"], 2), r["errors"],
                       fmt(r["mean_batch"]) if label != labels[0] else "-",
                       fmt(r["server_ms"], 2),
                       fmt(r["throughput"] / unbatched["throughput"], 2) + "x"])
    print_table(["client", "server", "clients", "req/s", "p50 ms", "p99 ms", "errors",
                 "mean batch", "server CPU ms/req", "req/s / no batching"], rows)
  if "soak" in results:
    s = results["soak"]
    print(f"\n### Soak\n\nREST (httpx), {s['server']}, {s['clients']} clients, "
          f"{results['args']['soak_seconds']:.0f} s: {s['throughput']:.1f} req/s, "
          f"p50 {s['p50_ms']:.2f} ms, p99 {s['p99_ms']:.2f} ms, errors {s['errors_total']} "
          f"of {s['completed_total']} requests; completed per 10 s {s['per_10s']}; server "
          f"RSS {s['rss_before_mb']:.0f} -> {s['rss_after_mb']:.0f} MB "
          f"({s['rss_growth_pct']:+.1f}%), samples every 10 s "
          f"{[round(v) for _, v in s['samples']]}")
  print("\nServer RSS at the end: " + ", ".join(f"{k} {v:.0f} MB"
                                                for k, v in results["final_rss_mb"].items()))


if __name__ == "__main__":
  main()
