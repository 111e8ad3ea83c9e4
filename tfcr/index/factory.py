"""`make_index(kind, ...)`: the index kinds a servable can hold, by name."""

from typing import Optional

import numpy as np

from tfcr.errors import ConfigError
from tfcr.index import INDEX_KINDS
from tfcr.index import tuning as index_tuning


def make_index(kind: str, embeddings: np.ndarray, max_k: int,
               tuning_queries: Optional[np.ndarray] = None,
               recall_target: float = index_tuning.DEFAULT_RECALL_TARGET):
  """tuning_queries: sample query vectors to tune ScaNN on (ignored by brute force)."""
  if kind == "brute_force":
    from tfcr.index.brute_force import BruteForceIndex  # pylint: disable=g-import-not-at-top
    return BruteForceIndex(embeddings)
  if kind == "scann":
    from tfcr.index.scann import ScannIndex  # pylint: disable=g-import-not-at-top
    return ScannIndex(embeddings, max_k, tuning_queries=tuning_queries,
                      recall_target=recall_target)
  raise ConfigError(f"Unknown index={kind!r}; valid values: {', '.join(INDEX_KINDS)}.")
