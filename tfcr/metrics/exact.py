"""Exact (brute-force) evaluation of a trained model on the test queries: metrics.json.

The queries are `tfcr.metrics.queries` (the same as tfcr-eval's): the CR query is (user,
a condition sampled with a fixed seed from the held-out item's values), the LR query is
(user). Every item is scored; the user's training items are excluded; then, with the
per-query metrics of `tfcr.metrics.per_query` averaged over queries:

* recall@k: share of queries whose held-out item is in the top k;
* topic_match@k: share of the top-k items having the query's condition (for LR, the
  condition the CR query would have used);
* filtered_recall@k: recall when only items having the condition are ranked;
* unconditional_recall@k (CR only): recall of the same queries asked with condition ""
  (plain recommendations from a conditional model; compare with LR's recall@k).
"""

import dataclasses
from typing import Dict, Optional, Sequence

import numpy as np

from tfcr.data.conditions import NONE_ID
from tfcr.data.prepare import PreparedData
from tfcr.metrics import per_query
from tfcr.metrics.queries import Queries, build_queries
from tfcr.models.embed import item_embeddings, query_embeddings

RECALL_KS = (10, 50, 100)
TOPIC_MATCH_KS = (10, 100)
FILTERED_K = 100
UNCONDITIONAL_KS = (10, 100)
_SCORE_BUDGET = 1 << 25  # floats per scoring chunk: bounds memory on million-item catalogs


def top_k_rows(scores: np.ndarray, k: int) -> np.ndarray:
  """scores: [Q, I] -> [Q, k] column indices best first; -1 where the score is -inf."""
  k_eff = min(k, scores.shape[1])
  part = np.argpartition(-scores, k_eff - 1, axis=1)[:, :k_eff]
  part_scores = np.take_along_axis(scores, part, axis=1)
  order = np.argsort(-part_scores, axis=1, kind="stable")
  top = np.take_along_axis(part, order, axis=1)
  top[np.take_along_axis(part_scores, order, axis=1) == -np.inf] = -1
  if k_eff < k:
    top = np.pad(top, ((0, 0), (0, k - k_eff)), constant_values=-1)
  return top


def exact_top_rows(model, prepared: PreparedData, queries: Queries, k: int,
                   filtered_k: int = 0):
  """Brute-force retrieval of `queries`: (rows [Q, k], filtered rows [Q, filtered_k]),
  item rows best first, -1 padding; each query's excluded items never returned; the
  filtered rows rank only the items having the query's condition."""
  items = item_embeddings(model, prepared.num_items)
  queries_embedded = query_embeddings(model, queries.users + 1, queries.conditions)
  membership = prepared.conditions.membership()
  top, filtered_top = [], []
  chunk = max(1, _SCORE_BUDGET // max(prepared.num_items, 1))
  for start in range(0, len(queries), chunk):
    stop = min(start + chunk, len(queries))
    scores = queries_embedded[start:stop] @ items.T
    lengths = np.diff(queries.exclusion_splits[start:stop + 1])
    rows = np.repeat(np.arange(stop - start), lengths)
    columns = queries.exclusion_items[queries.exclusion_splits[start]:
                                      queries.exclusion_splits[stop]]
    scores[rows, columns.astype(np.int64)] = -np.inf
    top.append(top_k_rows(scores, k))
    if filtered_k:
      has_condition = membership[:, queries.conditions[start:stop]].T
      filtered_top.append(top_k_rows(np.where(has_condition, scores, -np.inf), filtered_k))
  empty = np.zeros((0, k), np.int64)
  return (np.concatenate(top) if top else empty,
          np.concatenate(filtered_top) if filtered_top else empty[:, :filtered_k])


def evaluate(model, prepared: PreparedData, seed: int,
             ks: Sequence[int] = RECALL_KS,
             queries: Optional[Queries] = None) -> Dict[str, float]:
  """Scores every item for every test query; returns the metrics of the module docstring
  plus num_test_queries and num_skipped_queries (held-out items without a condition).
  queries: `build_queries(prepared, seed)`, when the caller has built them already."""
  if queries is None:
    queries = build_queries(prepared, seed)
  max_k = max(max(ks), max(TOPIC_MATCH_KS), FILTERED_K)
  top, filtered_top = exact_top_rows(model, prepared, queries, max_k, FILTERED_K)
  positions = per_query.hit_positions(top, queries.targets)
  matches = per_query.condition_matches(top, queries.conditions,
                                        prepared.conditions.membership())
  metrics = {f"recall@{k}": float(per_query.recall_per_query(positions, k).mean())
             for k in ks}
  metrics.update({f"topic_match@{k}": float(per_query.topic_match_per_query(
      matches, top, k).mean()) for k in TOPIC_MATCH_KS})
  filtered_positions = per_query.hit_positions(filtered_top, queries.targets)
  metrics[f"filtered_recall@{FILTERED_K}"] = float(
      per_query.recall_per_query(filtered_positions, FILTERED_K).mean())
  if getattr(model, "conditional", False):
    # The same queries asked without a condition (condition="", the NONE id): what a CR
    # model gives as plain recommendations, to compare with LR's recall.
    plain = dataclasses.replace(queries, conditions=np.full(len(queries), NONE_ID, np.int32))
    plain_top, _ = exact_top_rows(model, prepared, plain, max(ks))
    plain_positions = per_query.hit_positions(plain_top, queries.targets)
    metrics.update({f"unconditional_recall@{k}": float(
        per_query.recall_per_query(plain_positions, k).mean()) for k in UNCONDITIONAL_KS})
  metrics["num_test_queries"] = int(len(queries))
  metrics["num_skipped_queries"] = int(queries.num_skipped)
  return metrics


def format_table(metrics: Dict[str, float], title: str = "") -> str:
  """A two-column text table of metrics, for the console."""
  width = max(len(k) for k in metrics)
  lines = [title] if title else []
  lines.append(f"{'metric'.ljust(width)}  value")
  lines.append(f"{'-' * width}  ------")
  for name, value in metrics.items():
    text = f"{value:.4f}" if isinstance(value, float) else str(value)
    lines.append(f"{name.ljust(width)}  {text}")
  return "\n".join(lines)
