"""The test queries every method of the comparison answers.

The test queries: the one definition that metrics.json (`tfcr.metrics.exact`) and the
five-method comparison (`tfcr-eval`) both evaluate on.

One query per held-out (user, item) pair of the split (each user's last `test_per_user`
interactions in time): the user, plus a condition sampled uniformly with the run's seed
from the held-out item's own values of the condition feature. The rule for held-out items
without any value of the feature (e.g. a movie of unknown year for `decade`): they cannot
make a conditional query, so they are skipped, for every method and every metric (recall
included), and `num_skipped` counts them. Each query excludes the user's training items
(they are already known to the user), for every method.
"""

import dataclasses

import numpy as np

from tfcr.data.conditions import NUM_RESERVED
from tfcr.data.prepare import PreparedData
from tfcr.errors import DataError


@dataclasses.dataclass
class Queries:
  """users [Q] user rows; targets [Q] item rows; conditions [Q] condition ids;
  user_ids, condition_values [Q] str (what the servable is called with);
  exclusion_splits [Q + 1] and exclusion_items [N]: CSR of each query's excluded item
  rows (the user's distinct training items, ascending)."""
  users: np.ndarray
  targets: np.ndarray
  conditions: np.ndarray
  user_ids: np.ndarray
  condition_values: np.ndarray
  exclusion_splits: np.ndarray
  exclusion_items: np.ndarray
  num_skipped: int

  def __len__(self) -> int:
    return len(self.users)

  def excluded(self, q: int) -> np.ndarray:
    return self.exclusion_items[self.exclusion_splits[q]:self.exclusion_splits[q + 1]]

  def subset(self, index: np.ndarray) -> "Queries":
    index = np.asarray(index, dtype=np.int64)
    lists = [self.excluded(q) for q in index]
    splits = np.concatenate([[0], np.cumsum([len(x) for x in lists])]).astype(np.int64)
    items = np.concatenate(lists) if lists else np.zeros(0, np.int64)
    return Queries(self.users[index], self.targets[index], self.conditions[index],
                   self.user_ids[index], self.condition_values[index], splits,
                   items.astype(np.int64), 0)


def build_queries(prepared: PreparedData, seed: int) -> Queries:
  """The comparison's test queries for `prepared` (see the module docstring)."""
  users = prepared.test.user_index
  targets = prepared.test.item_index
  conditions = prepared.conditions.sample_with_seed(targets, seed)
  real = conditions >= NUM_RESERVED  # drops NONE: the held-out item has no value
  users, targets, conditions = users[real], targets[real], conditions[real]
  if len(users) == 0:
    raise DataError("No test query: the test split is empty or none of its items has a "
                    f"value of the condition feature {prepared.conditions.feature!r}.")
  train_splits, train_items = prepared.train_items_of_users()
  per_user = [np.unique(train_items[train_splits[u]:train_splits[u + 1]]) for u in users]
  splits = np.concatenate([[0], np.cumsum([len(x) for x in per_user])]).astype(np.int64)
  items = np.concatenate(per_user).astype(np.int64) if per_user else np.zeros(0, np.int64)
  user_ids = np.asarray(prepared.data.users.user_id)[users].astype(str)
  condition_values = np.asarray(prepared.conditions.vocabulary)[conditions].astype(str)
  return Queries(users, targets, conditions, user_ids, condition_values, splits, items,
                 int((~real).sum()))
