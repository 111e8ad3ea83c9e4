"""Retrieval metrics, per test query, so that they can be bootstrapped over queries.

Every function takes `rows`: [Q, K] int item rows best first, -1 where a method returned
fewer than K items. Each query has exactly one relevant item (its held-out item), so

* recall@k of a query is 1 if the held-out item is in its top k, else 0;
* NDCG@k of a query is 1 / log2(position + 1) for the held-out item at 1-based `position`
  <= k, else 0 (with one relevant item the ideal DCG is 1);
* topic-match@k of a query is the share of its returned top-k items having the query's
  condition; a query that returned nothing counts as 0;
* catalog coverage is not per query: the share of the catalog's items appearing in the
  top k of any query.
"""

import numpy as np


def hit_positions(rows: np.ndarray, targets: np.ndarray) -> np.ndarray:
  """[Q] 0-based position of each query's target in its row, -1 when absent."""
  found = rows == np.asarray(targets)[:, None]
  return np.where(found.any(axis=1), found.argmax(axis=1), -1)


def recall_per_query(positions: np.ndarray, k: int) -> np.ndarray:
  """[Q] float: 1 where the target is within the top k."""
  return ((positions >= 0) & (positions < k)).astype(np.float64)


def ndcg_per_query(positions: np.ndarray, k: int) -> np.ndarray:
  """[Q] float: 1 / log2(2 + position) for a target within the top k, else 0."""
  hit = (positions >= 0) & (positions < k)
  return np.where(hit, 1.0 / np.log2(2.0 + np.maximum(positions, 0)), 0.0)


def condition_matches(rows: np.ndarray, conditions: np.ndarray,
                      membership: np.ndarray) -> np.ndarray:
  """[Q, K] bool: whether each returned item has its query's condition.

  conditions: [Q] condition ids; membership: [I, C] bool (item has condition)."""
  valid = rows >= 0
  return valid & membership[np.maximum(rows, 0), np.asarray(conditions)[:, None]]


def topic_match_per_query(matches: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
  """[Q] float: matching share of the returned top-k items (0 when none returned)."""
  returned = (rows[:, :k] >= 0).sum(axis=1)
  return matches[:, :k].sum(axis=1) / np.maximum(returned, 1)


def catalog_coverage(rows: np.ndarray, num_items: int, k: int) -> float:
  """Share of the catalog's items in the top k of at least one query."""
  top = rows[:, :k]
  return float(np.unique(top[top >= 0]).size / num_items)
