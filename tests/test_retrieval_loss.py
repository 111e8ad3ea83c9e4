"""RetrievalModel.compute_loss against an independent NumPy computation of the loss its
docstring describes: in-batch softmax with temperature, logQ correction (scores minus
log of the sampling probability), accidental hits removed from the negatives, and extra
uniform negatives whose probability is the mixture of both proposals."""

import numpy as np
import pytest
import tensorflow as tf

from tfcr.models.retrieval import RetrievalModel
from tfcr.models.towers import CandidateTower, QueryTower


def numpy_loss(queries, candidates, probability, ids, temperature=1.0, logq=True,
               remove_hits=True):
  """Sum over the B queries of -log softmax(q_i . c / T - log p)[i]; candidates [C >= B]
  (the first B are the queries' positives); a candidate j != i with the id of i's
  positive is dropped from i's negatives."""
  b = len(queries)
  scores = queries @ candidates.T / temperature
  if logq:
    scores = scores - np.log(probability)[None, :]
  if remove_hits:
    duplicate = (ids[:b, None] == ids[None, :]) & ~np.eye(b, len(ids), dtype=bool)
    scores = np.where(duplicate, -np.inf, scores)
  top = scores.max(axis=1, keepdims=True)
  log_softmax = scores - top - np.log(np.exp(scores - top).sum(axis=1, keepdims=True))
  return -np.trace(log_softmax[:, :b])


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
  model.compute_loss(features)  # builds the towers
  # Initial embeddings are tiny (scores ~0.01): scaled up so that the temperature and
  # the condition visibly matter.
  for weight in query_tower.trainable_weights + candidate_tower.trainable_weights:
    weight.assign(weight * 2.5)
  loss = model.compute_loss(features).numpy()
  queries = query_tower(model.query_inputs(features)).numpy().astype(np.float64)
  candidates = candidate_tower(features["item"]).numpy().astype(np.float64)
  args = (queries, candidates, features["sampling_probability"].numpy(),
          features["item"].numpy(), temperature)
  np.testing.assert_allclose(loss, numpy_loss(*args), rtol=1e-4)
  # The inputs do exercise every part: without any one of them the loss differs.
  for variant in (dict(logq=False), dict(remove_hits=False)):
    assert not np.isclose(loss, numpy_loss(*args, **variant), rtol=1e-3), variant
  if temperature != 1.0:
    assert not np.isclose(loss, numpy_loss(*args[:4], 1.0), rtol=1e-3)
  # A CR model's queries depend on the condition, an LR model's do not.
  other = dict(features, condition=tf.constant([0, 0, 0, 0, 0]))
  assert np.isclose(model.compute_loss(other).numpy(), loss) != conditional


def _identity_towers(user_vectors, item_vectors, temperature=None):
  """Towers whose outputs are the given vectors: embedding tables set by hand, the
  crossing layer a projection that keeps the id embedding (conditions get weight 0)."""
  n_users, dim = len(user_vectors), user_vectors.shape[1]
  query = QueryTower(n_users, [], 0, embedding_dim=dim, id_embedding_dim=dim,
                     hidden_units=())
  query({"user": tf.constant([0])})
  query.user_embedding.set_weights([np.vstack([np.zeros((1, dim)), user_vectors])])
  query.crossing.layers[-1].set_weights([np.eye(dim), np.zeros(dim)])
  candidate = CandidateTower(len(item_vectors), 1, 1, embedding_dim=dim,
                             id_embedding_dim=dim, condition_embedding_dim=1,
                             hidden_units=())
  candidate(tf.constant([0]))
  candidate.item_embedding.set_weights([item_vectors])
  candidate.crossing.layers[-1].set_weights([np.vstack([np.eye(dim), np.zeros((1, dim))]),
                                             np.zeros(dim)])
  return RetrievalModel(query, candidate, temperature=temperature)


def _hand_worked(p, temperature):
  """Queries (1, 0), (0, 1); positives (1, 0), (0.5, 0.5): the loss written out."""
  row0 = np.array([1.0, 0.5]) / temperature - np.log(p)
  row1 = np.array([0.0, 0.5]) / temperature - np.log(p)
  return -(row0[0] - np.log(np.exp(row0).sum()) + row1[1] - np.log(np.exp(row1).sum()))


@pytest.mark.parametrize("temperature", [None, 0.5])
def test_logq_correction_on_hand_worked_numbers(temperature):
  model = _identity_towers(np.array([[1.0, 0.0], [0.0, 1.0]]),
                           np.array([[1.0, 0.0], [0.5, 0.5]]), temperature)
  t = temperature or 1.0

  def loss(p):
    return model.compute_loss({"user": tf.constant([1, 2]), "item": tf.constant([0, 1]),
                               "sampling_probability": tf.constant(p, tf.float32)}).numpy()

  # Equal probabilities shift every score alike: the plain softmax loss.
  plain = -(np.log(np.exp(1 / t) / (np.exp(1 / t) + np.exp(0.5 / t)))
            + np.log(np.exp(0.5 / t) / (np.exp(0) + np.exp(0.5 / t))))
  np.testing.assert_allclose(loss([0.5, 0.5]), plain, rtol=1e-5)
  np.testing.assert_allclose(loss([0.5, 0.5]), _hand_worked(np.array([0.5, 0.5]), t),
                             rtol=1e-5)
  # Skewed probabilities: the popular item 0 is penalised less as a negative; its
  # score is lowered by log(0.9), the rare item's raised by -log(0.1).
  skewed = loss([0.9, 0.1])
  np.testing.assert_allclose(skewed, _hand_worked(np.array([0.9, 0.1]), t), rtol=1e-5)
  assert skewed != pytest.approx(plain, rel=1e-2)


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
  np.testing.assert_allclose(mixture, [0.24666667, 0.18666667, 0.12666667, 0.12666667,
                                       0.18666667], rtol=1e-6)
  queries = query_tower(model.query_inputs(features)).numpy().astype(np.float64)
  candidates = candidate_tower(tf.constant(all_items)).numpy().astype(np.float64)
  expected = numpy_loss(queries, candidates, mixture, all_items)
  np.testing.assert_allclose(loss, expected, rtol=1e-4)
  # Not the plain popularity probability, and the extra negatives do count.
  assert not np.isclose(loss, numpy_loss(queries, candidates, share[all_items], all_items),
                        rtol=1e-3)
  assert not np.isclose(loss, numpy_loss(queries, candidates[:3], share[items], items),
                        rtol=1e-3)


def test_the_mixture_is_the_expected_count_per_batch_by_simulation():
  # logQ must subtract log(expected occurrences of item j in a batch's candidates):
  # B in-batch items drawn by popularity and B' uniform ones give B * Q_j + B' / N. Count
  # them over simulated batches; the loss's mixture (B * Q_j + B' / N) / (B + B') is that
  # count up to a constant, which a softmax ignores.
  rng = np.random.default_rng(0)
  share = np.array([0.3, 0.2, 0.2, 0.1, 0.1, 0.1])
  batches, batch, extra = 200_000, 3, 2
  popular = rng.choice(6, size=(batches, batch), p=share)
  uniform = rng.integers(0, 6, size=(batches, extra))
  counts = (np.bincount(popular.ravel(), minlength=6)
            + np.bincount(uniform.ravel(), minlength=6)) / batches
  mixture = (batch * share + extra / 6) / (batch + extra)
  np.testing.assert_allclose(counts, mixture * (batch + extra), atol=0.01)
  # The plain popularity probability is off by more than a quarter for the tail items.
  assert np.abs(counts / (share * (batch + extra)) - 1).max() > 0.25
