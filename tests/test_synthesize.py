"""`python -m trainer.synthesize`: the synthetic data set as files, read back by the
files source equal to the generator's in-memory data."""

import os
import subprocess
import sys

import numpy as np
import pytest

from tfcr.data import synthetic
from tfcr.data.files import FileTables, load_files

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _synthesize(*args):
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
  return subprocess.run([sys.executable, "-m", "trainer.synthesize", *args], cwd=REPO,
                        env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("file_format", ["parquet", "csv"])
def test_written_tables_read_back_as_the_generated_data(tmp_path, file_format):
  out = tmp_path / "synth"
  result = _synthesize(f"--output_dir={out}", "--num_users=50", "--num_items=70",
                       "--num_interactions=900", "--shard_rows=400", "--seed=3",
                       f"--format={file_format}")
  assert result.returncode == 0, result.stderr[-2000:]
  shards = sorted(os.listdir(out / "interactions"))
  assert shards == [f"part-0000{i}.{file_format}" for i in range(3)]  # 400 + 400 + 100
  expected = synthetic.generate(n_users=50, n_items=70, n_conditions=20,
                                n_interactions=900, seed=3)
  got = load_files(FileTables(str(out / "interactions"), str(out / f"items.{file_format}"),
                              str(out / f"users.{file_format}"), rating_column="rating"))
  for table, ids, index in (("users", "user_id", "user_index"),
                            ("catalog", "item_id", "item_index")):
    np.testing.assert_array_equal(
        getattr(getattr(got, table), ids)[getattr(got.interactions, index)],
        getattr(getattr(expected, table), ids)[getattr(expected.interactions, index)])
  np.testing.assert_array_equal(got.interactions.timestamp, expected.interactions.timestamp)
  np.testing.assert_array_equal(got.interactions.rating, expected.interactions.rating)
  row = {i: r for r, i in enumerate(got.catalog.item_id)}
  topics = expected.catalog.features["topics"]
  for r, item in enumerate(expected.catalog.item_id):
    assert got.catalog.features["topics"].row(row[item]) == topics.row(r)
  np.testing.assert_array_equal(got.catalog.metadata["year"][[row[i] for i in
                                                              expected.catalog.item_id]],
                                expected.catalog.metadata["year"])
  assert list(got.users.features["segment"]) == list(expected.users.features["segment"])


def test_an_existing_output_dir_is_refused_in_one_line(tmp_path):
  result = _synthesize(f"--output_dir={tmp_path}", "--num_users=10")
  lines = result.stderr.strip().splitlines()
  assert result.returncode == 2 and len(lines) == 1, result.stderr
  assert lines[0].startswith("synthesize: error: output_dir=") and "exists" in lines[0]
  bad = _synthesize(f"--output_dir={tmp_path / 'new'}", "--num_users=10",
                    "--num_interactions=5")
  assert bad.returncode == 2 and "n_interactions" in bad.stderr, bad.stderr
  assert not (tmp_path / "new").exists()
