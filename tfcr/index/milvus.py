"""Milvus as the item index: connecting, the index types and their parameters, and a
query's filter expression.

A collection written by tfcr holds one row per item:

  item_id    VARCHAR (primary key)   the catalog's item id
  embedding  FLOAT_VECTOR [d]        the candidate tower's embedding; inner product (IP)
  conditions ARRAY<VARCHAR>          the item's condition values ([] when it has none)

The same `pymilvus.MilvusClient` calls reach Milvus Lite (a local file URI ending in
".db", an engine run inside this process) and a Milvus server or cluster
("http://host:19530"), so nothing here depends on which one it is, except the index
types that Milvus Lite cannot build (it would silently search by brute force instead).
"""

import dataclasses
import json
import math
from typing import Dict, Optional, Sequence

from tfcr.errors import ConfigError

ITEM_ID, EMBEDDING, CONDITIONS = "item_id", "embedding", "conditions"
METRIC = "IP"  # the model scores by dot product

# Build and search parameters of each index type we know, tuned on d=64 catalogs so that
# recall@10 against exact search is >= 0.95 (benchmarks/bench_milvus.py). IVF's nlist is
# set from the catalog size (`index_choice`).
INDEX_DEFAULTS = {
    "HNSW": ({"M": 16, "efConstruction": 200}, {"ef": 512}),
    "HNSW_SQ": ({"M": 16, "efConstruction": 200, "sq_type": "SQ8"}, {"ef": 512}),
    "IVF_FLAT": ({}, {}),
    "IVF_SQ8": ({}, {}),
    "IVF_PQ": ({"m": 16, "nbits": 8}, {}),
    "FLAT": ({}, {}),
    "DISKANN": ({}, {"search_list": 100}),
    "SCANN": ({"with_raw_data": True}, {"reorder_k": 200}),
    "AUTOINDEX": ({}, {}),
}
INDEX_TYPES = tuple(INDEX_DEFAULTS)
# What Milvus Lite (milvus-lite 3.x) builds; it accepts the others and then quietly
# searches by brute force, so they are refused for a Lite URI.
LITE_INDEX_TYPES = ("HNSW", "HNSW_SQ", "IVF_FLAT", "IVF_SQ8", "FLAT", "AUTOINDEX")
# nprobe as a share of nlist for the IVF types: 1/8 of the cells keeps recall@10 >= 0.95
# on the benchmark's catalogs (1/16 gave 0.91 at 20k items).
IVF_PROBE_SHARE = 1 / 8
# Largest HNSW ef / DiskANN search_list a filtered search is widened to: past a few
# thousand a graph walk costs more than scanning the segment (Milvus Lite took > 60 s for
# 200 queries at ef 25,600 on 100k items).
MAX_EF = 4096


def is_lite(uri: str) -> bool:
  """Whether `uri` names a Milvus Lite file (pymilvus's rule: a path ending in .db)."""
  return uri.endswith(".db")


def ivf_nlist(num_items: int) -> int:
  """Cells of an IVF index: ~4 sqrt(N) (Milvus's guidance), within 1..65536."""
  return int(min(65536, max(1, round(4 * math.sqrt(max(num_items, 1))))))


@dataclasses.dataclass(frozen=True)
class IndexChoice:
  """index_type with its build parameters and default search parameters."""
  index_type: str
  build_params: Dict
  search_params: Dict

  def to_json(self) -> dict:
    return dataclasses.asdict(self)


def parse_params(text: Optional[str], name: str) -> Optional[dict]:
  """A JSON object flag value ('{"ef": 64}') -> dict; None or "" -> None."""
  if not text:
    return None
  try:
    value = json.loads(text)
  except ValueError as e:
    raise ConfigError(f"{name} must be a JSON object such as '{{\"ef\": 64}}', got "
                      f"{text!r} ({e}).") from None
  if not isinstance(value, dict):
    raise ConfigError(f"{name} must be a JSON object such as '{{\"ef\": 64}}', got {text!r}.")
  return value


def index_choice(index_type: str, num_items: int, uri: str = "",
                 build_params: Optional[dict] = None,
                 search_params: Optional[dict] = None) -> IndexChoice:
  """The index to build over `num_items` items: the type's defaults, overridden key by
  key by `build_params` / `search_params`. Raises ConfigError for an unknown type, or one
  that Milvus Lite cannot build when `uri` is a Lite file."""
  index_type = str(index_type).upper()
  if index_type not in INDEX_DEFAULTS:
    raise ConfigError(f"Unknown milvus_index_type={index_type!r}; valid values: "
                      f"{', '.join(INDEX_TYPES)}.")
  if uri and is_lite(uri) and index_type not in LITE_INDEX_TYPES:
    raise ConfigError(f"Milvus Lite ({uri}) cannot build milvus_index_type={index_type}; "
                      f"valid values there: {', '.join(LITE_INDEX_TYPES)} (the others need "
                      f"a Milvus server).")
  build, search = (dict(p) for p in INDEX_DEFAULTS[index_type])
  if index_type.startswith("IVF_"):
    build["nlist"] = ivf_nlist(num_items)
  build.update(build_params or {})
  if index_type.startswith("IVF_"):
    search["nprobe"] = max(1, math.ceil(int(build["nlist"]) * IVF_PROBE_SHARE))
  search.update(search_params or {})
  return IndexChoice(index_type, build, search)


def search_params_for(choice_params: Dict, k: int, share: float = 1.0,
                      nlist: Optional[int] = None) -> Dict:
  """Search parameters for a top-k search whose filter keeps `share` of the items.

  HNSW's ef (and DiskANN's search_list) must be at least k, so they grow with it. A
  filtered search finds its k among the candidates the graph walk or the probed cells
  visit, of which only `share` pass the filter, so ef / search_list / nprobe are divided
  by the share (the paper's over-fetch, done inside the index): measured on Milvus Lite,
  HNSW ef 128 found 57% of the exact top-10 of a 1% condition unwidened.
  """
  params = dict(choice_params)
  widen = 1.0 / max(min(share, 1.0), 1e-9)
  for name in ("ef", "search_list"):
    if name in params:
      params[name] = int(min(MAX_EF, max(int(params[name]) * widen, int(k))))
  if "nprobe" in params:
    params["nprobe"] = int(min(nlist or 65536, max(1, int(params["nprobe"]) * widen)))
  return {"metric_type": METRIC, "params": params}


def quote(value: str) -> str:
  """A Milvus expression string literal (double quotes, backslash escapes)."""
  return json.dumps(str(value), ensure_ascii=False)


def filter_expression(condition: str = "", strict: bool = False,
                      exclude: Sequence[str] = ()) -> str:
  """The boolean expression of a query: items having `condition` when strict (and a
  condition is given: "" means none, as in the servable), minus the excluded ids.
  "" when nothing is filtered."""
  parts = []
  if strict and condition:
    parts.append(f"array_contains({CONDITIONS}, {quote(condition)})")
  excluded = [e for e in dict.fromkeys(exclude) if e]
  if excluded:
    parts.append(f"{ITEM_ID} not in [{', '.join(quote(e) for e in excluded)}]")
  return " and ".join(parts)


def connect(uri: str, timeout: float = 10.0):
  """A `pymilvus.MilvusClient` for `uri`; raises ConfigError (one line) when it cannot be
  reached or is not a valid URI."""
  from pymilvus import MilvusClient  # pylint: disable=g-import-not-at-top
  from pymilvus.exceptions import MilvusException  # pylint: disable=g-import-not-at-top
  if not uri:
    raise ConfigError("milvus_uri is empty; give a Milvus Lite file path ending in .db "
                      "or a server address such as http://127.0.0.1:19530.")
  try:
    return MilvusClient(uri=uri, timeout=timeout)
  except MilvusException as e:
    raise ConfigError(f"Cannot reach Milvus at milvus_uri={uri}: {e.message} (a Milvus Lite "
                      f"file path ending in .db, or a server address such as "
                      f"http://127.0.0.1:19530).") from None


def require_collection(client, collection: str, uri: str) -> None:
  """ConfigError (one line) unless `collection` exists at `uri`; loads it (into the
  query nodes' memory) when it is not loaded yet, as searches need."""
  if not client.has_collection(collection):
    found = client.list_collections()
    raise ConfigError(f"No collection {collection!r} in Milvus at {uri}; collections there: "
                      f"{', '.join(sorted(found)) or '(none)'} (tfcr-export --index=milvus "
                      f"writes one).")
  if "Loaded" not in str(client.get_load_state(collection).get("state", "")):
    client.load_collection(collection)


def open_for_writing(uri: str, collection: str, overwrite: bool = False):
  """A client of `uri` to write `collection` with: ConfigError (one line) when Milvus
  cannot be reached, the name is empty, or the collection exists and overwrite is
  False. Free of TensorFlow, so a binary checks this before loading a model."""
  if not collection:
    raise ConfigError("collection is empty; name the Milvus collection to write.")
  client = connect(uri)
  if client.has_collection(collection) and not overwrite:
    client.close()
    raise ConfigError(f"Milvus collection {collection!r} already exists at {uri}; pass "
                      f"--overwrite (overwrite=True) to replace it, or pick another "
                      f"--collection.")
  return client
