"""tf.data pipeline of training batches, with per-epoch condition sampling.

Every epoch is a pure function of (seed, epoch): a stateless shuffle of the training rows
and stateless uniform draws for the conditions. So a run resumed at epoch e sees exactly
the batches an uninterrupted run would have seen, and two runs with a seed are equal.

Under tf.distribute every global batch is cut into one slice per replica, and each
input pipeline (one per worker) yields the slices of its own replicas only: the random
draws are those of the whole global batch, sliced, so 1 or N replicas train on the same
global batches.
"""

from typing import Optional

import numpy as np
import tensorflow as tf

from tfcr.data.conditions import NONE_ID, ItemConditions
from tfcr.training import hard_negatives as hard_negatives_lib


def training_dataset(user_index: np.ndarray, item_index: np.ndarray,
                     item_probability: np.ndarray, conditions: Optional[ItemConditions],
                     batch_size: int, seed: int, first_epoch: int,
                     epochs: int, extra_negatives: int = 0, num_replicas: int = 1,
                     first_replica: int = 0, local_replicas: int = 1,
                     condition_dropout: float = 0.0,
                     hard_negatives: int = 0) -> tf.data.Dataset:
  """Batches for epochs first_epoch..epochs-1, steps_per_epoch = N // batch_size each.

  batch_size and extra_negatives are global. With num_replicas > 1 (both must divide by
  it) the dataset is one input pipeline's under tf.distribute: per step it yields the
  slices of replicas first_replica..first_replica + local_replicas - 1, one after the
  other (a worker's replicas dequeue one batch each), of B / num_replicas examples and
  extra_negatives / num_replicas extra items.

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
  if batch_size % num_replicas or extra_negatives % num_replicas:
    raise ValueError(f"batch_size={batch_size} and extra_negatives={extra_negatives} "
                     f"must be multiples of the {num_replicas} replicas.")
  local_batch = batch_size // num_replicas
  local_extra = extra_negatives // num_replicas
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
    rows = tf.reshape(order[:steps * batch_size], [steps, num_replicas, local_batch])
    # This pipeline's replicas' slices, step by step: [steps * local_replicas, b].
    rows = tf.reshape(rows[:, first_replica:first_replica + local_replicas],
                      [steps * local_replicas, local_batch])
    step = tf.repeat(tf.range(steps, dtype=tf.int64), local_replicas)
    replica = tf.tile(tf.range(first_replica, first_replica + local_replicas), [steps])
    return tf.data.Dataset.from_tensor_slices(
        (rows, step, tf.fill([steps * local_replicas], epoch), replica))

  def replica_slice(values, replica, size):
    return values[replica * size:(replica + 1) * size]

  def gather(rows, step, epoch, replica):
    item = tf.gather(items, rows)
    batch = {"user": tf.gather(users, rows), "item": item,
             "sampling_probability": tf.gather(probability, item)}
    if conditions is not None:
      # Uniform choice among the item's conditions (items without any have NONE).
      uniform = replica_slice(tf.random.stateless_uniform(
          [batch_size], seed=tf.stack([tf.constant(seed + 1, tf.int64), epoch * steps + step]),
          dtype=tf.float64), replica, local_batch)
      start = tf.gather(row_splits, item)
      count = tf.gather(row_splits, item + 1) - start
      offset = tf.minimum(tf.cast(uniform * tf.cast(count, tf.float64), tf.int64), count - 1)
      batch["condition"] = tf.gather(condition_ids, start + offset)
      if condition_dropout:
        dropped = replica_slice(tf.random.stateless_uniform(
            [batch_size], seed=tf.stack([tf.constant(seed + 3, tf.int64),
                                         epoch * steps + step])), replica, local_batch)
        batch["condition"] = tf.where(dropped < condition_dropout, NONE_ID,
                                      batch["condition"])
      if hard_negatives:
        draws = replica_slice(tf.random.stateless_uniform(
            [batch_size, hard_negatives], seed=tf.stack([tf.constant(seed + 4, tf.int64),
                                                         epoch * steps + step]),
            dtype=tf.float64), replica, local_batch)
        batch["hard_items"], batch["hard_share"] = hard_negatives_lib.sample(
            pool_splits, pool_items, batch["condition"], draws)
        batch["hard_probability"] = tf.gather(probability, batch["hard_items"])
    if extra_negatives:
      batch["extra_items"] = replica_slice(tf.random.stateless_uniform(
          [extra_negatives], seed=tf.stack([tf.constant(seed + 2, tf.int64),
                                            epoch * steps + step]),
          maxval=num_items, dtype=tf.int32), replica, local_extra)
      batch["extra_probability"] = tf.gather(probability, batch["extra_items"])
    return batch

  return (tf.data.Dataset.range(first_epoch, epochs)
          .flat_map(epoch_batches)
          .map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
          .prefetch(tf.data.AUTOTUNE))
