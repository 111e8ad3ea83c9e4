"""Condition extraction: the vocabulary, NONE for empty items, sampling statistics, the
condition -> items inversion and derived condition features."""

import numpy as np
import pytest

from tfcr.data import derived
from tfcr.data.conditions import NONE_ID, NUM_RESERVED, OOV_ID, ItemConditions
from tfcr.data.prepare import prepare
from tfcr.data.schema import Catalog, Interactions, MultiValued, RecData, Users
from tfcr.errors import ConfigError, DataError


def _catalog(with_year=True):
  genres = MultiValued.from_lists([["Comedy", "Drama"], [], ["Drama"],
                                   ["Action", "Comedy", "Drama"]])
  metadata = {"title": np.array(["A", "B", "C", "D"], dtype=object)}
  if with_year:
    metadata["year"] = np.array([1995, 0, 1987, 2001], dtype=np.int32)
  return Catalog(item_id=np.array(["a", "b", "c", "d"], dtype=object),
                 features={"genres": genres}, metadata=metadata)


def test_ids_and_none_condition():
  conditions = ItemConditions.from_catalog(_catalog(), "genres")
  # Vocabulary: [OOV], [NONE], Action, Comedy, Drama -> ids 0..4.
  assert list(conditions.vocabulary[NUM_RESERVED:]) == ["Action", "Comedy", "Drama"]
  assert [list(conditions.ids[conditions.row_splits[i]:conditions.row_splits[i + 1]])
          for i in range(4)] == [[3, 4], [NONE_ID], [4], [2, 3, 4]]
  np.testing.assert_array_equal(conditions.ids_of(["Drama", "", "Horror"]),
                                [4, NONE_ID, OOV_ID])
  np.testing.assert_array_equal(conditions.padded(),
                                [[3, 4, -1], [1, -1, -1], [4, -1, -1], [2, 3, 4]])
  membership = conditions.membership()
  assert membership.shape == (4, 5)
  assert membership[3, 2] and membership[1, NONE_ID] and not membership[0, 2]
  np.testing.assert_array_equal(conditions.has_value(), [True, False, True, True])


def test_unknown_feature_names_the_valid_ones():
  with pytest.raises(ConfigError, match="'colour'.*genres"):
    ItemConditions.from_catalog(_catalog(), "colour")


def test_sampling_is_uniform_over_the_items_conditions():
  conditions = ItemConditions.from_catalog(_catalog(), "genres")
  n = 60000
  items = np.full(n, 3)  # Action, Comedy, Drama: each 1/3
  sampled = conditions.sample_with_seed(items, seed=7)
  counts = np.bincount(sampled, minlength=5)[2:]
  # Binomial sd of a share at n = 60000 is ~0.0019; 5 sd tolerance.
  np.testing.assert_allclose(counts / n, [1 / 3] * 3, atol=0.01)
  assert set(conditions.sample_with_seed(np.full(100, 1), seed=0)) == {NONE_ID}
  np.testing.assert_array_equal(sampled, conditions.sample_with_seed(items, seed=7))
  assert not np.array_equal(sampled, conditions.sample_with_seed(items, seed=8))


# ---- items_by_condition ----


def _inversion(row_splits, items):
  return [list(items[row_splits[c]:row_splits[c + 1]]) for c in range(len(row_splits) - 1)]


def test_items_by_condition_hand_worked():
  conditions = ItemConditions.from_catalog(_catalog(), "genres")
  # a: Comedy, Drama; b: none; c: Drama; d: Action, Comedy, Drama.
  #            OOV  NONE  Action Comedy  Drama
  by_row = [[], [1], [3], [0, 3], [0, 2, 3]]
  row_splits, items = conditions.items_by_condition()
  assert row_splits.dtype == np.int64 and items.dtype == np.int32
  np.testing.assert_array_equal(row_splits, [0, 0, 1, 2, 4, 7])
  assert _inversion(row_splits, items) == by_row
  # Ascending rank (e.g. minus popularity): d first, then c, then a.
  row_splits, items = conditions.items_by_condition(rank=np.array([2.0, 0.0, 1.0, -5.0]))
  assert _inversion(row_splits, items) == [[], [1], [3], [3, 0], [3, 2, 0]]
  # Ties in rank are broken by row.
  row_splits, items = conditions.items_by_condition(rank=np.array([1, 1, 0, 1]))
  assert _inversion(row_splits, items) == [[], [1], [3], [0, 3], [2, 0, 3]]


def test_items_by_condition_matches_a_python_inversion():
  rng = np.random.default_rng(3)
  values = ["v%d" % v for v in range(6)]
  lists = [list(rng.choice(values, size=rng.integers(0, 4), replace=False))
           for _ in range(50)]
  conditions = ItemConditions.from_multi_valued("f", MultiValued.from_lists(lists))
  rank = rng.integers(0, 5, size=50)
  vocabulary = ["[OOV]", "[NONE]"] + sorted({v for l in lists for v in l})
  expected, expected_ranked = [], []
  for c, value in enumerate(vocabulary):
    members = [i for i, l in enumerate(lists) if (value in l if c >= NUM_RESERVED
                                                   else c == NONE_ID and not l)]
    expected.append(members)
    expected_ranked.append(sorted(members, key=lambda i: (rank[i], i)))
  assert _inversion(*conditions.items_by_condition()) == expected
  assert _inversion(*conditions.items_by_condition(rank=rank)) == expected_ranked


# ---- derived features (tfcr.data.derived) ----


def test_derived_decade_is_a_condition_in_a_few_lines():
  catalog = derived.with_feature(_catalog(), "decade")
  conditions = ItemConditions.from_catalog(catalog, "decade")
  assert list(conditions.vocabulary[NUM_RESERVED:]) == ["1980s", "1990s", "2000s"]
  # Item b has no year -> the NONE condition.
  np.testing.assert_array_equal(conditions.ids, [3, NONE_ID, 2, 4])
  assert catalog.features["genres"].to_lists() == _catalog().features["genres"].to_lists()
  assert derived.release_decade(_catalog()) == ["1990s", "", "1980s", "2000s"]


def test_decade_is_derived_only_when_asked():
  catalog = _catalog()
  assert "decade" not in catalog.features
  assert derived.derivable(catalog) == ["decade"]
  assert derived.with_feature(catalog, "genres") is catalog  # nothing added
  assert sorted(derived.with_feature(catalog, "decade").features) == ["decade", "genres"]
  assert "decade" not in catalog.features  # the input catalog is left as it was
  # A catalog that has the feature already keeps its own values.
  own = catalog.with_feature("decade", ["x", "y", "z", "w"])
  assert derived.with_feature(own, "decade").features["decade"].to_lists() == [
      ["x"], ["y"], ["z"], ["w"]]
  assert derived.derivable(own) == []


def test_prepare_derives_decade_only_when_it_is_the_condition():
  users = Users(np.array(["u0", "u1"], dtype=object))
  inter = Interactions(np.array([0, 0, 0, 1, 1, 1], np.int32),
                       np.array([0, 1, 2, 3, 0, 2], np.int32), np.ones(6, np.float32),
                       np.arange(6, dtype=np.int64))
  data = RecData("tiny", users, _catalog(), inter)
  assert "decade" not in prepare(data, "genres", test_per_user=1).data.catalog.features
  prepared = prepare(data, "decade", test_per_user=1)
  assert prepared.data.catalog.features["decade"].to_lists() == [
      ["1990s"], [], ["1980s"], ["2000s"]]
  assert prepared.conditions.feature == "decade"
  assert "decade" not in data.catalog.features


def test_unknown_derived_feature_lists_the_valid_values():
  with pytest.raises(ConfigError,
                     match=r"^Unknown condition_feature='colour'; valid values: "
                           r"genres, decade\.$"):
    derived.with_feature(_catalog(), "colour")
  # Without a year, decade cannot be derived and is not offered.
  no_year = _catalog(with_year=False)
  assert derived.derivable(no_year) == []
  with pytest.raises(ConfigError, match=r"valid values: genres\.$"):
    derived.with_feature(no_year, "decade")
  empty = Catalog(np.array(["a"], dtype=object))
  with pytest.raises(ConfigError, match="no item feature"):
    derived.with_feature(empty, "decade")


def test_with_feature_checks_length():
  with pytest.raises(DataError, match="3 rows"):
    _catalog().with_feature("brand", ["x", "y", "z"])
  with pytest.raises(DataError, match="'brand'"):
    _catalog().with_feature("brand", MultiValued.from_lists([["x"]]))
