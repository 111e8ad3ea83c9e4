"""How many ScaNN leaves to search: the fewest that reach a recall target on the model's
own queries.

How many partitions a query must visit for a given recall depends on how the item
embeddings cluster and where the model's queries fall, which no fixed rule captures
(measured: 64 of 1,000 leaves give recall@10 0.97 on a clustered 1M catalog, while 32 of
316 gave 0.70 at 100k). So the exporter measures it: exact top-k of a sample of the
model's queries by brute force, then recall@k of the searcher at a ladder of leaf counts,
bisected for the smallest count that reaches the target. Searching fewer leaves is the
largest latency lever the servable has (about 3 us per 1,000-point leaf).
"""

import dataclasses
from typing import Callable, List

import numpy as np
import tensorflow as tf

# Above the 0.95 usually asked of an ANN index, so that the sampled estimate's error
# (about +-0.005 on 1,000 queries) does not take the population below 0.95.
DEFAULT_RECALL_TARGET = 0.97
TUNING_K = 10
SAMPLE_SIZE = 1000


@dataclasses.dataclass(frozen=True)
class LeafChoice:
  leaves: int
  recall: float  # recall@k of the tuning queries at `leaves`
  k: int
  num_queries: int
  target: float


def exact_top_k(embeddings: np.ndarray, queries: np.ndarray, k: int,
                chunk: int = 64) -> np.ndarray:
  """Rows of the k largest dot products per query, [Q, k] (order within a row arbitrary)."""
  table = tf.constant(embeddings, tf.float32)
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


def leaf_ladder(num_leaves: int) -> List[int]:
  """1, 2, 3, 4, 6, 8, 12, 16, 24, ... (steps of x1.33 to x1.5), ending at num_leaves."""
  ladder, power = [], 1
  while power < num_leaves:
    ladder.append(power)
    if power * 3 // 2 < num_leaves and power >= 2:
      ladder.append(power * 3 // 2)
    power *= 2
  return sorted(set(ladder)) + [num_leaves]


def fewest_leaves(search: Callable[[int], np.ndarray], exact: np.ndarray, num_leaves: int,
                  target: float = DEFAULT_RECALL_TARGET) -> LeafChoice:
  """Bisects the ladder for the fewest leaves whose recall reaches `target`.

  search(leaves) -> approximate rows [Q, k] of the tuning queries. Recall grows with the
  leaves searched, so bisection needs ~log2(ladder) searches. If even every leaf falls
  short (the quantiser's own error), every leaf is searched.
  """
  ladder = leaf_ladder(num_leaves)
  measured = {}

  def recall_at(i):
    if i not in measured:
      measured[i] = recall(search(ladder[i]), exact)
    return measured[i]

  low, high = 0, len(ladder) - 1  # answer in ladder[low..high]
  while low < high:
    middle = (low + high) // 2
    if recall_at(middle) >= target:
      high = middle
    else:
      low = middle + 1
  return LeafChoice(leaves=ladder[low], recall=recall_at(low), k=exact.shape[1],
                    num_queries=len(exact), target=target)
