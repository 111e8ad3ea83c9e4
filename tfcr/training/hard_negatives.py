"""Same-condition hard negatives: for each example, items that share its condition.

In-batch negatives teach a CR model to find the condition's items; within a condition
they are mostly easy (other topics). Negatives drawn from the example's own condition
make it rank *within* the topic (the paper's future work). `pools(conditions)` lists the
candidates of each condition id; `sample` draws, per example, `count` of them uniformly,
with their proposal probability 1 / pool size for the logQ correction. Examples without
a condition (NONE, e.g. dropped by condition dropout) draw from the whole catalog.
"""

from typing import Tuple

import numpy as np
import tensorflow as tf

from tfcr.data.conditions import NUM_RESERVED, ItemConditions


def pools(conditions: ItemConditions) -> Tuple[np.ndarray, np.ndarray]:
  """CSR (splits [C + 1] int64, items [nnz] int32): each condition id's items; OOV and
  NONE hold every item."""
  splits, members = conditions.items_by_condition()
  everything = np.arange(conditions.num_items, dtype=np.int32)
  parts, lengths = [], []
  for condition in range(conditions.vocabulary_size):
    pool = (everything if condition < NUM_RESERVED
            else members[splits[condition]:splits[condition + 1]])
    parts.append(pool)
    lengths.append(len(pool))
  pool_splits = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
  return pool_splits, np.concatenate(parts).astype(np.int32)


def sample(pool_splits: tf.Tensor, pool_items: tf.Tensor, condition: tf.Tensor,
           uniform: tf.Tensor):
  """([B, n] int32 items, [B, n] float32 their proposal probability 1 / pool size) for
  [B] condition ids, from [B, n] float64 uniform draws in [0, 1)."""
  condition = tf.cast(condition, tf.int64)
  start = tf.gather(pool_splits, condition)
  size = tf.gather(pool_splits, condition + 1) - start
  offset = tf.minimum(tf.cast(uniform * tf.cast(size[:, None], tf.float64), tf.int64),
                      size[:, None] - 1)
  items = tf.gather(pool_items, start[:, None] + offset)
  share = tf.broadcast_to(1.0 / tf.cast(size[:, None], tf.float32), tf.shape(items))
  return items, share
