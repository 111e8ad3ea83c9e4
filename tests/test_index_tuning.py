"""ScaNN leaf tuning: the fewest leaves reaching a recall target, checked against NumPy."""


import tfcr  # noqa: F401  (first: it sets TF_USE_LEGACY_KERAS)  pylint: disable=g-import-not-at-top

import numpy as np  # pylint: disable=g-import-not-at-top
import pytest  # pylint: disable=g-import-not-at-top

from tfcr.index import tuning as index_tuning  # pylint: disable=g-import-not-at-top
from tfcr.index.scann import ScannIndex  # pylint: disable=g-import-not-at-top


def _numpy_top(embeddings, queries, k):
  return np.argsort(-(queries @ embeddings.T), axis=1, kind="stable")[:, :k]


def _clustered(num_items, num_queries, seed, dim=32, clusters=200):
  """Unit vectors around random centres: items, plus queries drawn the same way."""
  rng = np.random.default_rng(seed)
  centres = rng.normal(size=(clusters, dim))

  def draw(n):
    x = centres[rng.integers(clusters, size=n)] + rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

  return draw(num_items), draw(num_queries), draw(num_queries)


def test_leaf_ladder():
  assert index_tuning.leaf_ladder(1) == [1]
  assert index_tuning.leaf_ladder(2) == [1, 2]
  assert index_tuning.leaf_ladder(20) == [1, 2, 3, 4, 6, 8, 12, 16, 20]
  for n in (5, 316, 1000, 2000):
    ladder = index_tuning.leaf_ladder(n)
    assert ladder[0] == 1 and ladder[-1] == n
    assert all(b > a for a, b in zip(ladder, ladder[1:]))
    assert all(b <= 2 * a for a, b in zip(ladder, ladder[1:]))


def test_exact_top_k_matches_numpy():
  rng = np.random.default_rng(0)
  embeddings = rng.normal(size=(3000, 16)).astype(np.float32)
  queries = rng.normal(size=(150, 16)).astype(np.float32)  # several chunks of 64
  got = index_tuning.exact_top_k(embeddings, queries, 7)
  want = _numpy_top(embeddings, queries, 7)
  assert got.shape == (150, 7)
  assert [set(r) for r in got] == [set(r) for r in want]


def test_recall_hand_worked():
  approximate = np.array([[1, 2, 3], [4, 5, 6]])
  exact = np.array([[2, 1, 9], [7, 8, 9]])
  assert index_tuning.recall(approximate, exact) == pytest.approx((2 / 3 + 0) / 2)


def test_fewest_leaves_bisects_for_the_fewest_leaves_reaching_the_target():
  exact = {10: np.arange(10)[None, :].repeat(4, axis=0)}
  searched = []

  def search(leaves, k):  # recall@10 = min(0.9, leaves / 40): leaves // 4 rows right, <= 9
    searched.append(leaves)
    right = min(9, leaves // 4)
    return np.concatenate([exact[k][:, :right], np.full((4, k - right), -1)], axis=1)

  # Every leaf finds 9 of 10: the ceiling. 0.75 of it is 0.675: 7 right, i.e. 28 leaves
  # (27 give 6 right): the ladder's 32, then 28 between its 24 and 32.
  choice = index_tuning.fewest_leaves(search, exact, 1000, target=0.75)
  assert choice.leaves == 28
  assert choice.recall == {10: pytest.approx(0.7)} and choice.ceiling == {10: pytest.approx(0.9)}
  # The ceiling, bisection of the 20-step ladder, then of the 8 counts in 25..32: not a scan.
  assert len(searched) <= 10
  assert {24, 32, 1000, 27, 28} <= set(searched)
  everything = index_tuning.fewest_leaves(search, exact, 1000, target=1.0)
  assert everything.leaves == 36  # the first count where 9 of 10 are found


def test_every_k_must_reach_the_target():
  """A long list needs more leaves than a short one: the choice satisfies both."""
  exact = {k: np.arange(k)[None, :].repeat(2, axis=0) for k in (10, 100)}

  def search(leaves, k):  # top-10 complete from 8 leaves; top-100 grows until 64
    right = k if leaves >= 8 and k == 10 else min(k, int(k * leaves / 64))
    return np.concatenate([exact[k][:, :right], np.full((2, k - right), -1)], axis=1)

  assert index_tuning.fewest_leaves(search, {10: exact[10]}, 100, target=0.97).leaves == 8
  both = index_tuning.fewest_leaves(search, exact, 100, target=0.97)
  # top-100 finds int(100 * leaves / 64) rows: 97 first at 63 leaves (62 give 96).
  assert both.leaves == 63 and both.recall == {10: 1.0, 100: 0.98}


@pytest.fixture(scope="module")
def clustered():
  return _clustered(num_items=20000, num_queries=400, seed=3)


def _recall_through_search(index, queries, exact, leaves=None):
  """recall@k of the index's own serving search (eager), optionally at other leaves."""
  saved = index.base_leaves
  if leaves is not None:
    index.base_leaves = leaves
  try:
    _, rows = index.search(queries, exact.shape[1])
  finally:
    index.base_leaves = saved
  return index_tuning.recall(rows.numpy(), exact)


def test_tuned_index_meets_the_target_with_the_fewest_leaves(clustered):
  items, tuning, held_out = clustered
  index = ScannIndex(items, 50, tuning_queries=tuning, recall_target=0.95)
  choice = index.tuning
  assert choice is not None and choice.leaves == index.base_leaves
  assert 1 < choice.leaves < index.num_leaves  # tuning had something to decide here
  assert sorted(choice.recall) == [10, 50]
  below = choice.leaves - 1
  short = []
  for k in (10, 50):
    exact = _numpy_top(items, tuning, k)
    # The serving path, checked against NumPy's exact top-k, gives what tuning measured...
    assert _recall_through_search(index, tuning, exact) == pytest.approx(choice.recall[k])
    every_leaf = _recall_through_search(index, tuning, exact, leaves=index.num_leaves)
    assert every_leaf == pytest.approx(choice.ceiling[k])
    assert choice.recall[k] >= 0.95 * every_leaf
    # ...and one leaf fewer falls short for at least one k.
    short.append(_recall_through_search(index, tuning, exact, leaves=below) < 0.95 * every_leaf)
  assert any(short)
  # Queries it was not tuned on, from the same distribution, land close to the target.
  assert _recall_through_search(index, held_out, _numpy_top(items, held_out, 10)) >= 0.92


def test_higher_target_searches_more_leaves(clustered):
  items, tuning, _ = clustered
  low = ScannIndex(items, 10, tuning_queries=tuning, recall_target=0.8)
  high = ScannIndex(items, 10, tuning_queries=tuning, recall_target=0.99)
  assert low.base_leaves < high.base_leaves
  assert low.tuning.recall[10] >= 0.8 * low.tuning.ceiling[10]
  assert high.tuning.recall[10] >= 0.99 * high.tuning.ceiling[10]


def test_untuned_index_keeps_the_rule_of_thumb(clustered):
  items, _, _ = clustered
  index = ScannIndex(items, 10)
  assert index.tuning is None
  assert index.base_leaves == min(index.num_leaves, 128)
  with pytest.raises(ValueError, match="recall_target"):
    ScannIndex(items[:100], 10, recall_target=1.5)


def test_exact_top_k_bounds_its_score_matrix():
  """A tiny max_scores forces one query per chunk: the same rows as NumPy."""
  rng = np.random.default_rng(1)
  embeddings = rng.normal(size=(500, 8)).astype(np.float32)
  queries = rng.normal(size=(5, 8)).astype(np.float32)
  got = index_tuning.exact_top_k(embeddings, queries, 4, max_scores=600)
  want = _numpy_top(embeddings, queries, 4)
  assert [set(r) for r in got] == [set(r) for r in want]


def test_scann_tree_size_grows_as_the_square_root():
  from tfcr.index.scann import scann_leaves, training_sample_size  # pylint: disable=g-import-not-at-top
  assert [scann_leaves(n) for n in (1, 100, 10**6, 10**7)] == [1, 10, 1000, 3162]
  assert training_sample_size(1000, 32) == 1000
  assert training_sample_size(10**7, 3162) == 316_200
