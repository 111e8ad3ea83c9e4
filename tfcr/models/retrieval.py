"""The retrieval model: two towers and TFRS's in-batch softmax task with logQ correction."""

from typing import Dict, Optional

import tensorflow as tf
import tensorflow_recommenders as tfrs

from tfcr.data.conditions import NUM_RESERVED
from tfcr.models.cross_replica import gather_candidates
from tfcr.models.towers import CandidateTower, QueryTower


class RetrievalModel(tfrs.models.Model):
  """Conditional (CR) or plain (LR) two-tower retrieval model.

  features: {"user": [B] int32, "item": [B] int32, "sampling_probability": [B] float32,
             "condition": [B] int32 (CR only), and optionally extra negatives
             ("extra_items", "extra_probability") and same-condition hard negatives
             ("hard_items", "hard_probability", "hard_share"): see
             tfcr.training.input_pipeline}.

  Loss: softmax over the batch's items, scores corrected by -log(sampling probability)
  so popular items are not over-penalised as negatives, and accidental hits (the same item
  elsewhere in the batch, common in CR where one item appears with several conditions)
  removed from the negatives. No full-corpus metrics during training: evaluation does that.

  Under a tf.distribute strategy with `cross_replica_negatives` (the default), each
  replica's queries score against the candidates of every replica (global in-batch
  negatives, `tfcr.models.cross_replica`), so the loss summed over the replicas, which
  is what Keras reports, and its gradient are those of one device on the global batch.
  Without it each replica's softmax is over its own slice only (TFRS's behaviour).
  """

  def __init__(self, query_tower: QueryTower, candidate_tower: CandidateTower,
               temperature: Optional[float] = None, condition_loss_weight: float = 0.0,
               cross_replica_negatives: bool = True):
    super().__init__()
    self.cross_replica_negatives = cross_replica_negatives
    self.query_tower = query_tower
    self.candidate_tower = candidate_tower
    self.conditional = query_tower.num_conditions > 0
    self.num_items = float(candidate_tower.num_items)
    self.temperature = temperature
    self.task = tfrs.tasks.Retrieval(remove_accidental_hits=True, temperature=temperature)
    self.condition_loss_weight = float(condition_loss_weight) if self.conditional else 0.0
    self.condition_vectors = None
    if self.condition_loss_weight:
      # One vector per condition in the item space: the auxiliary loss pulls a
      # conditional query towards its condition's vector (tfcr.models.condition_loss).
      self.condition_vectors = self.add_weight(
          name="condition_vectors",
          shape=(query_tower.num_conditions, query_tower.embedding_dim),
          initializer=tf.keras.initializers.RandomUniform(-0.05, 0.05))

  def query_inputs(self, features: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    inputs = {"user": features["user"]}
    if self.conditional:
      inputs["condition"] = features["condition"]
    return inputs

  def compute_loss(self, features: Dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
    query = self.query_tower(self.query_inputs(features))
    items = features["item"]
    probability = features["sampling_probability"]
    batch_size = tf.cast(tf.shape(items)[0], tf.float32)
    num_extra = tf.constant(0.0)
    if "extra_items" in features:
      # Mixed negative sampling: uniform extra negatives reach the tail items that
      # popularity-sampled in-batch negatives rarely show. Every candidate then comes
      # from the mixture of both proposals, so that is what logQ corrects for.
      extra = features["extra_items"]
      num_extra = tf.cast(tf.shape(extra)[0], tf.float32)
      items = tf.concat([items, extra], axis=0)
      probability = tf.concat([probability, features["extra_probability"]], axis=0)
      probability = self._mixture(probability, batch_size, num_extra)
    candidates = self.candidate_tower(items)
    if self.cross_replica_negatives:
      # Every candidate this replica scores (in-batch and extra ones) is a negative for
      # the other replicas' queries too; this replica's come first, on the diagonal.
      candidates, items, probability = gather_candidates(candidates, items, probability)
    score_mask = None
    if "hard_items" in features:
      # Each query's own negatives: after the gather, they are no other replica's.
      candidates, items, probability, score_mask = self._with_hard_negatives(
          features, candidates, items, probability, batch_size, num_extra)
    loss = self.task(query, candidates, candidate_sampling_probability=probability,
                     candidate_ids=items, compute_metrics=False,
                     compute_batch_metrics=False, score_mask=score_mask)
    if self.condition_vectors is not None:
      loss += self.condition_loss_weight * condition_loss(
          query, self.condition_vectors, features["condition"],
          self.temperature or 1.0, normalize=self.query_tower.normalize)
    return loss

  def _mixture(self, share, batch_size, num_extra):
    """An item's share of the batch's shared candidates: B popularity draws (its
    training share) and B' uniform ones, (B·Q + B'/N) / (B + B')."""
    return (batch_size * share + num_extra / self.num_items) / (batch_size + num_extra)

  def _with_hard_negatives(self, features, candidates, items, probability, batch_size,
                           num_extra):
    """Appends each example's same-condition negatives as columns only its own query
    scores (the others' are masked). Their logQ is the expected count of the item among
    that query's candidates over the same total as the shared columns': its share of the
    shared candidates, plus n_hard / |pool| from its own draws over their number."""
    hard = features["hard_items"]
    batch, per_example = tf.shape(hard)[0], tf.shape(hard)[1]
    flat = tf.reshape(hard, [-1])
    shared_count = tf.cast(tf.shape(items)[0], tf.float32)  # every replica's, if gathered
    hard_probability = (
        self._mixture(tf.reshape(features["hard_probability"], [-1]), batch_size, num_extra)
        + tf.cast(per_example, tf.float32) * tf.reshape(features["hard_share"], [-1])
        / shared_count)
    owner = tf.repeat(tf.range(batch), per_example)
    own = tf.equal(tf.range(batch)[:, None], owner[None, :])
    mask = tf.concat([tf.ones([batch, tf.shape(items)[0]], tf.bool), own], axis=1)
    return (tf.concat([candidates, self.candidate_tower(flat)], axis=0),
            tf.concat([items, flat], axis=0),
            tf.concat([probability, hard_probability], axis=0), mask)


def condition_loss(query: tf.Tensor, condition_vectors: tf.Tensor, condition: tf.Tensor,
                   temperature: float, normalize: bool) -> tf.Tensor:
  """Summed softmax cross-entropy of each query's scores against every condition's vector
  (divided by the temperature, cosines when the towers normalize), with its own condition
  as the label; examples without a real condition (NONE, OOV) count zero. Summed, as the
  retrieval loss is, so the weight means the same at any batch size."""
  if normalize:
    condition_vectors = tf.math.l2_normalize(condition_vectors, axis=-1)
  logits = tf.matmul(query, condition_vectors, transpose_b=True) / temperature
  condition = tf.cast(condition, tf.int32)
  per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=condition,
                                                               logits=logits)
  real = tf.cast(condition >= NUM_RESERVED, per_example.dtype)
  return tf.reduce_sum(per_example * real)
