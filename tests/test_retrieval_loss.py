"""The retrieval loss against a NumPy computation of in-batch softmax with logQ."""

import numpy as np
import pytest
import tensorflow as tf

from tfcr.models.retrieval import RetrievalModel
from tfcr.models.towers import CandidateTower, QueryTower


def numpy_loss(queries, candidates, probability, ids, temperature):
  """Sum over the batch of -log softmax(q_i . c / T - log p)[i], accidental hits dropped."""
  scores = queries @ candidates.T / temperature - np.log(probability)[None, :]
  duplicate = (ids[:, None] == ids[None, :]) & ~np.eye(len(ids), dtype=bool)
  scores = np.where(duplicate, -np.inf, scores)
  log_softmax = scores - np.log(np.exp(scores - scores.max(1, keepdims=True)).sum(1,
                                keepdims=True)) - scores.max(1, keepdims=True)
  return -np.trace(log_softmax)


@pytest.mark.parametrize("conditional", [True, False])
@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_loss_matches_numpy(conditional, temperature):
  tf.keras.utils.set_random_seed(0)
  query_tower = QueryTower(6, [3], 4 if conditional else 0, embedding_dim=4,
                           hidden_units=(8,))
  candidate_tower = CandidateTower(5, 4, 2, embedding_dim=4, hidden_units=(8,))
  model = RetrievalModel(query_tower, candidate_tower, temperature=temperature)
  features = {"user": tf.constant([1, 2, 3, 4, 5]),
              "item": tf.constant([0, 1, 1, 3, 4]),  # item 1 twice: an accidental hit
              "condition": tf.constant([2, 3, 1, 2, 0]),
              "sampling_probability": tf.constant([0.1, 0.4, 0.4, 0.3, 0.2])}
  loss = model.compute_loss(features).numpy()
  queries = query_tower(model.query_inputs(features)).numpy().astype(np.float64)
  candidates = candidate_tower(features["item"]).numpy().astype(np.float64)
  expected = numpy_loss(queries, candidates, features["sampling_probability"].numpy(),
                        features["item"].numpy(), temperature)
  np.testing.assert_allclose(loss, expected, rtol=1e-4)


def test_logq_correction_changes_the_loss():
  """Without the correction the loss differs: the probabilities are really used."""
  queries = np.array([[1.0, 0.0], [0.0, 1.0]])
  candidates = np.array([[1.0, 0.0], [0.5, 0.5]])
  ids = np.array([0, 1])
  # Hand-worked: row 0 scores [1, 0.5] - log[0.5, 0.5] -> softmax ratio unchanged;
  # skewed probabilities shift mass towards the rarer item.
  uniform = numpy_loss(queries, candidates, np.array([0.5, 0.5]), ids, 1.0)
  plain = -(np.log(np.exp(1) / (np.exp(1) + np.exp(0.5)))
            + np.log(np.exp(0.5) / (np.exp(0) + np.exp(0.5))))
  np.testing.assert_allclose(uniform, plain)
  skewed = numpy_loss(queries, candidates, np.array([0.9, 0.1]), ids, 1.0)
  assert skewed != pytest.approx(uniform)


def test_extra_negatives_use_the_mixture_probability():
  tf.keras.utils.set_random_seed(1)
  query_tower = QueryTower(4, [], 3, embedding_dim=4, hidden_units=())
  candidate_tower = CandidateTower(6, 3, 1, embedding_dim=4, hidden_units=())
  model = RetrievalModel(query_tower, candidate_tower)
  share = np.array([0.3, 0.2, 0.2, 0.1, 0.1, 0.1], np.float32)  # training shares of items
  items = np.array([0, 2, 3])
  extra = np.array([5, 2])  # item 2 again: an accidental hit for query 1
  features = {"user": tf.constant([1, 2, 3]), "item": tf.constant(items),
              "condition": tf.constant([0, 1, 2]),
              "sampling_probability": tf.constant(share[items]),
              "extra_items": tf.constant(extra),
              "extra_probability": tf.constant(share[extra])}
  loss = model.compute_loss(features).numpy()
  all_items = np.concatenate([items, extra])
  # Batch of 3 popularity-sampled items + 2 uniform ones over 6 items:
  # q(j) = (3 * share_j + 2 / 6) / 5.
  mixture = (3 * share[all_items] + 2 / 6) / 5
  queries = query_tower(model.query_inputs(features)).numpy().astype(np.float64)
  candidates = candidate_tower(tf.constant(all_items)).numpy().astype(np.float64)
  scores = queries @ candidates.T - np.log(mixture)[None, :]
  duplicate = (items[:, None] == all_items[None, :]) & ~np.eye(3, 5, dtype=bool)
  scores = np.where(duplicate, -np.inf, scores)
  expected = -sum(scores[i, i] - np.log(np.exp(scores[i]).sum()) for i in range(3))
  np.testing.assert_allclose(loss, expected, rtol=1e-4)
