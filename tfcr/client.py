"""Querying a served tfcr model and showing the answers as readable tables.

Two interchangeable back ends return the same `Results`:

* `RestClient`: a model server's TF Serving REST API (`tfcr-serve`, or TF Serving itself
  for brute-force exports), with `requests`;
* `SavedModelClient`: an export loaded in this process (`tf.saved_model.load`).

`ItemInfo`/`item_info_from_catalog` turn item ids into titles and attributes, and
`format_results` prints one query's answer as a table:

    user 196, condition "Sci-Fi", filter strict: 5 items, 12 candidates scanned
      #  title                     genres                     score  match  seen
      1  Star Wars (1977)          Action|Adventure|Sci-Fi    0.912  ✓      ✓
"""

import dataclasses
import os
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

import numpy as np
import requests

from tfcr.data.schema import Catalog

FILTERS = ("none", "strict")


class ServingError(RuntimeError):
  """The server (or the servable) refused a request; the message is its own."""


@dataclasses.dataclass(frozen=True)
class Query:
  """One request row: what the servable's signatures take."""
  user_id: str
  condition: str = ""
  k: int = 10
  filter: str = "none"
  exclude: Sequence[str] = ()

  def __post_init__(self):
    if self.filter not in FILTERS:
      raise ValueError(f'filter must be "none" or "strict", got {self.filter!r}')


@dataclasses.dataclass(frozen=True)
class Recommendation:
  rank: int
  item_id: str
  score: float
  condition_match: bool


@dataclasses.dataclass(frozen=True)
class Results:
  """The answer to one `Query`: its items best first (padding removed)."""
  query: Query
  items: List[Recommendation]
  num_scanned: int

  @property
  def item_ids(self) -> List[str]:
    return [r.item_id for r in self.items]

  @property
  def match_rate(self) -> float:
    """Share of the returned items that have the query's condition (0 when empty)."""
    return sum(r.condition_match for r in self.items) / len(self.items) if self.items else 0.0


def signature_for(queries: Sequence[Query]) -> str:
  """serving_exclusions when any query excludes items, else serving_default."""
  return "serving_exclusions" if any(q.exclude for q in queries) else "serving_default"


def request_columns(queries: Sequence[Query]) -> Dict[str, list]:
  """Columnar inputs for a batch of queries; exclusions padded with "" to one width."""
  columns = {"user_id": [q.user_id for q in queries],
             "condition": [q.condition for q in queries],
             "k": [int(q.k) for q in queries],
             "filter": [q.filter for q in queries]}
  if signature_for(queries) == "serving_exclusions":
    width = max(len(q.exclude) for q in queries)
    columns["exclude"] = [list(q.exclude) + [""] * (width - len(q.exclude)) for q in queries]
  return columns


def request_rows(queries: Sequence[Query]) -> List[dict]:
  """The same inputs as one JSON object per query (REST's "instances" row format)."""
  columns = request_columns(queries)
  return [{name: column[i] for name, column in columns.items()} for i in range(len(queries))]


def _text(value) -> str:
  return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def results_from_outputs(queries: Sequence[Query], outputs: Mapping[str, Sequence]) -> List[Results]:
  """Turns the servable's batched outputs (lists or arrays, one row per query) into
  `Results`, dropping the "" padding."""
  answers = []
  for i, query in enumerate(queries):
    items = []
    for item_id, score, match in zip(outputs["item_ids"][i], outputs["scores"][i],
                                     outputs["condition_match"][i]):
      item_id = _text(item_id)
      if item_id:
        items.append(Recommendation(len(items) + 1, item_id, float(score), bool(match)))
    answers.append(Results(query, items[:query.k], int(outputs["num_scanned"][i])))
  return answers


class _Client:
  """What both back ends share: `recommend` is one-query `predict`."""

  def predict(self, queries: Sequence[Query]) -> List[Results]:
    raise NotImplementedError

  def recommend(self, user_id: str, condition: str = "", k: int = 10,
                filter: str = "none", exclude: Sequence[str] = ()) -> Results:  # pylint: disable=redefined-builtin
    """The top k items for one user and condition ("" = none); see `Query`."""
    return self.predict([Query(str(user_id), condition, k, filter, tuple(exclude))])[0]


class RestClient(_Client):
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


class SavedModelClient(_Client):
  """The same calls on an export loaded in this process (no server).

  path: a version folder, EXPORT_DIR/<version>, or EXPORT_DIR (its highest version).
  """

  def __init__(self, path: str):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from tfcr.scann_cpu import load_scann_ops  # pylint: disable=g-import-not-at-top
    load_scann_ops()  # registers ScaNN's ops
    if not os.path.exists(os.path.join(path, "saved_model.pb")):
      versions = [int(n) for n in os.listdir(path) if n.isdigit()] if os.path.isdir(path) else []
      if not versions:
        raise FileNotFoundError(f"{path} holds no SavedModel nor numeric version folder.")
      path = os.path.join(path, str(max(versions)))
    self.path = path
    self._tf = tf
    self._servable = tf.saved_model.load(path)

  def predict(self, queries: Sequence[Query]) -> List[Results]:
    tf = self._tf
    queries = list(queries)
    columns = request_columns(queries)
    inputs = {name: tf.constant(value, tf.int32 if name == "k" else tf.string)
              for name, value in columns.items()}
    try:
      outputs = self._servable.signatures[signature_for(queries)](**inputs)
    except tf.errors.InvalidArgumentError as e:
      raise ServingError(e.message) from None
    return results_from_outputs(queries, {k: v.numpy() for k, v in outputs.items()})


# ---- Item descriptions and tables. ----

@dataclasses.dataclass(frozen=True)
class ItemInfo:
  """What a person needs to recognise an item: its title and attribute values."""
  title: str
  attributes: Sequence[str] = ()


def item_info_from_catalog(catalog: Catalog, feature: str) -> Dict[str, ItemInfo]:
  """item_id -> ItemInfo("title (year)", values of `feature`), e.g. a movie's genres."""
  column = catalog.features.get(feature)
  info = {}
  for i, item_id in enumerate(catalog.item_id):
    title, year = str(catalog.title[i]) or str(item_id), int(catalog.year[i])
    if year > 0 and f"({year})" not in title:
      title = f"{title} ({year})"
    info[str(item_id)] = ItemInfo(title, tuple(column.row(i)) if column is not None else ())
  return info


def _clip(text: str, width: int) -> str:
  return text if len(text) <= width else text[:width - 1] + "~"


def format_results(results: Results, items: Optional[Mapping[str, ItemInfo]] = None,
                   seen: Iterable[str] = (), attribute_name: str = "attributes",
                   title_width: int = 44, attribute_width: int = 30) -> str:
  """One query's answer as a text table: rank, title, attributes, score, whether each item
  has the condition ("-" without a condition) and, if `seen` is given, whether the user
  already engaged with it."""
  query = results.query
  seen = set(seen)
  what = f'condition "{query.condition}"' if query.condition else "no condition"
  header = (f"user {query.user_id}, {what}, filter {query.filter}"
            + (f", {len(query.exclude)} items excluded" if query.exclude else "")
            + f": {len(results.items)} items, {results.num_scanned} candidates scanned")
  rows = [["#", "title", attribute_name, "score", "match"] + (["seen"] if seen else [])]
  for r in results.items:
    info = (items or {}).get(r.item_id, ItemInfo(r.item_id))
    match = ("✓" if r.condition_match else "✗") if query.condition else "-"
    row = [str(r.rank), _clip(f"{info.title} [{r.item_id}]" if items else info.title,
                              title_width),
           _clip("|".join(info.attributes), attribute_width), f"{r.score:.3f}", match]
    if seen:
      row.append("✓" if r.item_id in seen else "")
    rows.append(row)
  widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
  right = {0, 3}  # numbers
  lines = [header]
  for row in rows:
    cells = [cell.rjust(w) if c in right else cell.ljust(w)
             for c, (cell, w) in enumerate(zip(row, widths))]
    lines.append("  " + "  ".join(cells).rstrip())
  if query.condition and results.items:
    lines.append(f"  {results.match_rate:.0%} of these have {query.condition}")
  return "\n".join(lines)


def results_frame(results: Results, items: Optional[Mapping[str, ItemInfo]] = None):
  """The same table as a pandas DataFrame (for notebooks)."""
  import pandas as pd  # pylint: disable=g-import-not-at-top
  items = items or {}
  return pd.DataFrame([{
      "item_id": r.item_id,
      "title": items.get(r.item_id, ItemInfo(r.item_id)).title,
      "attributes": "|".join(items.get(r.item_id, ItemInfo(r.item_id)).attributes),
      "score": round(r.score, 4),
      "condition_match": r.condition_match} for r in results.items],
      index=pd.RangeIndex(1, len(results.items) + 1, name="rank"))


def top_values(values: Iterable[str], n: int = 3) -> List[tuple]:
  """[(value, count)] of the n most common values, most common first, ties by name."""
  names, counts = np.unique(np.asarray(list(values), dtype=object).astype(str),
                            return_counts=True)
  order = sorted(range(len(names)), key=lambda i: (-counts[i], names[i]))
  return [(str(names[i]), int(counts[i])) for i in order[:n]]
