"""Multi-worker training: 1 worker vs 2 workers on loopback at the same global batch.

    nice -n 10 .venv/bin/python benchmarks/bench_distributed.py
    nice -n 10 .venv/bin/python benchmarks/bench_distributed.py --datasets=synthetic --epochs=4

For each data set, the real `tfcr-train` binary is run three ways, one after the other,
with the same flags, seed and global --batch_size:

* 1 worker: one process, --distribution_strategy=none;
* 2 workers, global negatives: two processes on 127.0.0.1 with TF_CONFIG and
  --distribution_strategy=multi_worker_mirrored (gRPC collectives), the default
  --cross_replica_negatives: each query scores against the whole global batch;
* 2 workers, local negatives: the same with --nocross_replica_negatives, TFRS's
  behaviour under a strategy (each replica's softmax over its own half of the batch).

Speed: the chief's TensorBoard epoch summaries carry their wall time; the median gap
between consecutive epochs (the first epoch, which traces the step, left out) is the
steady-state epoch time: examples/s = steps * batch / epoch time, ms/step = epoch time /
steps (checkpoint writing at each epoch end included, as in a real run). Global negatives
cost the 2-worker ms/step with them minus the one without: the all-gathers and each
replica's twice larger [B / 2, B] score matrix (forward and backward).

The all-gather alone: two processes on loopback run `gather_candidates` on a [B / 2,
dim] embedding, its ids and probabilities, and the gradient back through it (a
tf.function step, 20 warm-up steps, then --probe_steps timed), against the same step
without the gather; the chief reports ms/step of both.

Quality: each trained model is loaded from its model dir and evaluated exactly on the same
test queries (`tfcr.metrics.exact`); recall@100 and topic_match@100 per query, with 95%
percentile-bootstrap intervals over queries (`tfcr.metrics.bootstrap`, the same resamples
for every run, so the 2-worker - 1-worker difference is paired).

On a 2-core machine, 2 workers share the 2 cores a single worker already uses (TF's
intra-op threads), so no speed-up is possible here: the table shows what the gRPC
collectives cost, not what a cluster of machines gains.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tfcr  # noqa: E402,F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)

import argparse  # noqa: E402
import glob  # noqa: E402
import json  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfcr.data.prepare import prepare  # noqa: E402
from tfcr.data.sources import DataSource  # noqa: E402
from tfcr.data.synthetic import SyntheticConfig  # noqa: E402
from tfcr.metrics import per_query  # noqa: E402
from tfcr.metrics.bootstrap import Resamples  # noqa: E402
from tfcr.metrics.exact import exact_top_rows  # noqa: E402
from tfcr.metrics.queries import build_queries  # noqa: E402
from tfcr.training.model_dir import ModelDir  # noqa: E402
from tfcr.utils.machine import machine_line  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = (("1 worker", 1, True), ("2 workers, global negatives", 2, True),
        ("2 workers, local negatives", 2, False))
K = 100


def free_ports(n):
  sockets = [socket.socket() for _ in range(n)]
  for s in sockets:
    s.bind(("127.0.0.1", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def train(flags, model_dir, workers, cross_replica, log_dir):
  """Runs tfcr-train on `workers` local processes (the chief is worker 0); returns the
  wall seconds of the whole run."""
  args = [sys.executable, "-m", "trainer.train", *flags, f"--model_dir={model_dir}",
          "--verbose=2"]
  if workers > 1:
    args += ["--distribution_strategy=multi_worker_mirrored",
             f"--{'' if cross_replica else 'no'}cross_replica_negatives"]
  addresses = [f"127.0.0.1:{p}" for p in free_ports(workers)]
  processes = []
  started = time.perf_counter()
  for index in range(workers):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    if workers > 1:
      env["TF_CONFIG"] = json.dumps({"cluster": {"worker": addresses},
                                     "task": {"type": "worker", "index": index}})
    log = open(os.path.join(log_dir, f"{os.path.basename(model_dir)}.{index}.log"), "w")
    processes.append((subprocess.Popen(args, cwd=REPO, env=env, stdout=log,
                                       stderr=subprocess.STDOUT), log))
  for process, log in processes:
    code = process.wait()
    log.close()
    if code:
      raise SystemExit(f"tfcr-train failed ({code}); see {log.name}")
  return time.perf_counter() - started


def epoch_seconds(model_dir):
  """Median gap between the wall times of consecutive epoch summaries, epoch 1 left
  out (it includes tracing the train step and, with workers, setting up collectives)."""
  times = {}
  for path in glob.glob(os.path.join(model_dir, "logs", "train", "events.out.tfevents.*")):
    for record in tf.data.TFRecordDataset(path):
      event = tf.compat.v1.Event.FromString(record.numpy())
      for value in event.summary.value:
        if value.tag == "epoch_loss":
          times[event.step] = event.wall_time
  ordered = [times[e] for e in sorted(times)]
  return float(np.median(np.diff(ordered))) if len(ordered) > 2 else float("nan")


def per_query_quality(model_dir, prepared, queries):
  _, model, _ = ModelDir(model_dir).load_trained_model()
  top, _ = exact_top_rows(model, prepared, queries, K)
  recall = per_query.recall_per_query(per_query.hit_positions(top, queries.targets), K)
  matches = per_query.condition_matches(top, queries.conditions,
                                        prepared.conditions.membership())
  topic = per_query.topic_match_per_query(matches, top, K)
  return {f"recall@{K}": recall, f"topic_match@{K}": topic}


def probe_worker(batch_size, dim, steps):
  """One worker of the all-gather probe (the process's TF_CONFIG names its task): prints
  {"gather_ms": ..., "local_ms": ...} per step on the chief."""
  from tfcr.models.cross_replica import gather_candidates  # pylint: disable=g-import-not-at-top
  from tfcr.training import distribution  # pylint: disable=g-import-not-at-top
  strategy = distribution.make_strategy("multi_worker_mirrored")
  local = batch_size // strategy.num_replicas_in_sync
  weights = tf.random.stateless_normal([local, dim], seed=[1, 2])
  ids = tf.range(local)
  probability = tf.fill([local], 0.5)

  def step(gather):
    def replica_step():
      with tf.GradientTape() as tape:
        tape.watch(weights)
        embeddings = weights * 1.0
        if gather:
          embeddings, gathered_ids, gathered_probability = gather_candidates(
              embeddings, ids, probability)
          embeddings += tf.cast(gathered_ids[:, None], tf.float32) * gathered_probability[:, None]
        loss = tf.reduce_sum(tf.square(embeddings))
      return tf.reduce_sum(tape.gradient(loss, weights))
    return tf.function(lambda: strategy.run(replica_step))

  result = {}
  for name, gather in (("gather_ms", True), ("local_ms", False)):
    run = step(gather)
    for _ in range(20):
      run()
    started = time.perf_counter()
    for _ in range(steps):
      value = run()
    strategy.experimental_local_results(value)[0].numpy()
    result[name] = 1000 * (time.perf_counter() - started) / steps
  if distribution.worker_role("multi_worker_mirrored").is_chief:
    print(json.dumps(result), flush=True)


def probe_all_gather(args, log_dir):
  addresses = [f"127.0.0.1:{p}" for p in free_ports(2)]
  processes = []
  for index in range(2):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
           "TF_CONFIG": json.dumps({"cluster": {"worker": addresses},
                                    "task": {"type": "worker", "index": index}})}
    processes.append(subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--probe_worker",
         f"--batch_size={args.batch_size}", f"--embedding_dim={args.embedding_dim}",
         f"--probe_steps={args.probe_steps}"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))
  outputs = [p.communicate()[0] for p in processes]
  if any(p.returncode for p in processes):
    raise SystemExit("the all-gather probe failed")
  result = json.loads(outputs[0].strip().splitlines()[-1])
  print(f"\n### all-gather probe: 2 workers, global batch {args.batch_size}, "
        f"dim {args.embedding_dim}, {args.probe_steps} steps\n")
  print("| step | ms/step |\n|---|---:|")
  print(f"| gather_candidates + its gradient + a tiny loss | {result['gather_ms']:.2f} |")
  print(f"| the same without the gather | {result['local_ms']:.2f} |")
  print(f"| the gather's cost | {result['gather_ms'] - result['local_ms']:.2f} |", flush=True)


def interval_text(interval):
  return f"{interval.value:.4f} [{interval.low:.4f}, {interval.high:.4f}]"


def run_dataset(name, args, work_dir):
  source = DataSource(dataset=name, data_dir=args.data_dir,
                      synthetic=SyntheticConfig(
                          n_users=args.synthetic_users, n_items=args.synthetic_items,
                          n_conditions=args.synthetic_conditions,
                          n_interactions=args.synthetic_interactions, seed=args.seed))
  flags = [f"--dataset={name}", f"--data_dir={args.data_dir}", f"--epochs={args.epochs}",
           f"--batch_size={args.batch_size}", f"--seed={args.seed}",
           f"--extra_negatives={args.extra_negatives}"]
  if name == "synthetic":
    flags += [f"--synthetic_users={args.synthetic_users}",
              f"--synthetic_items={args.synthetic_items}",
              f"--synthetic_conditions={args.synthetic_conditions}",
              f"--synthetic_interactions={args.synthetic_interactions}"]
  results = []
  for label, workers, cross_replica in RUNS:
    model_dir = os.path.join(work_dir, f"{name}-{workers}w-{'global' if cross_replica else 'local'}")
    print(f"[{name}] {label} ...", flush=True)
    wall = train(flags, model_dir, workers, cross_replica, work_dir)
    results.append({"label": label, "model_dir": model_dir, "wall": wall,
                    "epoch_seconds": epoch_seconds(model_dir)})
    print(f"[{name}] {label}: {wall:.1f} s in all", flush=True)

  config = ModelDir(results[0]["model_dir"]).read_config()
  data = source.load()
  prepared = prepare(data, config.condition_feature, config.test_per_user, config.min_rating)
  queries = build_queries(prepared, config.seed)
  steps = len(prepared.train) // args.batch_size
  resamples = Resamples(len(queries), args.bootstrap_samples, args.seed)
  for result in results:
    result["quality"] = per_query_quality(result["model_dir"], prepared, queries)

  print(f"\n### {name}: {len(prepared.train):,} training examples, {steps} steps/epoch of "
        f"{args.batch_size}, {args.epochs} epochs, {args.extra_negatives} extra negatives, "
        f"{len(queries):,} test queries\n")
  print(f"| run | examples/s | ms/step | /1 worker | recall@{K} [95% CI] | "
        f"topic_match@{K} [95% CI] | whole run s |")
  print("|---|---:|---:|---:|---|---|---:|")
  base = results[0]["epoch_seconds"]
  for result in results:
    seconds = result["epoch_seconds"]
    quality = {metric: resamples.mean(values) for metric, values in result["quality"].items()}
    print(f"| {result['label']} | {steps * args.batch_size / seconds:,.0f} | "
          f"{1000 * seconds / steps:.1f} | {base / seconds:.2f} | "
          f"{interval_text(quality[f'recall@{K}'])} | "
          f"{interval_text(quality[f'topic_match@{K}'])} | {result['wall']:.0f} |")
  print()
  for other in results[1:]:
    for metric in (f"recall@{K}", f"topic_match@{K}"):
      diff = resamples.mean_difference(other["quality"][metric], results[0]["quality"][metric])
      print(f"- {other['label']} - 1 worker, {metric}: {interval_text(diff)} (paired)")
  gather_ms = 1000 * (results[1]["epoch_seconds"] - results[2]["epoch_seconds"]) / steps
  print(f"- global negatives' cost, 2 workers: {gather_ms:+.1f} ms/step (global - local "
        f"negatives: the all-gathers and the larger score matrix)\n", flush=True)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--datasets", default="synthetic,movielens-100k",
                 help="Comma-separated: synthetic, movielens-100k.")
  p.add_argument("--data_dir", default=os.path.expanduser("~/.cache/tfcr"))
  p.add_argument("--epochs", type=int, default=8)
  p.add_argument("--batch_size", type=int, default=1024, help="The global batch.")
  p.add_argument("--extra_negatives", type=int, default=0)
  p.add_argument("--synthetic_users", type=int, default=2000)
  p.add_argument("--synthetic_items", type=int, default=3000)
  p.add_argument("--synthetic_conditions", type=int, default=20)
  p.add_argument("--synthetic_interactions", type=int, default=100_000)
  p.add_argument("--bootstrap_samples", type=int, default=1000)
  p.add_argument("--seed", type=int, default=42)
  p.add_argument("--embedding_dim", type=int, default=64,
                 help="Of the all-gather probe (the training runs use tfcr's default).")
  p.add_argument("--probe_steps", type=int, default=200)
  p.add_argument("--probe_worker", action="store_true", help=argparse.SUPPRESS)
  p.add_argument("--work_dir", default="",
                 help="Where the model dirs and logs go (default: a temp dir, removed).")
  args = p.parse_args(argv)
  if args.probe_worker:
    probe_worker(args.batch_size, args.embedding_dim, args.probe_steps)
    return 0
  print(machine_line(), flush=True)
  work = args.work_dir or tempfile.mkdtemp(prefix="bench_distributed-")
  os.makedirs(work, exist_ok=True)
  for name in filter(None, args.datasets.split(",")):
    run_dataset(name.strip(), args, work)
  probe_all_gather(args, work)
  if not args.work_dir:
    import shutil  # pylint: disable=g-import-not-at-top
    shutil.rmtree(work, ignore_errors=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
