"""Clients of a served tfcr model, all returning the same `Results`:

* `RestClient` (`rest`): a model server's TF Serving REST API;
* `SavedModelClient` (`saved_model`): an export loaded in this process;
* `MilvusSearchClient` (`milvus`): a query servable in front of a Milvus collection
  (`tfcr-export --index=milvus`);
* `LocalModelServer` (`local_server`): runs the model server on localhost;
* `query`: `Query`, `Results` and their conversion to and from the servable's tensors;
* `formatting`: item descriptions and result tables.

The public names are re-exported here: `from tfcr import client; client.RestClient(...)`.
"""

from tfcr.client.formatting import (ItemInfo, format_results, item_info_from_catalog,
                                    results_frame, top_values)
from tfcr.client.query import (FILTERS, Query, Recommendation, Results, ServingError,
                               request_columns, request_rows, results_from_outputs,
                               signature_for)
from tfcr.client.milvus import MilvusSearchClient
from tfcr.client.rest import RestClient
from tfcr.client.saved_model import SavedModelClient

__all__ = ["FILTERS", "ItemInfo", "MilvusSearchClient", "Query", "Recommendation",
           "RestClient", "Results",
           "SavedModelClient", "ServingError", "format_results", "item_info_from_catalog",
           "request_columns", "request_rows", "results_frame", "results_from_outputs",
           "signature_for", "top_values"]
