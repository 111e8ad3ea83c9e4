"""Global in-batch negatives under tf.distribute: every replica's candidates, gathered.

Under a strategy each replica computes the loss of its own slice of the global batch.
TFRS's Retrieval task then takes its softmax over that slice only, so R replicas at a
global batch B see B / R negatives, not B. `gather_candidates` hands every replica all
R slices of candidates (embeddings, ids for accidental hits, sampling probabilities),
its own slice first: the task's labels stay on the diagonal of the [local queries,
global candidates] score matrix, and the softmax is over the global batch.

Gradients: `ReplicaContext.all_gather`'s gradient all-reduces (sums) the upstream
gradient over the replicas and hands each replica the rows it contributed, so a
candidate's gradient from every replica's queries flows back to the tower copy that
embedded it. Summed over replicas by the optimizer, that is the single-device gradient.
"""

from typing import Tuple

import tensorflow as tf


def replicas_in_sync() -> int:
  """The number of replicas the current (replica-context) computation is split over:
  1 outside any strategy."""
  return tf.distribute.get_replica_context().num_replicas_in_sync \
      if not tf.distribute.in_cross_replica_context() else 1


def gather_candidates(embeddings: tf.Tensor, ids: tf.Tensor, probability: tf.Tensor
                      ) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
  """All replicas' candidates: ([R * C, D] embeddings, [R * C] ids, [R * C] sampling
  probabilities), this replica's C first, then the following replicas' in order (it
  wraps around). Every replica must call it, with the same C. Outside a strategy, or
  with one replica, the inputs are returned as they are."""
  if replicas_in_sync() == 1:
    return embeddings, ids, probability
  context = tf.distribute.get_replica_context()
  # One all-gather per tensor: all_gather's gradient function stacks the gradients of
  # a structure's tensors, which fails for tensors of different ranks.
  gathered = all_gather(embeddings)
  gathered_probability = all_gather(tf.stop_gradient(probability))
  gathered_ids = all_gather(ids)
  # all_gather orders the slices by replica id; rolling puts this replica's first.
  shift = -tf.cast(context.replica_id_in_sync_group, tf.int32) * tf.shape(ids)[0]
  return (tf.roll(gathered, shift, axis=0), tf.roll(gathered_ids, shift, axis=0),
          tf.roll(gathered_probability, shift, axis=0))


def all_gather(tensor: tf.Tensor) -> tf.Tensor:
  """Every replica's `tensor` concatenated along axis 0 in replica order (in replica
  context). Its gradient: the upstream gradient summed over the replicas, each
  replica's own rows of it."""
  return tf.distribute.get_replica_context().all_gather(_placed(tensor), axis=0)


def _placed(tensor: tf.Tensor) -> tf.Tensor:
  """`tensor`, with a device. all_gather sends its result to its input's device, and
  under MultiWorkerMirroredStrategy with one device per worker the replica's tensors
  have none ("destinations can not be empty"): then it is the worker's one device."""
  if tensor.device:
    return tensor
  with tf.device(tf.distribute.get_strategy().extended.worker_devices[0]):
    return tf.identity(tensor)
