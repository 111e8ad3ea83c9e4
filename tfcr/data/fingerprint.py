"""A fingerprint of a data set: what a model dir records of the data it was trained on.

Row counts and SHA-256 hashes of the user and item id vocabularies and of the
interactions, plus the source that loaded it. Resuming a run, or reusing its model dir,
with data whose fingerprint differs is refused, naming what differs: a model's rows mean
nothing on another catalog.
"""

import dataclasses
import hashlib
from typing import List, Optional

import numpy as np

from tfcr.data.schema import RecData

# Compared fields, in the order a difference is reported.
COMPARED = ("name", "num_users", "num_items", "num_interactions", "user_ids_sha256",
            "item_ids_sha256", "interactions_sha256")


def _hash_strings(values) -> str:
  digest = hashlib.sha256()
  for value in values:
    digest.update(str(value).encode("utf-8"))
    digest.update(b"\0")
  return digest.hexdigest()


def _hash_arrays(*arrays: np.ndarray) -> str:
  digest = hashlib.sha256()
  for array in arrays:
    digest.update(np.ascontiguousarray(array).tobytes())
  return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class DataFingerprint:
  name: str
  num_users: int
  num_items: int
  num_interactions: int
  user_ids_sha256: str
  item_ids_sha256: str
  interactions_sha256: str  # user rows, item rows, ratings, timestamps
  source: Optional[dict] = None  # tfcr.data.sources.DataSource.to_dict(), when known

  @classmethod
  def of(cls, data: RecData, source: Optional[dict] = None) -> "DataFingerprint":
    inter = data.interactions
    return cls(
        name=data.name, num_users=len(data.users), num_items=len(data.catalog),
        num_interactions=len(inter),
        user_ids_sha256=_hash_strings(data.users.user_id),
        item_ids_sha256=_hash_strings(data.catalog.item_id),
        interactions_sha256=_hash_arrays(inter.user_index.astype(np.int64),
                                         inter.item_index.astype(np.int64),
                                         inter.rating.astype(np.float32),
                                         inter.timestamp.astype(np.int64)),
        source=source)

  def differences(self, other: "DataFingerprint") -> List[str]:
    """What differs from `other`, as "num_items 1682 vs 5000" (this one first) and,
    for the hashes, "item ids"."""
    out = []
    for field in COMPARED:
      mine, theirs = getattr(self, field), getattr(other, field)
      if mine != theirs:
        out.append(field.replace("_sha256", "").replace("_", " ") if field.endswith("sha256")
                   else f"{field} {mine!r} vs {theirs!r}")
    return out

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, values: dict) -> "DataFingerprint":
    known = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in known})
