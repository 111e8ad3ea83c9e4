"""Running a tower over NumPy inputs in batches: item embeddings for evaluation, export
and index building."""

from typing import Callable, Dict

import numpy as np


def embed(fn: Callable, inputs: Dict[str, np.ndarray], batch_size: int = 8192) -> np.ndarray:
  """fn({name: [b] array}) -> [b, d] tensor, over inputs of N rows -> [N, d] float32."""
  n = len(next(iter(inputs.values())))
  outputs = [np.asarray(fn({k: v[i:i + batch_size] for k, v in inputs.items()}))
             for i in range(0, n, batch_size)]
  return np.concatenate(outputs) if outputs else np.zeros((0, 0), np.float32)


def item_embeddings(model, num_items: int) -> np.ndarray:
  """[num_items, d] candidate-tower embeddings of every item row."""
  return embed(lambda x: model.candidate_tower(x["item"]),
               {"item": np.arange(num_items, dtype=np.int32)})


def query_embeddings(model, users: np.ndarray, conditions: np.ndarray) -> np.ndarray:
  """[Q, d] query-tower embeddings; users are model user ids (row + 1, 0 = unknown)."""
  return embed(lambda x: model.query_tower(model.query_inputs(x)),
               {"user": np.asarray(users, np.int32),
                "condition": np.asarray(conditions, np.int32)})
