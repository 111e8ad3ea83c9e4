"""The demo end to end on small synthetic data: train, export, serve, query over REST,
summary, server stopped; a second run reuses the models and the export."""

import dataclasses
import io
import os
import re
import socket
import subprocess
import sys

import pytest

from tfcr import client
from tfcr.data.sources import DEFAULT_SYNTHETIC, DataSource
from tfcr.demo.tour import DemoConfig, run_demo
from tfcr.training.config import TrainConfig

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = ["--dataset=synthetic", "--synthetic_users=200", "--synthetic_items=300",
         "--synthetic_interactions=5000", "--epochs=2", "--batch_size=256"]


def _port_closed(port: int) -> bool:
  with socket.socket() as s:
    return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.slow  # two runs with a real model server (~40 s)
def test_demo_binary_then_reuse_in_process(tmp_path):
  workdir = tmp_path / "demo"
  run = subprocess.run(
      [sys.executable, "-m", "trainer.demo", f"--workdir={workdir}", *SMALL,
       "--users=u0001,u0002", "--k=4"],
      cwd=REPO, capture_output=True, text=True, timeout=600,
      env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
  out = run.stdout
  assert run.returncode == 0, out + run.stderr
  for piece in ["[1/6] Data", "synthetic: 200 users, 300 items, 5,000 interactions",
                "[2/6] Train CR", "[3/6] Train LR", "[4/6] Export CR as a scann servable",
                "AVAILABLE", "[6/6] Query it over REST", "=== User u0001", "=== User u0002",
                "user u0001, no condition, filter none: 4 items",
                "filter strict: 4 items", "items excluded: 4 items", "curl -d",
                "stopped, exit status 0", "topic_match@10", "LR"]:
    assert piece in out, piece
  assert "✓" in out
  assert sorted(os.listdir(workdir)) == ["cr", "export", "export.log", "lr", "server.log"]
  # The server is gone: its REST port no longer answers.
  port = int(re.search(r"REST http://127\.0\.0\.1:(\d+)", out).group(1))
  assert _port_closed(port)

  # Again, in process: nothing is trained or exported again.
  buffer = io.StringIO()
  # The binary's data: its --synthetic_* defaults but for the flags above, seeded by --seed.
  data = DataSource("synthetic", synthetic=dataclasses.replace(
      DEFAULT_SYNTHETIC, n_users=200, n_items=300, n_interactions=5000, seed=42))
  train = TrainConfig(epochs=2, batch_size=256, verbose=0)
  result = run_demo(DemoConfig(workdir=str(workdir), train=train, data=data,
                               users=["u0001"], conditions=["c03"], k=3), out=buffer)
  text = buffer.getvalue()
  assert "Reusing the trained model" in text and "Reusing the scann servable" in text
  assert "Epoch" not in text
  assert result["server_exit"] == 0
  assert set(result["metrics"]) == {"CR", "LR"}
  plain, unfiltered, strict, excluded = result["results"]
  assert [r.query.filter for r in result["results"]] == ["none", "none", "strict", "strict"]
  assert all(r.condition_match for r in strict.items) and len(strict.items) == 3
  assert not set(excluded.item_ids) & set(excluded.query.exclude)
  assert plain.query.condition == "" and unfiltered.query.condition == "c03"
  # The same queries on the export loaded in this process give the same answers.
  local = client.SavedModelClient(os.path.join(workdir, "export"))
  for answer in result["results"]:
    assert local.predict([answer.query])[0].item_ids == answer.item_ids
