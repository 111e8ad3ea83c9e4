"""Servable latency: the exported SavedModel (query tower + index + condition filter).

    .venv/bin/python benchmarks/bench_servable.py                      # 100k and 1M items
    .venv/bin/python benchmarks/bench_servable.py --sizes=100000 --queries=300
    .venv/bin/python benchmarks/bench_servable.py --profile            # + where time goes

For each catalog size, a synthetic catalog with d = 64:

* item embeddings shaped like a trained tower's: a mixture of --clusters gaussian clusters
  (log-normal cluster sizes: some "genres" much bigger than others), each item its
  cluster's centre plus isotropic noise (--spread = noise norm / centre norm), then
  L2-normalised like tfcr's towers. iid gaussian vectors would be unrealistically hard
  for an ANN (no structure for the tree or the quantiser to use);
* conditions of exact selectivities: "s50" on a random 50% of the items, "s10" on 10%,
  "s1" on 1%, "s01" on 0.1% (independent draws, so an item can have several); "x02",
  "x05", "x075", "x15", "x2", "x5", "x20" on disjoint random sets of 0.2%, 0.5%, 0.75%,
  1.5%, 2%, 5% and 20% of the items (more condition sizes for the exact_threshold
  crossover); and one filler condition "g00".."g99" per item following its cluster (a
  genre), so every item has >= 1 condition. `ItemConditions.from_multi_valued` and
  `Vocabularies` are built from these by hand; users are "u0".."u999";
* a real `QueryTower` (num_conditions = the condition vocabulary size, embedding_dim 64,
  normalize=True), randomly initialised;
* `Servable(query_tower, True, vocabularies, item_embeddings, index=..., max_k=100)`
  saved exactly as `tfcr.export.exporter.export_servable` saves it (both signatures,
  namespace_whitelist=["Scann"]). The export is timed (Servable construction, which
  builds the index, then tf.saved_model.save) and the folder's size reported.

Each SavedModel is loaded back (after `tfcr.index.scann_cpu.load_scann_ops()`) and its
`serving_default` signature called with string inputs, as a client would; latency is the
wall time of the call, outputs materialised with .numpy(). The machine is shared, so
contenders are always measured in one loop, alternating call by call (their order
reversed every round) after a warm-up, and ratios are taken within that loop. Process
CPU time per call is recorded too (less disturbed by other processes).

Per size: export (time, size, load, first calls, memory); latency ScaNN vs brute force
(B=1 and B=32, k=10, filter "none", condition ""; B=1 also through the model server's
call, `serving.model_manager.LoadedVersion.run`, numpy in and out: the SavedModel in a
Session, as TF Serving runs it); recall@10 of the ScaNN
servable vs the brute-force one (exact); strict-filter latency for s50/s10/s1/s01 next to
the unfiltered call; the exact_threshold crossover (the ScaNN servable also exported with
exact_threshold=0, always streaming, and with a huge threshold, always exact, timed side by
side on every condition size); with --profile, where an unfiltered call's time goes and
what ScaNN settings cost and give.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tfcr  # noqa: E402,F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)

import argparse  # noqa: E402
import gc  # noqa: E402
import math  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Callable, Dict, List, Sequence  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfcr.index import scann_cpu  # noqa: E402

from tfcr.export.condition_filter import default_exact_threshold  # noqa: E402
from tfcr.data.conditions import NONE_ID, OOV_ID, ItemConditions  # noqa: E402
from tfcr.data.schema import MultiValued  # noqa: E402
from tfcr.models.towers import QueryTower  # noqa: E402
from tfcr.training.model_dir import Vocabularies  # noqa: E402
from tfcr.index.tuning import DEFAULT_RECALL_TARGET  # noqa: E402
from tfcr.export.servable import Servable  # noqa: E402
from tfcr.utils import aligned  # noqa: E402
from tfcr.utils.machine import machine_line  # noqa: E402
from serving.model_manager import LoadedVersion  # noqa: E402
from serving.session_model import SessionModel  # noqa: E402

# Registers the ops a ScaNN SavedModel needs; its SIMD kernels matched to this CPU.
scann_ops = scann_cpu.load_scann_ops()

DIM = 64
NUM_USERS = 1000
MAX_K = 100
K = 10
# Strict-filter conditions of exact selectivities (independent random item sets).
SELECTIVE = {"s50": 0.5, "s10": 0.1, "s1": 0.01, "s01": 0.001, "s001": 0.0001}
# More sizes for the crossover, on disjoint item sets (an item has at most one of them).
LADDER = {"x02": 0.002, "x05": 0.005, "x075": 0.0075, "x15": 0.015, "x2": 0.02,
          "x5": 0.05, "x20": 0.2}
NUM_FILLERS = 100
HUGE_THRESHOLD = 2 ** 31 - 1
BLOCK = 20  # calls in a row per contender in the "blocks" latency mode


def log(*args):
  print(f"[{time.strftime('%H:%M:%S')}]", *args, flush=True)


def rss_mb() -> float:
  with open("/proc/self/statm") as f:
    return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


# --------------------------------------------------------------------- the catalog --

class Catalog:
  """Synthetic item embeddings [N, DIM] float32 (unit rows) and their conditions."""

  def __init__(self, num_items: int, clusters: int, spread: float, seed: int):
    rng = np.random.default_rng(seed)
    self.num_items = num_items
    centres = rng.standard_normal((clusters, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    weights = rng.lognormal(0.0, 1.0, clusters)
    cluster = rng.choice(clusters, size=num_items, p=weights / weights.sum())
    # Aligned as the exporter's embeddings are (tfcr.models.embed), and built in place
    # in chunks: no [N, d] temporaries (2.4 GiB each at 10M items).
    embeddings = aligned.empty((num_items, DIM), np.float32)
    rng.standard_normal(dtype=np.float32, out=embeddings)
    for start in range(0, num_items, 2 ** 20):
      part = embeddings[start:start + 2 ** 20]
      part *= spread / math.sqrt(DIM)
      part += centres[cluster[start:start + 2 ** 20]]
      part /= np.linalg.norm(part, axis=1, keepdims=True)
    self.embeddings = embeddings

    names = list(SELECTIVE) + list(LADDER) + [f"g{i:02d}" for i in range(NUM_FILLERS)]
    code = {name: i for i, name in enumerate(names)}
    columns = []
    self.sizes = {}
    for name, share in SELECTIVE.items():
      size = int(round(share * num_items))
      column = np.full(num_items, -1, np.int32)
      column[rng.permutation(num_items)[:size]] = code[name]
      columns.append(column)
      self.sizes[name] = size
    column = np.full(num_items, -1, np.int32)
    order = rng.permutation(num_items)
    start = 0
    for name, share in LADDER.items():
      size = int(round(share * num_items))
      column[order[start:start + size]] = code[name]
      start += size
      self.sizes[name] = size
    columns.append(column)
    columns.append((code["g00"] + cluster % NUM_FILLERS).astype(np.int32))
    table = np.stack(columns, axis=1)
    present = table >= 0
    row_splits = np.concatenate([[0], np.cumsum(present.sum(axis=1))]).astype(np.int64)
    values = MultiValued.from_codes(names, row_splits, table[present])
    self.conditions = ItemConditions.from_multi_valued("tag", values)
    self.vocabularies = Vocabularies(
        user_ids=np.array([f"u{i}" for i in range(NUM_USERS)], dtype=object),
        item_ids=np.array([f"item{i}" for i in range(num_items)], dtype=object),
        user_feature_vocab_sizes=np.zeros([0], np.int64),
        conditions=self.conditions)
    counts = np.bincount(self.conditions.ids, minlength=self.conditions.vocabulary_size)
    position = {v: i for i, v in enumerate(self.conditions.vocabulary)}
    for name, size in self.sizes.items():
      assert counts[position[name]] == size, (name, counts[position[name]], size)


def query_tower(catalog: Catalog, seed: int) -> QueryTower:
  tf.keras.utils.set_random_seed(seed)
  tower = QueryTower(num_users=NUM_USERS, user_feature_vocab_sizes=[],
                     num_conditions=catalog.conditions.vocabulary_size, embedding_dim=DIM,
                     normalize=True)
  tower({"user": tf.zeros([1], tf.int32), "condition": tf.ones([1], tf.int32)})  # build
  return tower


def tower_queries(tower) -> np.ndarray:
  """The query vectors of users u0..u999 without a condition, [NUM_USERS, DIM]."""
  return tower({"user": tf.range(1, NUM_USERS + 1),
                "condition": tf.fill([NUM_USERS], NONE_ID)}).numpy()


def exact_top(embeddings: np.ndarray, queries: np.ndarray, k: int = K):
  """Exact top-k (rows, scores best first) by dot product, in chunks of 50 queries."""
  rows, scores = [], []
  for start in range(0, len(queries), 50):
    s = queries[start:start + 50] @ embeddings.T
    top = np.argpartition(-s, k, axis=1)[:, :k]
    top_scores = np.take_along_axis(s, top, axis=1)
    order = np.argsort(-top_scores, axis=1)
    rows.append(np.take_along_axis(top, order, axis=1))
    scores.append(np.take_along_axis(top_scores, order, axis=1))
  return np.concatenate(rows), np.concatenate(scores)


# ------------------------------------------------------------------- export / load --

def folder_size(path: str) -> int:
  return sum(os.path.getsize(os.path.join(root, f))
             for root, _, files in os.walk(path) for f in files)


def export(catalog: Catalog, tower, index: str, path: str, exact_threshold=None,
           recall_target: float = DEFAULT_RECALL_TARGET) -> Dict[str, float]:
  """Builds the servable and saves it as export_servable does; returns timings/size and,
  for ScaNN, the leaves it searches (tuned at build time to recall_target)."""
  start = time.perf_counter()
  servable = Servable(tower, True, catalog.vocabularies, catalog.embeddings, index=index,
                      max_k=MAX_K, exact_threshold=exact_threshold,
                      recall_target=recall_target)
  built = time.perf_counter()
  tuning = getattr(servable.index, "tuning", None)
  leaves = (f"{tuning.leaves} of {servable.index.num_leaves} (on the sample: " + ", ".join(
      f"recall@{k} {tuning.recall[k]:.3f} of {tuning.ceiling[k]:.3f}"
      for k in sorted(tuning.recall)) + ")" if tuning else "-")
  tf.saved_model.save(
      servable, path,
      signatures={"serving_default": servable.serve,
                  "serving_exclusions": servable.serve_exclusions},
      options=tf.saved_model.SaveOptions(namespace_whitelist=["Scann"]))
  saved = time.perf_counter()
  del servable
  gc.collect()
  return {"build_s": built - start, "save_s": saved - built, "total_s": saved - start,
          "size_mb": folder_size(path) / 2 ** 20, "leaves": leaves}


class Loaded:
  """A loaded servable's serving_default signature, called like a client would."""

  def __init__(self, path: str):
    start = time.perf_counter()
    self.module = tf.saved_model.load(path)
    self.signature = self.module.signatures["serving_default"]
    self.load_s = time.perf_counter() - start

  def __call__(self, inputs):
    out = self.signature(**inputs)
    return {name: value.numpy() for name, value in out.items()}


class ServerCalled:
  """The same SavedModel as tfcr's model server calls it: `LoadedVersion.run` (numpy in,
  numpy out; a Session callable running on the calling thread, `serving/session_model.py`)."""

  def __init__(self, path: str):
    start = time.perf_counter()
    self.version = LoadedVersion("bench", 1, path)
    self.load_s = time.perf_counter() - start

  def __call__(self, inputs):
    return self.version.run("serving_default", inputs)


class SessionLoaded:
  """The same SavedModel in a TF1 Session with TF's default threads, called through a
  callable: the path TF Serving takes (C++ Session::Run on the signature's tensors)."""

  def __init__(self, path: str):
    self.signature = SessionModel(path, inter_op_threads=0).signatures["serving_default"]

  def __call__(self, inputs):
    return self.signature({name: value.numpy() for name, value in inputs.items()})


def requests(users: Sequence[str], condition: str, filter_: str, k: int = K):
  b = len(users)
  return {"user_id": tf.constant(list(users)), "condition": tf.constant([condition] * b),
          "k": tf.constant([k] * b, tf.int32), "filter": tf.constant([filter_] * b)}


# ----------------------------------------------------------------------- measuring --

def interleaved(contenders: Dict[str, Callable[[int], dict]], iterations: int,
                warmup: int, block: int = 1) -> Dict[str, dict]:
  """Calls every contender `block` times per round (contender order reversed every
  round) until each made `iterations` timed calls; times each call.

  contenders: name -> fn(i) that makes the i-th call and returns its outputs.
  Returns name -> {"ms": [iterations] wall ms, "cpu_ms": [iterations] process CPU ms (all
  threads), "scanned": [iterations] median num_scanned of the call}.
  """
  names = list(contenders)
  for i in range(warmup):
    for name in names:
      contenders[name](i)
  result = {name: {"ms": [], "cpu_ms": [], "scanned": []} for name in names}
  i = 0
  for round_ in range(int(math.ceil(iterations / block))):
    for name in (names if round_ % 2 == 0 else names[::-1]):
      for j in range(i, min(i + block, iterations)):
        start, cpu = time.perf_counter(), time.process_time()
        out = contenders[name](j)
        result[name]["ms"].append((time.perf_counter() - start) * 1e3)
        result[name]["cpu_ms"].append((time.process_time() - cpu) * 1e3)
        result[name]["scanned"].append(int(np.median(out.get("num_scanned", 0))))
    i += block
  for r in result.values():
    for key in r:
      r[key] = np.array(r[key])
  return result


def p(values, q):
  return float(np.percentile(values, q))


def ms(x: float) -> str:
  return f"{x:.2f}" if x < 10 else f"{x:.1f}"


def table(header: List[str], rows: List[List[str]]) -> str:
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
  return "\n".join(lines)


def prebuilt(users: List[str], condition: str, filter_: str, batch: int = 1,
             count: int = 256) -> List[dict]:
  """`count` requests of `batch` random users each (fixed seed)."""
  rng = np.random.default_rng(len(users) * 7 + batch)
  return [requests(list(rng.choice(users, batch)), condition, filter_)
          for _ in range(count)]


def calls(servable, made: List[dict]) -> Callable[[int], dict]:
  return lambda i: servable(made[i % len(made)])


def recall(approx: Loaded, exact: Loaded, users: List[str], condition: str,
           filter_: str) -> float:
  hits, total = 0, 0
  for start in range(0, len(users), 100):
    request = requests(users[start:start + 100], condition, filter_)
    a, e = approx(request)["item_ids"][:, :K], exact(request)["item_ids"][:, :K]
    for row_a, row_e in zip(a, e):
      truth = {x for x in row_e if x}
      hits += len(truth & set(row_a))
      total += len(truth)
  return hits / max(total, 1)


# ---------------------------------------------------------------------- benchmarks --

def bench_size(num_items: int, args, out_dir: str, report: List[str], summary: dict):
  log(f"=== {num_items:,} items: catalog")
  catalog = Catalog(num_items, args.clusters, args.spread, args.seed)
  tower = query_tower(catalog, args.seed)
  users = [f"u{i}" for i in range(NUM_USERS)]
  label = f"{num_items // 1000}k" if num_items < 10 ** 6 else f"{num_items // 10 ** 6}M"
  paths = {index: os.path.join(out_dir, f"{label}-{index}")
           for index in ("scann", "brute_force")}

  exports, loaded, cold = {}, {}, {}
  for index in ("scann", "brute_force"):
    log(f"export {index}")
    exports[index] = export(catalog, tower, index, paths[index],
                            recall_target=args.recall_target)
    log(f"  {exports[index]}")
  for index in ("scann", "brute_force"):
    # Load, then the first unfiltered and the first streaming strict call: each path's
    # first call builds what its graph needs (e.g. a ScaNN searcher from the saved state).
    before = rss_mb()
    loaded[index] = Loaded(paths[index])
    after_load = rss_mb()
    start = time.perf_counter()
    loaded[index](requests(["u1"], "", "none"))
    first = (time.perf_counter() - start) * 1e3
    after_first = rss_mb()
    start = time.perf_counter()
    loaded[index](requests(["u1"], "s50", "strict"))
    first_strict = (time.perf_counter() - start) * 1e3
    cold[index] = (loaded[index].load_s, first, first_strict, after_load - before,
                   after_first - after_load, rss_mb() - after_first)
  scann, brute = loaded["scann"], loaded["brute_force"]

  report.append(f"\n#### {label} items: export and cold start\n")
  report.append(table(
      ["index", "Servable() s (index build, leaf tuning)", "leaves searched",
       "saved_model.save s", "export total s",
       "SavedModel MB", "load s", "1st call ms (none)", "1st call ms (strict s50)",
       "RSS MB: load / +1st none / +1st strict"],
      [[index, f"{e['build_s']:.1f}", e["leaves"], f"{e['save_s']:.1f}", f"{e['total_s']:.1f}",
        f"{e['size_mb']:.0f}", f"{cold[index][0]:.1f}", f"{cold[index][1]:.0f}",
        f"{cold[index][2]:.0f}",
        f"{cold[index][3]:.0f} / +{cold[index][4]:.0f} / +{cold[index][5]:.0f}"]
       for index, e in exports.items()]))
  summary[(label, "export")] = exports

  # Latency, unfiltered, ScaNN vs brute force: signatures called as a Python client
  # calls them, then (B=1) as the model server calls them.
  server = {index: ServerCalled(paths[index]) for index in ("scann", "brute_force")}
  rows = []
  for batch, iterations in ((1, args.queries), (32, max(BLOCK, args.queries // 8))):
    made = prebuilt(users, "", "none", batch)
    modes = [("call by call", 1, loaded, made), (f"blocks of {BLOCK}", BLOCK, loaded, made)]
    if batch == 1:  # the server takes numpy: converted here, not in the timed calls
      as_numpy = [{name: value.numpy() for name, value in m.items()} for m in made]
      modes.append((f"blocks of {BLOCK}, model server's call", BLOCK, server, as_numpy))
    for mode, block, servables, prepared in modes:
      log(f"latency B={batch} {mode}: {iterations} calls each")
      r = interleaved({index: calls(servables[index], prepared)
                       for index in ("scann", "brute_force")},
                      iterations, warmup=10, block=block)
      s, b = r["scann"]["ms"], r["brute_force"]["ms"]
      rows.append([batch, mode, ms(p(s, 50)), ms(p(s, 99)), ms(p(r["scann"]["cpu_ms"], 50)),
                   ms(p(b, 50)), ms(p(b, 99)), ms(p(r["brute_force"]["cpu_ms"], 50)),
                   f"**{p(b, 50) / p(s, 50):.1f}x**",
                   f"{p(r['brute_force']['cpu_ms'], 50) / p(r['scann']['cpu_ms'], 50):.1f}x"])
      summary[(label, "latency", batch, mode)] = (p(s, 50), p(b, 50))
  server_load = {index: v.load_s for index, v in server.items()}
  kernels = kernel_comparison(server, users, args.queries, label, summary)
  del server
  report.append(f"\n#### {label} items: latency, filter \"none\", condition \"\", k={K} "
                f"({args.queries} B=1 and {max(BLOCK, args.queries // 8)} B=32 calls per "
                f"contender and mode)\n")
  report.append(table(["B", "interleaving", "ScaNN p50 ms", "ScaNN p99 ms",
                       "ScaNN CPU ms p50", "brute p50 ms", "brute p99 ms",
                       "brute CPU ms p50", "speed-up (p50)", "speed-up (CPU p50)"], rows))
  report.append(f"\nThe model server's load (`LoadedVersion`: SavedModel into a Session, "
                f"init ops run): ScaNN {server_load['scann']:.1f} s, brute force "
                f"{server_load['brute_force']:.1f} s.")

  if kernels:
    report.append(kernels)

  # Recall@10 of the ScaNN servable against the exact (brute-force) one.
  log("recall")
  recall_users = users[:min(args.recall_queries, NUM_USERS)]
  rec = {"none": recall(scann, brute, recall_users, "", "none")}
  for name in SELECTIVE:
    rec[name] = recall(scann, brute, recall_users, name, "strict")
  _, scores = exact_top(catalog.embeddings, tower_queries(tower)[:len(recall_users)])
  summary[(label, "recall")] = rec["none"]
  report.append(f"\n#### {label} items: recall@{K} of the ScaNN servable vs the brute-force "
                f"servable (exact), {len(recall_users)} users\n")
  report.append(table(["filter none"] + [f"strict {n} ({catalog.sizes[n]:,} items, "
                                          f"{'exact' if catalog.sizes[n] <= default_exact_threshold(num_items) else 'stream'})"
                                          for n in SELECTIVE],
                      [[f"**{rec['none']:.3f}**"] + [f"{rec[n]:.3f}" for n in SELECTIVE]]))
  report.append(f"\nThe random-init tower's queries: median exact top-1 / top-10 score "
                f"{np.median(scores[:, 0]):.2f} / {np.median(scores[:, K - 1]):.2f}.")

  # Strict filter on the ScaNN servable, next to the unfiltered call.
  log("strict filter latency")
  contenders = {"none": calls(scann, prebuilt(users, "", "none"))}
  for name in SELECTIVE:
    contenders[name] = calls(scann, prebuilt(users, name, "strict"))
  r = interleaved(contenders, args.queries, warmup=10)
  base = p(r["none"]["ms"], 50)
  rows = [["unfiltered", "-", "-", ms(base), ms(p(r["none"]["ms"], 99)),
           ms(p(r["none"]["cpu_ms"], 50)), "1.00x", int(np.median(r["none"]["scanned"]))]]
  for name, share in SELECTIVE.items():
    size = catalog.sizes[name]
    path = "exact" if size <= default_exact_threshold(num_items) else "stream"
    p50 = p(r[name]["ms"], 50)
    rows.append([f"strict {name}", f"{share:.1%}", f"{size:,} ({path})", ms(p50),
                 ms(p(r[name]["ms"], 99)), ms(p(r[name]["cpu_ms"], 50)),
                 f"**{p50 / base:.2f}x**", int(np.median(r[name]["scanned"]))])
    summary[(label, "strict", name)] = (p50, base)
  report.append(f"\n#### {label} items: strict filter, ScaNN servable, B=1, k={K}, "
                f"exact_threshold={default_exact_threshold(num_items)} ({args.queries} calls each, "
                f"all in one loop)\n")
  report.append(table(["query", "selectivity", "condition items (path)", "p50 ms", "p99 ms",
                       "CPU ms p50", "p50 / unfiltered p50", "num_scanned median"], rows))

  del loaded, scann, brute
  gc.collect()
  if not args.no_crossover:
    bench_crossover(catalog, tower, label, args, out_dir, report, summary, users)
  if args.profile:
    profile(catalog, tower, label, args, out_dir, report, summary)


def kernel_comparison(server, users, iterations, label, summary) -> str:
  """B=1 through the model server's call with ScaNN's SIMD kernels at its own pick (SSE4
  in the pip build, `tfcr.index.scann_cpu`) and at the CPU's level, brute force in the same loop.
  Every contender sets the level before its call (two ctypes writes, ~1 us, all alike)."""
  matched = scann_cpu.applied_level()
  if matched in (None, "baseline"):
    return ""
  log(f"latency B=1, ScaNN kernels baseline vs {matched}: {iterations} calls each")
  made = [{name: value.numpy() for name, value in m.items()}
          for m in prebuilt(users, "", "none")]

  def at(level, servable):
    def call(i):
      scann_cpu.set_level(level)
      return servable(made[i % len(made)])
    return call

  try:
    r = interleaved({"baseline": at("baseline", server["scann"]),
                     matched: at(matched, server["scann"]),
                     "brute": at(matched, server["brute_force"])},
                    iterations, warmup=10, block=BLOCK)
  finally:
    scann_cpu.set_level(matched)
  brute = p(r["brute"]["ms"], 50)
  rows = [["ScaNN's own pick (SSE4 with the pip build's probe)", ms(p(r["baseline"]["ms"], 50)),
           ms(p(r["baseline"]["ms"], 99)), f"{brute / p(r['baseline']['ms'], 50):.1f}x"],
          [f"matched to the CPU ({matched})", ms(p(r[matched]["ms"], 50)),
           ms(p(r[matched]["ms"], 99)), f"**{brute / p(r[matched]['ms'], 50):.1f}x**"]]
  summary[(label, "kernels")] = (p(r["baseline"]["ms"], 50), p(r[matched]["ms"], 50), brute)
  return (f"\n#### {label} items: ScaNN's SIMD kernels, B=1, blocks of {BLOCK}, model "
          f"server's call, brute force (p50 {ms(brute)} ms) in the same loop\n\n"
          + table(["ScaNN kernels", "ScaNN p50 ms", "ScaNN p99 ms", "speed-up over brute (p50)"],
                  rows)
          + f"\n\nScaNN with its kernels matched to the CPU: "
            f"{p(r['baseline']['ms'], 50) / p(r[matched]['ms'], 50):.2f}x faster per call than "
            f"with its own pick.")


def bench_crossover(catalog, tower, label, args, out_dir, report, summary, users):
  log("crossover: export stream-only and exact-only servables")
  paths = {"stream": os.path.join(out_dir, f"{label}-scann-stream"),
           "exact": os.path.join(out_dir, f"{label}-scann-exact")}
  export(catalog, tower, "scann", paths["stream"], exact_threshold=0,
         recall_target=args.recall_target)
  export(catalog, tower, "scann", paths["exact"], exact_threshold=HUGE_THRESHOLD,
         recall_target=args.recall_target)
  servables = {name: Loaded(path) for name, path in paths.items()}
  rows = []
  crossing = None
  for name in sorted(catalog.sizes, key=catalog.sizes.get):
    size = catalog.sizes[name]
    # Exact scoring of half the catalog takes tens of ms: fewer calls for the big ones.
    iterations = max(20, min(args.queries, int(args.queries * 20_000 / size)))
    log(f"  {name} ({size:,} items): {iterations} calls each")
    made = prebuilt(users, name, "strict")
    r = interleaved({kind: calls(s, made) for kind, s in servables.items()}, iterations,
                    warmup=5, block=args.crossover_block)
    stream, exact = p(r["stream"]["ms"], 50), p(r["exact"]["ms"], 50)
    stream_cpu, exact_cpu = p(r["stream"]["cpu_ms"], 50), p(r["exact"]["cpu_ms"], 50)
    faster = "exact" if exact < stream else "stream"
    if faster == "stream" and crossing is None:
      crossing = size
    rows.append([name, f"{size:,}", f"{size / catalog.num_items:.2%}", ms(stream),
                 ms(exact), f"{stream / exact:.2f}", f"{stream_cpu / exact_cpu:.2f}",
                 int(np.median(r["stream"]["scanned"])), f"**{faster}**"])
    summary[(label, "crossover", name)] = (size, stream, exact)
  summary[(label, "crossing")] = crossing
  report.append(f"\n#### {label} items: exact_threshold crossover, strict, B=1, k={K}: the "
                f"ScaNN servable exported with exact_threshold=0 (always stream) and "
                f"{HUGE_THRESHOLD} (always exact), interleaved per condition "
                f"{'call by call' if args.crossover_block == 1 else f'in blocks of {args.crossover_block} calls'}\n")
  report.append(table(["condition", "items", "selectivity", "stream p50 ms", "exact p50 ms",
                       "stream / exact (p50)", "stream / exact (CPU p50)",
                       "stream num_scanned", "faster"], rows))
  del servables
  gc.collect()


# ------------------------------------------------------------------------ profiling --

class SketchIndex:
  """A ScaNN index with other build settings behind tfcr's `search` interface, for the
  profile only (same search logic as tfcr.index.ScannIndex.search)."""

  def __init__(self, embeddings, num_leaves, leaves, reorder, spherical, max_k=MAX_K):
    self.num_items, self.num_leaves = len(embeddings), num_leaves
    self.base_leaves, self.reorder = leaves, reorder
    builder = scann_ops.builder(embeddings, max_k, "dot_product").tree(
        num_leaves=num_leaves, num_leaves_to_search=leaves,
        training_sample_size=min(len(embeddings), 250_000), spherical=spherical)
    self.searcher = builder.score_ah(2, anisotropic_quantization_threshold=0.2).reorder(
        reorder).build()

  call_filter_branches = True  # as tfcr's ScaNN index (tfcr.export.condition_filter)

  def bind(self):
    return self

  def search(self, queries, n, max_n=None):  # pylint: disable=unused-argument
    """max_n: tfcr's static bound on n, which this sketch does not use."""
    n = tf.minimum(tf.cast(n, tf.int32), self.num_items)
    per_leaf = self.num_items / self.num_leaves
    leaves = tf.cast(tf.math.ceil(2.0 * tf.cast(n, tf.float32) / per_leaf), tf.int32)
    leaves = tf.clip_by_value(leaves, self.base_leaves, self.num_leaves)
    rows, scores = self.searcher.search_batched(
        queries, final_num_neighbors=n,
        pre_reorder_num_neighbors=tf.maximum(n, self.reorder), leaves_to_search=leaves)
    missing = tf.math.is_nan(scores)
    return (tf.where(missing, tf.constant(-np.inf, tf.float32), scores),
            tf.where(missing, -1, tf.cast(rows, tf.int32)))


def profile(catalog, tower, label, args, out_dir, report, summary):
  """Where the time of an unfiltered B=1 call goes, and what ScaNN settings cost/give."""
  import tensorflow_recommenders as tfrs  # pylint: disable=g-import-not-at-top
  queries = tower_queries(tower)
  truth, _ = exact_top(catalog.embeddings, queries)

  def recall_of(rows):
    return float(np.mean([len(set(a) & set(b)) / K
                          for a, b in zip(np.asarray(rows)[:, :K], truth)]))

  vectors = [tf.constant(queries[i:i + 1]) for i in range(256)]
  vectors32 = [tf.constant(queries[np.random.default_rng(i).integers(0, NUM_USERS, 32)])
               for i in range(64)]

  # The real in-process servable: its ScannIndex gives tfcr's tree and search settings.
  log("profile: in-process servable")
  servable = Servable(tower, True, catalog.vocabularies, catalog.embeddings, index="scann",
                      max_k=MAX_K)
  num_leaves = servable.index.num_leaves
  base_leaves, base_reorder = servable.index.base_leaves, servable.index.reorder

  # 1. ScaNN settings: tfcr's tree (not spherical) and a spherical tree with the same
  # number of leaves, searched with several leaves_to_search / reorder counts; TFRS's
  # own ScaNN layer with its defaults.
  log("profile: ScaNN settings")
  spherical = SketchIndex(catalog.embeddings, num_leaves, base_leaves, base_reorder, True)
  trees = {"tfcr tree": scann_ops.searcher_from_module(servable.index.state),
           "spherical tree": spherical.searcher}
  tfrs_layer = tfrs.layers.factorized_top_k.ScaNN(k=K)
  tfrs_layer.index(candidates=tf.constant(catalog.embeddings))
  spec = [tf.TensorSpec([None, DIM], tf.float32)]
  configs = {}
  for tree, searcher in trees.items():
    for leaves in sorted({max(1, base_leaves // 2), base_leaves,
                          min(num_leaves, 2 * base_leaves), min(num_leaves, 4 * base_leaves)}):
      for reorder in sorted({100, 200, base_reorder}):
        fn = tf.function(
            lambda q, s=searcher, l=leaves, r=reorder: s.search_batched(
                q, final_num_neighbors=K, pre_reorder_num_neighbors=r, leaves_to_search=l)[0],
            input_signature=spec)
        configs[(tree, leaves, reorder)] = fn
  tfrs_fn = tf.function(lambda q: tfrs_layer(q, k=K)[1], input_signature=spec)
  variants = {key: (lambda i, fn=fn: {"_": fn(vectors[i % 256]).numpy()})
              for key, fn in configs.items()}
  variants["tfrs"] = lambda i: {"_": tfrs_fn(vectors[i % 256]).numpy()}
  r = interleaved(variants, args.queries // 2, warmup=10)
  recalls = {key: recall_of(fn(tf.constant(queries))) for key, fn in configs.items()}
  recalls["tfrs"] = recall_of(tfrs_fn(tf.constant(queries)))
  rows = []
  for key in variants:
    name = ("TFRS ScaNN layer, its defaults (100 leaves, 10 searched, no reorder)"
            if key == "tfrs" else f"{key[0]}, {num_leaves} leaves: search {key[1]}, "
                                  f"reorder {key[2]}")
    rows.append([name, ms(p(r[key]["ms"], 50)), ms(p(r[key]["cpu_ms"], 50)),
                 f"{recalls[key]:.3f}"])
  default = ("tfcr tree", base_leaves, base_reorder)
  # The cheapest setting with recall >= 0.95 (falls back to tfcr's default).
  good = [key for key in configs if recalls[key] >= 0.95]
  tuned = min(good, key=lambda key: p(r[key]["ms"], 50)) if good else default
  report.append(f"\n#### {label} items: profile 1, ScaNN settings: a raw searcher in a "
                f"tf.function, B=1, k={K} ({args.queries // 2} interleaved calls each); "
                f"recall@{K} vs exact on the {NUM_USERS} users' queries. tfcr's default: "
                f"{base_leaves} leaves searched, reorder {base_reorder}\n")
  report.append(table(["searcher", "p50 ms", "CPU ms p50", "recall@10"], rows))
  report.append(f"\nCheapest setting with recall@10 >= 0.95: {tuned[0]}, search {tuned[1]}, "
                f"reorder {tuned[2]} (recall {recalls[tuned]:.3f}).")
  summary[(label, "tuned")] = (tuned, recalls[tuned], recalls[default])
  del variants, configs, tfrs_fn, tfrs_layer
  gc.collect()

  # 2. B=32: ScaNN's search_batched (what ScannIndex uses: one thread) vs
  # search_batched_parallel, tfcr's tree and setting.
  searcher = trees["tfcr tree"]
  batched = {
      "search_batched (tfcr)": tf.function(
          lambda q: searcher.search_batched(q, K, base_reorder, base_leaves)[0],
          input_signature=spec),
      "search_batched_parallel": tf.function(
          lambda q: searcher.search_batched_parallel(q, K, base_reorder, base_leaves)[0],
          input_signature=spec)}
  r = interleaved({n: (lambda i, fn=fn: {"_": fn(vectors32[i % 64]).numpy()})
                   for n, fn in batched.items()}, max(BLOCK, args.queries // 8), warmup=5)
  b32 = {n: p(x["ms"], 50) for n, x in r.items()}
  del trees, searcher, spherical, batched, r
  gc.collect()

  # 3. Decomposition of an unfiltered B=1 call.
  log("profile: decomposition")
  loaded = Loaded(os.path.join(out_dir, f"{label}-scann"))
  session = SessionLoaded(os.path.join(out_dir, f"{label}-scann"))
  tuned_index = SketchIndex(catalog.embeddings, num_leaves, tuned[1], tuned[2],
                            tuned[0] == "spherical tree")
  made = prebuilt([f"u{i}" for i in range(NUM_USERS)], "", "none")
  strings = [tf.TensorSpec([None], tf.string)]
  serve_spec = strings * 2 + [tf.TensorSpec([None], tf.int32)] + strings

  def fast_path(index):
    @tf.function(input_signature=serve_spec)
    def serve(user_id, condition, k, filter_):
      """Servable._serve with a sketched fast path: a batch without strict rows (and
      without exclusions, as in serving_default) makes one index.search instead of
      ConditionFilter's groups, conds and while_loop. Same outputs."""
      exclude = tf.fill([tf.shape(user_id)[0], 0], "")
      check = servable._validate(user_id, condition, k, filter_, exclude)  # pylint: disable=protected-access
      with tf.control_dependencies([check]):
        user = servable.user_table.lookup(user_id)
      condition_id = tf.where(condition == "", NONE_ID,
                              servable.condition_table.lookup(condition))
      queries = servable.query_tower({"user": user, "condition": condition_id})
      strict = (filter_ == "strict") & (condition_id != NONE_ID)

      def plain():
        scores, rows = index.search(queries, tf.reduce_max(k))
        pad = [[0, 0], [0, MAX_K - tf.shape(rows)[1]]]
        rows = tf.pad(rows, pad, constant_values=-1)
        scores = tf.pad(scores, pad, constant_values=-np.inf)
        within_k = tf.range(MAX_K)[None, :] < k[:, None]
        rows = tf.where(within_k, rows, -1)
        return rows, tf.where(within_k & (rows >= 0), scores, -np.inf), k

      def full():
        return servable.filter(index, queries, condition_id, k, filter_ == "strict",
                               tf.fill([tf.shape(user_id)[0], 0], -1))

      rows, scores, scanned = tf.cond(tf.reduce_any(strict), full, plain)
      item_ids = tf.gather(servable.item_id_of_row, rows + 1)
      real = (condition_id != NONE_ID) & (condition_id != OOV_ID)
      match = servable.filter.has_condition(rows, condition_id) & real[:, None]
      return {"item_ids": item_ids, "scores": scores, "condition_match": match,
              "num_scanned": scanned}
    return serve

  @tf.function(input_signature=strings)
  def tables_tower(user_id):
    user = servable.user_table.lookup(user_id)
    return servable.query_tower({"user": user, "condition": tf.fill(tf.shape(user), NONE_ID)})

  @tf.function(input_signature=strings)
  def no_filter(user_id):
    _, rows = servable.index.search(tables_tower(user_id), tf.constant(K))
    return tf.gather(servable.item_id_of_row, rows + 1)

  @tf.function(input_signature=spec)
  def index_search(q):
    return servable.index.search(q, tf.constant(K))[1]

  @tf.function(input_signature=serve_spec)
  def empty(user_id, condition, k, filter_):  # pylint: disable=unused-argument
    return {"k": k}

  def numpy_all(out):
    return {"_": [v.numpy() for v in (out.values() if isinstance(out, dict) else [out])]}

  def kwargs(i):
    return {("filter_" if n == "filter" else n): v for n, v in made[i % 256].items()}

  fast, fast_tuned = fast_path(servable.index), fast_path(tuned_index)
  variants = {
      "loaded SavedModel, signatures[\"serving_default\"] (what clients call)":
          calls(loaded, made),
      "same SavedModel in a TF1 Session callable (TF Serving's path)": calls(session, made),
      "in-process Servable.serve (same graph, not saved)":
          lambda i: numpy_all(servable.serve(**made[i % 256])),
      "in-process, sketch: fast path for batches without strict rows":
          lambda i: numpy_all(fast(**kwargs(i))),
      f"in-process, sketch: fast path + {tuned[0]}, search {tuned[1]}, reorder {tuned[2]}":
          lambda i: numpy_all(fast_tuned(**kwargs(i))),
      "tables + tower + ScannIndex.search + id gather (no validation, no filter)":
          lambda i: numpy_all(no_filter(made[i % 256]["user_id"])),
      "tables + query tower only": lambda i: numpy_all(tables_tower(made[i % 256]["user_id"])),
      f"ScannIndex.search only ({base_leaves} leaves, reorder {base_reorder})":
          lambda i: numpy_all(index_search(vectors[i % 256])),
      "empty tf.function with the 4 string/int inputs (TF call floor)":
          lambda i: numpy_all(empty(**kwargs(i))),
  }
  log(f"profile: {len(variants)} variants, {args.queries} interleaved calls each")
  r = interleaved(variants, args.queries, warmup=20)
  base = p(r[next(iter(variants))]["ms"], 50)
  rows = [[name, ms(p(x["ms"], 50)), ms(p(x["ms"], 99)), ms(p(x["cpu_ms"], 50)),
           f"{p(x['ms'], 50) / base:.2f}"] for name, x in r.items()]
  summary[(label, "decomposition")] = {name: p(x["ms"], 50) for name, x in r.items()}
  report.append(f"\n#### {label} items: profile 2, an unfiltered B=1 call taken apart "
                f"({args.queries} interleaved calls each)\n")
  report.append(table(["variant", "p50 ms", "p99 ms", "CPU ms p50", "p50 / signature p50"],
                      rows))
  traces = servable.serve.experimental_get_tracing_count()
  report.append(f"\nServable.serve was traced {traces} time(s) over all its calls (no "
                f"retracing). B=32, tfcr's ScaNN setting, raw searcher p50: "
                + ", ".join(f"{n} {ms(v)} ms" for n, v in b32.items()) + ".")
  del servable, loaded, session, tuned_index
  gc.collect()


# ---------------------------------------------------------------- scale mode (--json) --
#
# Per catalog size, four child processes one after the other (spawned: nothing shared):
# export ScaNN, export brute force (each: the catalog, `Servable(...)` and
# `tfcr.export.exporter.save_version`, as `tfcr-export` saves; build time, the child's
# peak RSS, the SavedModel's size), then serve each: `LoadedVersion` (the model server's
# load) plus its warm-up (`LoadedVersion.warm_up`, the warm-up requests export wrote),
# then single queries through the server's call, `LoadedVersion.run`. Recall@10 is
# against exact top-10 computed here with NumPy from the catalog (for strict, over the
# condition's items only). A 10M catalog's two servables do not fit in memory together
# next to other jobs, hence a process each; the brute-force / ScaNN ratio is then taken
# across two processes of the same run (not interleaved call by call).

SCALE_METHODS = ("scann", "brute_force")


def _available_gb() -> float:
  with open("/proc/meminfo") as f:
    for line in f:
      if line.startswith("MemAvailable:"):
        return int(line.split()[1]) / 2 ** 20
  return float("nan")


def _wait_for_memory(size: int, args) -> None:
  if size < 5_000_000:
    return
  while _available_gb() < args.min_free_gb:
    log(f"waiting: {_available_gb():.1f} GB available, {args.min_free_gb} needed")
    time.sleep(30)


def _exact_rows(embeddings, queries, items=None, k=K):
  """Exact top-k rows (sets) by dot product, over `items` (rows) or all items."""
  table = embeddings if items is None else embeddings[items]
  chunk = max(1, 2 ** 26 // max(1, len(table)))
  found = []
  for start in range(0, len(queries), chunk):
    scores = queries[start:start + chunk] @ table.T
    top = np.argpartition(-scores, min(k, scores.shape[1] - 1), axis=1)[:, :k]
    found += [set(row.tolist()) if items is None else set(items[row].tolist())
              for row in top]
  return found


def _export_child(size, method, path, args):
  from tfcr.export.exporter import save_version  # pylint: disable=import-outside-toplevel
  from tfcr.utils.resources import folder_bytes, peak_rss_bytes  # pylint: disable=import-outside-toplevel
  catalog = Catalog(size, args.clusters, args.spread, args.seed)
  tower = query_tower(catalog, args.seed)
  log(f"  catalog of {size:,} items ready; peak RSS {peak_rss_bytes() / 2 ** 30:.1f} GiB")
  started = time.perf_counter()
  servable = Servable(tower, True, catalog.vocabularies, catalog.embeddings, index=method,
                      max_k=MAX_K, recall_target=args.recall_target)
  built = time.perf_counter()
  catalog.embeddings = None  # the servable holds its own copies: not kept while saving
  gc.collect()
  tuning = getattr(servable.index, "tuning", None)
  if tuning is not None:
    for line in servable.index.describe_tuning().splitlines():
      log("  " + line)
  target = save_version(servable, catalog.vocabularies, os.path.dirname(path),
                        int(os.path.basename(path)))
  done = time.perf_counter()
  return {"build_seconds": done - started, "index_seconds": built - started,
          "save_seconds": done - built, "peak_rss_bytes": peak_rss_bytes(),
          "disk_bytes": folder_bytes(target),
          "leaves": (f"{tuning.leaves} of {servable.index.num_leaves}" if tuning else None),
          "depth_leaves": ({str(depth): choice.leaves
                            for depth, choice in servable.index.depth_tuning}
                           if tuning else None)}


def _timed(call, made, iterations, warmup=10):
  for i in range(warmup):
    call(made[i % len(made)])
  times, outs = [], []
  for i in range(iterations):
    start = time.perf_counter()
    out = call(made[i % len(made)])
    times.append((time.perf_counter() - start) * 1e3)
    outs.append(out)
  return np.array(times), outs


def _numpy_requests(users, condition, filter_):
  return {"user_id": np.array([u.encode() for u in users], dtype=object),
          "condition": np.array([condition.encode()] * len(users), dtype=object),
          "k": np.full([len(users)], K, np.int32),
          "filter": np.array([filter_.encode()] * len(users), dtype=object)}


def _serve_child(size, method, path, args):
  from tfcr.utils.resources import current_rss_bytes, peak_rss_bytes  # pylint: disable=import-outside-toplevel
  catalog = Catalog(size, args.clusters, args.spread, args.seed)
  catalog.vocabularies = None  # 10M id strings (~1 GB) the serving side does not need
  gc.collect()
  tower = query_tower(catalog, args.seed)
  # The catalog's own item ids and conditions are what recall is checked against; the
  # servable's memory is what the server holds beyond them.
  before = current_rss_bytes()
  started = time.perf_counter()
  version = LoadedVersion("bench", 1, path)
  loaded = time.perf_counter()
  warmed_records = version.warm_up()
  warmed = time.perf_counter()
  served_rss = current_rss_bytes() - before
  users = [f"u{i}" for i in range(NUM_USERS)]
  rng = np.random.default_rng(size)
  order = rng.permutation(NUM_USERS)
  iterations = args.queries if method == "scann" else args.brute_queries
  call = lambda inputs: version.run("serving_default", inputs)  # noqa: E731
  row_of = lambda item_id: int(item_id[4:])  # noqa: E731  "item123" -> 123
  result = {"load_seconds": loaded - started, "warmup_seconds": warmed - loaded,
            "warmup_records": warmed_records, "served_rss_bytes": served_rss,
            "records": []}

  position = {v: i for i, v in enumerate(catalog.conditions.vocabulary)}

  def measure(condition, filter_, name, items=None):
    made = [_numpy_requests([users[u]], condition, filter_) for u in order[:256]]
    times, outs = _timed(call, made, iterations)
    filled = min(int(np.sum(out["item_ids"][0, :K] != b"")) for out in outs)
    recall_users = order[:min(args.recall_queries, NUM_USERS)]
    # The query vectors the servable computes: the user's, under the condition asked.
    condition_id = position[condition] if condition else NONE_ID
    vectors = tower({"user": tf.constant(recall_users + 1, tf.int32),
                     "condition": tf.fill([len(recall_users)], condition_id)}).numpy()
    truth = _exact_rows(catalog.embeddings, vectors, items)
    hits, wanted = 0, sum(len(t) for t in truth)  # min(k, the condition's items) each
    for start in range(0, len(recall_users), 50):
      batch = recall_users[start:start + 50]
      out = call(_numpy_requests([users[u] for u in batch], condition, filter_))
      for row, want in zip(out["item_ids"][:, :K], truth[start:start + 50]):
        hits += len({row_of(i.decode()) for i in row if i} & want)
    recall_at_10 = hits / max(1, wanted)
    log(f"  {name}: p50 {np.percentile(times, 50):.2f} ms, p99 "
        f"{np.percentile(times, 99):.2f} ms, recall@10 {recall_at_10:.3f}, fewest of k "
        f"filled {filled}/{K}, {iterations} calls")
    result["records"].append({"method": name, "p50_ms": float(np.percentile(times, 50)),
                              "p99_ms": float(np.percentile(times, 99)),
                              "recall_at_10": recall_at_10, "k_filled_min": filled})

  measure("", "none", method)
  if method == "scann":
    # And 0.5%, streamed at 10M items (above the exact path's 20,000): the deepest
    # streaming fetches, n = 3,000 at k = 10, between the 1% and 0.1% rows.
    for name, share in {**SELECTIVE, "x05": LADDER["x05"]}.items():
      items = np.flatnonzero(_has_condition(catalog.conditions, position[name]))
      measure(name, "strict", f"scann_strict_{share:g}", items)
  result["peak_rss_bytes"] = peak_rss_bytes()
  return result


def _has_condition(conditions, code):
  """[num_items] bool: which items have condition `code` (from the ItemConditions)."""
  mask = np.zeros(conditions.num_items, bool)
  owners = np.repeat(np.arange(conditions.num_items), conditions.lengths())
  mask[owners[conditions.ids == code]] = True
  return mask


def _in_child(fn, *args):
  """fn(*args) in a fresh spawned process; returns its result."""
  import concurrent.futures  # pylint: disable=import-outside-toplevel
  import multiprocessing  # pylint: disable=import-outside-toplevel
  with concurrent.futures.ProcessPoolExecutor(
      1, mp_context=multiprocessing.get_context("spawn")) as pool:
    return pool.submit(fn, *args).result()


def scale_main(args, argv):
  """--json: see the scale section above; returns the records."""
  import json  # pylint: disable=import-outside-toplevel
  sizes = [int(s) for s in args.sizes.split(",") if s]
  out_dir = args.out_dir or tempfile.mkdtemp(prefix="tfcr-bench-scale-")
  os.makedirs(out_dir, exist_ok=True)
  command = " ".join(sys.argv[1:] if argv is None else argv)
  records, details = [], []
  try:
    for size in sizes:
      for method in SCALE_METHODS:
        path = os.path.join(out_dir, f"{size}-{method}", "1")
        _wait_for_memory(size, args)
        log(f"=== {size:,} items, {method}: export (child process)")
        exported = _in_child(_export_child, size, method, path, args)
        log(f"  export {exported['build_seconds']:.1f} s (index {exported['index_seconds']:.1f}"
            f" s, save {exported['save_seconds']:.1f} s), peak RSS "
            f"{exported['peak_rss_bytes'] / 2 ** 30:.2f} GiB, SavedModel "
            f"{exported['disk_bytes'] / 2 ** 20:,.0f} MiB, leaves {exported['leaves']}")
        _wait_for_memory(size, args)
        log(f"=== {size:,} items, {method}: serve (child process)")
        served = _in_child(_serve_child, size, method, path, args)
        log(f"  load {served['load_seconds']:.1f} s, warm-up {served['warmup_seconds']:.1f} s "
            f"({served['warmup_records']} requests), served RSS "
            f"{served['served_rss_bytes'] / 2 ** 30:.2f} GiB")
        details.append({"size": size, "method": method, **exported,
                        **{k: v for k, v in served.items() if k != "records"},
                        "serve_peak_rss_bytes": served["peak_rss_bytes"],
                        "k_filled_min": {r["method"]: r["k_filled_min"]
                                         for r in served["records"]}})
        for r in served["records"]:
          whole = r["method"] == method
          records.append({"size": size, "method": r["method"], "p50_ms": r["p50_ms"],
                          "p99_ms": r["p99_ms"], "recall_at_10": r["recall_at_10"],
                          "build_seconds": exported["build_seconds"] if whole else None,
                          "peak_rss_bytes": exported["peak_rss_bytes"] if whole else None,
                          "disk_bytes": exported["disk_bytes"] if whole else None})
        shutil.rmtree(os.path.dirname(path), ignore_errors=True)
        with open(args.json, "w") as f:  # after every method: a crash keeps what was done
          json.dump(records, f, indent=1)
  finally:
    if not args.keep:
      shutil.rmtree(out_dir, ignore_errors=True)
  lines = [f"Machine: {machine_line()}; {run_settings()}.",
           f"Command: `.venv/bin/python benchmarks/bench_servable.py {command}`.", "",
           table(["size", "method", "p50 ms", "p99 ms", "recall@10", "build s",
                  "export peak RSS GiB", "SavedModel MiB"],
                 [[f"{r['size']:,}", r["method"], ms(r["p50_ms"]), ms(r["p99_ms"]),
                   f"{r['recall_at_10']:.3f}",
                   "-" if r["build_seconds"] is None else f"{r['build_seconds']:.1f}",
                   "-" if r["peak_rss_bytes"] is None else f"{r['peak_rss_bytes'] / 2 ** 30:.2f}",
                   "-" if r["disk_bytes"] is None else f"{r['disk_bytes'] / 2 ** 20:,.0f}"]
                  for r in records]), "",
           table(["size", "method", "load s", "warm-up s", "served RSS GiB",
                  "serving process peak RSS GiB", "leaves searched", "fewest of k filled"],
                 [[f"{d['size']:,}", d["method"], f"{d['load_seconds']:.1f}",
                   f"{d['warmup_seconds']:.1f}", f"{d['served_rss_bytes'] / 2 ** 30:.2f}",
                   f"{d['serve_peak_rss_bytes'] / 2 ** 30:.2f}", d["leaves"] or "-",
                   ", ".join(f"{m} {v}" for m, v in d["k_filled_min"].items())]
                  for d in details])]
  for size in sizes:
    p50 = {r["method"]: r["p50_ms"] for r in records if r["size"] == size}
    if "scann" in p50 and "brute_force" in p50:
      lines.append(f"\n{size:,} items: brute force p50 / ScaNN p50 = "
                   f"{p50['brute_force'] / p50['scann']:.1f}x (separate processes).")
  text = "\n".join(lines)
  print(text)
  if args.report:
    with open(args.report, "w") as f:
      f.write(text + "\n")
  with open(args.json + ".details.json", "w") as f:
    json.dump(details, f, indent=1)
  return records


# --------------------------------------------------------------------------- main --

def run_settings() -> str:
  """What this process runs with beyond the machine: TensorFlow's thread pools and
  ScaNN's SIMD kernels."""
  return (f"TensorFlow inter-op threads "
          f"{tf.config.threading.get_inter_op_parallelism_threads() or 'auto'}, intra-op "
          f"{tf.config.threading.get_intra_op_parallelism_threads() or 'auto'}; "
          f"ScaNN kernels {scann_cpu.applied_level()} (`tfcr.index.scann_cpu`; the CPU has "
          f"{scann_cpu.cpu_level()})")


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--sizes", default="100000,1000000",
                      help="catalog sizes, comma separated")
  parser.add_argument("--queries", type=int, default=1000,
                      help="timed B=1 calls per contender (B=32: an eighth)")
  parser.add_argument("--recall_queries", type=int, default=1000,
                      help="users (u0..) whose top-10 are compared for recall (<= 1000)")
  parser.add_argument("--clusters", type=int, default=1000)
  parser.add_argument("--spread", type=float, default=0.75,
                      help="noise norm / cluster centre norm before normalising")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--recall_target", type=float, default=DEFAULT_RECALL_TARGET,
                      help="ScaNN leaf tuning target (serving.export --scann_recall_target)")
  parser.add_argument("--no_crossover", action="store_true",
                      help="skip the exact_threshold crossover")
  parser.add_argument("--crossover_block", type=int, default=1,
                      help="crossover: calls in a row per servable (1: call by call)")
  parser.add_argument("--profile", action="store_true",
                      help="also time variants to see where an unfiltered call's time goes")
  parser.add_argument("--inter_op_threads", type=int, default=0,
                      help="TensorFlow inter-op threads, as tfcr-serve's "
                           "--tensorflow_inter_op_parallelism (0: TensorFlow's choice)")
  parser.add_argument("--intra_op_threads", type=int, default=0,
                      help="TensorFlow intra-op threads (0: TensorFlow's choice)")
  parser.add_argument("--out_dir", default=None,
                      help="where the SavedModels go (default: a temporary folder)")
  parser.add_argument("--keep", action="store_true", help="keep --out_dir at the end")
  parser.add_argument("--report", default=None, help="also write the tables to this file")
  parser.add_argument("--json", default=None,
                      help="scale mode: per size, each index exported and then served in "
                           "its own child process (so a 10M catalog's servables need not fit "
                           "together); writes one JSON record per size and method to this "
                           "file (see the scale section of the docstring)")
  parser.add_argument("--brute_queries", type=int, default=200,
                      help="scale mode: timed calls of the brute-force servable")
  parser.add_argument("--min_free_gb", type=float, default=17.0,
                      help="scale mode: catalogs of >= 5M items wait for this much "
                           "MemAvailable before each child starts")
  args = parser.parse_args(argv)
  if args.json:
    return scale_main(args, argv)
  # Before TensorFlow runs anything: the process's thread pools are made once.
  tf.config.threading.set_inter_op_parallelism_threads(args.inter_op_threads)
  tf.config.threading.set_intra_op_parallelism_threads(args.intra_op_threads)
  sizes = [int(s) for s in args.sizes.split(",") if s]
  out_dir = args.out_dir or tempfile.mkdtemp(prefix="tfcr-bench-servable-")
  os.makedirs(out_dir, exist_ok=True)
  command = " ".join(sys.argv[1:] if argv is None else argv)
  report = [f"Machine: {machine_line()}; {run_settings()}.",
            f"Command: `.venv/bin/python benchmarks/bench_servable.py"
            f"{' ' + command if command else ''}`."]
  summary = {}
  try:
    for size in sizes:
      bench_size(size, args, out_dir, report, summary)
      log(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20:.1f} GB")
  finally:
    if args.keep:
      log(f"SavedModels kept in {out_dir}")
    else:
      shutil.rmtree(out_dir, ignore_errors=True)
  report.append(f"\nPeak RSS of the benchmark process: "
                f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20:.1f} GB.")
  text = "\n".join(report)
  print(text)
  if args.report:
    with open(args.report, "w") as f:
      f.write(text + "\n")
  return summary


if __name__ == "__main__":
  main()
