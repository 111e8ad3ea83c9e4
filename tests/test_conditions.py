"""Condition extraction: the vocabulary, NONE for empty items, sampling statistics."""

import numpy as np
import pytest

from tfcr.data.conditions import NONE_ID, NUM_RESERVED, OOV_ID, ItemConditions
from tfcr.errors import ConfigError
from tfcr.data.derived import add_derived_features, release_decade
from tfcr.data.schema import Catalog, MultiValued


def _catalog():
  genres = MultiValued.from_lists([["Comedy", "Drama"], [], ["Drama"],
                                   ["Action", "Comedy", "Drama"]])
  return Catalog(item_id=np.array(["a", "b", "c", "d"], dtype=object),
                 title=np.array(["A", "B", "C", "D"], dtype=object),
                 year=np.array([1995, 0, 1987, 2001], dtype=np.int32),
                 features={"genres": genres})


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


def test_derived_decade_is_a_condition_in_a_few_lines():
  catalog = _catalog().with_feature("decade", release_decade(_catalog()))
  conditions = ItemConditions.from_catalog(catalog, "decade")
  assert list(conditions.vocabulary[NUM_RESERVED:]) == ["1980s", "1990s", "2000s"]
  # Item b has no year -> the NONE condition.
  np.testing.assert_array_equal(conditions.ids, [3, NONE_ID, 2, 4])
  assert "decade" in add_derived_features(_catalog()).features


def test_with_feature_checks_length():
  with pytest.raises(ValueError, match="3 rows"):
    _catalog().with_feature("brand", ["x", "y", "z"])
