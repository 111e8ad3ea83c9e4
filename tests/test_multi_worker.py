"""tfcr-train on a cluster of two worker processes on loopback (MultiWorkerMirroredStrategy,
TF_CONFIG, real gRPC collectives): the run ends, the chief alone writes the model dir and
exports, the metrics are those of one worker at the same global batch, and a worker
killed with SIGKILL mid-run and restarted (with the chief, which fails when its peer
goes, as a cluster's restart policy would) completes the run from the last checkpoint."""

import glob
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPOCHS = 4
TINY = ["--dataset=synthetic", "--synthetic_users=100", "--synthetic_items=120",
        "--synthetic_conditions=6", "--synthetic_interactions=3000", "--batch_size=128",
        "--embedding_dim=8", "--hidden_units=16", "--extra_negatives=16", f"--epochs={EPOCHS}",
        "--verbose=2"]
QUALITY = ("recall@100", "topic_match@100")


def free_ports(n):
  sockets = [socket.socket() for _ in range(n)]
  for s in sockets:
    s.bind(("127.0.0.1", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


class Cluster:
  """Two tfcr-train workers on loopback; each one's output goes to a log file of its
  own, its temp files to a TMPDIR of its own."""

  def __init__(self, tmp_path, *args):
    self.tmp_path, self.args = tmp_path, args
    self.addresses = [f"127.0.0.1:{p}" for p in free_ports(2)]
    self.processes = [None, None]
    self.starts = [0, 0]

  def log(self, index, start=None):
    start = self.starts[index] if start is None else start
    return self.tmp_path / f"worker{index}.{start}.log"

  def temp_dir(self, index):
    return self.tmp_path / f"tmp{index}"

  def start(self, index):
    self.starts[index] += 1
    self.temp_dir(index).mkdir(exist_ok=True)
    tf_config = {"cluster": {"worker": self.addresses},
                 "task": {"type": "worker", "index": index}}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_CONFIG": json.dumps(tf_config),
           "TMPDIR": str(self.temp_dir(index)), "PYTHONUNBUFFERED": "1"}
    with open(self.log(index), "w") as out:
      self.processes[index] = subprocess.Popen(
          [sys.executable, "-m", "trainer.train", *TINY, *self.args,
           "--distribution_strategy=multi_worker_mirrored"],
          cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)

  def wait(self, timeout, restart_failed=False, max_starts=3):
    """Waits for both to exit 0; with restart_failed, a worker that fails is started
    again (Kubernetes' restartPolicy: OnFailure)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
      codes = [p.poll() for p in self.processes]
      if codes == [0, 0]:
        return
      for index, code in enumerate(codes):
        if code not in (None, 0):
          if not restart_failed or self.starts[index] >= max_starts:
            raise AssertionError(f"worker {index} failed ({code}):\n{self.output(index)}")
          self.start(index)
      time.sleep(0.2)
    raise AssertionError(f"timed out:\n{self.output(0)}\n{self.output(1)}")

  def output(self, index, start=None):
    return self.log(index, start).read_text()

  def stop(self):
    for process in self.processes:
      if process is not None and process.poll() is None:
        process.kill()
        process.wait()


def last_epoch_loss(output):
  return float(re.findall(r" loss: ([0-9.]+)", output)[-1])


@pytest.fixture(scope="module")
def one_worker(tmp_path_factory):
  """The reference: one process, no strategy, the same flags and global batch."""
  tmp = tmp_path_factory.mktemp("one_worker")
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
  result = subprocess.run([sys.executable, "-m", "trainer.train", *TINY,
                           f"--model_dir={tmp / 'run'}", f"--data_dir={tmp / 'data'}"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
  assert result.returncode == 0, result.stderr[-3000:]
  metrics = json.loads((tmp / "run" / "metrics.json").read_text())
  return metrics, last_epoch_loss(result.stdout)


def test_two_workers_train_to_the_end_and_only_the_chief_writes(tmp_path, one_worker):
  model_dir, export_dir = tmp_path / "run", tmp_path / "export"
  cluster = Cluster(tmp_path, f"--model_dir={model_dir}", f"--data_dir={tmp_path / 'data'}",
                    f"--export_dir={export_dir}", "--export_index=brute_force")
  try:
    cluster.start(0)
    cluster.start(1)
    cluster.wait(timeout=240)
  finally:
    cluster.stop()
  chief_pid = cluster.processes[0].pid
  chief, worker = cluster.output(0), cluster.output(1)

  # Both trained every epoch; the chief alone evaluated and exported.
  for output in (chief, worker):
    assert f"Epoch {EPOCHS}/{EPOCHS}" in output
  assert "recall@100" in chief and "recall@100" not in worker
  assert "Exported brute_force servable" in chief and "Exported" not in worker
  assert sorted(os.listdir(export_dir)) == ["1"]

  # The model dir holds the chief's files only: its checkpoints, its TensorBoard events
  # (named after the writing process), and no worker's temp dir.
  files = sorted(os.path.relpath(p, model_dir)
                 for p in glob.glob(str(model_dir / "**"), recursive=True)
                 if os.path.isfile(p))
  assert {"config.json", "data.json", "vocabularies.npz", "metrics.json",
          f"checkpoints/ckpt-{EPOCHS}.index"} <= set(files)
  events = [f for f in files if "tfevents" in f]
  assert events and all(f.split(".")[-3] == str(chief_pid) for f in events), events
  assert not [f for f in files if "worker" in f or "temp" in f], files
  # The other worker wrote its share (checkpoints, events) to its own temp dir, and
  # removed it.
  assert os.listdir(cluster.temp_dir(1)) == []

  # Same global batches, same negatives: the metrics (and the loss) of one worker.
  metrics = json.loads((model_dir / "metrics.json").read_text())
  reference, reference_loss = one_worker
  for name in QUALITY:
    assert abs(metrics[name] - reference[name]) <= 0.02, (name, metrics, reference)
  assert last_epoch_loss(chief) == pytest.approx(reference_loss, rel=1e-3)


def test_a_worker_killed_mid_run_is_restarted_and_the_run_completes(tmp_path, one_worker):
  model_dir = tmp_path / "run"
  cluster = Cluster(tmp_path, f"--model_dir={model_dir}", f"--data_dir={tmp_path / 'data'}")
  first_checkpoint = model_dir / "checkpoints" / "ckpt-1.index"
  try:
    cluster.start(0)
    cluster.start(1)
    deadline = time.time() + 180
    while not first_checkpoint.exists():
      assert time.time() < deadline and None in [p.poll() for p in cluster.processes], (
          cluster.output(0))
      time.sleep(0.1)
    assert not (model_dir / "metrics.json").exists()  # killed mid-run
    os.kill(cluster.processes[1].pid, signal.SIGKILL)
    cluster.processes[1].wait()
    cluster.start(1)
    cluster.wait(timeout=240, restart_failed=True)
  finally:
    cluster.stop()

  restarted = cluster.output(1)
  resumed = re.search(r"Resuming from .*ckpt-(\d+) \(epoch (\d+)/", restarted)
  assert resumed, restarted
  assert 1 <= int(resumed.group(2)) < EPOCHS
  # The chief lost its peer, failed and was restarted: it resumed from the same
  # checkpoint, and only then finished.
  assert cluster.starts[0] == 2
  assert resumed.group(0) in cluster.output(0)
  assert "recall@100" not in cluster.output(0, start=1)
  metrics = json.loads((model_dir / "metrics.json").read_text())
  # The data of every epoch is a function of (seed, epoch): resuming trains the very
  # batches of an uninterrupted run, so it ends where one worker ends.
  reference, reference_loss = one_worker
  for name in QUALITY:
    assert abs(metrics[name] - reference[name]) <= 0.02, (name, metrics, reference)
  assert last_epoch_loss(cluster.output(0)) == pytest.approx(reference_loss, rel=1e-3)
