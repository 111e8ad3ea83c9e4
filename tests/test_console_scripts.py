"""The installed console scripts document their own flags in --help."""

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
