"""Builds small real SavedModels and runs `python -m serving.server` on free ports."""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import httpx
import tensorflow as tf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class HalfPlusTwo(tf.Module):
  """y = a * x + b, plus classify/regress signatures over serialized Examples, and a
  deliberately slow signature (n loop iterations) for timeout tests."""

  def __init__(self, a=0.5, b=2.0):
    super().__init__()
    self.a = tf.Variable(a)
    self.b = tf.Variable(b)

  @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
  def predict(self, x):
    return {"y": self.a * x + self.b}

  def _from_examples(self, serialized):
    x = tf.io.parse_example(serialized, {"x": tf.io.FixedLenFeature([], tf.float32)})["x"]
    return self.a * x + self.b

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
  def regress(self, inputs):
    return {"outputs": self._from_examples(inputs)}

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
  def classify(self, inputs):
    y = self._from_examples(inputs)
    return {"scores": tf.stack([y, -y], axis=1),
            "classes": tf.tile(tf.constant([["pos", "neg"]]), [tf.shape(y)[0], 1])}

  @tf.function(input_signature=[tf.TensorSpec([None], tf.int32, name="n")])
  def slow(self, n):
    total = tf.while_loop(lambda i, s: i < n[0], lambda i, s: (i + 1, s + tf.sin(s)),
                          (tf.constant(0), tf.constant(1.0)))[1]
    return {"s": tf.fill(tf.shape(n), total)}


def save_half_plus_two(path, a=0.5, b=2.0):
  module = HalfPlusTwo(a, b)
  tf.saved_model.save(module, str(path), signatures={
      "serving_default": module.predict, "regress_x_to_y": module.regress,
      "classify_x_to_y": module.classify, "slow": module.slow})
  return str(path)


def free_port() -> int:
  with contextlib.closing(socket.socket()) as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


class Server:
  """A model server subprocess; `url(...)` for REST, `grpc_target` for gRPC."""

  def __init__(self, *args, log_path=None):
    self.rest_port, self.grpc_port = free_port(), free_port()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    self.log = open(log_path or os.devnull, "w")
    self.process = subprocess.Popen(
        [sys.executable, "-m", "serving.server", f"--port={self.grpc_port}",
         f"--rest_api_port={self.rest_port}", *args],
        cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT)
    self.grpc_target = f"127.0.0.1:{self.grpc_port}"
    self._wait_ready()

  def url(self, path: str) -> str:
    return f"http://127.0.0.1:{self.rest_port}{path}"

  def _wait_ready(self, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
      if self.process.poll() is not None:
        raise RuntimeError(f"server exited with {self.process.returncode}")
      try:
        httpx.get(self.url("/v1/models/__ready__"), timeout=1)
        return
      except httpx.TransportError:
        time.sleep(0.2)
    raise RuntimeError("server did not start")

  def stop(self, sig=signal.SIGTERM, timeout=60) -> int:
    if self.process.poll() is None:
      self.process.send_signal(sig)
      try:
        self.process.wait(timeout)
      except subprocess.TimeoutExpired:
        self.process.kill()
        self.process.wait()
    self.log.close()
    return self.process.returncode


def copy_version(source, base_path, version):
  """Publishes a version the way exporters should: staged, then renamed into place."""
  staging = os.path.join(base_path, f".tmp-{version}")
  shutil.copytree(source, staging)
  os.rename(staging, os.path.join(base_path, str(version)))
