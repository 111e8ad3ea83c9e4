"""Prints the metrics.json of several model dirs side by side.

  python -m trainer.compare runs/movielens-cr runs/movielens-lr
"""

import json
import os
import sys


def comparison_table(model_dirs):
  """Rows of (metric, value per dir); the header names each dir's model and condition."""
  columns, header = [], ["metric"]
  for path in model_dirs:
    with open(os.path.join(path, "metrics.json")) as f:
      columns.append(json.load(f))
    with open(os.path.join(path, "config.json")) as f:
      config = json.load(f)
    header.append(f"{config['model'].upper()} ({config['condition_feature']})")
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
  except FileNotFoundError as e:
    print(f"compare: error: {e.filename} not found; train that model first.",
          file=sys.stderr)
    return 2
  widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
  for row in [header, ["-" * w for w in widths]] + rows:
    print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)))
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
