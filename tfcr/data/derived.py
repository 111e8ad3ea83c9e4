"""Item features derived from others: new condition types without new data.

Each entry maps a feature name to a function of the catalog returning one value (or list
of values) per item. `add_derived_features` adds every one whose inputs the catalog has.
"""

from typing import Callable, Dict, List

from tfcr.data.schema import Catalog


def release_decade(catalog: Catalog) -> List[str]:
  """'1990s' from the release year; '' (no condition) when the year is unknown."""
  return [f"{int(year) // 10 * 10}s" if year > 0 else "" for year in catalog.year]


DERIVED_ITEM_FEATURES: Dict[str, Callable[[Catalog], list]] = {
    "decade": release_decade,
}


def add_derived_features(catalog: Catalog) -> Catalog:
  for name, derive in DERIVED_ITEM_FEATURES.items():
    if name not in catalog.features:
      catalog = catalog.with_feature(name, derive(catalog))
  return catalog
