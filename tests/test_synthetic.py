"""Tests for tfcr.data.synthetic: schema, planted structure, determinism, scale.

The statistical checks compare the generated data with expectations computed
independently from the returned truth, with tolerances of about 5 standard deviations
(so a correct generator fails about once in a million runs, and the seeds are fixed).
"""

import resource
import time

import numpy as np
import pytest

from tfcr.data import synthetic
from tfcr.errors import ConfigError

SMALL = dict(n_users=300, n_items=500, n_conditions=12, n_interactions=15000)


def _item_condition_matrix(data, truth):
  """[I, C] bool: item i has condition c (c indexes truth.condition_names)."""
  feature = data.catalog.features[truth.config.condition_feature]
  index_of = {name: c for c, name in enumerate(truth.condition_names)}
  cond = np.array([index_of[v] for v in feature.vocabulary])[feature.value_ids]
  item = np.repeat(np.arange(feature.num_rows), feature.lengths())
  matrix = np.zeros((feature.num_rows, len(truth.condition_names)), dtype=bool)
  matrix[item, cond] = True
  return matrix


def _user_condition_matrix(truth):
  """[U, C] bool: c is one of user u's favourite conditions."""
  n_users = len(truth.user_conditions)
  matrix = np.zeros((n_users, len(truth.condition_names)), dtype=bool)
  matrix[np.arange(n_users)[:, None], truth.user_conditions] = True
  return matrix


def _matches(data, truth):
  """[N] bool: the interaction's item has one of its user's favourite conditions."""
  items = _item_condition_matrix(data, truth)
  users = _user_condition_matrix(truth)
  inter = data.interactions
  return (items[inter.item_index] & users[inter.user_index]).any(axis=1)


def _assert_close(observed, expected, sd, sigmas=5.0):
  assert abs(observed - expected) <= sigmas * sd, (observed, expected, sd)


def test_schema_and_sizes():
  data, truth = synthetic.generate_with_truth(**SMALL, seed=1)
  assert data.validate() is data
  assert data.name == "synthetic"
  assert len(data.users) == 300 and len(data.catalog) == 500
  assert len(data.interactions) == 15000
  assert list(data.users.user_id[:2]) == ["u0000", "u0001"]
  assert list(data.catalog.item_id[:2]) == ["i0000", "i0001"]
  assert data.catalog.item_id.dtype == object and data.users.user_id.dtype == object
  assert list(data.users.user_id) == sorted(data.users.user_id)
  assert list(data.catalog.item_id) == sorted(data.catalog.item_id)
  assert sorted(data.catalog.metadata) == ["title", "year"]
  assert data.catalog.metadata["title"][17] == "item 17"
  year = data.catalog.metadata["year"]
  assert year.shape == (500,) and year.min() >= 1950 and year.max() <= 2020
  assert data.default_condition_feature == "topics"
  assert set(data.users.features) == {"segment", "region"}
  for column in data.users.features.values():
    assert column.shape == (300,) and column.dtype == object
  assert set(data.catalog.features) == {"topics"}
  inter = data.interactions
  assert inter.user_index.dtype == np.int32 and inter.item_index.dtype == np.int32
  assert inter.rating.dtype == np.float32 and inter.timestamp.dtype == np.int64
  assert set(np.unique(inter.rating)) == {1.0, 2.0, 3.0, 4.0, 5.0}
  assert truth.user_conditions.shape == (300, 3)
  assert truth.item_popularity_weight.shape == (500,)
  assert truth.item_popularity_weight.sum() == pytest.approx(1.0)
  assert list(truth.condition_names[:2]) == ["c00", "c01"]


def test_generate_drops_only_the_truth():
  data = synthetic.generate(**SMALL, seed=3, condition_feature="genres")
  same, _ = synthetic.generate_with_truth(**SMALL, seed=3, condition_feature="genres")
  assert set(data.catalog.features) == {"genres"}
  assert data.default_condition_feature == "genres"
  np.testing.assert_array_equal(data.interactions.item_index, same.interactions.item_index)
  assert synthetic.SyntheticConfig().n_items == 2000  # The documented defaults.


def test_item_conditions():
  data, truth = synthetic.generate_with_truth(n_items=6000, n_conditions=20, n_users=10,
                                              n_interactions=30, seed=2)
  feature = data.catalog.features["topics"]
  assert list(feature.vocabulary) == [f"c{c:02d}" for c in range(20)]
  lengths = feature.lengths()
  assert lengths.min() >= 1 and lengths.max() <= 3
  for n in (1, 2, 3):  # Uniform over 1..3.
    _assert_close(np.mean(lengths == n), 1 / 3, np.sqrt(2 / 9 / 6000))
  matrix = _item_condition_matrix(data, truth)
  np.testing.assert_array_equal(matrix.sum(axis=1), lengths)  # Distinct within a row.
  for r in range(50):
    assert feature.row(r) == sorted(feature.row(r))
  share = matrix.sum(axis=0) / matrix.sum()  # Every condition equally likely.
  assert np.abs(share - 1 / 20).max() < 0.01


def test_users_interaction_counts():
  data = synthetic.generate(**SMALL, seed=4)
  counts = np.bincount(data.interactions.user_index, minlength=300)
  assert counts.min() >= 3 and counts.sum() == 15000
  assert counts.std() > 0.5 * counts.mean()  # Lognormal activity: heavy spread.
  tight = synthetic.generate(n_users=50, n_interactions=150, seed=4)
  np.testing.assert_array_equal(np.bincount(tight.interactions.user_index), np.full(50, 3))


def test_timestamps_strictly_increase_per_user_in_row_order():
  data = synthetic.generate(**SMALL, seed=5)
  inter = data.interactions
  order = np.argsort(inter.user_index, kind="stable")  # Keeps the row order per user.
  user, ts = inter.user_index[order], inter.timestamp[order]
  same_user = user[1:] == user[:-1]
  assert (np.diff(ts)[same_user] > 0).all()
  assert ts.min() > 1_500_000_000  # Plausible Unix seconds.


@pytest.mark.parametrize("strength", [0.0, 0.5, 0.9, 1.0])
def test_planted_affinity_share(strength):
  data, truth = synthetic.generate_with_truth(**SMALL, affinity_strength=strength, seed=6)
  items = _item_condition_matrix(data, truth)
  assert items.any(axis=0).all()  # No empty condition, so no catalog fallback.
  users = _user_condition_matrix(truth)
  # P(a catalog draw matches user u) = sum of weights of items with a favourite of u.
  p_random = (users.astype(float) @ items.T.astype(float) > 0) @ truth.item_popularity_weight
  expected_u = strength + (1 - strength) * p_random
  n_u = np.bincount(data.interactions.user_index, minlength=len(users))
  expected = n_u @ expected_u
  sd = np.sqrt(n_u @ (expected_u * (1 - expected_u)))
  observed = _matches(data, truth).sum()
  _assert_close(observed, expected, max(sd, 1e-9))
  if strength == 1.0:
    assert observed == len(data.interactions)


def test_user_favourites_are_distinct_and_uniform():
  _, truth = synthetic.generate_with_truth(n_users=20000, n_items=100, n_conditions=5,
                                           affinity_conditions=2, n_interactions=60000,
                                           seed=7)
  fav = truth.user_conditions
  assert (fav[:, 0] != fav[:, 1]).all()
  pair_counts = np.bincount(fav[:, 0] * 5 + fav[:, 1], minlength=25).reshape(5, 5)
  off_diagonal = pair_counts[~np.eye(5, dtype=bool)]
  chi2 = ((off_diagonal - 1000) ** 2 / 1000).sum()  # 20 ordered pairs, 1000 each.
  assert chi2 < 19 + 6 * np.sqrt(2 * 19)
  # Many favourites take the other sampling path: still distinct, first one uniform.
  _, truth = synthetic.generate_with_truth(n_users=5000, n_items=100, n_conditions=10,
                                           affinity_conditions=10, n_interactions=15000,
                                           seed=7)
  np.testing.assert_array_equal(np.sort(truth.user_conditions, axis=1),
                                np.tile(np.arange(10), (5000, 1)))
  first = np.bincount(truth.user_conditions[:, 0], minlength=10)
  assert np.abs(first - 500).max() < 5 * np.sqrt(5000 * 0.1 * 0.9)


@pytest.mark.parametrize("exponent", [0.7, 1.0, 1.5])
def test_zipf_popularity_of_catalog_draws(exponent):
  n = 50000
  data, truth = synthetic.generate_with_truth(
      n_users=1000, n_items=2000, n_interactions=n, zipf_exponent=exponent,
      affinity_strength=0.0, seed=8)
  weight = truth.item_popularity_weight
  by_rank = np.argsort(-weight)
  ranks = np.arange(1, 2001)
  # The truth itself is Zipf over a permutation of the items.
  np.testing.assert_allclose(weight[by_rank] * ranks ** exponent,
                             np.full(2000, weight[by_rank[0]]), rtol=1e-9)
  assert not (by_rank[:20] == np.arange(20)).all()
  counts = np.bincount(data.interactions.item_index, minlength=2000)[by_rank]
  top = counts[:10]
  expected = n * weight[by_rank[:10]]
  assert (np.abs(top - expected) <= 5 * np.sqrt(expected)).all(), (top, expected)
  ratio = counts[0] / counts[9]
  ratio_sd = 10 ** exponent * np.sqrt(1 / expected[0] + 1 / expected[9])
  _assert_close(ratio, 10 ** exponent, ratio_sd)
  slope = np.polyfit(np.log(ranks[:50]), np.log(np.maximum(counts[:50], 1)), 1)[0]
  assert slope == pytest.approx(-exponent, abs=0.1)


def test_conditional_draws_follow_popularity_within_condition():
  data, truth = synthetic.generate_with_truth(n_users=400, n_items=800, n_conditions=8,
                                              n_interactions=40000, affinity_conditions=1,
                                              affinity_strength=1.0, seed=9)
  items = _item_condition_matrix(data, truth)
  weight = truth.item_popularity_weight
  fav = truth.user_conditions[:, 0]
  n_u = np.bincount(data.interactions.user_index, minlength=400)
  draws_per_condition = np.bincount(fav, weights=n_u, minlength=8)
  condition_weight = items.T.astype(float) @ weight
  # E[count of item i] = sum over its conditions c of draws(c) * w_i / W_c.
  expected = weight * (items @ (draws_per_condition / condition_weight))
  observed = np.bincount(data.interactions.item_index, minlength=800)
  assert observed.sum() == 40000
  big = expected >= 5
  chi2 = ((observed[big] - expected[big]) ** 2 / expected[big]).sum()
  dof = big.sum()
  assert chi2 < dof + 6 * np.sqrt(2 * dof), (chi2, dof)
  assert observed[expected == 0].sum() == 0


def test_ratings_higher_on_affinity():
  data, truth = synthetic.generate_with_truth(**SMALL, affinity_strength=0.5, seed=10)
  match = _matches(data, truth)
  high = data.interactions.rating >= 4
  for subset, p in ((match, 0.8), (~match, 0.3)):
    _assert_close(high[subset].mean(), p, np.sqrt(p * (1 - p) / subset.sum()))
  kept = data.positives(4.0)
  assert 0 < len(kept.interactions) < len(data.interactions)


def test_segment_follows_first_favourite():
  data, truth = synthetic.generate_with_truth(n_users=5000, n_interactions=15000,
                                              n_conditions=20, seed=11)
  segment = data.users.features["segment"]
  expected_names = np.array([f"s{c:02d}" for c in truth.user_conditions[:, 0]])
  p = 0.8 + 0.2 / 20
  _assert_close(np.mean(segment == expected_names), p, np.sqrt(p * (1 - p) / 5000))
  regions = data.users.features["region"]
  assert set(regions) == {f"r{r}" for r in range(8)}


def _arrays(data):
  inter = data.interactions
  return [data.users.user_id, *data.users.features.values(), data.catalog.item_id,
          data.catalog.metadata["title"], data.catalog.metadata["year"],
          *[a for f in data.catalog.features.values()
            for a in (f.vocabulary, f.row_splits, f.value_ids)],
          inter.user_index, inter.item_index, inter.rating, inter.timestamp]


def test_deterministic_by_seed():
  a, truth_a = synthetic.generate_with_truth(**SMALL, seed=12)
  b, truth_b = synthetic.generate_with_truth(**SMALL, seed=12)
  for x, y in zip(_arrays(a), _arrays(b)):
    np.testing.assert_array_equal(x, y)
  np.testing.assert_array_equal(truth_a.user_conditions, truth_b.user_conditions)
  np.testing.assert_array_equal(truth_a.item_popularity_weight,
                                truth_b.item_popularity_weight)
  c, truth_c = synthetic.generate_with_truth(**SMALL, seed=13)
  assert not np.array_equal(a.interactions.item_index, c.interactions.item_index)
  assert not np.array_equal(a.interactions.timestamp, c.interactions.timestamp)
  assert not np.array_equal(truth_a.user_conditions, truth_c.user_conditions)
  assert not np.array_equal(a.catalog.features["topics"].value_ids,
                            c.catalog.features["topics"].value_ids)


@pytest.mark.parametrize("kwargs, name", [
    (dict(n_users=0), "n_users"),
    (dict(n_users=2.5), "n_users"),
    (dict(n_items=0), "n_items"),
    (dict(n_conditions=0), "n_conditions"),
    (dict(affinity_conditions=0), "affinity_conditions"),
    (dict(n_conditions=2, affinity_conditions=3), "affinity_conditions"),
    (dict(n_users=100, n_interactions=299), "n_interactions"),
    (dict(affinity_strength=-0.1), "affinity_strength"),
    (dict(affinity_strength=1.5), "affinity_strength"),
    (dict(affinity_strength=float("nan")), "affinity_strength"),
    (dict(zipf_exponent=-1.0), "zipf_exponent"),
    (dict(zipf_exponent=float("inf")), "zipf_exponent"),
    (dict(condition_feature=""), "condition_feature"),
])
def test_bad_arguments_raise(kwargs, name):
  with pytest.raises(ConfigError, match=name) as error:
    synthetic.generate(**kwargs)
  assert "\n" not in str(error.value)
  with pytest.raises(ConfigError, match=name):
    synthetic.SyntheticConfig(**kwargs).validate()


@pytest.mark.parametrize("kwargs", [
    dict(n_users=1, n_items=1, n_conditions=1, affinity_conditions=1, n_interactions=3),
    dict(n_users=5, n_items=2, n_conditions=20, n_interactions=100),  # Empty conditions.
    dict(n_users=20, n_items=50, n_conditions=2, affinity_conditions=2, n_interactions=60),
    dict(n_users=20, n_items=50, zipf_exponent=0.0, n_interactions=100),
    dict(n_users=20, n_items=3000, zipf_exponent=200.0, n_interactions=100),  # Underflow.
    dict(n_users=20, n_items=50, n_conditions=150, n_interactions=100),
])
def test_edge_cases(kwargs):
  data, truth = synthetic.generate_with_truth(**kwargs, seed=14)
  data.validate()
  assert len(data.interactions) == kwargs["n_interactions"]
  lengths = data.catalog.features["topics"].lengths()
  assert lengths.min() >= 1 and lengths.max() <= min(3, kwargs.get("n_conditions", 20))
  assert np.isfinite(truth.item_popularity_weight).all()
  names = truth.condition_names
  assert len({len(x) for x in names}) == 1 and list(names) == sorted(names)


@pytest.mark.slow
def test_scales_to_millions():
  start = time.perf_counter()
  data = synthetic.generate(n_users=100_000, n_items=1_000_000,
                            n_interactions=10_000_000, seed=0)
  seconds = time.perf_counter() - start
  peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux.
  print(f"\nsynthetic 1M items / 10M interactions / 100k users: {seconds:.1f} s, "
        f"process peak RSS {peak_gb:.2f} GiB")
  data.validate()
  assert len(data.users) == 100_000
  assert len(data.catalog) == 1_000_000
  assert len(data.interactions) == 10_000_000
  assert data.catalog.features["topics"].num_rows == 1_000_000
  assert np.bincount(data.interactions.user_index).min() >= 3
