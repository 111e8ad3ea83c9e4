"""Metrics on hand-worked cases and the exact evaluation against a NumPy oracle."""

import types

import numpy as np
import tensorflow as tf

from tfcr.metrics import exact as evaluation
from tfcr.data.conditions import ItemConditions
from tfcr.data.prepare import prepare
from tfcr.data.schema import Catalog, Interactions, MultiValued, RecData, Users


def test_recall_and_topic_match_hand_worked():
  top = np.array([[3, 1, 2], [0, -1, -1]])
  targets = np.array([1, 2])
  assert evaluation.recall_at_k(top, targets, 1) == 0.0
  assert evaluation.recall_at_k(top, targets, 2) == 0.5
  matches = np.array([[True, False, True], [True, False, False]])
  valid = top >= 0
  # Query 0: 2 of 3 match; query 1 returned one item, which matches -> 1.0.
  assert np.isclose(evaluation.topic_match_at_k(matches, valid, 3), (2 / 3 + 1) / 2)
  assert np.isclose(evaluation.topic_match_at_k(matches, valid, 1), 1.0)


def test_top_k_rows_orders_and_pads():
  scores = np.array([[0.1, 0.9, -np.inf, 0.5], [-np.inf, -np.inf, 1.0, -np.inf]])
  np.testing.assert_array_equal(evaluation.top_k_rows(scores, 3), [[1, 3, 0], [2, -1, -1]])
  np.testing.assert_array_equal(evaluation.top_k_rows(scores, 6)[0], [1, 3, 0, -1, -1, -1])


def _tiny_data(rng, n_users=6, n_items=40):
  topics = MultiValued.from_lists([[f"t{i % 3}"] + ([f"t{(i + 1) % 3}"] if i % 4 == 0 else [])
                                   for i in range(n_items)])
  catalog = Catalog(np.array([f"i{i}" for i in range(n_items)], dtype=object),
                    np.array([""] * n_items, dtype=object), np.zeros(n_items, np.int32),
                    {"topics": topics})
  users = Users(np.array([f"u{u}" for u in range(n_users)], dtype=object))
  n = 60
  inter = Interactions(rng.integers(0, n_users, n).astype(np.int32),
                       rng.integers(0, n_items, n).astype(np.int32),
                       np.ones(n, np.float32), rng.permutation(n).astype(np.int64))
  return RecData("tiny", users, catalog, inter)


def test_evaluate_matches_numpy_oracle():
  rng = np.random.default_rng(0)
  prepared = prepare(_tiny_data(rng), "topics")
  n_users, n_items, n_cond = 6, 40, prepared.conditions.vocabulary_size
  user_vectors = rng.normal(size=(n_users + 1, 4)).astype(np.float32)
  cond_vectors = rng.normal(size=(n_cond, 4)).astype(np.float32)
  item_vectors = rng.normal(size=(n_items, 4)).astype(np.float32)
  # A fixed linear "model": enough to check the ranking, exclusion and metric plumbing.
  model = types.SimpleNamespace(
      candidate_tower=lambda items: tf.gather(item_vectors, items),
      query_tower=lambda x: tf.gather(user_vectors, x["user"]) + tf.gather(cond_vectors,
                                                                           x["condition"]),
      query_inputs=lambda x: x)
  metrics = evaluation.evaluate(model, prepared, seed=5, ks=(1, 5, 10))

  users, targets = prepared.test.user_index, prepared.test.item_index
  conditions = ItemConditions.sample_with_seed(prepared.conditions, targets, 5)
  membership = prepared.conditions.membership()
  hits = {k: [] for k in (1, 5, 10)}
  match10, filtered = [], []
  for u, t, c in zip(users, targets, conditions):
    scores = (user_vectors[u + 1] + cond_vectors[c]) @ item_vectors.T
    seen = prepared.train.item_index[prepared.train.user_index == u]
    scores[seen] = -np.inf
    ranked = [i for i in np.argsort(-scores, kind="stable") if scores[i] > -np.inf]
    for k in hits:
      hits[k].append(t in ranked[:k])
    match10.append(np.mean(membership[ranked[:10], c]))
    filtered.append(t in [i for i in ranked if membership[i, c]][:100])
  for k in hits:
    assert np.isclose(metrics[f"recall@{k}"], np.mean(hits[k])), k
  assert np.isclose(metrics["topic_match@10"], np.mean(match10))
  assert np.isclose(metrics["filtered_recall@100"], np.mean(filtered))
  assert metrics["num_test_queries"] == len(targets)
