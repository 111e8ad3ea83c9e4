"""The retrieval model: two towers and TFRS's in-batch softmax task with logQ correction."""

from typing import Dict, Optional

import tensorflow as tf
import tensorflow_recommenders as tfrs

from tfcr.models.cross_replica import gather_candidates
from tfcr.models.towers import CandidateTower, QueryTower


class RetrievalModel(tfrs.models.Model):
  """Conditional (CR) or plain (LR) two-tower retrieval model.

  features: {"user": [B] int32, "item": [B] int32, "sampling_probability": [B] float32,
             "condition": [B] int32 (CR only)}.

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
               temperature: Optional[float] = None, cross_replica_negatives: bool = True):
    super().__init__()
    self.cross_replica_negatives = cross_replica_negatives
    self.query_tower = query_tower
    self.candidate_tower = candidate_tower
    self.conditional = query_tower.num_conditions > 0
    self.num_items = float(candidate_tower.num_items)
    self.task = tfrs.tasks.Retrieval(remove_accidental_hits=True, temperature=temperature)

  def query_inputs(self, features: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    inputs = {"user": features["user"]}
    if self.conditional:
      inputs["condition"] = features["condition"]
    return inputs

  def compute_loss(self, features: Dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
    query = self.query_tower(self.query_inputs(features))
    items = features["item"]
    probability = features["sampling_probability"]
    if "extra_items" in features:
      # Mixed negative sampling: uniform extra negatives reach the tail items that
      # popularity-sampled in-batch negatives rarely show. Every candidate then comes
      # from the mixture of both proposals, so that is what logQ corrects for.
      extra = features["extra_items"]
      batch_size = tf.cast(tf.shape(items)[0], tf.float32)
      num_extra = tf.cast(tf.shape(extra)[0], tf.float32)
      items = tf.concat([items, extra], axis=0)
      probability = tf.concat([probability, features["extra_probability"]], axis=0)
      probability = ((batch_size * probability + num_extra / self.num_items)
                     / (batch_size + num_extra))
    candidates = self.candidate_tower(items)
    if self.cross_replica_negatives:
      # Every candidate this replica scores (in-batch and extra ones) is a negative for
      # the other replicas' queries too; this replica's come first, on the diagonal.
      candidates, items, probability = gather_candidates(candidates, items, probability)
    return self.task(query, candidates, candidate_sampling_probability=probability,
                     candidate_ids=items, compute_metrics=False,
                     compute_batch_metrics=False)
