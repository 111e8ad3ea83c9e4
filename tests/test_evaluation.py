"""Metrics on hand-worked cases and the exact evaluation against a NumPy oracle."""

import types

import numpy as np
import pytest
import tensorflow as tf

from tfcr.data.prepare import prepare
from tfcr.metrics import exact as evaluation
from tfcr.metrics import per_query
from tfcr.data.schema import Catalog, Interactions, MultiValued, RecData, Users


def test_recall_and_topic_match_hand_worked():
  top = np.array([[3, 1, 2], [0, -1, -1]])
  targets = np.array([1, 2])
  positions = per_query.hit_positions(top, targets)
  np.testing.assert_array_equal(positions, [1, -1])
  assert per_query.recall_per_query(positions, 1).mean() == 0.0
  assert per_query.recall_per_query(positions, 2).mean() == 0.5
  # Items 0 and 2 have condition 1, item 3 conditions 1 and 2, item 1 condition 2.
  membership = np.array([[False, True, False], [False, False, True],
                         [False, True, False], [False, True, True]])
  matches = per_query.condition_matches(top, np.array([1, 1]), membership)
  np.testing.assert_array_equal(matches, [[True, False, True], [True, False, False]])
  # Query 0: 2 of 3 match; query 1 returned one item, which matches -> 1.0.
  assert np.isclose(per_query.topic_match_per_query(matches, top, 3).mean(),
                    (2 / 3 + 1) / 2)
  assert np.isclose(per_query.topic_match_per_query(matches, top, 1).mean(), 1.0)
  # A query that returned nothing counts as 0.
  nothing = np.full((1, 3), -1)
  assert per_query.topic_match_per_query(
      per_query.condition_matches(nothing, np.array([1]), membership), nothing, 3)[0] == 0


def test_top_k_rows_orders_and_pads():
  scores = np.array([[0.1, 0.9, -np.inf, 0.5], [-np.inf, -np.inf, 1.0, -np.inf]])
  np.testing.assert_array_equal(evaluation.top_k_rows(scores, 3), [[1, 3, 0], [2, -1, -1]])
  np.testing.assert_array_equal(evaluation.top_k_rows(scores, 6)[0], [1, 3, 0, -1, -1, -1])


def _topic_lists(n_items, without=()):
  """Items' topics: t(i % 3), plus t((i + 1) % 3) for every 4th; none for `without`."""
  return [[] if i in without else
          [f"t{i % 3}"] + ([f"t{(i + 1) % 3}"] if i % 4 == 0 else [])
          for i in range(n_items)]


def _tiny_data(rng, topic_lists, n_users=6):
  n_items = len(topic_lists)
  catalog = Catalog(np.array([f"i{i}" for i in range(n_items)], dtype=object),
                    features={"topics": MultiValued.from_lists(topic_lists)})
  users = Users(np.array([f"u{u}" for u in range(n_users)], dtype=object))
  n = 60
  inter = Interactions(rng.integers(0, n_users, n).astype(np.int32),
                       rng.integers(0, n_items, n).astype(np.int32),
                       np.ones(n, np.float32), rng.permutation(n).astype(np.int64))
  return RecData("tiny", users, catalog, inter)


@pytest.mark.parametrize("without", [(), tuple(range(0, 40, 3))])
def test_evaluate_matches_numpy_oracle(without):
  rng = np.random.default_rng(0)
  n_users, n_items = 6, 40
  topic_lists = _topic_lists(n_items, without)
  prepared = prepare(_tiny_data(rng, topic_lists, n_users), "topics")
  n_cond = 5  # 0 OOV, 1 NONE, 2.. the topics t0, t1, t2
  assert prepared.conditions.vocabulary_size == n_cond
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
  # The queries' conditions, drawn as tfcr.metrics.queries says: uniformly among the
  # held-out item's own values, NumPy's generator seeded with the run's seed, one draw
  # per test row; rows whose item has no topic are skipped.
  uniform = np.random.default_rng(5).random(len(targets))
  membership = np.zeros((n_items, n_cond), bool)
  for i, topics in enumerate(topic_lists):
    for topic in topics:
      membership[i, 2 + int(topic[1])] = True
  hits = {k: [] for k in (1, 5, 10)}
  match10, filtered, skipped = [], [], 0
  for u, t, draw in zip(users, targets, uniform):
    if not topic_lists[t]:
      skipped += 1
      continue
    c = 2 + int(topic_lists[t][int(draw * len(topic_lists[t]))][1])
    scores = (user_vectors[u + 1] + cond_vectors[c]) @ item_vectors.T
    seen = prepared.train.item_index[prepared.train.user_index == u]
    scores[seen] = -np.inf
    ranked = [i for i in np.argsort(-scores, kind="stable") if scores[i] > -np.inf]
    for k in hits:
      hits[k].append(t in ranked[:k])
    match10.append(np.mean(membership[ranked[:10], c]))
    filtered.append(t in [i for i in ranked if membership[i, c]][:100])
  assert (skipped > 0) == bool(without)
  for k in hits:
    assert np.isclose(metrics[f"recall@{k}"], np.mean(hits[k])), k
  assert np.isclose(metrics["topic_match@10"], np.mean(match10))
  assert np.isclose(metrics["filtered_recall@100"], np.mean(filtered))
  assert metrics["num_test_queries"] == len(targets) - skipped
  assert metrics["num_skipped_queries"] == skipped
