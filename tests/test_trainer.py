"""The trainer binary end to end: outputs, flags, resume after a kill, bad input."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--dataset=synthetic", "--synthetic_users=60", "--synthetic_items=80",
        "--synthetic_conditions=6", "--synthetic_interactions=1500", "--batch_size=64",
        "--embedding_dim=8", "--hidden_units=16"]
METRIC_KEYS = {"recall@10", "recall@50", "recall@100", "topic_match@10", "topic_match@100",
               "filtered_recall@100", "num_test_queries", "train_seconds",
               "examples_per_second"}
FINGERPRINT_KEYS = {"name", "num_users", "num_items", "num_interactions", "user_ids_sha256",
                    "item_ids_sha256", "interactions_sha256", "source"}


def run_trainer(*args, check=True, timeout=300):
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
  result = subprocess.run([sys.executable, "-m", "trainer.train", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)
  if check and result.returncode != 0:
    raise AssertionError(f"trainer failed ({result.returncode}):\n{result.stderr[-3000:]}")
  return result


def test_one_epoch_end_to_end(tmp_path):
  model_dir = tmp_path / "run"
  result = run_trainer(*TINY, "--epochs=1", f"--model_dir={model_dir}",
                       f"--data_dir={tmp_path / 'data'}")
  metrics = json.loads((model_dir / "metrics.json").read_text())
  assert METRIC_KEYS <= set(metrics)
  assert all(isinstance(v, (int, float)) for v in metrics.values())  # flat
  assert 0 <= metrics["recall@10"] <= metrics["recall@50"] <= metrics["recall@100"] <= 1
  assert metrics["num_test_queries"] == 120  # 60 users x 2 held out
  assert metrics["examples_per_second"] > 0
  config = json.loads((model_dir / "config.json").read_text())
  assert config["model"] == "cr" and config["condition_feature"] == "topics"
  assert config["epochs"] == 1 and config["hidden_units"] == [16]
  assert os.listdir(model_dir / "logs")  # TensorBoard
  assert any(name.startswith("ckpt-1") for name in os.listdir(model_dir / "checkpoints"))
  assert "recall@100" in result.stdout  # the table is printed
  # config.json holds the training settings only; data.json the data's fingerprint.
  assert not {"dataset", "data_dir", "synthetic_items", "export_dir"} & set(config)
  data = json.loads((model_dir / "data.json").read_text())
  assert set(data) == FINGERPRINT_KEYS
  assert data["name"] == "synthetic"
  assert (data["num_users"], data["num_items"], data["num_interactions"]) == (60, 80, 1500)
  for key in ("user_ids_sha256", "item_ids_sha256", "interactions_sha256"):
    assert re.fullmatch(r"[0-9a-f]{64}", data[key]), key
  assert len({data["user_ids_sha256"], data["item_ids_sha256"],
              data["interactions_sha256"]}) == 3
  source = data["source"]
  assert source["dataset"] == "synthetic"
  assert source["data_dir"] == str(tmp_path / "data")
  assert {k: source["synthetic"][k] for k in ("n_users", "n_items", "n_conditions",
                                               "n_interactions", "seed")} == {
      "n_users": 60, "n_items": 80, "n_conditions": 6, "n_interactions": 1500, "seed": 42}


def test_flagfile_and_lr_model(tmp_path):
  flagfile = tmp_path / "run.flags"
  flagfile.write_text("\n".join(TINY + ["--epochs=1", "--model=lr",
                                        f"--model_dir={tmp_path / 'lr'}"]))
  run_trainer(f"--flagfile={flagfile}")
  config = json.loads((tmp_path / "lr" / "config.json").read_text())
  assert config["model"] == "lr"
  data = json.loads((tmp_path / "lr" / "data.json").read_text())
  assert data["num_items"] == 80 and data["source"]["synthetic"]["n_items"] == 80


def test_helpfull_documents_the_flags():
  result = run_trainer("--helpfull", check=False)  # absl exits 1 after printing help
  for flag in ("--dataset", "--data_dir", "--model", "--condition_feature",
               "--embedding_dim", "--epochs", "--batch_size", "--learning_rate", "--seed",
               "--model_dir", "--min_rating"):
    assert flag in result.stdout, flag


def test_resume_after_kill_continues_from_last_checkpoint(tmp_path):
  model_dir = tmp_path / "run"
  args = TINY[:-3] + ["--synthetic_interactions=40000", "--batch_size=32", "--epochs=6",
                      "--embedding_dim=8", "--hidden_units=16", f"--model_dir={model_dir}"]
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
  proc = subprocess.Popen([sys.executable, "-m", "trainer.train", *args], cwd=REPO, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  checkpoints = model_dir / "checkpoints"
  deadline = time.time() + 240
  while time.time() < deadline and proc.poll() is None:
    # The state file names the newest *complete* checkpoint (ckpt-2.index alone may
    # belong to one still being written, and a resume rightly ignores that).
    state = checkpoints / "checkpoint"
    if state.exists() and re.search(r'^model_checkpoint_path: "ckpt-([2-9]|\d\d)"',
                                    state.read_text(), re.M):
      break
    time.sleep(0.05)
  assert proc.poll() is None, "training finished before it could be interrupted"
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert not (model_dir / "metrics.json").exists()

  result = run_trainer(*args)
  resumed_from = int(result.stdout.split("(epoch ")[1].split("/")[0])
  assert 2 <= resumed_from < 6
  assert f"Epoch {resumed_from + 1}/6" in result.stdout
  assert "Epoch 1/6" not in result.stdout
  metrics = json.loads((model_dir / "metrics.json").read_text())
  assert metrics["num_test_queries"] == 120

  # A finished run re-run just re-evaluates: no epochs trained, same metrics.
  again = run_trainer(*args)
  assert "Epoch" not in again.stdout.replace("(epoch", "")
  assert json.loads((model_dir / "metrics.json").read_text())["recall@10"] == \
      metrics["recall@10"]


def assert_user_error(result, message=""):
  """One line on stderr, "tfcr-train: error: ...MESSAGE...", exit code 2, no traceback."""
  assert result.returncode == 2, result.stderr[-2000:]
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1, result.stderr[-2000:]
  assert lines[0].startswith("tfcr-train: error: ") and message in lines[0], lines[0]
  assert "Traceback" not in result.stderr


@pytest.mark.parametrize("flags, message", [
    (["--dataset=netflix"], "Unknown dataset='netflix'; valid values: movielens-100k"),
    (["--dataset=tfds:foo/bar"], "movielens/*-ratings"),  # fails before any download
    # The catalog's own features, then those that can be derived from it.
    (["--condition_feature=colour"], "Unknown condition_feature='colour'; valid values: "
                                     "topics, decade."),
    (["--epochs=0"], "epochs must be a positive integer"),
    (["--batch_size=100000"], "batch_size=100000 is larger than the 1380 training"),
    (["--synthetic_users=0"], "n_users"),
    (["--min_rating=6"], "min_rating=6"),  # synthetic ratings are 1..5: nothing is left
    (["--test_per_user=1000"], "the test split is empty"),  # no user has > 1000
    (["--epochs=abc"], "--epochs"),  # absl's parse error
    (["stray"], "unexpected arguments: stray"),
])
def test_bad_input_is_one_line_and_leaves_nothing(tmp_path, flags, message):
  model_dir = tmp_path / "run"
  result = run_trainer(*TINY, *flags, f"--model_dir={model_dir}", check=False)
  assert_user_error(result, message)
  assert not model_dir.exists()


def test_unwritable_model_dir(tmp_path):
  blocker = tmp_path / "file"
  blocker.write_text("not a directory")
  result = run_trainer(*TINY, f"--model_dir={blocker}/run", check=False)
  assert_user_error(result, "is not writable")


def test_resume_with_different_settings_is_refused(tmp_path):
  model_dir = tmp_path / "run"
  run_trainer(*TINY, "--epochs=1", f"--model_dir={model_dir}")
  result = run_trainer(*TINY, "--epochs=1", "--learning_rate=0.5",
                       f"--model_dir={model_dir}", check=False)
  assert_user_error(result, "learning_rate")
  # The refused run changed nothing: the recorded settings are the first run's.
  assert json.loads((model_dir / "config.json").read_text())["learning_rate"] == 0.01


def test_resume_with_different_data_is_refused(tmp_path):
  model_dir = tmp_path / "run"
  run_trainer(*TINY, "--epochs=1", f"--model_dir={model_dir}")
  before = (model_dir / "data.json").read_text()
  other = [a for a in TINY if not a.startswith("--synthetic_items=")] + [
      "--synthetic_items=100"]
  result = run_trainer(*other, "--epochs=1", f"--model_dir={model_dir}", check=False)
  assert_user_error(result, "was trained on other data")
  assert "num_items 80 vs 100" in result.stderr
  assert (model_dir / "data.json").read_text() == before


def test_missing_movielens_data_is_one_line(tmp_path):
  """No way to fetch the files (pip offline, nothing cached): a clear error, no model dir."""
  empty = tmp_path / "no-wheels"
  empty.mkdir()
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PIP_NO_INDEX": "1",
         "PIP_CONFIG_FILE": os.devnull, "PIP_FIND_LINKS": str(empty)}
  model_dir = tmp_path / "run"
  result = subprocess.run([sys.executable, "-m", "trainer.train", "--dataset=movielens-100k",
                           f"--data_dir={tmp_path / 'data'}", f"--model_dir={model_dir}"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert_user_error(result, "MovieLens-100k")
  assert "ml-100k.inter" in result.stderr
  assert not model_dir.exists()


def test_export_binary_and_trainer_export_dir(tmp_path):
  model_dir, export_dir = tmp_path / "run", tmp_path / "exports"
  run_trainer(*TINY, "--epochs=1", f"--model_dir={model_dir}", f"--export_dir={export_dir}",
              "--export_index=brute_force")
  assert (export_dir / "1" / "saved_model.pb").exists()
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
  result = subprocess.run([sys.executable, "-m", "serving.export", f"--model_dir={model_dir}",
                           f"--export_dir={export_dir}", "--index=scann", "--max_k=20"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  assert f"{export_dir}/2" in result.stdout
  assert sorted(os.listdir(export_dir)) == ["1", "2"]
  # The ScaNN export reports the leaves it chose and the recall they reached.
  tuned = re.search(r"ScaNN searches (\d+) of (\d+) leaves per query: recall@10 ([\d.]+) "
                    r"\(every leaf: ([\d.]+)\), recall@20 ([\d.]+) \(every leaf: ([\d.]+)\) "
                    r"against exact search on 1000 sample queries of the model "
                    r"\(target: 0.97 of every leaf's\)", result.stdout)
  assert tuned, result.stdout
  leaves, num_leaves, r10, c10, r20, c20 = tuned.groups()
  assert 1 <= int(leaves) <= int(num_leaves)
  assert float(r10) >= 0.97 * float(c10) - 1e-3 and float(r20) >= 0.97 * float(c20) - 1e-3
  out_of_range = subprocess.run(
      [sys.executable, "-m", "serving.export", f"--model_dir={model_dir}",
       f"--export_dir={export_dir}", "--scann_recall_target=1.5"], cwd=REPO, env=env,
      capture_output=True, text=True, timeout=300)
  assert out_of_range.returncode == 2
  assert out_of_range.stderr.strip().splitlines() == [
      "export: error: recall_target must be in (0, 1], got 1.5."]
  bad = subprocess.run([sys.executable, "-m", "serving.export", f"--model_dir={tmp_path}",
                        f"--export_dir={export_dir}"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=300)
  assert bad.returncode == 2
  lines = bad.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("export: error: model_dir=")
  assert "holds no trained model" in lines[0]
  assert "Traceback" not in bad.stderr
