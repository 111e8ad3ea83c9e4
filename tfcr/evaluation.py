"""Exact (brute-force) evaluation of a trained model on the held-out interactions.

For each test interaction (user, item) the CR query is (user, a condition sampled with a
fixed seed from the held-out item's conditions) and the LR query is (user). Every item is
scored; the user's training items are excluded, then:

* recall@k: share of queries whose held-out item is in the top k;
* topic_match@k: share of the top-k items having the query's condition (for LR, the
  condition the CR query would have used);
* filtered_recall@k: recall when only items having the condition are ranked.
"""

from typing import Dict, Sequence

import numpy as np
import tensorflow as tf

from tfcr.data.prepare import PreparedData

RECALL_KS = (10, 50, 100)
TOPIC_MATCH_KS = (10, 100)
FILTERED_K = 100
_SCORE_BUDGET = 1 << 25  # floats per scoring chunk: bounds memory on million-item catalogs


def recall_at_k(top_items: np.ndarray, targets: np.ndarray, k: int) -> float:
  """top_items: [Q, >= k] item rows best first (-1 = no item); targets: [Q]."""
  return float(np.mean(np.any(top_items[:, :k] == targets[:, None], axis=1)))


def topic_match_at_k(matches: np.ndarray, valid: np.ndarray, k: int) -> float:
  """matches, valid: [Q, >= k] bool. Mean over queries of the matching share of the
  returned items (queries returning nothing count as 0)."""
  returned = valid[:, :k].sum(axis=1)
  share = matches[:, :k].sum(axis=1) / np.maximum(returned, 1)
  return float(np.mean(share))


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


def embed(fn, inputs: Dict[str, np.ndarray], batch_size: int = 8192) -> np.ndarray:
  """Runs a tower over numpy inputs in batches -> [N, d] float32."""
  n = len(next(iter(inputs.values())))
  outputs = [fn({k: v[i:i + batch_size] for k, v in inputs.items()}).numpy()
             for i in range(0, n, batch_size)]
  return np.concatenate(outputs) if outputs else np.zeros((0, 0), np.float32)


def test_queries(prepared: PreparedData, seed: int):
  """(users [Q], targets [Q], condition ids [Q]) of the evaluation queries."""
  users = prepared.test.user_index
  targets = prepared.test.item_index
  conditions = prepared.conditions.sample_with_seed(targets, seed)
  return users, targets, conditions


def evaluate(model, prepared: PreparedData, seed: int,
             ks: Sequence[int] = RECALL_KS) -> Dict[str, float]:
  """Scores every item for every test query; returns the metrics of the module docstring."""
  users, targets, conditions = test_queries(prepared, seed)
  if len(users) == 0:
    raise ValueError("The test split is empty: every user has too few interactions.")
  item_embeddings = embed(lambda x: model.candidate_tower(x["item"]),
                          {"item": np.arange(prepared.num_items, dtype=np.int32)})
  query_features = {"user": (users + 1).astype(np.int32), "condition": conditions}
  query_embeddings = embed(lambda x: model.query_tower(model.query_inputs(x)),
                           query_features)
  membership = prepared.conditions.membership()
  train_splits, train_items = prepared.train_items_of_users()

  max_k = max(max(ks), max(TOPIC_MATCH_KS), FILTERED_K)
  top, filtered_top = [], []
  chunk = max(1, _SCORE_BUDGET // prepared.num_items)
  for start in range(0, len(users), chunk):
    stop = min(start + chunk, len(users))
    scores = query_embeddings[start:stop] @ item_embeddings.T
    # Exclude each user's training items: they are already known to the user.
    lengths = train_splits[users[start:stop] + 1] - train_splits[users[start:stop]]
    rows = np.repeat(np.arange(stop - start), lengths)
    columns = np.concatenate([train_items[train_splits[u]:train_splits[u + 1]]
                              for u in users[start:stop]])
    scores[rows, columns.astype(np.int64)] = -np.inf
    top.append(top_k_rows(scores, max_k))
    has_condition = membership[:, conditions[start:stop]].T
    filtered_top.append(top_k_rows(np.where(has_condition, scores, -np.inf), FILTERED_K))
  top = np.concatenate(top)
  filtered_top = np.concatenate(filtered_top)

  valid = top >= 0
  matches = valid & membership[np.maximum(top, 0), conditions[:, None]]
  metrics = {f"recall@{k}": recall_at_k(top, targets, k) for k in ks}
  metrics.update({f"topic_match@{k}": topic_match_at_k(matches, valid, k)
                  for k in TOPIC_MATCH_KS})
  metrics[f"filtered_recall@{FILTERED_K}"] = recall_at_k(filtered_top, targets, FILTERED_K)
  metrics["num_test_queries"] = int(len(users))
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
