"""Temporal leave-last-N-out split on a hand-worked example."""

import numpy as np
import pytest

from tfcr.data.schema import Interactions
from tfcr.data.split import leave_last_n_out


def test_last_two_per_user_by_time():
  # user 0: times 5, 1, 9, 3 -> test rows with times 9 and 5 (rows 2 and 0).
  # user 1: two interactions only -> all training (nothing left to learn from).
  # user 2: times 4, 4, 2 -> both rows at time 4 are held out.
  users = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2])
  times = np.array([5, 1, 9, 3, 7, 8, 4, 4, 2])
  inter = Interactions(users, np.arange(9), np.ones(9, np.float32), times)
  split = leave_last_n_out(inter, n=2)
  np.testing.assert_array_equal(np.sort(split.test.item_index), [0, 2, 6, 7])
  np.testing.assert_array_equal(np.sort(split.train.item_index), [1, 3, 4, 5, 8])
  # No future leakage: each user's test interactions are later than all their training.
  for u in (0, 2):
    assert (split.test.timestamp[split.test.user_index == u].min()
            >= split.train.timestamp[split.train.user_index == u].max())


def test_n_must_be_positive():
  inter = Interactions(np.zeros(1, int), np.zeros(1, int), np.ones(1), np.zeros(1))
  with pytest.raises(ValueError, match="n >= 1"):
    leave_last_n_out(inter, n=0)


def test_ties_in_time_keep_input_order():
  inter = Interactions(np.array([0, 0, 0]), np.array([10, 11, 12]), np.ones(3),
                       np.array([4, 4, 2]))
  split = leave_last_n_out(inter, n=1)
  np.testing.assert_array_equal(split.test.item_index, [11])
