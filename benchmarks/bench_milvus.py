"""The catalog in Milvus Lite vs inside the one servable (ScaNN): recall@10 and latency.

    nice -n 10 .venv/bin/python benchmarks/bench_milvus.py               # 100k and 1M items
    nice -n 10 .venv/bin/python benchmarks/bench_milvus.py --sizes=100000 --sweep
    nice -n 10 .venv/bin/python benchmarks/bench_milvus.py --index_type=HNSW,IVF_FLAT  # per size

For each catalog size, the synthetic catalog of benchmarks/bench_servable.py (d = 64,
clustered unit vectors; conditions "s50", "s10", "s1", "s01" on random 50%, 10%, 1%,
0.1% of the items) and its randomly initialised QueryTower, served two ways:

* one servable: `Servable(..., index="scann", max_k=100)` with its export-time leaf
  tuning, saved and loaded back as bench_servable.py does; called with string inputs;
* Milvus: `QueryServable` saved and loaded (`tfcr.export.query_servable`) plus the items
  written by `tfcr.index.milvus_writer.write_collection` into a fresh Milvus Lite file
  with tfcr's default index (HNSW, `tfcr.index.milvus.INDEX_DEFAULTS`; --index_type picks
  another, for every size or one per size), queried through
  `tfcr.client.MilvusSearchClient` (strict filter = array_contains expression).

Recall@10 is against exact NumPy top-10 of the same query vectors (among the items with
the condition, under strict). Latency is the wall time of one query (B=1, k=10) through
each path, measured side by side (alternating call by call) on the same users.
--sweep also measures recall and latency of other Milvus search settings (HNSW ef, an
IVF_FLAT index at several nprobe), to show where the defaults sit.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tfcr  # noqa: E402,F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)

import argparse  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Dict, List  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import bench_servable as bs  # noqa: E402  (its catalog, tower, export and timing loop)
from tfcr.client.milvus import MilvusSearchClient  # noqa: E402
from tfcr.client.query import Query  # noqa: E402
from tfcr.data.conditions import NONE_ID  # noqa: E402
from tfcr.errors import ConfigError  # noqa: E402
from tfcr.export.milvus_export import condition_shares, item_condition_values  # noqa: E402
from tfcr.export.query_servable import QueryServable, save_query_servable  # noqa: E402
from tfcr.index import milvus  # noqa: E402
from tfcr.index.milvus_writer import write_collection  # noqa: E402
from tfcr.utils.machine import machine_line  # noqa: E402

K = 10
CASES = [("", "none"), ("s50", "strict"), ("s10", "strict"), ("s1", "strict"),
         ("s01", "strict")]
log = bs.log


def exact_ids(catalog, queries: np.ndarray, condition: str) -> List[set]:
  """Exact top-10 item ids per query vector (among the items having `condition`)."""
  embeddings = catalog.embeddings
  ids = catalog.vocabularies.item_ids
  rows = np.arange(catalog.num_items)
  if condition:
    position = list(catalog.conditions.vocabulary).index(condition)
    rows = np.flatnonzero(catalog.conditions.membership()[:, position])
    embeddings = embeddings[rows]
  top, _ = bs.exact_top(embeddings, queries, K)
  return [set(ids[rows[r]]) for r in top]


def query_vectors(tower, catalog, users: np.ndarray, condition: str) -> np.ndarray:
  vocabulary = list(catalog.conditions.vocabulary)
  condition_id = vocabulary.index(condition) if condition else NONE_ID
  return tower({"user": tf.constant(users + 1, tf.int32),
                "condition": tf.fill([len(users)], condition_id)}).numpy()


def recall_of(found: List[List[str]], truth: List[set]) -> float:
  return float(np.mean([len(set(f[:K]) & t) / len(t) for f, t in zip(found, truth)]))


def scann_ids(scann, users: List[str], condition: str, filter_: str) -> List[List[str]]:
  out = []
  for start in range(0, len(users), 100):
    batch = users[start:start + 100]
    ids = scann(bs.requests(batch, condition, filter_))["item_ids"][:, :K]
    out += [[x.decode() for x in row if x] for row in ids]
  return out


def milvus_ids(client, users: List[str], condition: str, filter_: str) -> List[List[str]]:
  return [r.item_ids for r in client.predict([Query(u, condition, K, filter_) for u in users])]


def latency(contenders: Dict, iterations: int) -> Dict[str, np.ndarray]:
  timed = bs.interleaved(contenders, iterations, warmup=min(5, iterations))
  return {name: r["ms"] for name, r in timed.items()}


def bench_size(num_items: int, index_type: str, args, out_dir: str, report: List[str]):
  log(f"=== {num_items:,} items: catalog")
  catalog = bs.Catalog(num_items, args.clusters, args.spread, args.seed)
  tower = bs.query_tower(catalog, args.seed)
  rng = np.random.default_rng(args.seed)
  user_rows = rng.choice(bs.NUM_USERS, size=args.recall_queries, replace=False)
  users = [f"u{i}" for i in user_rows]

  log("one servable (ScaNN): export")
  scann_path = os.path.join(out_dir, f"scann-{num_items}")
  exported = bs.export(catalog, tower, "scann", scann_path)
  scann = bs.Loaded(scann_path)
  log(f"  built {exported['build_s']:.1f} s, saved {exported['save_s']:.1f} s, "
      f"leaves {exported['leaves']}")

  log("Milvus Lite: the query servable and the collection")
  query_path = save_query_servable(
      QueryServable(tower, True, catalog.vocabularies), catalog.vocabularies,
      os.path.join(out_dir, f"query-{num_items}", "1"),
      {"condition_shares": condition_shares(catalog.conditions)})
  uri = os.path.join(out_dir, f"catalog-{num_items}.db")
  store = milvus.connect(uri)
  conditions = item_condition_values(catalog.conditions)
  ids = np.asarray(catalog.vocabularies.item_ids).astype(str)
  choices = {"main": milvus.index_choice(index_type, num_items, uri)}
  if args.sweep:  # HNSW ef on the main index (when it is HNSW), IVF_FLAT nprobe
    choices["IVF_FLAT"] = milvus.index_choice("IVF_FLAT", num_items, uri)
  clients = {}
  for label, choice in choices.items():
    name = choice.index_type.lower()
    start = time.perf_counter()
    write_collection(store, name, ids, catalog.embeddings, conditions, choice,
                     overwrite=True, batch_size=20000, log=log)
    log(f"  {choice.index_type} {choice.build_params}: written and indexed in "
        f"{time.perf_counter() - start:.0f} s")
    report.append(f"- {num_items:,} items, Milvus Lite {choice.index_type} {choice.build_params}: "
                  f"written and indexed in {time.perf_counter() - start:.0f} s")
    clients[label] = MilvusSearchClient(query_path, milvus_uri=uri, collection=name,
                                        search_params=choice.search_params,
                                        timeout=3600)
    clients[label].nlist = choice.build_params.get("nlist")
  del conditions
  report.append(f"- {num_items:,} items, ScaNN servable: built {exported['build_s']:.0f} s "
                f"(leaves searched: {exported['leaves']})")

  rows = []
  default = clients["main"]
  for condition, filter_ in CASES:
    truth = exact_ids(catalog, query_vectors(tower, catalog, user_rows, condition), condition)
    r_scann = recall_of(scann_ids(scann, users, condition, filter_), truth)
    r_milvus = recall_of(milvus_ids(default, users, condition, filter_), truth)
    made = [bs.requests([u], condition, filter_) for u in users]
    # Milvus Lite evaluates array_contains row by row in Python (~30 ms per 1k items),
    # so strict calls are few.
    count = args.latency_queries if filter_ == "none" else args.strict_latency_queries
    times = latency({"scann": lambda i, made=made: scann(made[i % len(made)]),
                     "milvus": lambda i, c=condition, f=filter_: {
                         "num_scanned": 0, "r": default.recommend(users[i % len(users)], c,
                                                                 K, f)}},
                    count)
    what = f"strict {condition}" if filter_ == "strict" else "none"
    rows.append([f"{num_items:,}", what, str(count), f"{r_scann:.3f}", f"{r_milvus:.3f}",
                 bs.ms(bs.p(times["scann"], 50)), bs.ms(bs.p(times["scann"], 99)),
                 bs.ms(bs.p(times["milvus"], 50)), bs.ms(bs.p(times["milvus"], 99)),
                 f"{bs.p(times['milvus'], 50) / bs.p(times['scann'], 50):.0f}x"])
    log("  " + " | ".join(rows[-1]))
  report.append("")
  report.append(bs.table(["items", "filter", "timed calls", "recall@10 ScaNN servable", "recall@10 Milvus Lite",
                          "ScaNN p50 ms", "ScaNN p99 ms", "Milvus Lite p50 ms",
                          "Milvus Lite p99 ms", "Milvus/ScaNN p50"], rows))

  if args.sweep:
    sweep = []
    settings = []
    if "ef" in choices["main"].search_params:
      settings = [("main", {"ef": ef}, True) for ef in (64, 128, 256, 512, 1024)]
      settings.append(("main", {"ef": 256}, False))
    nlist = choices["IVF_FLAT"].build_params["nlist"]
    settings += [("IVF_FLAT", {"nprobe": n}, True) for n in
                 sorted({max(1, nlist // d) for d in (32, 16, 8, 4)})]
    for condition, filter_ in (CASES[0], CASES[3]):
      truth = exact_ids(catalog, query_vectors(tower, catalog, user_rows, condition),
                        condition)
      for label, params, widened in settings:
        if filter_ == "none" and not widened:
          continue  # the same search
        client = clients[label]
        client.search_params = params
        shares = client.condition_shares
        if not widened:
          client.condition_shares = {}
        recall = recall_of(milvus_ids(client, users, condition, filter_), truth)
        client.condition_shares = shares
        sweep.append([f"{num_items:,}", choices[label].index_type, f"{params}",
                      "strict " + condition if condition else "none",
                      "yes" if widened else "no", f"{recall:.3f}"])
        log("  " + " | ".join(sweep[-1]))
    report.append("")
    report.append(bs.table(["items", "index", "search params", "filter",
                            "widened by 1/share", "recall@10"], sweep))
  for client in clients.values():
    client.close()
  store.close()


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--sizes", default="100000,1000000")
  parser.add_argument("--recall_queries", type=int, default=200,
                      help="users whose top-10 are compared with exact, per case")
  parser.add_argument("--latency_queries", type=int, default=100,
                      help="timed B=1 calls per path, unfiltered")
  parser.add_argument("--strict_latency_queries", type=int, default=5,
                      help="timed B=1 calls per path and strict condition")
  parser.add_argument("--clusters", type=int, default=1000)
  parser.add_argument("--spread", type=float, default=0.75)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--index_type", default="HNSW",
                      help="the Milvus index of the main comparison (HNSW: tfcr's default): "
                           "one type for every size, or one per --sizes entry "
                           "(HNSW,IVF_FLAT)")
  parser.add_argument("--sweep", action="store_true",
                      help="also other Milvus search settings (HNSW ef, IVF_FLAT nprobe)")
  parser.add_argument("--out_dir", default=None)
  parser.add_argument("--report", default=None, help="also write the tables to this file")
  args = parser.parse_args(argv)
  sizes = [int(s) for s in args.sizes.split(",") if s]
  types = [t.strip() for t in args.index_type.split(",") if t.strip()]
  if len(types) not in (1, len(sizes)):
    parser.error(f"--index_type names {len(types)} types for {len(sizes)} sizes: give one "
                 f"for every size, or one per size.")
  types = types * len(sizes) if len(types) == 1 else types
  for index_type, size in zip(types, sizes):  # an unknown type fails now, not after 100k
    try:
      milvus.index_choice(index_type, size, "catalog.db")
    except ConfigError as e:
      parser.error(str(e))
  out_dir = args.out_dir or tempfile.mkdtemp(prefix="tfcr-bench-milvus-")
  os.makedirs(out_dir, exist_ok=True)
  command = " ".join(sys.argv[1:] if argv is None else argv)
  report = [f"Machine: {machine_line()}.",
            f"Command: `nice -n 10 .venv/bin/python benchmarks/bench_milvus.py"
            f"{' ' + command if command else ''}`."]
  try:
    for size, index_type in zip(sizes, types):
      bench_size(size, index_type, args, out_dir, report)
      log(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20:.1f} GB")
  finally:
    if not args.out_dir:
      shutil.rmtree(out_dir, ignore_errors=True)
  report.append(f"\nPeak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20:.1f} GB.")
  text = "\n".join(report)
  print(text)
  if args.report:
    with open(args.report, "w", encoding="utf-8") as f:
      f.write(text + "\n")


if __name__ == "__main__":
  main()
