"""Global in-batch negatives under tf.distribute: every replica's candidates, gathered.

Under a strategy each replica computes the loss of its own slice of the global batch.
TFRS's Retrieval task then takes its softmax over that slice only, so R replicas at a
global batch B see B / R negatives, not B. `gather_candidates` hands every replica all
R slices of candidates (embeddings, ids for accidental hits, sampling probabilities),
its own slice first: the task's labels stay on the diagonal of the [local queries,
global candidates] score matrix, and the softmax is over the global batch.

Gradients: the gather's gradient is the upstream gradient all-reduced (summed) over the
replicas, of which each replica keeps the rows it contributed, so a candidate's gradient
from every replica's queries flows back to the tower copy that embedded it. Summed over
replicas by the optimizer, that is the single-device gradient.

Each collective is a round trip between the workers (milliseconds over gRPC), so the
three tensors travel as one [C, D + 2] float32 block (ids bit-cast, not converted), and
the gradient is our own: one all-reduce, where `ReplicaContext.all_gather`'s also
all-gathers every replica's row count.
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
  """All replicas' candidates: ([R * C, D] embeddings, [R * C] int32 ids, [R * C]
  sampling probabilities), this replica's C first, then the following replicas' in order
  (it wraps around). Every replica must call it, with the same C and D. Outside a
  strategy, or with one replica, the inputs are returned as they are."""
  if replicas_in_sync() == 1:
    return embeddings, ids, probability
  dim = tf.shape(embeddings)[1]
  block = tf.concat([tf.cast(embeddings, tf.float32),
                     tf.bitcast(tf.cast(ids, tf.int32), tf.float32)[:, None],
                     tf.cast(tf.stop_gradient(probability), tf.float32)[:, None]], axis=1)
  gathered = _rolled(all_gather(block))
  gathered_ids = tf.bitcast(tf.stop_gradient(gathered[:, dim]), tf.int32)
  return gathered[:, :dim], gathered_ids, tf.stop_gradient(gathered[:, dim + 1])


@tf.custom_gradient
def all_gather(tensor: tf.Tensor) -> tf.Tensor:
  """Every replica's `tensor` (the same shape on all) concatenated along axis 0 in
  replica order, in replica context. Gradient: the upstream gradient summed over the
  replicas, this replica's rows of it."""
  context = tf.distribute.get_replica_context()
  gathered = context.all_gather(_placed(tensor), axis=0)

  def gradient(upstream):
    summed = context.all_reduce(tf.distribute.ReduceOp.SUM, _placed(upstream))
    rows = tf.shape(tensor)[0]
    start = tf.cast(context.replica_id_in_sync_group, tf.int32) * rows
    return summed[start:start + rows]

  return gathered, gradient


def _rolled(gathered: tf.Tensor) -> tf.Tensor:
  """The replicas' slices (in replica order) rolled so that this replica's is first."""
  context = tf.distribute.get_replica_context()
  rows = tf.shape(gathered)[0] // context.num_replicas_in_sync
  return tf.roll(gathered, -tf.cast(context.replica_id_in_sync_group, tf.int32) * rows,
                 axis=0)


def _placed(tensor: tf.Tensor) -> tf.Tensor:
  """`tensor`, with a device. A collective sends its result to its input's device, and
  under MultiWorkerMirroredStrategy with one device per worker the replica's tensors
  have none ("destinations can not be empty"): then it is the worker's one device."""
  if tensor.device:
    return tensor
  with tf.device(tf.distribute.get_strategy().extended.worker_devices[0]):
    return tf.identity(tensor)
