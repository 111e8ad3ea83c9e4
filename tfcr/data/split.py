"""Per-user temporal leave-last-N-out split."""

import dataclasses

import numpy as np

from tfcr.data.schema import Interactions
from tfcr.errors import ConfigError


@dataclasses.dataclass
class Split:
  train: Interactions
  test: Interactions


def leave_last_n_out(interactions: Interactions, n: int = 2) -> Split:
  """Holds out each user's last `n` interactions in time as the test set.

  A user's test interactions are strictly their latest ones, so nothing a user did after
  a test interaction is trained on. Ties in timestamp keep the input order (stable sort),
  which makes the split deterministic. Users with <= n interactions stay wholly in
  training (they have no history to predict from).
  """
  if n < 1:
    raise ConfigError(f"leave_last_n_out needs n >= 1, got {n!r}.")
  order = np.lexsort((interactions.timestamp, interactions.user_index))
  users = interactions.user_index[order]
  counts = np.bincount(users)
  starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
  position = np.arange(len(order)) - starts[users]  # rank of the row within its user
  from_end = counts[users] - position               # 1 for the user's latest row
  is_test = (from_end <= n) & (counts[users] > n)
  return Split(train=interactions.select(np.sort(order[~is_test])),
               test=interactions.select(np.sort(order[is_test])))
