"""Your own data at scale: the files source from Parquet shards, against the in-memory
synthetic source.

    .venv/bin/python benchmarks/bench_data.py                    # 1M users/1M items/10M
    .venv/bin/python benchmarks/bench_data.py --users=100000 --items=100000 \\
        --interactions=1000000 --skip_export                      # a quick look

1. Writes the synthetic data set (`python -m trainer.synthesize`'s writer) as Parquet
   shards of 1M interactions in a temporary folder (timed, not part of the targets).
2. In a fresh process that has imported TensorFlow, as tfcr-train's has: reads the shards
   through `--dataset=files` (`DataSource.load`), fingerprints the data, and prepares it
   (temporal split, conditions, features, vocabularies): seconds per stage and the
   process's peak RSS (targets: <= 60 s in all, <= 6 GB).
3. Training throughput, same model, same run: one CR model is trained in alternating
   rounds on the batches of the files-loaded data and of the in-memory synthetic data
   (`tfcr.data.synthetic.generate`, never written), each round a `fit` of --steps
   batches after a warm-up; medians of examples/s and their ratio (target >= 0.9x).
4. Export of the whole catalog (a ScaNN servable of every item): seconds and peak RSS of
   that process.

Prints one table; docs/benchmarks.md has the latest results.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tfcr  # noqa: E402,F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from tfcr.data import synthetic  # noqa: E402
from tfcr.data.files import FileTables  # noqa: E402
from tfcr.data.sources import DataSource  # noqa: E402
from tfcr.utils.machine import machine_line  # noqa: E402

CONDITION = "topics"


def peak_rss_bytes() -> int:
  """This process's peak RSS. VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss
  over exec, so a child would report its parent's (the data generator's) peak."""
  with open("/proc/self/status", encoding="ascii") as status:
    for line in status:
      if line.startswith("VmHWM:"):
        return int(line.split()[1]) * 1024
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def files_source(directory: str) -> DataSource:
  return DataSource("files", files=FileTables(
      interactions=os.path.join(directory, "interactions"),
      items=os.path.join(directory, "items.parquet"),
      users=os.path.join(directory, "users.parquet")))


def stage_load(args) -> dict:
  """Step 2, run in its own process: seconds per stage and peak RSS."""
  import tensorflow as tf  # noqa: F401  pylint: disable=unused-import,g-import-not-at-top
  from tfcr.data.fingerprint import DataFingerprint  # pylint: disable=g-import-not-at-top
  from tfcr.data.prepare import prepare  # pylint: disable=g-import-not-at-top
  from tfcr.training.model_dir import Vocabularies  # pylint: disable=g-import-not-at-top
  rss_before = peak_rss_bytes()
  times = {}
  started, cpu_started = time.perf_counter(), time.process_time()
  source = files_source(args.directory).resolved()
  data = source.load()
  times["read"] = time.perf_counter() - started
  mark = time.perf_counter()
  DataFingerprint.of(data, source.to_dict())
  times["fingerprint"] = time.perf_counter() - mark
  mark = time.perf_counter()
  prepared = prepare(data, CONDITION, max_vocabulary=args.max_vocabulary)
  Vocabularies.from_prepared(prepared)
  times["split_and_vocabularies"] = time.perf_counter() - mark
  times["total"] = time.perf_counter() - started
  return {"seconds": times, "cpu_seconds": time.process_time() - cpu_started, "peak_rss_bytes": peak_rss_bytes(),
          "rss_after_tensorflow_bytes": rss_before, "num_train": len(prepared.train),
          "num_users": prepared.num_users, "num_items": prepared.num_items}


def _child(stage: str, args, extra=()) -> dict:
  command = [sys.executable, os.path.abspath(__file__), f"--stage={stage}",
             f"--directory={args.directory}", f"--max_vocabulary={args.max_vocabulary}",
             f"--users={args.users}", f"--items={args.items}",
             f"--interactions={args.interactions}", f"--seed={args.seed}", *extra]
  out = subprocess.run(command, capture_output=True, text=True, check=False)
  if out.returncode:
    sys.exit(f"{stage} failed:\n{out.stderr[-3000:]}")
  return json.loads(out.stdout.strip().splitlines()[-1])


def _synthetic(args):
  return synthetic.generate(n_users=args.users, n_items=args.items, n_conditions=20,
                            n_interactions=args.interactions, seed=args.seed)


def stage_train(args) -> dict:
  """Step 3 (and the model dir step 4 exports), in its own process."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfcr.data.fingerprint import DataFingerprint  # pylint: disable=g-import-not-at-top
  from tfcr.data.prepare import prepare  # pylint: disable=g-import-not-at-top
  from tfcr.models.factory import build_model, fill_tables_from, model_sizes  # pylint: disable=g-import-not-at-top
  from tfcr.training.config import TrainConfig  # pylint: disable=g-import-not-at-top
  from tfcr.training.input_pipeline import training_dataset  # pylint: disable=g-import-not-at-top
  from tfcr.training.optimizers import make_optimizer  # pylint: disable=g-import-not-at-top
  from tfcr.training.model_dir import ModelDir, Vocabularies  # pylint: disable=g-import-not-at-top

  source = files_source(args.directory).resolved()
  from_files = source.load()
  in_memory = _synthetic(args)
  prepared = {
      "files": prepare(from_files, CONDITION, max_vocabulary=args.max_vocabulary),
      "in_memory": prepare(in_memory, CONDITION, max_vocabulary=args.max_vocabulary)}
  same = all(np.array_equal(getattr(prepared["files"].train, f),
                            getattr(prepared["in_memory"].train, f))
             for f in ("user_index", "item_index", "timestamp"))
  config = TrainConfig(model="cr", condition_feature=CONDITION, batch_size=args.batch_size,
                       model_dir=args.model_dir, max_vocabulary=args.max_vocabulary,
                       optimizer=args.optimizer).resolved()
  tf.keras.utils.set_random_seed(config.seed)
  model = fill_tables_from(build_model(config, model_sizes(prepared["files"])),
                           prepared["files"])
  model.compile(optimizer=make_optimizer(config.optimizer, config.learning_rate))
  total = args.warmup_steps + args.rounds * args.steps
  iterators = {}
  for name, p in prepared.items():
    dataset = training_dataset(p.train.user_index, p.train.item_index, p.item_probability,
                               p.conditions, config.batch_size, config.seed, 0,
                               1 + total * config.batch_size // len(p.train))
    iterators[name] = iter(dataset.repeat())
  rates = {name: [] for name in prepared}
  for name, iterator in iterators.items():  # warm-up: traces the train function
    model.fit(iterator, steps_per_epoch=args.warmup_steps, epochs=1, verbose=0)
  names = list(iterators)
  for round_number in range(args.rounds):
    # Alternate which source goes first, so neither always follows the other.
    for name in (names if round_number % 2 == 0 else names[::-1]):
      iterator = iterators[name]
      started = time.perf_counter()
      model.fit(iterator, steps_per_epoch=args.steps, epochs=1, verbose=0)
      rates[name].append(args.steps * config.batch_size / (time.perf_counter() - started))

  # A model dir of this model for step 4's export.
  model_dir = ModelDir(config.model_dir)
  model_dir.start_run(config, DataFingerprint.of(from_files, source.to_dict()))
  model_dir.write_vocabularies(Vocabularies.from_prepared(prepared["files"]))
  tf.train.CheckpointManager(tf.train.Checkpoint(model=model), model_dir.checkpoint_dir,
                             max_to_keep=1).save(checkpoint_number=1)
  model_dir.write_metrics({"note": "bench_data.py: trained for throughput only"})
  return {"examples_per_second": {n: statistics.median(r) for n, r in rates.items()},
          "per_round": rates, "same_training_rows": bool(same)}


def stage_export(args) -> dict:
  from tfcr.export.exporter import export_servable  # pylint: disable=g-import-not-at-top
  started = time.perf_counter()
  path = export_servable(args.model_dir, args.export_dir, index="scann")
  seconds = time.perf_counter() - started
  size = sum(os.path.getsize(os.path.join(root, f))
             for root, _, files in os.walk(path) for f in files)
  return {"seconds": seconds, "peak_rss_bytes": peak_rss_bytes(), "disk_bytes": size}


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--users", type=int, default=1_000_000)
  p.add_argument("--items", type=int, default=1_000_000)
  p.add_argument("--interactions", type=int, default=10_000_000)
  p.add_argument("--max_vocabulary", type=int, default=0,
                 help="TrainConfig.max_vocabulary of the prepared data and the model.")
  p.add_argument("--batch_size", type=int, default=1024)
  p.add_argument("--optimizer", default="lazy_adam",
                 help="TrainConfig.optimizer; adam updates every row of the 1M-row tables "
                      "each step.")
  p.add_argument("--steps", type=int, default=30, help="Batches per timed round.")
  p.add_argument("--rounds", type=int, default=6)
  p.add_argument("--warmup_steps", type=int, default=5)
  p.add_argument("--seed", type=int, default=42)
  p.add_argument("--skip_export", action="store_true")
  p.add_argument("--workdir", default=None, help="Default: a temporary folder, removed.")
  p.add_argument("--stage", default="all", choices=["all", "load", "train", "export"],
                 help=argparse.SUPPRESS)
  p.add_argument("--directory", default=None, help=argparse.SUPPRESS)
  p.add_argument("--model_dir", default=None, help=argparse.SUPPRESS)
  p.add_argument("--export_dir", default=None, help=argparse.SUPPRESS)
  args = p.parse_args()
  stages = {"load": stage_load, "train": stage_train, "export": stage_export}
  if args.stage != "all":
    print(json.dumps(stages[args.stage](args)))
    return

  workdir = args.workdir or tempfile.mkdtemp(prefix="bench_data-")
  args.directory = os.path.join(workdir, "tables")
  args.model_dir = os.path.join(workdir, "model")
  args.export_dir = os.path.join(workdir, "export")
  try:
    from tfcr.data.table_writer import write_tables  # pylint: disable=g-import-not-at-top
    print(f"{args.users} users, {args.items} items, {args.interactions} interactions; "
          f"{machine_line()}", flush=True)
    started = time.perf_counter()
    if not os.path.exists(args.directory):
      write_tables(_synthetic(args), args.directory, "parquet", shard_rows=1_000_000)
    written = time.perf_counter() - started
    disk = sum(os.path.getsize(os.path.join(r, f))
               for r, _, fs in os.walk(args.directory) for f in fs)
    print(f"generated and wrote Parquet shards in {written:.1f} s ({disk / 2**20:.0f} MiB)",
          flush=True)
    load = _child("load", args)
    s = load["seconds"]
    print(f"load (fresh process with TensorFlow imported): read {s['read']:.1f} s, "
          f"fingerprint {s['fingerprint']:.1f} s, split+vocabularies "
          f"{s['split_and_vocabularies']:.1f} s; total {s['total']:.1f} s (target <= 60; "
          f"{load['cpu_seconds']:.1f} CPU-s, all threads); "
          f"peak RSS {load['peak_rss_bytes'] / 2**30:.2f} GiB (target <= 6; "
          f"{load['rss_after_tensorflow_bytes'] / 2**30:.2f} GiB after importing TF)",
          flush=True)
    train = _child("train", args, [f"--model_dir={args.model_dir}",
                                   f"--batch_size={args.batch_size}",
                                   f"--steps={args.steps}", f"--rounds={args.rounds}",
                                   f"--warmup_steps={args.warmup_steps}",
                                   f"--optimizer={args.optimizer}"])
    rate = train["examples_per_second"]
    print(f"training ({args.optimizer}), one CR model, alternating rounds of {args.steps} "
          f"batches of {args.batch_size} (median of {args.rounds}): files {rate['files']:.0f} "
          f"examples/s, in-memory synthetic {rate['in_memory']:.0f} examples/s, ratio "
          f"{rate['files'] / rate['in_memory']:.2f}x (target >= 0.9); same training rows: "
          f"{train['same_training_rows']}", flush=True)
    if not args.skip_export:
      export = _child("export", args, [f"--model_dir={args.model_dir}",
                                       f"--export_dir={args.export_dir}"])
      print(f"export of the {args.items}-item catalog (ScaNN servable): "
            f"{export['seconds']:.1f} s, peak RSS {export['peak_rss_bytes'] / 2**30:.2f} "
            f"GiB, {export['disk_bytes'] / 2**20:.0f} MiB on disk", flush=True)
  finally:
    if not args.workdir:
      shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
  main()
