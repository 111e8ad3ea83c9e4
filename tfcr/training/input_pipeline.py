"""tf.data pipeline of training batches, with per-epoch condition sampling.

Every epoch is a pure function of (seed, epoch): a stateless shuffle of the training rows
and stateless uniform draws for the conditions. So a run resumed at epoch e sees exactly
the batches an uninterrupted run would have seen, and two runs with a seed are equal.
"""

from typing import Optional

import numpy as np
import tensorflow as tf

from tfcr.data.conditions import NONE_ID, ItemConditions
from tfcr.training import hard_negatives as hard_negatives_lib


def training_dataset(user_index: np.ndarray, item_index: np.ndarray,
                     item_probability: np.ndarray, conditions: Optional[ItemConditions],
                     batch_size: int, seed: int, first_epoch: int,
                     epochs: int, extra_negatives: int = 0,
                     condition_dropout: float = 0.0,
                     hard_negatives: int = 0) -> tf.data.Dataset:
  """Batches for epochs first_epoch..epochs-1, steps_per_epoch = N // batch_size each.

  Yields {"user": [B] int32 (user row + 1, 0 is reserved for unknown users),
          "item": [B] int32, "sampling_probability": [B] float32,
          "condition": [B] int32 (only when `conditions` is given; with
            condition_dropout P, each is NONE with probability P),
          "extra_items": [extra_negatives] int32, items drawn uniformly from the catalog,
          "extra_probability": [extra_negatives] float32, their training-data share
            (both only when extra_negatives > 0),
          "hard_items": [B, hard_negatives] int32, items sharing each example's
            condition, "hard_share": [B, hard_negatives] float32, 1 / the number of such
            items, "hard_probability": their training-data share (only when
            hard_negatives > 0 and `conditions` is given; tfcr.training.hard_negatives)}.
  The last partial batch of an epoch is dropped: in-batch softmax wants full batches.
  """
  num_examples = len(user_index)
  steps = num_examples // batch_size
  users = tf.constant(user_index.astype(np.int32) + 1)
  items = tf.constant(item_index.astype(np.int32))
  probability = tf.constant(item_probability.astype(np.float32))
  num_items = len(item_probability)
  if conditions is not None:
    row_splits = tf.constant(conditions.row_splits.astype(np.int64))
    condition_ids = tf.constant(conditions.ids.astype(np.int32))
    if hard_negatives:
      pool_splits, pool_items = (tf.constant(a)
                                 for a in hard_negatives_lib.pools(conditions))

  def epoch_batches(epoch):
    order = tf.random.experimental.stateless_shuffle(
        tf.range(num_examples, dtype=tf.int32), seed=tf.stack([tf.constant(seed, tf.int64), epoch]))
    rows = tf.reshape(order[:steps * batch_size], [steps, batch_size])
    step = tf.range(steps, dtype=tf.int64)
    return tf.data.Dataset.from_tensor_slices((rows, step, tf.fill([steps], epoch)))

  def gather(rows, step, epoch):
    item = tf.gather(items, rows)
    batch = {"user": tf.gather(users, rows), "item": item,
             "sampling_probability": tf.gather(probability, item)}
    if conditions is not None:
      # Uniform choice among the item's conditions (items without any have NONE).
      uniform = tf.random.stateless_uniform(
          [batch_size], seed=tf.stack([tf.constant(seed + 1, tf.int64), epoch * steps + step]), dtype=tf.float64)
      start = tf.gather(row_splits, item)
      count = tf.gather(row_splits, item + 1) - start
      offset = tf.minimum(tf.cast(uniform * tf.cast(count, tf.float64), tf.int64), count - 1)
      batch["condition"] = tf.gather(condition_ids, start + offset)
      if condition_dropout:
        dropped = tf.random.stateless_uniform(
            [batch_size], seed=tf.stack([tf.constant(seed + 3, tf.int64),
                                         epoch * steps + step])) < condition_dropout
        batch["condition"] = tf.where(dropped, NONE_ID, batch["condition"])
      if hard_negatives:
        batch["hard_items"], batch["hard_share"] = hard_negatives_lib.sample(
            pool_splits, pool_items, batch["condition"], hard_negatives,
            seed=tf.stack([tf.constant(seed + 4, tf.int64), epoch * steps + step]))
        batch["hard_probability"] = tf.gather(probability, batch["hard_items"])
    if extra_negatives:
      batch["extra_items"] = tf.random.stateless_uniform(
          [extra_negatives], seed=tf.stack([tf.constant(seed + 2, tf.int64),
                                            epoch * steps + step]),
          maxval=num_items, dtype=tf.int32)
      batch["extra_probability"] = tf.gather(probability, batch["extra_items"])
    return batch

  return (tf.data.Dataset.range(first_epoch, epochs)
          .flat_map(epoch_batches)
          .map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
          .prefetch(tf.data.AUTOTUNE))
