"""Servable latency: the exported SavedModel (query tower + index + condition filter).

    .venv/bin/python benchmarks/bench_servable.py                      # 100k and 1M items
    .venv/bin/python benchmarks/bench_servable.py --sizes=100000 --queries=300
    .venv/bin/python benchmarks/bench_servable.py --profile            # + ScaNN variants

For each catalog size a synthetic catalog with d = 64:

* item embeddings shaped like a trained tower's: a mixture of --clusters gaussian clusters
  (cluster sizes log-normal, i.e. some "genres" much bigger than others), each item its
  cluster centre plus isotropic noise (--spread: noise norm / centre norm), L2-normalised
  like tfcr's towers (normalize_embeddings). iid gaussian vectors would be unrealistically
  hard for an ANN (no structure for the tree or the quantiser to use);
* conditions of exact selectivities: "s50" on a random 50% of the items, "s10" on 10%,
  "s1" on 1%, "s01" on 0.1% (independent draws, so an item can have several); "x02",
  "x05", "x2", "x5", "x20" on disjoint random sets of 0.2%, 0.5%, 2%, 5% and 20% of the
  items (condition sizes between those, for the exact-vs-streaming crossover); and one
  filler condition "g00".."g99" per item following its cluster (a genre), so every item
  has >= 1 condition. `ItemConditions.from_multi_valued` and `Vocabularies` are built from
  them by hand, users are "u0".."u999";
* a real `QueryTower` (num_conditions = the condition vocabulary, embedding_dim 64,
  normalize=True), randomly initialised;
* `Servable(query_tower, True, vocabularies, item_embeddings, index=..., max_k=100)`
  saved exactly as `tfcr.servable.export_servable` does (both signatures,
  namespace_whitelist=["Scann"]); the export is timed (Servable construction, which builds
  the index, then tf.saved_model.save) and the folder's size reported.

Each SavedModel is loaded back (after `from scann import scann_ops`) and its
`serving_default` signature called with string inputs, as a client would. The machine is
shared, so contenders are always measured in the same loop, call by call, alternating
their order each iteration, after a warm-up; ratios are taken within one run. Latency is
the wall time of the signature call (outputs are materialised with .numpy()).

* latency: ScaNN vs brute-force servable, B=1 and B=32, k=10, filter "none", condition "".
* recall@10: ScaNN servable item_ids vs the brute-force servable's (exact), filter "none",
  --recall_queries users; and with filter "strict" per selectivity.
* strict filter: ScaNN servable, condition s50/s10/s1/s01, k=10, B=1, next to the
  unfiltered call in the same loop; median num_scanned.
* exact_threshold crossover (largest size only): the ScaNN servable also built with
  exact_threshold=0 (always stream) and with a huge threshold (always exact scoring of the
  condition's items); strict queries for every condition size, both servables interleaved.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tfcr  # noqa: E402,F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)

import argparse  # noqa: E402
import datetime  # noqa: E402
import gc  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Callable, Dict, List, Sequence  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from scann import scann_ops  # noqa: E402,F401  (registers the ops a ScaNN SavedModel needs)

from tfcr.condition_filter import DEFAULT_EXACT_THRESHOLD  # noqa: E402
from tfcr.conditions import ItemConditions  # noqa: E402
from tfcr.data.schema import MultiValued  # noqa: E402
from tfcr.model.towers import QueryTower  # noqa: E402
from tfcr.model_io import Vocabularies  # noqa: E402
from tfcr.servable import Servable  # noqa: E402

DIM = 64
NUM_USERS = 1000
MAX_K = 100
K = 10
# Strict-filter conditions of exact selectivities (independent random item sets).
SELECTIVE = {"s50": 0.5, "s10": 0.1, "s1": 0.01, "s01": 0.001}
# Extra sizes for the crossover, on disjoint item sets (so an item has at most one).
LADDER = {"x02": 0.002, "x05": 0.005, "x2": 0.02, "x5": 0.05, "x20": 0.2}
NUM_FILLERS = 100
HUGE_THRESHOLD = 2 ** 31 - 1


def log(*args):
  print(f"[{time.strftime('%H:%M:%S')}]", *args, flush=True)


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
    embeddings = rng.standard_normal((num_items, DIM), dtype=np.float32)
    embeddings *= spread / math.sqrt(DIM)
    embeddings += centres[cluster]
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
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
    # Check the sizes really are what the tables say.
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


# ------------------------------------------------------------------- export / load --

def folder_size(path: str) -> int:
  return sum(os.path.getsize(os.path.join(root, f))
             for root, _, files in os.walk(path) for f in files)


def export(catalog: Catalog, tower, index: str, path: str,
           exact_threshold: int = DEFAULT_EXACT_THRESHOLD) -> Dict[str, float]:
  """Builds the servable and saves it as export_servable does; returns timings/size."""
  start = time.perf_counter()
  servable = Servable(tower, True, catalog.vocabularies, catalog.embeddings, index=index,
                      max_k=MAX_K, exact_threshold=exact_threshold)
  built = time.perf_counter()
  tf.saved_model.save(
      servable, path,
      signatures={"serving_default": servable.serve,
                  "serving_exclusions": servable.serve_exclusions},
      options=tf.saved_model.SaveOptions(namespace_whitelist=["Scann"]))
  saved = time.perf_counter()
  del servable
  gc.collect()
  return {"build_s": built - start, "save_s": saved - built, "total_s": saved - start,
          "size_mb": folder_size(path) / 2 ** 20}


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


def requests(users: Sequence[str], condition: str, filter_: str, k: int = K):
  b = len(users)
  return {"user_id": tf.constant(list(users)), "condition": tf.constant([condition] * b),
          "k": tf.constant([k] * b, tf.int32), "filter": tf.constant([filter_] * b)}


# ----------------------------------------------------------------------- measuring --

def interleaved(contenders: Dict[str, Callable[[int], dict]], iterations: int,
                warmup: int) -> Dict[str, dict]:
  """Calls every contender once per iteration (order alternating), times each call.

  contenders: name -> fn(i) that makes the i-th call and returns its outputs.
  Returns name -> {"ms": [iterations] float, "scanned": [iterations] int}.
  """
  names = list(contenders)
  for i in range(warmup):
    for name in names:
      contenders[name](i)
  result = {name: {"ms": [], "scanned": []} for name in names}
  for i in range(iterations):
    for name in (names if i % 2 == 0 else names[::-1]):
      start = time.perf_counter()
      out = contenders[name](i)
      result[name]["ms"].append((time.perf_counter() - start) * 1e3)
      result[name]["scanned"].append(int(np.median(out["num_scanned"])))
  for r in result.values():
    r["ms"] = np.array(r["ms"])
    r["scanned"] = np.array(r["scanned"])
  return result


def p(values, q):
  return float(np.percentile(values, q))


def ms(x: float) -> str:
  return f"{x:.2f}" if x < 10 else f"{x:.1f}"


def table(header: List[str], rows: List[List[str]]) -> str:
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
  return "\n".join(lines)


def single_calls(servable: Loaded, users: List[str], condition: str, filter_: str,
                 batch: int = 1, k: int = K, count: int = 256) -> Callable[[int], dict]:
  """fn(i) calling `servable` with the i-th of `count` prebuilt requests of `batch` users."""
  rng = np.random.default_rng(len(users) + batch)
  made = [requests(list(rng.choice(users, batch)), condition, filter_, k)
          for _ in range(count)]
  return lambda i: servable(made[i % count])


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

def bench_size(num_items: int, args, out_dir: str, report: List[str], summary: dict,
               crossover: bool):
  log(f"=== {num_items:,} items: catalog")
  catalog = Catalog(num_items, args.clusters, args.spread, args.seed)
  tower = query_tower(catalog, args.seed)
  users = [f"u{i}" for i in range(NUM_USERS)]
  label = f"{num_items // 1000}k" if num_items < 10 ** 6 else f"{num_items // 10 ** 6}M"

  exports = {}
  for index in ("scann", "brute_force"):
    log(f"export {index}")
    exports[index] = export(catalog, tower, index, os.path.join(out_dir, f"{label}-{index}"))
    log(f"  {exports[index]}")
  loaded = {index: Loaded(os.path.join(out_dir, f"{label}-{index}"))
            for index in ("scann", "brute_force")}
  scann, brute = loaded["scann"], loaded["brute_force"]

  report.append(f"\n#### {label} items: export\n")
  report.append(table(
      ["index", "Servable() (index build) s", "saved_model.save s", "export total s",
       "SavedModel MB", "load s"],
      [[index, f"{e['build_s']:.1f}", f"{e['save_s']:.1f}", f"{e['total_s']:.1f}",
        f"{e['size_mb']:.0f}", f"{loaded[index].load_s:.1f}"]
       for index, e in exports.items()]))

  # Latency, unfiltered, ScaNN vs brute force, interleaved.
  rows = []
  for batch, iterations in ((1, args.queries), (32, max(20, args.queries // 8))):
    log(f"latency B={batch}: {iterations} interleaved calls each")
    r = interleaved({"scann": single_calls(scann, users, "", "none", batch),
                     "brute_force": single_calls(brute, users, "", "none", batch)},
                    iterations, warmup=20)
    s50, b50 = p(r["scann"]["ms"], 50), p(r["brute_force"]["ms"], 50)
    ratios = r["brute_force"]["ms"] / r["scann"]["ms"]
    rows.append([batch, ms(s50), ms(p(r["scann"]["ms"], 99)), ms(b50),
                 ms(p(r["brute_force"]["ms"], 99)), f"{b50 / s50:.1f}x",
                 f"{p(ratios, 50):.1f}x", f"{1e3 * batch / s50:,.0f}"])
    summary[(label, "latency", batch)] = (s50, b50)
  report.append(f"\n#### {label} items: latency, filter \"none\", k={K} "
                f"({args.queries} B=1 calls, {max(20, args.queries // 8)} B=32 calls)\n")
  report.append(table(["B", "ScaNN p50 ms", "ScaNN p99 ms", "brute p50 ms", "brute p99 ms",
                       "speed-up (p50 ratio)", "median per-call ratio",
                       "ScaNN queries/s at p50"], rows))

  # Recall@10 of the ScaNN servable against the exact (brute-force) one.
  log("recall")
  recall_users = users[:args.recall_queries] if args.recall_queries <= NUM_USERS else users
  rec = {"none": recall(scann, brute, recall_users, "", "none")}
  for name in SELECTIVE:
    rec[name] = recall(scann, brute, recall_users, name, "strict")
  summary[(label, "recall")] = rec["none"]
  report.append(f"\n#### {label} items: recall@{K} of the ScaNN servable vs the brute-force "
                f"servable (exact), {len(recall_users)} users\n")
  report.append(table(["filter none"] + [f"strict {n} ({catalog.sizes[n]:,} items)"
                                          for n in SELECTIVE],
                      [[f"{rec['none']:.3f}"] + [f"{rec[n]:.3f}" for n in SELECTIVE]]))

  # Strict filter on the ScaNN servable, next to the unfiltered call.
  log("strict filter latency")
  contenders = {"none": single_calls(scann, users, "", "none")}
  for name in SELECTIVE:
    contenders[name] = single_calls(scann, users, name, "strict")
  r = interleaved(contenders, args.queries, warmup=20)
  base = p(r["none"]["ms"], 50)
  rows = [["unfiltered", "-", "-", ms(base), ms(p(r["none"]["ms"], 99)), "1.0x",
           int(np.median(r["none"]["scanned"]))]]
  for name, share in SELECTIVE.items():
    size = catalog.sizes[name]
    path = "exact" if size <= DEFAULT_EXACT_THRESHOLD else "stream"
    p50 = p(r[name]["ms"], 50)
    rows.append([f"strict {name}", f"{share:.1%}", f"{size:,} ({path})", ms(p50),
                 ms(p(r[name]["ms"], 99)), f"{p50 / base:.2f}x",
                 int(np.median(r[name]["scanned"]))])
    summary[(label, "strict", name)] = (p50, base)
  report.append(f"\n#### {label} items: strict filter, ScaNN servable, B=1, k={K}, "
                f"exact_threshold={DEFAULT_EXACT_THRESHOLD} ({args.queries} calls each)\n")
  report.append(table(["query", "selectivity", "condition items (path)", "p50 ms", "p99 ms",
                       "p50 / unfiltered p50", "num_scanned median"], rows))

  del loaded, scann, brute
  gc.collect()
  if crossover:
    bench_crossover(catalog, tower, label, args, out_dir, report, summary, users)
  if args.profile:
    profile(catalog, tower, label, args, out_dir, report, users)


def bench_crossover(catalog, tower, label, args, out_dir, report, summary, users):
  log("crossover: export stream-only and exact-only servables")
  paths = {"stream": os.path.join(out_dir, f"{label}-scann-stream"),
           "exact": os.path.join(out_dir, f"{label}-scann-exact")}
  export(catalog, tower, "scann", paths["stream"], exact_threshold=0)
  export(catalog, tower, "scann", paths["exact"], exact_threshold=HUGE_THRESHOLD)
  servables = {name: Loaded(path) for name, path in paths.items()}
  names = sorted(catalog.sizes, key=catalog.sizes.get)
  rows = []
  crossing = None
  for name in names:
    size = catalog.sizes[name]
    # Exact scoring of half the catalog takes ~100 ms: fewer calls for the big ones.
    iterations = max(20, min(args.queries, int(args.queries * 20_000 / size)))
    log(f"  {name} ({size:,} items): {iterations} calls each")
    r = interleaved({kind: single_calls(s, users, name, "strict")
                     for kind, s in servables.items()}, iterations, warmup=5)
    stream, exact = p(r["stream"]["ms"], 50), p(r["exact"]["ms"], 50)
    faster = "exact" if exact < stream else "stream"
    if faster == "stream" and crossing is None:
      crossing = size
    rows.append([name, f"{size:,}", f"{size / catalog.num_items:.2%}", ms(stream),
                 int(np.median(r["stream"]["scanned"])), ms(exact), f"{stream / exact:.2f}",
                 faster])
    summary[(label, "crossover", name)] = (size, stream, exact)
  summary[(label, "crossing")] = crossing
  report.append(f"\n#### {label} items: exact_threshold crossover, strict, B=1, k={K}, "
                f"ScaNN servables with exact_threshold=0 (always stream) vs "
                f"{HUGE_THRESHOLD} (always exact)\n")
  report.append(table(["condition", "items", "selectivity", "stream p50 ms",
                       "stream num_scanned", "exact p50 ms", "stream / exact", "faster"],
                      rows))
  del servables
  gc.collect()


# ------------------------------------------------------------------------ profiling --

def profile(catalog, tower, label, args, out_dir, report, users):
  """Where the time goes: raw ScaNN searchers with other configs, outside the servable."""
  report.append(f"\n#### {label} items: profile\n")
  report.append("(filled in by --profile)")


# --------------------------------------------------------------------------- main --

def machine() -> str:
  def run(cmd):
    try:
      return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    except OSError:
      return "?"
  model = run("lscpu | grep 'Model name'").split(":", 1)[-1].strip()
  return (f"`nproc` = {run('nproc')}, `lscpu | grep 'Model name'` = {model}, "
          f"{platform.python_implementation()} {platform.python_version()}, "
          f"TensorFlow {tf.__version__}")


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--sizes", default="100000,1000000",
                      help="catalog sizes, comma separated")
  parser.add_argument("--queries", type=int, default=1000,
                      help="timed B=1 calls per contender (B=32: a eighth)")
  parser.add_argument("--recall_queries", type=int, default=1000,
                      help="users (u0..) whose top-10 are compared for recall")
  parser.add_argument("--clusters", type=int, default=1000)
  parser.add_argument("--spread", type=float, default=0.75,
                      help="noise norm / cluster centre norm before normalising")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--no_crossover", action="store_true",
                      help="skip the exact_threshold crossover (largest size)")
  parser.add_argument("--profile", action="store_true",
                      help="also time ScaNN/filter variants to see where the time goes")
  parser.add_argument("--out_dir", default=None,
                      help="where the SavedModels go (default: a temporary folder)")
  parser.add_argument("--keep", action="store_true", help="keep --out_dir at the end")
  parser.add_argument("--report", default=None, help="also write the tables to this file")
  args = parser.parse_args(argv)
  sizes = [int(s) for s in args.sizes.split(",") if s]
  out_dir = args.out_dir or tempfile.mkdtemp(prefix="tfcr-bench-servable-")
  os.makedirs(out_dir, exist_ok=True)
  report = [f"Measured {datetime.date.today().isoformat()}: {machine()}.",
            f"Command: `.venv/bin/python benchmarks/bench_servable.py "
            f"{' '.join(sys.argv[1:] if argv is None else argv)}`".rstrip() + "."]
  summary = {}
  try:
    for size in sizes:
      bench_size(size, args, out_dir, report, summary,
                 crossover=not args.no_crossover and size == max(sizes))
      log(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20:.1f} GB")
  finally:
    if not args.keep:
      shutil.rmtree(out_dir, ignore_errors=True)
    else:
      log(f"SavedModels kept in {out_dir}")
  text = "\n".join(report)
  print(text)
  if args.report:
    with open(args.report, "w") as f:
      f.write(text + "\n")
  return summary


if __name__ == "__main__":
  main()
