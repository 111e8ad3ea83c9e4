"""What a query of a served tfcr model is and what it returns: `Query`, `Results`, and
the conversions between them and the servable's inputs and outputs (the same for REST,
gRPC and in-process calls).
"""

import dataclasses
from typing import Dict, List, Mapping, Optional, Sequence

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
  num_scanned: Optional[int]  # None where the back end does not report it (Milvus)

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
