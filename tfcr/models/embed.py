"""Running a tower over NumPy inputs in batches: item embeddings for evaluation, export
and index building."""

import time
from typing import Callable, Dict, Optional

import numpy as np

from tfcr.utils import aligned

# Rows per tower call for the catalog: big enough that per-call overhead vanishes, small
# enough that a call's activations stay a few MB whatever the catalog size.
ITEM_BATCH_SIZE = 65536


def embed(fn: Callable, inputs: Dict[str, np.ndarray], batch_size: int = 8192,
          progress: Optional[Callable[[int, int], None]] = None) -> np.ndarray:
  """fn({name: [b] array}) -> [b, d] tensor, over inputs of N rows -> [N, d] float32.

  The result is filled in place, batch by batch, so memory is the output plus one
  batch's activations (not the output twice, as joining a list of batches would take).
  progress(rows_done, N) is called after each batch.
  """
  n = len(next(iter(inputs.values())))
  out = None
  for start in range(0, n, batch_size):
    batch = np.asarray(fn({k: v[start:start + batch_size] for k, v in inputs.items()}),
                       np.float32)
    if out is None:
      # Aligned, so that the ScaNN build can use this memory without a copy.
      out = aligned.empty((n,) + batch.shape[1:], np.float32)
    out[start:start + len(batch)] = batch
    if progress is not None:
      progress(start + len(batch), n)
  return out if out is not None else np.zeros((0, 0), np.float32)


def progress_log(log: Callable[[str], None], what: str,
                 every_seconds: float = 10.0) -> Callable[[int, int], None]:
  """A progress callback for `embed` that logs `what: done/total rows` at most every
  `every_seconds` (and at the end)."""
  started = time.monotonic()
  last = [started]

  def report(done: int, total: int) -> None:
    now = time.monotonic()
    if done == total or now - last[0] >= every_seconds:
      last[0] = now
      log(f"{what}: {done:,}/{total:,} rows ({done / max(total, 1):.0%}, "
          f"{now - started:.0f} s)")

  return report


def item_embeddings(model, num_items: int, batch_size: int = ITEM_BATCH_SIZE,
                    log: Optional[Callable[[str], None]] = None) -> np.ndarray:
  """[num_items, d] candidate-tower embeddings of every item row, `batch_size` rows per
  tower call; with `log`, progress on long catalogs."""
  progress = progress_log(log, "item embeddings") if log is not None else None
  return embed(lambda x: model.candidate_tower(x["item"]),
               {"item": np.arange(num_items, dtype=np.int32)}, batch_size, progress)


def query_embeddings(model, users: np.ndarray, conditions: np.ndarray) -> np.ndarray:
  """[Q, d] query-tower embeddings; users are model user ids (row + 1, 0 = unknown)."""
  return embed(lambda x: model.query_tower(model.query_inputs(x)),
               {"user": np.asarray(users, np.int32),
                "condition": np.asarray(conditions, np.int32)})
