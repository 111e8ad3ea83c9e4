"""`MilvusSearchClient`: the same calls and `Results` as the one-servable clients, for a
catalog exported to Milvus (`tfcr-export --index=milvus`): the query servable embeds
(user, condition), in this process or through a model server's REST API, and Milvus
searches the collection.

    client = MilvusSearchClient("exports/cr-query")      # its catalog file names the rest
    client.recommend("u001", "Comedy", k=10, filter="strict", exclude=["i0042"])

filter="strict" becomes `array_contains(conditions, "Comedy")` and exclusions an
`item_id not in [...]` expression, evaluated by Milvus during the search (so k results
come back whenever k items qualify). A strict request for a condition of at most
EXACT_MAX_ITEMS items is answered exactly instead: its items are fetched by the filter
(`query`) and scored in NumPy, as the one servable's exact path does, because a graph walk
that only a few items pass loses recall however far it is widened (HNSW found ~94% of the
exact top 10 of a 0.1% condition at 100k items with ef at its cap). `Results.num_scanned`
is None for searches (Milvus does not report how many candidates a search visited) and the
condition's item count for exact answers.
"""

from typing import Dict, List, Optional, Sequence

import numpy as np
import requests

from tfcr.client.base import Client
from tfcr.client.query import Query, Recommendation, Results, ServingError
from tfcr.errors import ConfigError
from tfcr.index import milvus

MAX_TOP_K = 16384  # Milvus's limit on one search's limit
# Strict conditions with at most this many items are scored exactly (module docstring):
# the work stays bounded (2,000 vectors fetched, one [B, 2,000] product per request).
EXACT_MAX_ITEMS = 2000


def _item_id(hit) -> str:
  """A search hit's primary key (keyed by the field's name, or "id" by older servers)."""
  return str(hit[milvus.ITEM_ID] if milvus.ITEM_ID in hit else hit["id"])


class MilvusSearchClient(Client):
  """servable: a query servable's version folder or EXPORT_DIR (in process); or
  rest_url + model_name: a model server serving it. milvus_uri, collection and
  search_params default to what the export recorded with the servable."""

  def __init__(self, servable: Optional[str] = None, milvus_uri: Optional[str] = None,
               collection: Optional[str] = None, rest_url: Optional[str] = None,
               model_name: Optional[str] = None, search_params: Optional[dict] = None,
               timeout: float = 60.0):
    if (servable is None) == (rest_url is None):
      raise ConfigError("Give either servable (a query servable's folder, embedded in "
                        "this process) or rest_url and model_name (a model server).")
    catalog = {}
    if servable is not None:
      from tfcr.client.saved_model import load_servable  # pylint: disable=g-import-not-at-top
      from tfcr.export.query_servable import read_catalog_info  # pylint: disable=g-import-not-at-top
      try:
        self.path, self._servable = load_servable(servable)
      except FileNotFoundError as e:
        raise ConfigError(f"servable={servable}: {e}") from None
      catalog = read_catalog_info(self.path) or {}
      self._embed = self._embed_in_process
    else:
      if not model_name:
        raise ConfigError("rest_url needs model_name (the query servable's name there).")
      self.model_url = f"{rest_url.rstrip('/')}/v1/models/{model_name}"
      self._session = requests.Session()
      self._embed = self._embed_over_rest
    self.timeout = timeout
    self.milvus_uri = milvus_uri or catalog.get("milvus_uri")
    self.collection = collection or catalog.get("collection")
    if not self.milvus_uri or not self.collection:
      raise ConfigError("milvus_uri and collection are needed (the servable records none).")
    self._milvus = milvus.connect(self.milvus_uri)
    milvus.require_collection(self._milvus, self.collection, self.milvus_uri)
    self.search_params = dict(search_params if search_params is not None
                              else catalog.get("search_params") or self._index_defaults())
    # Share of the items having each condition: a strict search is widened by it.
    self.condition_shares = dict(catalog.get("condition_shares") or {})
    self.nlist = (catalog.get("build_params") or {}).get("nlist")
    self.num_items = int(catalog.get("num_items") or 0)

  def _index_defaults(self) -> dict:
    """Default search parameters of the collection's index type, for a collection
    whose servable recorded none."""
    described = self._milvus.describe_index(self.collection, milvus.EMBEDDING) or {}
    index_type = str(described.get("index_type", "FLAT")).upper()
    if index_type not in milvus.INDEX_DEFAULTS:
      return {}
    # Build parameters come back nested under "params" (Milvus Lite) or flattened.
    build = {k: v for k, v in {**described, **(described.get("params") or {})}.items()
             if k == "nlist"}
    rows = int(described.get("total_rows", 1) or 1)
    return milvus.index_choice(index_type, rows, build_params=build).search_params

  def _embed_in_process(self, user_ids: List[str], conditions: List[str]) -> np.ndarray:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    try:
      outputs = self._servable.signatures["serving_default"](
          user_id=tf.constant(user_ids, tf.string), condition=tf.constant(conditions, tf.string))
    except tf.errors.InvalidArgumentError as e:
      raise ServingError(e.message) from None
    return outputs["query_embedding"].numpy()

  def _embed_over_rest(self, user_ids: List[str], conditions: List[str]) -> np.ndarray:
    body = {"signature_name": "serving_default",
            "inputs": {"user_id": user_ids, "condition": conditions}}
    response = self._session.post(f"{self.model_url}:predict", json=body,
                                  timeout=self.timeout)
    try:
      answer = response.json()
    except ValueError:
      answer = {"error": response.text.strip()}
    if response.status_code != 200:
      raise ServingError(f"HTTP {response.status_code}: {answer.get('error', answer)}")
    outputs = answer["outputs"]  # one output: the tensor itself (columnar format)
    if isinstance(outputs, dict):
      outputs = outputs["query_embedding"]
    return np.asarray(outputs, np.float32)

  def query_embeddings(self, queries: Sequence[Query]) -> np.ndarray:
    """[B, d] query embeddings of the queries, from the query servable."""
    return self._embed([q.user_id for q in queries], [q.condition for q in queries])

  def _search(self, vectors: np.ndarray, expression: str, limit: int,
              share: float) -> List[List[dict]]:
    from pymilvus.exceptions import MilvusException  # pylint: disable=g-import-not-at-top
    try:
      return self._milvus.search(
          self.collection, data=vectors.tolist(), limit=limit, filter=expression,
          output_fields=[milvus.CONDITIONS], anns_field=milvus.EMBEDDING,
          search_params=milvus.search_params_for(self.search_params, limit, share,
                                                 self.nlist),
          timeout=self.timeout)
    except MilvusException as e:
      raise ServingError(f"Milvus search of {self.collection} failed: {e.message}") from None

  def _exact(self, vectors: np.ndarray, expression: str, limit: int):
    """Every item passing `expression` scored against each query -> (hits in the shape
    of a search's, best first, ties in the order Milvus returned the items; the number of
    items scored)."""
    from pymilvus.exceptions import MilvusException  # pylint: disable=g-import-not-at-top
    try:
      rows = self._milvus.query(
          self.collection, filter=expression, limit=EXACT_MAX_ITEMS + 1,
          output_fields=[milvus.ITEM_ID, milvus.EMBEDDING, milvus.CONDITIONS],
          timeout=self.timeout)
    except MilvusException as e:
      raise ServingError(f"Milvus query of {self.collection} failed: {e.message}") from None
    if not rows:
      return [[] for _ in vectors], 0
    embeddings = np.asarray([r[milvus.EMBEDDING] for r in rows], np.float32)
    scores = np.asarray(vectors, np.float32) @ embeddings.T
    hits = []
    for row_scores in scores:
      order = np.argsort(-row_scores, kind="stable")[:limit]
      hits.append([{milvus.ITEM_ID: rows[j][milvus.ITEM_ID], "distance": float(row_scores[j]),
                    "entity": {milvus.CONDITIONS: rows[j][milvus.CONDITIONS]}}
                   for j in order])
    return hits, len(rows)

  def predict(self, queries: Sequence[Query]) -> List[Results]:
    queries = list(queries)
    if not queries:
      return []
    for q in queries:
      if not 1 <= int(q.k) <= MAX_TOP_K:
        raise ServingError(f"k must be in 1..{MAX_TOP_K} (Milvus's top-k limit), got {q.k}")
    vectors = self.query_embeddings(queries)
    # Queries sharing a filter expression go to Milvus as one batched search.
    groups: Dict[tuple, List[int]] = {}
    for i, q in enumerate(queries):
      strict = q.filter == "strict" and bool(q.condition)
      # An unrecorded condition keeps the plain parameters (none has it, if the
      # servable's record is the collection's).
      share = self.condition_shares.get(q.condition, 1.0) if strict else 1.0
      key = (milvus.filter_expression(q.condition, strict, q.exclude), share)
      groups.setdefault(key, []).append(i)
    answers: List[Optional[Results]] = [None] * len(queries)
    for (expression, share), members in groups.items():
      limit = max(int(queries[i].k) for i in members)
      scanned = None
      if share < 1.0 and self.num_items and share * self.num_items <= EXACT_MAX_ITEMS:
        hits, scanned = self._exact(vectors[members], expression, limit)
      else:
        hits = self._search(vectors[members], expression, limit, share)
      for i, row in zip(members, hits):
        q = queries[i]
        items = [Recommendation(rank + 1, _item_id(hit), float(hit["distance"]),
                                bool(q.condition)
                                and q.condition in (hit["entity"].get(milvus.CONDITIONS) or ()))
                 for rank, hit in enumerate(list(row)[:q.k])]
        answers[i] = Results(q, items, scanned)
    return answers

  def close(self) -> None:
    self._milvus.close()
