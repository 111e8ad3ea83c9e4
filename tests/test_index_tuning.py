"""ScaNN leaf tuning: the fewest leaves reaching a recall target, checked against NumPy."""


import tfcr  # noqa: F401  (first: it sets TF_USE_LEGACY_KERAS)  pylint: disable=g-import-not-at-top

import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top
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


def test_tuning_depths_grow_by_four_up_to_a_quarter_of_the_catalog():
  assert index_tuning.tuning_depths(100, 10**6) == [400, 1600, 6400]
  assert index_tuning.tuning_depths(100, 10**7) == [400, 1600, 6400]  # DEEPEST 10,000
  assert index_tuning.tuning_depths(50, 20000) == [200, 800, 3200]
  assert index_tuning.tuning_depths(10, 1682) == [40, 160]  # 640 > 1682 / 4
  assert index_tuning.tuning_depths(100, 1000) == []


def test_fewest_leaves_never_goes_below_at_least():
  exact = {10: np.arange(10)[None, :].repeat(4, axis=0)}

  def search(leaves, k):  # as above: 28 leaves are the fewest reaching 0.75 of 0.9
    right = min(9, leaves // 4)
    return np.concatenate([exact[k][:, :right], np.full((4, k - right), -1)], axis=1)

  assert index_tuning.fewest_leaves(search, exact, 1000, 0.75, at_least=1).leaves == 28
  assert index_tuning.fewest_leaves(search, exact, 1000, 0.75, at_least=20).leaves == 28
  assert index_tuning.fewest_leaves(search, exact, 1000, 0.75, at_least=30).leaves == 30
  assert index_tuning.fewest_leaves(search, exact, 40, 0.75, at_least=500).leaves == 40


def test_sampled_members_are_a_share_and_depend_on_item_and_query_only():
  rng = np.random.default_rng(0)
  rows = rng.permutation(200_000).reshape(2, 100_000)
  members = index_tuning.sampled_members(rows, 0.05, seed=1)
  assert members.mean() == pytest.approx(0.05, abs=0.003)
  # The same (item, query) pair, wherever it sits in a row: the same answer.
  shuffled = rows[:, ::-1]
  assert (index_tuning.sampled_members(shuffled, 0.05, seed=1) == members[:, ::-1]).all()
  # Query ids, not positions, decide: row 1 alone with id 1 is row 1 of the pair.
  alone = index_tuning.sampled_members(rows[1:], 0.05, seed=1, query_ids=[1])
  assert (alone == members[1:]).all()
  assert not (index_tuning.sampled_members(rows, 0.05, seed=2) == members).all()
  assert not index_tuning.sampled_members(np.full((1, 5), -1), 1.0).any()  # padding


def test_first_members_keeps_order_and_pads():
  rows = np.array([[5, 3, 8, 1], [7, 2, 9, 4]])
  members = np.array([[True, False, True, True], [False, False, True, False]])
  assert index_tuning.first_members(rows, members, 2).tolist() == [[5, 8], [9, -1]]


def test_deep_fetches_search_the_leaves_tuned_for_their_depth(clustered):
  items, tuning, _ = clustered
  index = ScannIndex(items, 50, tuning_queries=tuning, recall_target=0.97)
  depths = [depth for depth, _ in index.depth_tuning]
  leaves = [choice.leaves for _, choice in index.depth_tuning]
  assert depths == [200, 800, 3200]
  assert index.base_leaves <= leaves[0] <= leaves[1] <= leaves[2] <= index.num_leaves
  assert leaves[-1] > index.base_leaves  # deep fetches needed more here
  for _, choice in index.depth_tuning:
    assert choice.recall[10] >= 0.97 * choice.ceiling[10]
  at = lambda n: int(index.leaves_for(tf.constant(n)).numpy())
  assert at(10) == at(50) == index.base_leaves
  assert [at(200), at(800), at(3200), at(10**6)] == leaves + [leaves[-1]]
  # Half-way on log(depth) between 200 and 800 (400): half-way between their leaves.
  assert at(400) == int(np.ceil((leaves[0] + leaves[1]) / 2 - 1e-4))
  assert "Fetches of 3200" in index.describe_tuning()


def _strict_fetch_recall(index, items, queries, one_in, seed):
  """A function measuring recall@10 of the condition filter's streaming fetch (n = 10 /
  share x 1.5, the top 10 of those kept) for a random 1/one_in of the items, against
  NumPy's exact top-10 among them."""
  rng = np.random.default_rng(seed)
  chosen = np.zeros(len(items), bool)
  chosen[rng.permutation(len(items))[:len(items) // one_in]] = True
  subset = np.flatnonzero(chosen)
  exact = subset[_numpy_top(items[subset], queries, 10)]
  n = int(np.ceil(10 * one_in * 1.5))

  def strict_recall():
    _, rows = index.search(queries, n)
    kept = [[r for r in row if r >= 0 and chosen[r]][:10] for row in rows.numpy()]
    return np.mean([len(set(k) & set(e)) / 10 for k, e in zip(kept, exact)])

  return strict_recall


def test_depth_tuning_lifts_a_strict_filters_recall(clustered):
  """A fetch of n = 10 / share x 1.5 filtered to a random 1% of the items (as the
  condition filter's streaming path does), against NumPy's exact top-10 of that 1%."""
  items, tuning, held_out = clustered
  index = ScannIndex(items, 50, tuning_queries=tuning, recall_target=0.97)
  strict_recall = _strict_fetch_recall(index, items, held_out, 100, seed=7)

  tuned = strict_recall()
  saved, index.depth_tuning = index.depth_tuning, []
  try:
    base = strict_recall()
  finally:
    index.depth_tuning = saved
  assert tuned > base + 0.05


def test_deep_fetches_re_rank_six_per_candidate_up_to_the_cap(clustered):
  items, _, _ = clustered
  index = ScannIndex(items, 10)  # reorder: max(250, 4 x 10)
  hand = {10: 250, 100: 600, 1000: 6000, 3000: 16000, 20000: 20000}
  assert {n: index.pre_reorder(n) for n in hand} == hand
  assert {n: int(index.pre_reorder(tf.constant(n)).numpy()) for n in hand} == hand


def test_re_ranking_more_candidates_lifts_a_deep_strict_fetch(clustered, monkeypatch):
  """A 0.2% condition's fetch (n = 7,500) re-ranking 16,000 AH candidates against the old
  cap (4,000, so n itself), every leaf searched so only the re-ranking differs (measured
  0.991 against 0.965)."""
  import tfcr.index.scann as scann_module  # pylint: disable=import-outside-toplevel
  items, _, held_out = clustered
  index = ScannIndex(items, 10)
  index.base_leaves = index.num_leaves
  strict_recall = _strict_fetch_recall(index, items, held_out, 500, seed=11)

  wide = strict_recall()
  monkeypatch.setattr(scann_module, "REORDER_CAP", 4000)
  narrow = strict_recall()
  assert wide > narrow + 0.015
