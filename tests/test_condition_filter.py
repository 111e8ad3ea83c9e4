"""The condition filter in process, against NumPy brute force on a hand-made catalog.

Every path of `ConditionFilter`: unfiltered (with and without exclusions), streamed strict
rows (over-fetch, grow, keep), exact strict rows (rare conditions), unknown and empty
conditions, and batches that mix them.
"""

import numpy as np
import pytest
import tensorflow as tf

from tfcr.data.conditions import NONE_ID, NUM_RESERVED, OOV_ID, ItemConditions
from tfcr.data.schema import MultiValued
from tfcr.export.condition_filter import ConditionFilter
from tfcr.index.brute_force import BruteForceIndex

NUM_ITEMS, DIM, MAX_K = 40, 6, 8
# Item i has "a" when i % 2 == 0, "b" when i % 5 == 0, "c" only for items 7 and 33; the
# other odd items (1, 3, 9, ...) have nothing (NONE).
VALUES = [[v for v, keep in (("a", i % 2 == 0), ("b", i % 5 == 0), ("c", i in (7, 33)))
           if keep] for i in range(NUM_ITEMS)]
A, B, C = NUM_RESERVED, NUM_RESERVED + 1, NUM_RESERVED + 2  # sorted vocabulary a, b, c


@pytest.fixture(scope="module")
def setup():
  conditions = ItemConditions.from_multi_valued("tag", MultiValued.from_lists(VALUES))
  rng = np.random.default_rng(7)
  embeddings = rng.normal(size=(NUM_ITEMS, DIM)).astype(np.float32)
  queries = rng.normal(size=(5, DIM)).astype(np.float32)
  return conditions, embeddings, queries


def members(condition: int) -> np.ndarray:
  letter = {A: "a", B: "b", C: "c"}[condition]
  return np.array([letter in v for v in VALUES])


def reference(query, embeddings, k, allowed=None, excluded=()):
  """Rows and scores of the best k allowed, non-excluded items, and the serving cost:
  the position of the k-th kept item in the full ranking (all items if fewer kept)."""
  scores = embeddings @ query
  order = np.argsort(-scores, kind="stable")
  keep = np.ones(NUM_ITEMS, bool) if allowed is None else allowed.copy()
  keep[list(excluded)] = False
  kept = [r for r in order if keep[r]]
  rows = kept[:k]
  kept_positions = [p for p, r in enumerate(order) if keep[r]]
  scanned = kept_positions[k - 1] + 1 if len(kept) >= k else NUM_ITEMS
  return np.array(rows, np.int64), scores[rows], scanned


def run(setup, condition, k, strict, excluded=None, exact_threshold=0):
  conditions, embeddings, queries = setup
  batch = len(condition)
  filter_ = ConditionFilter(conditions, embeddings, MAX_K, exact_threshold=exact_threshold)
  if excluded is None:
    excluded = np.zeros((batch, 0), np.int32)
  rows, scores, scanned = filter_(BruteForceIndex(embeddings), tf.constant(queries[:batch]),
                                  tf.constant(condition, tf.int32), tf.constant(k, tf.int32),
                                  tf.constant(strict), tf.constant(excluded, tf.int32))
  return rows.numpy(), scores.numpy(), scanned.numpy()


def check_row(rows, scores, expected_rows, expected_scores, k):
  n = len(expected_rows)
  np.testing.assert_array_equal(rows[:n], expected_rows)
  np.testing.assert_allclose(scores[:n], expected_scores, rtol=1e-5, atol=1e-5)
  assert (rows[n:] == -1).all() and np.isneginf(scores[n:]).all()
  assert n <= k


def test_inverted_table_matches_the_catalog(setup):
  conditions = setup[0]
  row_splits, items = conditions.items_by_condition()
  for condition in (A, B, C):
    np.testing.assert_array_equal(items[row_splits[condition]:row_splits[condition + 1]],
                                  np.flatnonzero(members(condition)))
  np.testing.assert_array_equal(items[row_splits[NONE_ID]:row_splits[NONE_ID + 1]],
                                [i for i in range(NUM_ITEMS) if not VALUES[i]])
  assert row_splits[OOV_ID + 1] == row_splits[OOV_ID]  # no item is OOV


def test_unfiltered_rows_are_the_exact_top_k(setup):
  _, embeddings, queries = setup
  k = [8, 3, 1]
  rows, scores, scanned = run(setup, [A, NONE_ID, OOV_ID], k, [False] * 3)
  for i in range(3):
    expected_rows, expected_scores, _ = reference(queries[i], embeddings, k[i])
    check_row(rows[i], scores[i], expected_rows, expected_scores, k[i])
  np.testing.assert_array_equal(scanned, k)  # every returned candidate is kept


def test_unfiltered_exclusions_are_skipped_and_counted(setup):
  _, embeddings, queries = setup
  best = reference(queries[0], embeddings, 4)[0]
  excluded = np.array([[best[0], best[2], -1]], np.int32)
  rows, scores, scanned = run(setup, [A], [4], [False], excluded)
  expected_rows, expected_scores, expected_scanned = reference(
      queries[0], embeddings, 4, excluded=[best[0], best[2]])
  check_row(rows[0], scores[0], expected_rows, expected_scores, 4)
  assert scanned[0] == expected_scanned == 6  # 4 kept + the 2 excluded above them


@pytest.mark.parametrize("exact_threshold", [0, 100])  # streamed, then exact path
def test_strict_rows_hold_only_the_condition(setup, exact_threshold):
  _, embeddings, queries = setup
  k = [5, 5, 2]
  rows, scores, scanned = run(setup, [A, B, C], k, [True] * 3,
                              exact_threshold=exact_threshold)
  for i, condition in enumerate((A, B, C)):
    expected_rows, expected_scores, expected_scanned = reference(
        queries[i], embeddings, k[i], allowed=members(condition))
    check_row(rows[i], scores[i], expected_rows, expected_scores, k[i])
    if exact_threshold == 0:
      assert scanned[i] == expected_scanned
    else:  # the exact path scores the condition's items, all of them
      assert scanned[i] == members(condition).sum()


def test_a_condition_with_fewer_items_than_k_returns_them_all(setup):
  _, embeddings, queries = setup
  rows, scores, scanned = run(setup, [C], [8], [True])
  expected_rows, expected_scores, _ = reference(queries[0], embeddings, 8,
                                                allowed=members(C))
  assert sorted(expected_rows) == [7, 33]
  check_row(rows[0], scores[0], expected_rows, expected_scores, 8)
  assert scanned[0] == NUM_ITEMS  # searched everything and still short of k


def test_strict_with_exclusions(setup):
  _, embeddings, queries = setup
  best_a = reference(queries[0], embeddings, 3, allowed=members(A))[0]
  excluded = np.array([[best_a[1]]], np.int32)
  rows, scores, _ = run(setup, [A], [3], [True], excluded)
  expected_rows, expected_scores, _ = reference(queries[0], embeddings, 3,
                                                allowed=members(A), excluded=[best_a[1]])
  check_row(rows[0], scores[0], expected_rows, expected_scores, 3)
  assert best_a[1] not in rows[0]


def test_unknown_condition_is_empty_when_strict_and_none_is_unfiltered(setup):
  _, embeddings, queries = setup
  rows, scores, scanned = run(setup, [OOV_ID, NONE_ID], [4, 4], [True, True])
  assert (rows[0] == -1).all() and np.isneginf(scores[0]).all() and scanned[0] == 0
  expected_rows, expected_scores, _ = reference(queries[1], embeddings, 4)
  check_row(rows[1], scores[1], expected_rows, expected_scores, 4)


def test_a_mixed_batch_equals_its_rows_one_by_one(setup):
  condition, k, strict = [A, B, NONE_ID, C, OOV_ID], [3, 6, 2, 8, 5], [True, False, True,
                                                                       True, False]
  together = run(setup, condition, k, strict)
  conditions, embeddings, queries = setup
  for i in range(5):
    filter_ = ConditionFilter(conditions, embeddings, MAX_K, exact_threshold=0)
    alone = filter_(BruteForceIndex(embeddings), tf.constant(queries[i:i + 1]),
                    tf.constant([condition[i]]), tf.constant([k[i]]),
                    tf.constant([strict[i]]), tf.zeros([1, 0], tf.int32))
    np.testing.assert_array_equal(together[0][i], alone[0].numpy()[0])
    np.testing.assert_allclose(together[1][i], alone[1].numpy()[0], rtol=1e-6)
    assert together[2][i] == alone[2].numpy()[0]


def test_has_condition_is_false_for_padding_and_reserved_ids(setup):
  """Item 1 has no value: the query "" (NONE) must not count it as a match."""
  conditions, embeddings, _ = setup
  filter_ = ConditionFilter(conditions, embeddings, MAX_K)
  rows = tf.constant([[0, 5, 7, -1], [1, 0, 7, -1]])
  got = filter_.has_condition(rows, tf.constant([B, NONE_ID])).numpy()
  np.testing.assert_array_equal(got, [[True, True, False, False], [False] * 4])


def test_bad_arguments_are_refused(setup):
  conditions, embeddings, _ = setup
  with pytest.raises(ValueError, match="max_k"):
    ConditionFilter(conditions, embeddings, 0)
