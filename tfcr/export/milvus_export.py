"""export_to_milvus: a trained model as a Milvus collection of its items plus a
query-only servable (`tfcr.export.query_servable`), for catalogs kept in a vector
database rather than inside the SavedModel.

    export_to_milvus("runs/cr", "exports/cr-query", "catalog.db", "items")

writes every item's id, embedding and condition values to the collection (replacing it
only with overwrite=True) and EXPORT_DIR/<version>/ holding the query tower. Everything
a user can get wrong (the URI, the index type, an existing collection, the version) is
checked before the model is loaded; the collection is swapped in whole and the version
folder renamed into place only once written (see `tfcr.index.milvus_writer`).
"""

import os
import time
from typing import Callable, List, Optional

import numpy as np

from tfcr.data.conditions import NONE_ID
from tfcr.export.exporter import version_target
from tfcr.export.query_servable import QueryServable, save_query_servable
from tfcr.index import milvus
from tfcr.index.milvus_writer import write_collection
from tfcr.models.embed import item_embeddings
from tfcr.training.model_dir import load_trained_model


def item_condition_values(conditions) -> List[List[str]]:
  """Each item's condition values as strings ([] for an item without any: the NONE id
  stands for "no value", which no query's array_contains should match)."""
  values = np.asarray(conditions.vocabulary).astype(str)
  per_item = np.split(conditions.ids, conditions.row_splits[1:-1])
  return [[values[c] for c in ids if c != NONE_ID] for ids in per_item]


def condition_shares(conditions) -> dict:
  """{condition value: share of the items having it}, for clients to widen a filtered
  search by (`tfcr.index.milvus.search_params_for`)."""
  counts = np.bincount(conditions.ids, minlength=conditions.vocabulary_size)
  values = np.asarray(conditions.vocabulary).astype(str)
  total = max(conditions.num_items, 1)
  return {values[c]: float(counts[c] / total) for c in np.flatnonzero(counts)
          if c != NONE_ID}


def export_to_milvus(model_dir: str, export_dir: str, milvus_uri: str, collection: str,
                     overwrite: bool = False, index_type: str = "HNSW",
                     index_params: Optional[dict] = None,
                     search_params: Optional[dict] = None,
                     version: Optional[int] = None, batch_size: int = 10000,
                     log: Callable[[str], None] = print) -> str:
  """Writes the collection and the query servable; returns EXPORT_DIR/<version>.

  index_type, index_params, search_params: the Milvus index (`tfcr.index.milvus`
  INDEX_TYPES) and overrides of its default build and search parameters; the search
  parameters are saved with the servable for clients to use.
  """
  # Before loading anything: the cheap checks a user can fail.
  milvus.index_choice(index_type, 1, milvus_uri, index_params, search_params)
  export_dir, version, target = version_target(export_dir, version)
  client = milvus.open_for_writing(milvus_uri, collection, overwrite)

  config, model, vocabularies = load_trained_model(model_dir)
  num_items = len(vocabularies.item_ids)
  choice = milvus.index_choice(index_type, num_items, milvus_uri, index_params, search_params)
  start = time.monotonic()
  log(f"Embedding {num_items:,} items...")
  embeddings = item_embeddings(model, num_items)
  log(f"  embedded in {time.monotonic() - start:.1f} s; writing them to {collection} at "
      f"{milvus_uri}")
  write_collection(client, collection, np.asarray(vocabularies.item_ids).astype(str),
                   embeddings, item_condition_values(vocabularies.conditions), choice,
                   overwrite=overwrite, batch_size=batch_size, log=log)
  servable = QueryServable(model.query_tower, config.model == "cr", vocabularies)
  # A Lite file is recorded by absolute path, so clients started elsewhere find it.
  recorded_uri = os.path.abspath(milvus_uri) if milvus.is_lite(milvus_uri) else milvus_uri
  catalog = {"milvus_uri": recorded_uri, "collection": collection, "num_items": num_items,
             "embedding_dim": int(embeddings.shape[1]), "metric": milvus.METRIC,
             "condition_shares": condition_shares(vocabularies.conditions),
             **choice.to_json()}
  save_query_servable(servable, vocabularies, target, catalog)
  return target
