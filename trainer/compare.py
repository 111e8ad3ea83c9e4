"""Prints the metrics.json of several model dirs side by side.

  python -m trainer.compare runs/movielens-cr runs/movielens-lr
"""

import sys

import tfcr  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
from tfcr.cli import fail
from tfcr.errors import ConfigError


def comparison_table(model_dirs):
  """Rows of (metric, value per dir); the header names each dir's model and condition.
  Raises ConfigError naming a dir without a finished run."""
  from tfcr.training.model_dir import ModelDir  # pylint: disable=g-import-not-at-top
  columns, header = [], ["metric"]
  for path in model_dirs:
    run = ModelDir(path)
    metrics, config = run.read_metrics(), run.read_config()
    if metrics is None or config is None:
      raise ConfigError(f"{run.path} holds no finished training run (config.json and "
                        f"metrics.json); train that model first.")
    columns.append(metrics)
    header.append(f"{config.model.upper()} ({config.condition_feature})")
  names = [name for name in columns[0] if all(name in c for c in columns)]
  rows = [[name] + [f"{c[name]:.4f}" if isinstance(c[name], float) else str(c[name])
                    for c in columns] for name in names]
  return header, rows


def main(argv):
  if len(argv) < 2:
    print(__doc__.strip(), file=sys.stderr)
    return 2
  try:
    header, rows = comparison_table(argv[1:])
  except ConfigError as e:
    return fail("compare", e)
  widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
  for row in [header, ["-" * w for w in widths]] + rows:
    print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)))
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
