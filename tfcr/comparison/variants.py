"""The CR training variants of the ablation (`tfcr-eval --variants`).

Each variant is the paper's CR (the run's training settings) with issue 19's
condition-aware mechanisms set as below; everything else (data, split, sizes, optimiser,
seed) is the run's, so the variants differ only in these fields. The single-mechanism
settings were picked on MovieLens-100k seed 42's metrics.json (docs/training.md) before the
ablation was run. `best` is what the first three-seed MovieLens-100k ablation pointed to:
hard negatives left out (no gain, lower topic-match, 4x the training cost), condition
dropout for plain recommendations, and a stronger condition loss to win back the
topic-match that dropout costs (weight 0.5, tried on seed 42 against 1.0: the same within
noise). docs/results.md has the ablation.
"""

from typing import Dict, List, Sequence

from tfcr.errors import ConfigError

# The fields a variant sets; the paper's CR has all three at 0.
VARIANT_FIELDS = ("hard_negatives", "condition_loss_weight", "condition_dropout")

VARIANTS: Dict[str, Dict[str, float]] = {
    "paper": {},
    "hard_negatives": {"hard_negatives": 4},
    "condition_loss": {"condition_loss_weight": 0.1},
    "dropout": {"condition_dropout": 0.5},
    "best": {"condition_loss_weight": 0.5, "condition_dropout": 0.5},
}
REFERENCE = "paper"  # every variant's paired differences are against this one


def settings_of(name: str) -> Dict[str, float]:
  """{field: value} of every VARIANT_FIELDS for the variant `name` (0 when not set)."""
  return {field: VARIANTS[name].get(field, 0) for field in VARIANT_FIELDS}


def parse_variants(names: Sequence[str]) -> List[str]:
  """The variants to run, reference first, each once; ConfigError for unknown names."""
  names = [n.strip() for n in names if n.strip()]
  unknown = [n for n in names if n not in VARIANTS]
  if unknown:
    raise ConfigError(f"Unknown variants {', '.join(unknown)}; valid values: "
                      f"{', '.join(VARIANTS)}.")
  ordered = [REFERENCE] + [n for n in names if n != REFERENCE]
  return list(dict.fromkeys(ordered))


def describe(name: str) -> str:
  """'--hard_negatives=4 --condition_dropout=0.5'; '(none)' for the paper's CR."""
  flags = [f"--{field}={value}" for field, value in VARIANTS[name].items()]
  return " ".join(flags) or "(none)"
