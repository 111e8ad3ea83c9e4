"""Showing a query's answer to a person: item descriptions and text/DataFrame tables.

`ItemInfo`/`item_info_from_catalog` turn item ids into titles and attributes, and
`format_results` prints one query's answer as a table:

    user 196, condition "Sci-Fi", filter strict: 5 items, 12 candidates scanned
      #  title                     genres                     score  match  seen
      1  Star Wars (1977)          Action|Adventure|Sci-Fi    0.912  ✓      ✓
"""

import dataclasses
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

import numpy as np

from tfcr.client.query import Results
from tfcr.data.schema import Catalog

@dataclasses.dataclass(frozen=True)
class ItemInfo:
  """What a person needs to recognise an item: its title and attribute values."""
  title: str
  attributes: Sequence[str] = ()


def item_info_from_catalog(catalog: Catalog, feature: str,
                           title: str = "title") -> Dict[str, ItemInfo]:
  """item_id -> ItemInfo(the `title` metadata, or the id without one; values of
  `feature`, e.g. a movie's genres)."""
  column = catalog.features.get(feature)
  titles = catalog.metadata.get(title)
  info = {}
  for i, item_id in enumerate(catalog.item_id):
    name = (str(titles[i]) if titles is not None else "") or str(item_id)
    info[str(item_id)] = ItemInfo(name, tuple(column.row(i)) if column is not None else ())
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
            + f": {len(results.items)} items"
            + ("" if results.num_scanned is None
               else f", {results.num_scanned} candidates scanned"))
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
