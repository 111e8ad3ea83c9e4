"""Does a fresh process survive a ScaNN servable's first call when it mixes strict and
unfiltered rows? (It crashed 3 times in 20 before the searcher handle was made once per call.)

    .venv/bin/python benchmarks/scann_first_call.py --processes=20

Trains a tiny synthetic CR model (80 items), exports it with ScaNN, then starts
--processes fresh Python processes (tests/servable_requests.py), each loading the export
and sending, as its very first call, one batch with a strict row and two unfiltered rows.
Prints how many exited abnormally.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
import tfcr  # noqa: E402,F401  (first: it sets TF_USE_LEGACY_KERAS)  pylint: disable=g-import-not-at-top

QUERY = {"user_id": ["u0001", "u0002", "stranger"], "condition": ["c01", "c02", ""],
         "k": [5, 3, 4], "filter": ["strict", "none", "none"]}


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--processes", type=int, default=20)
  args = parser.parse_args()
  from tfcr.data.sources import DataSource  # pylint: disable=import-outside-toplevel
  from tfcr.data.synthetic import SyntheticConfig  # pylint: disable=import-outside-toplevel
  from tfcr.export.exporter import export_servable  # pylint: disable=import-outside-toplevel
  from tfcr.training.config import TrainConfig  # pylint: disable=import-outside-toplevel
  from tfcr.training.loop import train_and_evaluate  # pylint: disable=import-outside-toplevel
  with tempfile.TemporaryDirectory() as work:
    data = DataSource(dataset="synthetic", data_dir=os.path.join(work, "data"),
                      synthetic=SyntheticConfig(n_users=60, n_items=80, n_conditions=6,
                                                n_interactions=1500, seed=42))
    train_and_evaluate(TrainConfig(
        epochs=1, batch_size=64, embedding_dim=8, model_dir=os.path.join(work, "run"),
        verbose=0), data)
    export = export_servable(os.path.join(work, "run"), os.path.join(work, "cr"), "scann", 10)
    requests = os.path.join(work, "requests.json")
    with open(requests, "w") as f:
      json.dump([{"signature": "serving_default", "inputs": QUERY}], f)
    failures = []
    for i in range(args.processes):
      result = subprocess.run(
          [sys.executable, os.path.join(REPO, "tests", "servable_requests.py"), export,
           requests, os.path.join(work, "out.npz")], capture_output=True, text=True,
          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=300)
      if result.returncode != 0:
        failures.append((i, result.returncode, result.stderr.strip().splitlines()[-1:]))
    print(f"{len(failures)} of {args.processes} fresh processes failed their first call")
    for failure in failures:
      print("  process %d: exit %d %s" % failure)
    return 1 if failures else 0


if __name__ == "__main__":
  sys.exit(main())
