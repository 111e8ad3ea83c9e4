"""How many ScaNN leaves to search: the fewest that keep a target share of what
searching every leaf finds, on the model's own queries.

How many partitions a query must visit depends on how the item embeddings cluster and
where the model's queries fall, which no fixed rule captures (measured: 64 of 1,000 leaves
give recall@10 0.97 on a clustered 1M catalog, while 32 of 316 gave 0.70 at 100k). So the
exporter measures it: exact top-k of a sample of the model's queries by brute force, then
the searcher's recall@k with every leaf searched (the ceiling set by quantisation and
re-ranking, which leaves cannot lift) and at a ladder of leaf counts, bisected (then
between the step found and the one below) for the fewest leaves whose recall reaches
`target` times that ceiling, both at k = 10 and at the largest k a request may ask
(partitions lose more of a long list: on MovieLens 24 of 41
leaves kept recall@10 at 0.99 but recall@100 at 0.965). Searching fewer leaves is the
largest latency lever the servable has (2-3 us per 1,000-point leaf).

Deeper fetches get leaf counts of their own (`tuning_depths`). The condition filter's
strict search fetches n = k / share x overfetch candidates and keeps the top k of those
having the condition; the leaves that hold recall@100 lose some of them (measured at 1M
items: strict recall@10 0.941 at share 10% with the base leaves, 0.967 with twice as many;
at 2%, 0.912 and 0.951). So the exporter also tunes, at depths D = 4 max_k, 16 max_k, ...,
that filtered recall: each query keeps a pseudo-random share k x overfetch / D of the items
(`sampled_members`), and the top k of its fetch of D among them are compared with its exact
top k among them, against the same with every leaf searched. (Plain recall@D would not do:
with re-ranking capped, its every-leaf ceiling falls to 0.75 at D = 6,400 on 1M items, and a
share of that ceiling asks for too few leaves.) The search interpolates between depths.
"""

import dataclasses
from typing import Callable, Dict, List, Optional

import numpy as np
import tensorflow as tf

# Share of the every-leaf recall to keep. With the ceiling near 0.99 (1M items, k=10),
# 0.97 gives recall@10 ~0.96, above the 0.95 usually asked of an ANN index even with
# the sampled estimate's error (about +-0.005 on 1,000 queries).
DEFAULT_RECALL_TARGET = 0.97
TUNING_K = 10
SAMPLE_SIZE = 1000
# Depths past max_k: x4 apart (the condition filter's growth between rounds), up to
# DEEPEST and a quarter of the catalog; each tuned on DEPTH_QUERIES of the sample (a
# recall@D of 200 queries averages 200 D hits, as precise as recall@10 on 1,000).
DEPTH_GROWTH = 4
DEEPEST = 10_000
DEPTH_QUERIES = 200
# The condition filter's default over-fetch (tfcr.export.condition_filter): a fetch of
# depth D serves a condition of share TUNING_K x FETCH_OVERFETCH / D.
FETCH_OVERFETCH = 1.5


@dataclasses.dataclass(frozen=True)
class LeafChoice:
  leaves: int
  recall: Dict[int, float]  # recall@k of the tuning queries at `leaves`, per k
  ceiling: Dict[int, float]  # the same with every leaf searched
  num_queries: int
  target: float

  def describe(self, num_leaves: int) -> str:
    measured = ", ".join(f"recall@{k} {self.recall[k]:.3f} (every leaf: {self.ceiling[k]:.3f})"
                         for k in sorted(self.recall))
    return (f"ScaNN searches {self.leaves} of {num_leaves} leaves per query: {measured} "
            f"against exact search on {self.num_queries} sample queries of the model "
            f"(target: {self.target} of every leaf's).")


def exact_top_k(embeddings: np.ndarray, queries: np.ndarray, k: int,
                chunk: int = 64, max_scores: int = 2**26) -> np.ndarray:
  """Rows of the k largest dot products per query, [Q, k] (order within a row arbitrary);
  embeddings: [N, d] array or float32 tensor (a tensor is used as it is, not copied).

  At most `max_scores` scores (256 MB) at once: `chunk` queries, fewer on big catalogs
  (64 queries x 10M items would be 2.5 GB)."""
  chunk = max(1, min(chunk, max_scores // max(1, len(embeddings))))
  table = tf.convert_to_tensor(embeddings, tf.float32)  # a float32 tensor as it is: no copy
  rows = []
  for start in range(0, len(queries), chunk):
    scores = tf.linalg.matmul(tf.constant(queries[start:start + chunk], tf.float32), table,
                              transpose_b=True)
    rows.append(tf.math.top_k(scores, k=k).indices.numpy())
  return np.concatenate(rows) if rows else np.zeros([0, k], np.int32)


def recall(approximate: np.ndarray, exact: np.ndarray) -> float:
  """Mean share of each row's exact top-k found in the approximate row ([Q, k] each)."""
  k = exact.shape[1]
  return float(np.mean([len(set(a) & set(e)) / k for a, e in zip(approximate, exact)]))


def tuning_depths(max_k: int, num_items: int) -> List[int]:
  """The fetch depths past max_k to tune leaves for: 4 max_k, 16 max_k, ... up to
  min(DEEPEST, num_items / 4) (deeper than that, a fetch is a sizeable share of the
  catalog and the 2n-points floor of the search decides its leaves)."""
  depths, depth = [], max_k * DEPTH_GROWTH
  while depth <= min(DEEPEST, num_items // 4):
    depths.append(depth)
    depth *= DEPTH_GROWTH
  return depths


def sampled_members(rows: np.ndarray, share: float, seed: int = 0,
                    query_ids: Optional[np.ndarray] = None) -> np.ndarray:
  """Whether each item of rows [Q, n] belongs to its query's pseudo-random item set of
  the given share: a hash of (item, query id, seed), so an item is in or out for a query
  wherever it appears (in the exact and in the approximate list alike). query_ids: [Q],
  the queries' ids (default 0..Q-1)."""
  items = np.maximum(rows, 0).astype(np.uint64)
  if query_ids is None:
    query_ids = np.arange(len(rows))
  query = np.asarray(query_ids, np.uint64)[:, None] + np.uint64(1)
  mixed = (items * np.uint64(0x9E3779B1) + query * np.uint64(0x85EBCA77)
           + np.uint64(seed) * np.uint64(0xC2B2AE3D)) & np.uint64(0xFFFFFFFF)
  mixed = (mixed ^ (mixed >> np.uint64(15))) * np.uint64(0x2C1B3C6D) & np.uint64(0xFFFFFFFF)
  return (mixed < np.uint64(int(share * 2**32))) & (rows >= 0)


def first_members(rows: np.ndarray, members: np.ndarray, k: int) -> np.ndarray:
  """Each row's first k items that are members, in order, -1-padded: [Q, k]."""
  out = np.full((len(rows), k), -1, dtype=np.int64)
  for q in range(len(rows)):
    kept = rows[q][members[q]][:k]
    out[q, :len(kept)] = kept
  return out


def leaf_ladder(num_leaves: int) -> List[int]:
  """1, 2, 3, 4, 6, 8, 12, 16, 24, ... (steps of x1.33 to x1.5), ending at num_leaves."""
  ladder, power = [], 1
  while power < num_leaves:
    ladder.append(power)
    if power * 3 // 2 < num_leaves and power >= 2:
      ladder.append(power * 3 // 2)
    power *= 2
  return sorted(set(ladder)) + [num_leaves]


def fewest_leaves(search: Callable[[int, int], np.ndarray], exact: Dict[int, np.ndarray],
                  num_leaves: int, target: float = DEFAULT_RECALL_TARGET,
                  at_least: int = 1) -> LeafChoice:
  """The fewest leaves, and at least `at_least`, whose recall@k reaches `target` times
  the every-leaf recall@k, for every k in `exact`.

  search(leaves, k) -> approximate rows [Q, k] of the tuning queries; exact: {k: exact
  rows [Q, k]}. Recall grows with the leaves searched, so this bisects: first the
  ladder, then the leaf counts between the step found and the one below it (on the
  benchmark's 1M catalog the ladder's 64 became 56; each leaf spared saves 2-3 us per
  query). About log2(ladder) + log2(step) searches.
  """
  measured = {}

  def recall_at(leaves):
    if leaves not in measured:
      measured[leaves] = {k: recall(search(leaves, k), rows) for k, rows in exact.items()}
    return measured[leaves]

  ceiling = recall_at(num_leaves)

  def enough(leaves):
    return all(r >= target * ceiling[k] for k, r in recall_at(leaves).items())

  def first_enough(candidates):  # the top candidate always qualifies
    low, high = 0, len(candidates) - 1
    while low < high:
      middle = (low + high) // 2
      if enough(candidates[middle]):
        high = middle
      else:
        low = middle + 1
    return candidates[low]

  at_least = max(1, min(at_least, num_leaves))
  ladder = [at_least] + [leaves for leaves in leaf_ladder(num_leaves) if leaves > at_least]
  step = first_enough(ladder)
  below = ladder[ladder.index(step) - 1] if step != ladder[0] else step - 1
  leaves = first_enough(list(range(below + 1, step + 1)))
  return LeafChoice(leaves=leaves, recall=recall_at(leaves), ceiling=ceiling,
                    num_queries=len(next(iter(exact.values()))), target=target)
