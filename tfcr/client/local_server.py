"""Runs the model server (`python -m serving.server`) as a child process on localhost.

    with LocalModelServer("exports/cr", model_name="cr") as server:
        server.client.recommend("196", "Comedy", k=5, filter="strict")
        server.rest_url     # http://127.0.0.1:<port>, for requests/curl
        server.grpc_target  # 127.0.0.1:<port>, for the tensorflow-serving-api stubs

Ports are free ones chosen at start unless given. `stop()` sends SIGTERM (the server
finishes in-flight requests, then exits 0) and kills it only if it does not exit in time;
leaving the `with` block, an exception or Ctrl-C included, always stops it.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Optional, Sequence

import requests

from tfcr.client.query import ServingError
from tfcr.client.rest import RestClient


class ServerError(RuntimeError):
  """The server exited or never became ready; the message carries its log's tail."""


def free_port(host: str = "127.0.0.1") -> int:
  with contextlib.closing(socket.socket()) as s:
    s.bind((host, 0))
    return s.getsockname()[1]


def _tail(path: str, lines: int = 15) -> str:
  if not os.path.exists(path):
    return ""
  with open(path, errors="replace") as f:
    return "".join(f.readlines()[-lines:])


class LocalModelServer:
  """One model served from `model_base_path` (a folder of numeric version folders).

  log_path: where the server's output goes (default: a file in the temp dir); its tail
  is reported when the server fails. extra_args: more `tfcr-serve` flags.
  """

  def __init__(self, model_base_path: str, model_name: str = "tfcr",
               rest_port: int = 0, grpc_port: int = 0, host: str = "127.0.0.1",
               log_path: Optional[str] = None, extra_args: Sequence[str] = ()):
    self.model_base_path = os.path.abspath(os.path.expanduser(model_base_path))
    self.model_name = model_name
    self.host = host
    self.rest_port = rest_port or free_port(host)
    self.grpc_port = grpc_port or free_port(host)
    self.log_path = log_path or os.path.join(
        tempfile.gettempdir(), f"tfcr-serve-{model_name}-{self.rest_port}.log")
    self.extra_args = list(extra_args)
    self.process: Optional[subprocess.Popen] = None
    self.client = RestClient(self.rest_url, model_name)

  @property
  def rest_url(self) -> str:
    return f"http://{self.host}:{self.rest_port}"

  @property
  def grpc_target(self) -> str:
    return f"{self.host}:{self.grpc_port}"

  @property
  def command(self) -> list:
    return [sys.executable, "-m", "serving.server", f"--host={self.host}",
            f"--port={self.grpc_port}", f"--rest_api_port={self.rest_port}",
            f"--model_name={self.model_name}",
            f"--model_base_path={self.model_base_path}", *self.extra_args]

  def start(self, timeout: float = 300.0) -> "LocalModelServer":
    """Starts the server and waits until a version of the model is AVAILABLE."""
    if self.process is not None and self.process.poll() is None:
      return self
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with open(self.log_path, "w") as log:  # the child keeps its own descriptor
      self.process = subprocess.Popen(self.command, env=env, stdout=log,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
      self.wait_until_available(timeout)
    except BaseException:
      self.stop()
      raise
    return self

  def wait_until_available(self, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
      if self.process.poll() is not None:
        raise ServerError(f"the model server exited with status {self.process.returncode}"
                          f" before serving {self.model_name}.\n{_tail(self.log_path)}")
      try:
        versions = self.client.status().get("model_version_status", [])
      except (ServingError, requests.RequestException):
        versions = []
      if any(v.get("state") == "AVAILABLE" for v in versions):
        return
      failed = [v for v in versions if v.get("state") == "END"
                and v.get("status", {}).get("error_message")]
      if failed and len(failed) == len(versions):
        raise ServerError(f"{self.model_name} version {failed[0]['version']} failed to load: "
                          f"{failed[0]['status']['error_message']}")
      time.sleep(0.5)
    raise ServerError(f"{self.model_name} was not AVAILABLE after {timeout:.0f} s.\n"
                      f"{_tail(self.log_path)}")

  @property
  def running(self) -> bool:
    return self.process is not None and self.process.poll() is None

  def stop(self, timeout: float = 60.0) -> Optional[int]:
    """SIGTERM, wait up to `timeout` s (then SIGKILL); returns the exit status."""
    if self.process is None:
      return None
    if self.process.poll() is None:
      self.process.send_signal(signal.SIGTERM)
      try:
        self.process.wait(timeout)
      except subprocess.TimeoutExpired:
        self.process.kill()
        self.process.wait()
    return self.process.returncode

  def __enter__(self) -> "LocalModelServer":
    return self.start()

  def __exit__(self, *exc_info) -> None:
    self.stop()
