"""INDEX, the paper's non-personalised baseline: condition -> its items by popularity.

For a query (user, condition) INDEX returns the items having the condition in decreasing
order of training popularity (number of training interactions; ties by catalog row), minus
the user's excluded (training) items. Its cost measure mirrors the servable's
`num_scanned`: the position in that list of the k-th item kept (the list's length when
fewer than k could be kept).
"""

import numpy as np

from tfcr.data.conditions import ItemConditions


class PopularityIndex:
  """Per condition id, the condition's item rows sorted by training popularity."""

  def __init__(self, conditions: ItemConditions, train_item_index: np.ndarray):
    counts = np.bincount(np.asarray(train_item_index, np.int64),
                         minlength=conditions.num_items)
    # Within a condition: popularity descending, then item row.
    self.row_splits, self.items = conditions.items_by_condition(rank=-counts)
    self.popularity = counts

  def ranked(self, condition: int) -> np.ndarray:
    """Item rows having `condition`, most popular first."""
    return self.items[self.row_splits[condition]:self.row_splits[condition + 1]]

  def retrieve(self, condition: int, excluded: np.ndarray, k: int):
    """(rows [k] with -1 padding, scanned) for one query."""
    ranked = self.ranked(condition)
    # The k-th kept item is within the first k + #excluded: no need to look further.
    head = ranked[:k + len(excluded)]
    positions = np.flatnonzero(~np.isin(head, excluded))
    rows = np.full(k, -1, dtype=np.int64)
    chosen = head[positions[:k]]
    rows[:len(chosen)] = chosen
    scanned = int(positions[k - 1] + 1) if len(positions) >= k else len(ranked)
    return rows, scanned

  def retrieve_all(self, queries, k: int):
    """For `tfcr.metrics.queries.Queries`: (rows [Q, k], scanned [Q])."""
    rows = np.full((len(queries), k), -1, dtype=np.int64)
    scanned = np.zeros(len(queries), dtype=np.int64)
    for q in range(len(queries)):
      rows[q], scanned[q] = self.retrieve(int(queries.conditions[q]), queries.excluded(q), k)
    return rows, scanned
