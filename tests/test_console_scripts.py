"""The installed console scripts document their own flags in --help and refuse stray
arguments as a one-line usage error."""

import os
import subprocess
import sys

import pytest

_BIN = os.path.dirname(sys.executable)


@pytest.mark.parametrize("script, flag", [
    ("tfcr-train", "--model_dir"), ("tfcr-export", "--export_dir"),
    ("tfcr-serve", "--model_base_path"), ("tfcr-eval", "--output_dir"),
    # Shared training flags (trainer/training_flags.py), adopted by both binaries.
    ("tfcr-train", "--synthetic_items"), ("tfcr-eval", "--hidden_units"),
])
def test_help_lists_the_binary_flags(script, flag):
  path = os.path.join(_BIN, script)
  if not os.path.exists(path):
    pytest.fail(f"{script} is not installed next to {sys.executable}: pip install -e .")
  result = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=300)
  # absl exits with status 1 after --help.
  assert f"  {flag}:" in result.stdout, result.stdout[-2000:]


@pytest.mark.parametrize("script, program, required", [
    ("tfcr-train", "tfcr-train", ["--model_dir={tmp}/run"]),
    ("tfcr-eval", "tfcr-eval", ["--output_dir={tmp}/out"]),
    ("tfcr-export", "export", ["--model_dir={tmp}/run", "--export_dir={tmp}/exports"]),
])
def test_stray_arguments_are_a_one_line_usage_error(tmp_path, script, program, required):
  path = os.path.join(_BIN, script)
  if not os.path.exists(path):
    pytest.fail(f"{script} is not installed next to {sys.executable}: pip install -e .")
  args = [a.format(tmp=tmp_path) for a in required]
  result = subprocess.run([path, *args, "stray", "words"], capture_output=True, text=True,
                          timeout=300)
  assert result.returncode == 2, result.stderr[-2000:]
  assert result.stderr.strip().splitlines() == [
      f"{program}: error: unexpected arguments: stray words (flags only; see --helpfull)."]
  assert os.listdir(tmp_path) == []  # nothing written
