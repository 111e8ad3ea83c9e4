"""`RestClient`: a model server's TF Serving REST API (`tfcr-serve`, or TF Serving itself
for brute-force exports), with `requests`."""

from typing import List, Sequence

import requests

from tfcr.client.base import Client
from tfcr.client.query import (Query, Results, ServingError, request_rows,
                               results_from_outputs, signature_for)


class RestClient(Client):
  """A model's TF Serving REST API: predict, status and metadata.

  url: the REST root, e.g. "http://127.0.0.1:8501"; model_name: as served.
  """

  def __init__(self, url: str, model_name: str, timeout: float = 60.0):
    self.url = url.rstrip("/")
    self.model_name = model_name
    self.timeout = timeout
    self._session = requests.Session()

  @property
  def model_url(self) -> str:
    return f"{self.url}/v1/models/{self.model_name}"

  def _json(self, response: requests.Response) -> dict:
    try:
      body = response.json()
    except ValueError:
      body = {"error": response.text.strip()}
    if response.status_code != 200:
      raise ServingError(f"HTTP {response.status_code}: {body.get('error', body)}")
    return body

  def status(self) -> dict:
    """GET /v1/models/NAME: {"model_version_status": [{"version", "state", ...}]}."""
    return self._json(self._session.get(self.model_url, timeout=self.timeout))

  def metadata(self) -> dict:
    """GET /v1/models/NAME/metadata: the signatures' inputs and outputs."""
    return self._json(self._session.get(f"{self.model_url}/metadata", timeout=self.timeout))

  def available_versions(self) -> List[int]:
    """Versions in state AVAILABLE ([] while loading or when the model is unknown)."""
    try:
      status = self.status()
    except (ServingError, requests.ConnectionError):
      return []
    return sorted(int(v["version"]) for v in status.get("model_version_status", [])
                  if v.get("state") == "AVAILABLE")

  def predict(self, queries: Sequence[Query]) -> List[Results]:
    """POST /v1/models/NAME:predict with the queries as one batch ("instances" rows)."""
    queries = list(queries)
    body = {"signature_name": signature_for(queries), "instances": request_rows(queries)}
    rows = self._json(self._session.post(f"{self.model_url}:predict", json=body,
                                         timeout=self.timeout))["predictions"]
    outputs = {name: [row[name] for row in rows]
               for name in ("item_ids", "scores", "condition_match", "num_scanned")}
    return results_from_outputs(queries, outputs)
