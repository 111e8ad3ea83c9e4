"""tfcr-eval end to end on tiny synthetic data: outputs, their consistency, loading model
dirs instead of training, and one-line errors with exit code 2."""

import csv
import json
import os
import shutil
import subprocess
import sys

import pytest

from tfcr.comparison.pipeline import METHODS, ComparisonOptions, run_comparison
from tfcr.data.sources import DataSource
from tfcr.data.synthetic import SyntheticConfig
from tfcr.errors import ConfigError
from tfcr.training.config import TrainConfig

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--dataset=synthetic", "--synthetic_users=120", "--synthetic_items=300",
        "--synthetic_conditions=6", "--synthetic_interactions=3000", "--batch_size=256",
        "--embedding_dim=16", "--hidden_units=32", "--epochs=2"]
FAST = ["--index=brute_force", "--bootstrap_samples=200", "--latency_queries=20"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Every method's metrics, in results.csv's row order (INDEX has no servable latency).
METRICS = ["recall@10", "recall@50", "recall@100", "ndcg@100", "topic_match@10",
           "topic_match@100", "scanned_median", "scanned_p90", "latency_p50_ms",
           "latency_p99_ms", "coverage@100"]


def run_eval(*args, check=True):
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
  result = subprocess.run([sys.executable, "-m", "trainer.evaluate", *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=600)
  if check and result.returncode != 0:
    raise AssertionError(f"tfcr-eval failed ({result.returncode}):\n{result.stderr[-3000:]}")
  return result


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
  """One tfcr-eval run that trains both models: (output dir, data dir)."""
  root = tmp_path_factory.mktemp("eval")
  out, data = root / "out", root / "data"
  result = run_eval(*TINY, *FAST, f"--output_dir={out}", f"--data_dir={data}")
  assert "| CR+filter |" in result.stdout  # the report is printed too
  return out, data


def test_outputs_exist_and_agree(evaluated):
  out, _ = evaluated
  results = json.loads((out / "results.json").read_text())
  assert list(results["methods"]) == list(METHODS)
  assert results["num_queries"] == 240  # 120 users x 2 held out; every item has a topic
  assert results["num_skipped_queries"] == 0
  with open(out / "results.csv", newline="") as f:
    rows = list(csv.DictReader(f))
  assert [(r["method"], r["metric"]) for r in rows] == [
      (method, metric) for method in METHODS for metric in METRICS]
  for row in rows:
    if row["method"] == "INDEX" and row["metric"].startswith("latency"):
      assert row["value"] == row["ci_low"] == row["ci_high"] == ""
      continue
    value, low, high = (float(row[f]) for f in ("value", "ci_low", "ci_high"))
    assert low <= value + 1e-12 and value <= high + 1e-12, row
  csv_values = {(r["method"], r["metric"]): r["value"] for r in rows}
  # The CSV against numbers computed apart from the comparison: tfcr-train's exact
  # evaluation of each model (metrics.json), and what a strict filter guarantees.
  exact = {m: json.loads((out / "models" / m / "metrics.json").read_text())
           for m in ("cr", "lr")}
  for method, model in (("CR", "cr"), ("LR", "lr")):
    for k in (10, 50, 100):
      assert float(csv_values[method, f"recall@{k}"]) == pytest.approx(
          exact[model][f"recall@{k}"], abs=0.005), (method, k)
  assert float(csv_values["LR+filter", "recall@100"]) == pytest.approx(
      exact["lr"]["filtered_recall@100"], abs=0.005)
  for method in ("INDEX", "LR+filter", "CR+filter"):
    assert float(csv_values[method, "topic_match@100"]) == 1.0
  markdown = (out / "results.md").read_text()
  for method in METHODS:
    assert markdown.count(f"| {method} |") == 2  # quality and cost tables
  recall_cell = results["methods"]["CR"]["recall@100"]
  assert f"{recall_cell['value']:.3f} [{recall_cell['ci_low']:.3f}" in markdown
  import matplotlib.image  # pylint: disable=g-import-not-at-top
  for name in ("topic_match_vs_k.png", "recall_vs_k.png", "num_scanned.png"):
    data = (out / name).read_bytes()
    assert data.startswith(PNG_MAGIC), name
    image = matplotlib.image.imread(out / name)
    assert image.shape[0] > 100 and image.shape[1] > 100
    assert f"]({name})" in markdown


def test_metrics_are_consistent(evaluated):
  out, _ = evaluated
  results = json.loads((out / "results.json").read_text())
  methods = results["methods"]
  for method in ("INDEX", "LR+filter", "CR+filter"):  # only on-condition items returned
    assert methods[method]["topic_match@100"]["value"] == 1.0
  for method in METHODS:
    values = methods[method]
    assert (values["recall@10"]["value"] <= values["recall@50"]["value"]
            <= values["recall@100"]["value"])
    assert 0 <= values["ndcg@100"]["value"] <= values["recall@100"]["value"]
    assert values["scanned_median"]["value"] <= values["scanned_p90"]["value"]
    assert 0 < values["coverage@100"]["value"] <= 1
    curve = results["curves"]["recall"][method]
    assert curve["10"]["value"] == values["recall@10"]["value"]
    assert len(results["scanned_per_query"][method]) == results["num_queries"]
  # The filter can only add candidates to scan.
  assert methods["LR+filter"]["scanned_median"]["value"] >= methods["LR"]["scanned_median"][
      "value"]
  # Brute-force servables with the training items excluded answer as the exact in-memory
  # evaluation of tfcr-train (metrics.json) does: same queries, same protocol.
  exact = {m: json.loads((out / "models" / m / "metrics.json").read_text())
           for m in ("cr", "lr")}
  for k in (10, 50, 100):
    assert methods["CR"][f"recall@{k}"]["value"] == pytest.approx(exact["cr"][f"recall@{k}"],
                                                                  abs=0.005)
    assert methods["LR"][f"recall@{k}"]["value"] == pytest.approx(exact["lr"][f"recall@{k}"],
                                                                  abs=0.005)
  assert methods["CR"]["topic_match@100"]["value"] == pytest.approx(
      exact["cr"]["topic_match@100"], abs=0.005)
  assert methods["LR+filter"]["recall@100"]["value"] == pytest.approx(
      exact["lr"]["filtered_recall@100"], abs=0.005)
  names = {row["name"] for row in results["comparisons"]}
  assert "scanned median: CR+filter / LR+filter" in names
  ratio = next(r for r in results["comparisons"] if r["name"].startswith("scanned median"))
  assert ratio["value"] == pytest.approx(methods["CR+filter"]["scanned_median"]["value"]
                                         / methods["LR+filter"]["scanned_median"]["value"])


def test_loading_model_dirs_gives_the_same_results(evaluated, tmp_path):
  out, data = evaluated
  models = out / "models"
  run_eval(f"--model_dirs={models / 'lr'},{models / 'cr'}", f"--data_dir={data}", *FAST,
           "--latency_queries=0", f"--output_dir={tmp_path / 'again'}")
  first = json.loads((out / "results.json").read_text())
  again = json.loads((tmp_path / "again" / "results.json").read_text())
  assert again["models"]["cr"]["model_dir"] == str(models / "cr")
  for method in METHODS:
    for metric, interval in first["methods"][method].items():
      if metric.startswith("latency"):
        assert again["methods"][method][metric] is None  # --latency_queries=0
      else:
        assert again["methods"][method][metric] == interval, (method, metric)
  assert not (tmp_path / "again" / "models").exists()  # nothing was trained


def _options(tmp_path, train=None, **kwargs):
  kwargs.setdefault("data", DataSource(
      "synthetic", data_dir=str(tmp_path / "data"),
      synthetic=SyntheticConfig(n_users=40, n_items=50, n_interactions=400, seed=42)))
  return ComparisonOptions(train=TrainConfig(model_dir="unused", **(train or {})),
                           output_dir=str(tmp_path / "out"), **kwargs)


def test_library_errors_before_writing_anything(tmp_path, evaluated):
  out, _ = evaluated
  cases = [
      (_options(tmp_path, train={"condition_feature": "mood"}), "condition_feature='mood'"),
      (_options(tmp_path, index="faiss"), "index='faiss'"),
      (_options(tmp_path, bootstrap_samples=0), "bootstrap_samples"),
      (_options(tmp_path, cr_model_dir=str(tmp_path / "nowhere")), "does not exist"),
      (_options(tmp_path, cr_model_dir=str(out / "models" / "lr")), "holds a LR model"),
      # The given data (40 users, 50 items) is not what the run was trained on.
      (_options(tmp_path, cr_model_dir=str(out / "models" / "cr")),
       "was trained on other data (num_users 120 vs 40; num_items 300 vs 50;"),
      # No data given: the run's recorded data, but not its settings.
      (_options(tmp_path, data=None, cr_model_dir=str(out / "models" / "cr"),
                train={"seed": 7}, explicit_fields=("seed",)), "seed=7 vs 42"),
  ]
  for options, message in cases:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
      run_comparison(options)
  assert not (tmp_path / "out").exists()


def test_model_dirs_trained_differently_are_refused(evaluated, tmp_path):
  out, data = evaluated
  other = tmp_path / "lr-seed-7"
  shutil.copytree(out / "models" / "lr", other)
  config = json.loads((other / "config.json").read_text())
  config["seed"] = 7
  (other / "config.json").write_text(json.dumps(config))
  result = run_eval(f"--cr_model_dir={out / 'models' / 'cr'}", f"--lr_model_dir={other}",
                    f"--data_dir={data}", f"--output_dir={tmp_path / 'x'}", check=False)
  assert result.returncode == 2
  lines = result.stderr.strip().splitlines()
  assert lines[-1].startswith("tfcr-eval: error: The CR and LR runs differ")
  assert "seed: 42 vs 7" in lines[-1]
  assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("args,message", [
    (["--index=faiss"], "flag --index=faiss"),
    ([], "--output_dir"),
    (["--output_dir=/tmp/x", "--model_dirs=/nonexistent/run"], "holds no trained model"),
    (["--output_dir=/tmp/x", "stray"], "unexpected arguments: stray"),
])
def test_bad_flags_are_one_line_with_exit_code_2(args, message):
  result = run_eval(*args, check=False)
  assert result.returncode == 2, result.stderr
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith("tfcr-eval: error:") and message in last, last
