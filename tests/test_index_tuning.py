"""ScaNN leaf tuning: the fewest leaves reaching a recall target, checked against NumPy."""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # pylint: disable=g-import-not-at-top
import pytest  # pylint: disable=g-import-not-at-top

from tfcr import index_tuning  # pylint: disable=g-import-not-at-top
from tfcr.index import ScannIndex  # pylint: disable=g-import-not-at-top


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


def test_fewest_leaves_bisects_for_the_smallest_step_reaching_the_target():
  exact = np.arange(10)[None, :].repeat(4, axis=0)
  searched = []

  def search(leaves):  # recall = min(1, leaves / 40): 10 rows, leaves // 4 of them right
    searched.append(leaves)
    right = min(10, leaves // 4)
    return np.concatenate([exact[:, :right], np.full((4, 10 - right), -1)], axis=1)

  choice = index_tuning.fewest_leaves(search, exact, 1000, target=0.7)
  assert choice.leaves == 32 and choice.recall == pytest.approx(0.8)  # 24 leaves: 0.6
  assert len(searched) <= 6  # bisection, not a scan of the 20-step ladder
  assert 24 in searched  # the step below was measured short of the target
  unreachable = index_tuning.fewest_leaves(lambda leaves: np.full((4, 10), -1), exact, 1000)
  assert unreachable.leaves == 1000 and unreachable.recall == 0


@pytest.fixture(scope="module")
def clustered():
  return _clustered(num_items=20000, num_queries=400, seed=3)


def _recall_through_search(index, queries, exact, leaves=None):
  """recall@10 of the index's own serving search (eager), optionally at other leaves."""
  saved = index.base_leaves
  if leaves is not None:
    index.base_leaves = leaves
  try:
    _, rows = index.search(queries, 10)
  finally:
    index.base_leaves = saved
  return index_tuning.recall(rows.numpy(), exact)


def test_tuned_index_meets_the_target_with_the_fewest_leaves(clustered):
  items, tuning, held_out = clustered
  index = ScannIndex(items, 10, tuning_queries=tuning, recall_target=0.95)
  choice = index.tuning
  assert choice is not None and choice.leaves == index.base_leaves
  assert 1 < choice.leaves < index.num_leaves  # tuning had something to decide here
  exact = _numpy_top(items, tuning, 10)
  # The serving path, checked against NumPy's exact top-10, reaches the target...
  assert _recall_through_search(index, tuning, exact) == pytest.approx(choice.recall)
  assert choice.recall >= 0.95
  # ...and the ladder step below it does not.
  ladder = index_tuning.leaf_ladder(index.num_leaves)
  below = ladder[ladder.index(choice.leaves) - 1]
  assert _recall_through_search(index, tuning, exact, leaves=below) < 0.95
  # Queries it was not tuned on, from the same distribution, land close to the target.
  assert _recall_through_search(index, held_out, _numpy_top(items, held_out, 10)) >= 0.93


def test_higher_target_searches_more_leaves(clustered):
  items, tuning, _ = clustered
  low = ScannIndex(items, 10, tuning_queries=tuning, recall_target=0.8)
  high = ScannIndex(items, 10, tuning_queries=tuning, recall_target=0.99)
  assert low.base_leaves < high.base_leaves
  assert low.tuning.recall >= 0.8 and high.tuning.recall >= 0.99


def test_untuned_index_keeps_the_rule_of_thumb(clustered):
  items, _, _ = clustered
  index = ScannIndex(items, 10)
  assert index.tuning is None
  assert index.base_leaves == min(index.num_leaves, 128)
  with pytest.raises(ValueError, match="recall_target"):
    ScannIndex(items[:100], 10, recall_target=1.5)
