"""Item features derived from others: new condition types without new data.

`DERIVED_ITEM_FEATURES` maps a feature name to the catalog metadata it needs and a
function of the catalog returning one value (or list of values) per item. A derived
feature is computed only when asked for (`with_feature`), e.g. `decade` when a model
conditions on it, and only when the catalog has its inputs.
"""

import dataclasses
from typing import Callable, Dict, List, Sequence

import numpy as np

from tfcr.data.schema import Catalog
from tfcr.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class DerivedFeature:
  needs: Sequence[str]  # catalog metadata columns
  derive: Callable[[Catalog], list]


def release_decade(catalog: Catalog) -> List[str]:
  """'1990s' from the `year` metadata; '' (no condition) when the year is unknown (<= 0)."""
  years = np.nan_to_num(np.asarray(catalog.metadata["year"], dtype=np.float64)).astype(np.int64)
  return [f"{int(year) // 10 * 10}s" if year > 0 else "" for year in years]


DERIVED_ITEM_FEATURES: Dict[str, DerivedFeature] = {
    "decade": DerivedFeature(needs=("year",), derive=release_decade),
}


def derivable(catalog: Catalog) -> List[str]:
  """Derived features this catalog lacks but has the inputs for."""
  return [name for name, feature in DERIVED_ITEM_FEATURES.items()
          if name not in catalog.features
          and all(n in catalog.metadata for n in feature.needs)]


def with_feature(catalog: Catalog, name: str) -> Catalog:
  """The catalog with item feature `name`: as it is when it has one, with the derived
  feature added when `name` is derivable. Raises ConfigError listing the valid names."""
  if name in catalog.features:
    return catalog
  if name in derivable(catalog):
    return catalog.with_feature(name, DERIVED_ITEM_FEATURES[name].derive(catalog))
  valid = sorted(catalog.features) + derivable(catalog)
  raise ConfigError(f"Unknown condition_feature={name!r}; valid values: "
                    f"{', '.join(valid) or '(the catalog has no item feature)'}.")
