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


def test_flagfile_and_lr_model(tmp_path):
  flagfile = tmp_path / "run.flags"
  flagfile.write_text("\n".join(TINY + ["--epochs=1", "--model=lr",
                                        f"--model_dir={tmp_path / 'lr'}"]))
  run_trainer(f"--flagfile={flagfile}")
  config = json.loads((tmp_path / "lr" / "config.json").read_text())
  assert config["model"] == "lr" and config["synthetic_items"] == 80


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


@pytest.mark.parametrize("flags, message", [
    (["--dataset=netflix"], "Unknown --dataset='netflix'; valid values: movielens-100k"),
    (["--condition_feature=colour"], "Unknown --condition_feature='colour'; valid values: "
                                     "decade, topics"),
    (["--epochs=0"], "--epochs must be a positive integer"),
    (["--batch_size=100000"], "--batch_size=100000 is larger than the 1380 training"),
    (["--synthetic_users=0"], "n_users"),
])
def test_bad_input_is_one_line_and_leaves_nothing(tmp_path, flags, message):
  model_dir = tmp_path / "run"
  result = run_trainer(*TINY, *flags, f"--model_dir={model_dir}", check=False)
  assert result.returncode != 0
  lines = result.stderr.strip().splitlines()
  assert message in lines[-1], result.stderr[-2000:]
  assert "Traceback" not in result.stderr
  assert not model_dir.exists()


def test_unwritable_model_dir(tmp_path):
  blocker = tmp_path / "file"
  blocker.write_text("not a directory")
  result = run_trainer(*TINY, f"--model_dir={blocker}/run", check=False)
  assert result.returncode != 0
  assert "is not writable" in result.stderr.strip().splitlines()[-1]
  assert "Traceback" not in result.stderr


def test_resume_with_different_settings_is_refused(tmp_path):
  model_dir = tmp_path / "run"
  run_trainer(*TINY, "--epochs=1", f"--model_dir={model_dir}")
  result = run_trainer(*TINY, "--epochs=1", "--learning_rate=0.5",
                       f"--model_dir={model_dir}", check=False)
  assert result.returncode != 0
  assert "learning_rate" in result.stderr.strip().splitlines()[-1]


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
  assert result.returncode != 0
  last = result.stderr.strip().splitlines()[-1]
  assert "MovieLens-100k" in last and "ml-100k.inter" in last, result.stderr[-2000:]
  assert "Traceback" not in result.stderr
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
  assert "--scann_recall_target must be in (0, 1]" in out_of_range.stderr
  assert "Traceback" not in out_of_range.stderr
  bad = subprocess.run([sys.executable, "-m", "serving.export", f"--model_dir={tmp_path}",
                        f"--export_dir={export_dir}"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=300)
  assert bad.returncode != 0
  assert "holds no trained model" in bad.stderr.strip().splitlines()[-1]
  assert "Traceback" not in bad.stderr
