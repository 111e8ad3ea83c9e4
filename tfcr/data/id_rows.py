"""Which id-embedding row each user or item gets: one each, or shared hashed rows at scale.

    rows, num_rows = embedding_rows(user_ids, train_counts, max_vocabulary=1_000_000)

An id embedding costs embedding_dim floats per row, three times over with Adam's slots:
10M users at d=64 is 7.7 GB. So, as in production recommenders, only the most frequent
ids keep a row of their own and the long tail shares a few hashed rows (their features
still tell them apart):

* neither setting: every id with training interactions has its own row (rows 1..);
* `max_vocabulary=M`: the M ids with the most training interactions keep their own
  rows, the others share `hash_buckets` rows (default M // 10, at least 1) by a hash of
  the id string;
* `hash_buckets=H` alone: every id shares one of H rows by its hash.

Row 0 is for ids without training interactions (and unknown users at serving time): it
is never trained, so such an id is embedded from its features (cold start). The hash is
pandas' SipHash of the id string with a fixed key: the same id gets the same row on
every machine and every run.
"""

from typing import Tuple

import numpy as np
import pandas as pd

from tfcr.errors import ConfigError


def validate(max_vocabulary: int, hash_buckets: int) -> None:
  for name, value in (("max_vocabulary", max_vocabulary), ("hash_buckets", hash_buckets)):
    if value < 0:
      raise ConfigError(f"{name} must be >= 0 (0: off), got {value}.")


def is_hashed(max_vocabulary: int, hash_buckets: int) -> bool:
  return bool(max_vocabulary or hash_buckets)


def hash_rows(ids: np.ndarray, buckets: int) -> np.ndarray:
  """[N] ids -> [N] int64 in 0..buckets-1, stable across runs and machines."""
  hashes = pd.util.hash_array(np.asarray(ids, dtype=object).astype(str).astype(object))
  return (hashes % np.uint64(buckets)).astype(np.int64)


def embedding_rows(ids: np.ndarray, train_counts: np.ndarray, max_vocabulary: int = 0,
                   hash_buckets: int = 0) -> Tuple[np.ndarray, int]:
  """([R] int32 embedding row of each table row, number of embedding rows incl. row 0).

  ids: [R] the table's ids; train_counts: [R] training interactions of each.
  """
  validate(max_vocabulary, hash_buckets)
  ids = np.asarray(ids, dtype=object)
  counts = np.asarray(train_counts, np.int64)
  rows = np.zeros(len(ids), np.int64)
  warm = np.flatnonzero(counts > 0)
  if not is_hashed(max_vocabulary, hash_buckets):
    rows[warm] = np.arange(1, len(warm) + 1)
    return rows.astype(np.int32), len(warm) + 1
  own = np.zeros([0], np.int64)
  if max_vocabulary:
    # Most interactions first; ties by table row, so the choice is deterministic.
    by_count = warm[np.lexsort((warm, -counts[warm]))]
    own = by_count[:max_vocabulary]
    rows[own] = np.arange(1, len(own) + 1)
  buckets = hash_buckets or max(1, max_vocabulary // 10)
  shared = np.setdiff1d(warm, own, assume_unique=True)
  rows[shared] = 1 + len(own) + hash_rows(ids[shared], buckets)
  return rows.astype(np.int32), 1 + len(own) + buckets
