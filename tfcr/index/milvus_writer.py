"""Writing a catalog into a Milvus collection (schema in `tfcr.index.milvus`).

    write_collection(client, "items", item_ids, embeddings, conditions, choice)

Rows go to a staging collection, in batches with progress; the index is built and the
collection loaded there; only then is an existing collection of that name dropped
(`overwrite`) and the staging one renamed to it, so searches never see half a catalog
and a failed write leaves the old collection as it was.
"""

import time
from typing import Callable, Sequence

import numpy as np

from tfcr.errors import ConfigError
from tfcr.index.milvus import CONDITIONS, EMBEDDING, ITEM_ID, METRIC, IndexChoice

STAGING_SUFFIX = "__tfcr_staging"
# Milvus's own limits on a VARCHAR and an ARRAY field.
MAX_VARCHAR = 65535
MAX_ARRAY = 4096
INDEX_TIMEOUT_S = 24 * 3600


def _schema(client, dim: int, id_length: int, max_conditions: int, condition_length: int):
  from pymilvus import DataType  # pylint: disable=g-import-not-at-top
  schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
  schema.add_field(ITEM_ID, DataType.VARCHAR, is_primary=True,
                   max_length=min(MAX_VARCHAR, max(1, id_length)))
  schema.add_field(EMBEDDING, DataType.FLOAT_VECTOR, dim=dim)
  schema.add_field(CONDITIONS, DataType.ARRAY, element_type=DataType.VARCHAR,
                   max_capacity=max(1, max_conditions),
                   max_length=min(MAX_VARCHAR, max(1, condition_length)))
  return schema


def _wait_for_index(client, collection: str, total: int, log: Callable[[str], None],
                    poll_seconds: float = 1.0, timeout_seconds: float = 24 * 3600) -> None:
  """Until every row is indexed (Milvus builds indexes in the background)."""
  start = last_log = time.monotonic()
  while True:
    described = client.describe_index(collection, EMBEDDING)
    indexed = int(described.get("indexed_rows", 0))
    if described.get("state") == "Failed":
      raise RuntimeError(f"Milvus failed to build the index of {collection}: "
                         f"{described.get('index_state_fail_reason', described)}")
    if indexed >= total and described.get("state", "Finished") == "Finished":
      return
    now = time.monotonic()
    if now - start > timeout_seconds:
      raise RuntimeError(f"Milvus had indexed {indexed} of {total} rows of {collection} "
                         f"after {timeout_seconds:.0f} s.")
    if now - last_log >= 30:
      log(f"  index: {indexed:,} of {total:,} rows indexed ({now - start:.0f} s)")
      last_log = now
    time.sleep(poll_seconds)


def _create_index(client, collection: str, index_params, choice: IndexChoice,
                  log: Callable[[str], None]) -> None:
  """create_index on a collection this write created, tolerating pymilvus's own retry:
  during a long build Milvus Lite's gRPC server drops the connection (GOAWAY
  "too_many_pings" at pymilvus's 10 s keepalive), pymilvus retries the call, and the
  retry finds the index that the first call created: "index already exists"."""
  from pymilvus.exceptions import MilvusException  # pylint: disable=g-import-not-at-top
  try:
    client.create_index(collection, index_params, timeout=INDEX_TIMEOUT_S)
  except MilvusException as e:
    described = client.describe_index(collection, EMBEDDING) or {}
    if ("already exists" not in str(e.message)
        or str(described.get("index_type", "")).upper() != choice.index_type):
      raise
    log(f"  milvus: the {choice.index_type} index exists (pymilvus retried create_index "
        f"after a dropped connection); waiting for it")


def write_collection(client, collection: str, item_ids: Sequence[str],
                     embeddings: np.ndarray, conditions: Sequence[Sequence[str]],
                     choice: IndexChoice, overwrite: bool = False,
                     batch_size: int = 10000,
                     log: Callable[[str], None] = print) -> None:
  """Writes one row per item (item_ids: [N] str, embeddings: [N, d] float32,
  conditions: N lists of condition values) as `collection`, indexed as `choice` says.

  Raises ConfigError when `collection` exists and overwrite is False.
  """
  embeddings = np.asarray(embeddings, np.float32)
  num_items, dim = embeddings.shape
  if len(item_ids) != num_items or len(conditions) != num_items:
    raise ValueError(f"{len(item_ids)} ids, {num_items} embeddings and {len(conditions)} "
                     f"condition lists: one of each per item.")
  if client.has_collection(collection) and not overwrite:
    raise ConfigError(f"Milvus collection {collection!r} already exists; pass --overwrite "
                      f"(overwrite=True) to replace it, or pick another --collection.")
  max_conditions = max((len(c) for c in conditions), default=0)
  if max_conditions > MAX_ARRAY:
    raise ConfigError(f"An item has {max_conditions} conditions; a Milvus array field holds "
                      f"at most {MAX_ARRAY}.")
  staging = collection + STAGING_SUFFIX
  if client.has_collection(staging):  # left by a write that died
    client.drop_collection(staging)
  schema = _schema(client, dim, max((len(str(i).encode()) for i in item_ids), default=1),
                   max_conditions,
                   max((len(str(v).encode()) for c in conditions for v in c), default=1))
  client.create_collection(staging, schema=schema)
  try:
    start = time.monotonic()
    for first in range(0, num_items, batch_size):
      rows = [{ITEM_ID: str(item_ids[i]), EMBEDDING: embeddings[i].tolist(),
               CONDITIONS: [str(v) for v in conditions[i]]}
              for i in range(first, min(first + batch_size, num_items))]
      client.insert(staging, rows)
      done = first + len(rows)
      if done == num_items or (first // batch_size) % 10 == 9:
        log(f"  milvus: {done:,} of {num_items:,} items written "
            f"({time.monotonic() - start:.0f} s)")
    client.flush(staging)
    index_params = client.prepare_index_params()
    # Nested under "params": both Milvus servers and Milvus Lite read build parameters
    # there (Lite ignores the flattened form that pymilvus 3 sends otherwise).
    index_params.add_index(field_name=EMBEDDING, index_type=choice.index_type,
                           metric_type=METRIC, params={"params": choice.build_params})
    log(f"  milvus: building the {choice.index_type} index {choice.build_params}")
    # Milvus Lite builds in the call (an HNSW over 1M items took ~15 min on 2 shared
    # cores), hence the long deadline.
    _create_index(client, staging, index_params, choice, log)
    _wait_for_index(client, staging, num_items, log, timeout_seconds=INDEX_TIMEOUT_S)
    if client.has_collection(collection):
      client.drop_collection(collection)
    client.rename_collection(staging, collection)
  except BaseException:
    if client.has_collection(staging):
      client.drop_collection(staging)
    raise
  client.load_collection(collection)  # after the rename: Milvus Lite releases on rename
