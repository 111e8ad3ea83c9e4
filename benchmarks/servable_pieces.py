"""Where a 1M-item servable call spends its time, and what ScaNN's leaf count buys.

    .venv/bin/python benchmarks/servable_pieces.py --mode=decompose   # pieces of one call
    .venv/bin/python benchmarks/servable_pieces.py --mode=leaves      # recall vs time
    .venv/bin/python benchmarks/servable_pieces.py --mode=compare --exports=A,B,...
    .venv/bin/python benchmarks/servable_pieces.py --mode=call_paths --exports=A,...
    .venv/bin/python benchmarks/servable_pieces.py --mode=concurrency --exports=A,... \
        --session_inter_op_threads=-1

Uses bench_servable's synthetic catalog (1,000 clusters, spread 0.75, seed 0) and
random-init query tower. All contenders run in one loop, order reversed every round,
blocks of 20 (decompose: 10) calls; p50 and p25 (the quieter quarter) are printed.

* decompose: in-process tf.functions with the servable's four inputs: empty; + id tables
  and query tower; + ScaNN search and id gather; + pad and k mask; + condition match;
  the same inside the strict/plain tf.cond; the full `Servable.serve`.
* leaves: the raw ScaNN searcher tfcr builds, searched with 128/96/64/48/32 leaves:
  recall@10 against exact search (1,000 users) and B=1 latency.
* compare: loaded exports (SavedModel dirs, e.g. two versions of the code and a
  brute-force one), `signatures["serving_default"]` on unfiltered and strict s10 B=1
  calls and on B=32 calls mixing strict and unfiltered rows.
* call_paths: a loaded export called as `signature(**tensors)` (eager) and through the
  model server's `LoadedVersion.run` (a Session callable) with the Session's inter-op
  threads -1 (the caller's thread, the server's default) and 0 (TensorFlow's choice).
* concurrency: throughput (queries/s) of `LoadedVersion.run` called from 1, 2 and 4
  threads at once, B=1 and B=32 unfiltered, with --session_inter_op_threads (what
  `tfcr-serve --tensorflow_inter_op_parallelism` sets).
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import tfcr  # noqa: E402,F401  (first: it sets TF_USE_LEGACY_KERAS)  pylint: disable=g-import-not-at-top

import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top

import bench_servable as bs  # pylint: disable=g-import-not-at-top
from tfcr.index.scann_cpu import load_scann_ops  # pylint: disable=g-import-not-at-top
from tfcr.data.conditions import NONE_ID  # pylint: disable=g-import-not-at-top
from tfcr.index.scann import ScannIndex  # pylint: disable=g-import-not-at-top
from tfcr.export.servable import Servable  # pylint: disable=g-import-not-at-top

scann_ops = load_scann_ops()  # ScaNN's ops, its SIMD kernels matched to this CPU

USERS = [f"u{i}" for i in range(1000)]


def timed_loop(contenders, rounds, block):
  """{name: fn(i)} -> {name: [seconds]}, interleaved in blocks, order reversed each round."""
  times = {name: [] for name in contenders}
  names = list(contenders)
  for r in range(rounds):
    for name in (names if r % 2 else names[::-1]):
      for j in range(block):
        start = time.perf_counter()
        contenders[name](r * block + j)
        times[name].append(time.perf_counter() - start)
  return times


def report(times, block=None):
  """p50 and p25 per contender; with `block`, also the median over rounds of each
  block's median divided by the first contender's in the same round (robust to the
  machine's speed drifting during the run)."""
  first = next(iter(times.values()))
  for name, t in times.items():
    line = f"{name:40} p50 {np.median(t) * 1e3:.3f} ms  p25 {np.percentile(t, 25) * 1e3:.3f} ms"
    if block:
      ratio = (np.median(np.reshape(t, (-1, block)), axis=1)
               / np.median(np.reshape(first, (-1, block)), axis=1))
      line += f"  x{np.median(ratio):.3f} of the first"
    print(line)


def decompose(num_items):
  catalog = bs.Catalog(num_items, 1000, 0.75, 0)
  servable = Servable(bs.query_tower(catalog, 0), True, catalog.vocabularies,
                      catalog.embeddings, index="scann", max_k=bs.MAX_K)
  strings, ints = tf.TensorSpec([None], tf.string), tf.TensorSpec([None], tf.int32)
  spec = [strings, strings, ints, strings]
  index = servable.index.bind()

  def tables_tower(u, c):
    cid = servable.condition_table.lookup(c)
    user = servable.user_table.lookup(u)
    return servable.query_tower({"user": user, "condition": cid}), cid

  def plain(q, k):
    return servable.filter._unfiltered(index, q, k, tf.fill([tf.shape(q)[0], 0], -1))  # pylint: disable=protected-access

  def masked(rows, scores, k):
    within_k = tf.range(bs.MAX_K)[None, :] < k[:, None]
    rows = tf.where(within_k, rows, -1)
    scores = tf.where(within_k, scores, -np.inf)
    return rows, scores, tf.gather(servable.item_id_of_row, rows + 1)

  @tf.function(input_signature=spec)
  def empty(u, c, k, f):  # pylint: disable=unused-argument
    return {"k": k}

  @tf.function(input_signature=spec)
  def tower(u, c, k, f):  # pylint: disable=unused-argument
    return {"q": tables_tower(u, c)[0]}

  @tf.function(input_signature=spec)
  def search(u, c, k, f):  # pylint: disable=unused-argument
    scores, rows = index.search(tables_tower(u, c)[0], tf.reduce_max(k))
    return {"ids": tf.gather(servable.item_id_of_row, rows + 1), "s": scores}

  @tf.function(input_signature=spec)
  def pad_mask(u, c, k, f):  # pylint: disable=unused-argument
    rows, scores, scanned = plain(tables_tower(u, c)[0], k)
    _, scores, ids = masked(rows, scores, k)
    return {"ids": ids, "s": scores, "n": scanned}

  @tf.function(input_signature=spec)
  def match(u, c, k, f):  # pylint: disable=unused-argument
    q, cid = tables_tower(u, c)
    rows, scores, scanned = plain(q, k)
    rows, scores, ids = masked(rows, scores, k)
    return {"ids": ids, "s": scores, "n": scanned,
            "m": servable.filter.has_condition(rows, cid)}

  @tf.function(input_signature=spec)
  def in_cond(u, c, k, f):
    q, cid = tables_tower(u, c)
    strict = (f == "strict") & (cid != NONE_ID)
    excluded = tf.fill([tf.shape(u)[0], 0], -1)
    rows, scores, scanned = tf.cond(
        tf.reduce_any(strict),
        lambda: servable.filter._filtered(index, q, cid, k, strict, excluded),  # pylint: disable=protected-access
        lambda: plain(q, k))
    _, scores, ids = masked(rows, scores, k)
    return {"ids": ids, "s": scores, "n": scanned}

  @tf.function(input_signature=spec)
  def full(u, c, k, f):
    return servable.serve(u, c, k, f)

  made = bs.prebuilt(USERS, "", "none")
  args = [(m["user_id"], m["condition"], m["k"], m["filter"]) for m in made]
  functions = {"empty tf.function (4 inputs)": empty, "+ id tables, query tower": tower,
               "+ ScaNN search, id gather": search, "+ pad, k mask": pad_mask,
               "+ condition match": match, "pad/mask inside the strict/plain cond": in_cond,
               "full Servable.serve": full}
  for fn in functions.values():
    fn(*args[0])

  def call(fn):
    return lambda i: [v.numpy() for v in fn(*args[i % len(args)]).values()]

  report(timed_loop({n: call(f) for n, f in functions.items()}, 150, 10))


def leaves(num_items):
  catalog = bs.Catalog(num_items, 1000, 0.75, 0)
  queries = bs.tower_queries(bs.query_tower(catalog, 0))
  exact_rows, _ = bs.exact_top(catalog.embeddings, queries, 10)
  index = ScannIndex(catalog.embeddings, bs.MAX_K)
  print(f"{index.num_leaves} leaves, tfcr searches {index.base_leaves}, reorder {index.reorder}")
  searcher = scann_ops.searcher_from_module(index.state)
  functions = {}
  for count, reorder in ((128, 400), (96, 400), (64, 400), (64, 200), (48, 300), (32, 400)):
    @tf.function(input_signature=[tf.TensorSpec([None, bs.DIM], tf.float32)])
    def search(q, count=count, reorder=reorder):
      return searcher.search_batched(q, final_num_neighbors=10,
                                     pre_reorder_num_neighbors=reorder,
                                     leaves_to_search=count)[0]
    rows = np.concatenate([search(queries[i:i + 100]).numpy() for i in range(0, 1000, 100)])
    recall = np.mean([len(set(rows[i]) & set(exact_rows[i])) / 10 for i in range(1000)])
    name = f"{count} leaves, reorder {reorder}"
    print(f"{name}: recall@10 {recall:.4f}", flush=True)
    functions[name] = search
  report(timed_loop({n: (lambda i, f=f: f(queries[i % 1000][None]).numpy())
                     for n, f in functions.items()}, 40, 20))


def mixed_requests(batch=32, count=64):
  """B=32 requests whose rows alternate strict and unfiltered, all with condition s10."""
  rng = np.random.default_rng(batch)
  return [{"user_id": tf.constant(list(rng.choice(USERS, batch))),
           "condition": tf.constant(["s10"] * batch),
           "k": tf.constant([bs.K] * batch, tf.int32),
           "filter": tf.constant(["strict", "none"] * (batch // 2))}
          for _ in range(count)]


def compare(exports, rounds):
  loaded = {path: tf.saved_model.load(path).signatures["serving_default"] for path in exports}
  kinds = {"filter 'none', condition '', B=1": bs.prebuilt(USERS, "", "none"),
           "filter 'strict', condition 's10', B=1": bs.prebuilt(USERS, "s10", "strict"),
           "B=32, rows alternating strict and none, condition 's10'": mixed_requests()}
  for kind, made in kinds.items():
    for fn in loaded.values():
      fn(**made[0])
    print(f"{kind}:")
    calls = {p: (lambda i, f=f, made=made: [v.numpy() for v in f(**made[i % len(made)]).values()])
             for p, f in loaded.items()}
    report(timed_loop(calls, rounds, 20), block=20)


def call_paths(exports, rounds):
  from serving.model_manager import LoadedVersion  # pylint: disable=g-import-not-at-top
  made = bs.prebuilt(USERS, "", "none")
  as_numpy = [{name: value.numpy() for name, value in m.items()} for m in made]
  calls = {}
  for path in exports:
    signature = tf.saved_model.load(path).signatures["serving_default"]
    name = os.path.basename(path.rstrip("/"))
    calls[f"{name}: signature(**tensors)"] = (
        lambda i, f=signature: [v.numpy() for v in f(**made[i % len(made)]).values()])
    for threads in (-1, 0):  # (a pool of N: the process's first Session sizes it)
      version = LoadedVersion("m", 1, path, inter_op_threads=threads)
      calls[f"{name}: LoadedVersion.run, session inter-op {threads}"] = (
          lambda i, v=version: v.run("serving_default", as_numpy[i % len(made)]))
  for call in calls.values():
    call(0)
  report(timed_loop(calls, rounds, 20), block=20)


def concurrency(exports, session_threads, seconds=3.0):
  import threading  # pylint: disable=g-import-not-at-top
  from serving.model_manager import LoadedVersion  # pylint: disable=g-import-not-at-top
  print(f"session inter-op threads {session_threads}")
  for path in exports:
    version = LoadedVersion("m", 1, path, inter_op_threads=session_threads)
    name = os.path.basename(path.rstrip("/"))
    for batch in (1, 32):
      made = [{n: v.numpy() for n, v in m.items()}
              for m in bs.prebuilt(USERS, "", "none", batch=batch)]
      for i in range(20):
        version.run("serving_default", made[i % len(made)])
      for threads in (1, 2, 4):
        done = [0] * threads
        stop = time.perf_counter() + seconds

        def work(t, done=done, stop=stop, made=made, version=version):
          i = t * 7919
          while time.perf_counter() < stop:
            version.run("serving_default", made[i % len(made)])
            done[t] += 1
            i += 1
        workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
        start = time.perf_counter()
        for w in workers:
          w.start()
        for w in workers:
          w.join()
        rate = sum(done) * batch / (time.perf_counter() - start)
        print(f"{name:28} B={batch:<3} {threads} thread(s): {rate:8.0f} queries/s", flush=True)


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--mode", choices=("decompose", "leaves", "compare", "call_paths",
                                         "concurrency"), required=True)
  parser.add_argument("--inter_op_threads", type=int, default=0,
                      help="TensorFlow inter-op threads (0: TensorFlow's choice)")
  parser.add_argument("--intra_op_threads", type=int, default=0,
                      help="TensorFlow intra-op threads (0: TensorFlow's choice)")
  parser.add_argument("--session_inter_op_threads", type=int, default=-1,
                      help="concurrency: the model Session's inter-op threads, as "
                           "tfcr-serve's --tensorflow_inter_op_parallelism (-1: caller's)")
  parser.add_argument("--items", type=int, default=1_000_000)
  parser.add_argument("--exports", default="",
                      help="compare, call_paths, concurrency: comma-separated SavedModel dirs")
  parser.add_argument("--rounds", type=int, default=40,
                      help="compare, call_paths: rounds of 20 calls each")
  args = parser.parse_args()
  tf.config.threading.set_inter_op_parallelism_threads(args.inter_op_threads)
  tf.config.threading.set_intra_op_parallelism_threads(args.intra_op_threads)
  if args.mode == "decompose":
    decompose(args.items)
  elif args.mode == "leaves":
    leaves(args.items)
  else:
    exports = [e for e in args.exports.split(",") if e]
    if not exports:
      parser.error(f"--mode={args.mode} needs --exports")
    if args.mode == "concurrency":
      concurrency(exports, args.session_inter_op_threads)
    else:
      (compare if args.mode == "compare" else call_paths)(exports, args.rounds)


if __name__ == "__main__":
  main()
