"""The ablation's written outputs: ablation.json and ablation.md (`tfcr-eval --variants`)."""

import json
import os
from typing import List

from tfcr.comparison.report import format_interval

METRIC_COLUMNS = ("recall@10", "recall@100", "ndcg@100", "topic_match@100",
                  "filtered recall@100", "scanned median / LR+filter",
                  "unconditional recall@100")


def _signed(interval: dict) -> str:
  """'+0.012 [+0.003, +0.021]', and a mark when the interval excludes 0."""
  text = (f"{interval['value']:+.3f} [{interval['ci_low']:+.3f}, "
          f"{interval['ci_high']:+.3f}]")
  if interval["ci_low"] > 0:
    return f"**{text}** (> 0)"
  if interval["ci_high"] < 0:
    return f"{text} (< 0)"
  return text


def markdown(results: dict) -> str:
  """The human-readable report (ablation.md)."""
  level = int(round(results["bootstrap"]["confidence"] * 100))
  seeds = ", ".join(str(s) for s in results["seeds"])
  pooling = ("the seeds share the test queries (the same users and held-out items), so "
             "each resample draws the same queries for every seed" if results["shared_queries"]
             else "each seed's test queries are resampled on their own")
  lines = [f"# Ablation: {results['dataset']}, condition `{results['condition_feature']}`",
           "",
           f"Seeds {seeds}; test queries per seed: "
           f"{', '.join(str(n) for n in results['num_queries'])}. Every cell is the mean "
           f"over the seeds with its {level}% bootstrap interval over test queries "
           f"({results['bootstrap']['samples']} resamples; {pooling}). Each seed trains LR "
           f"and every variant with the same data, split and seed; CR rows are the "
           f"variant without a filter, `filtered` with the strict filter, `unconditional` "
           f"the same queries asked with condition \"\".", "",
           "## Variants", "", "| variant | flags |", "|---|---|"]
  lines += [f"| {name} | `{flags}` |" if flags != "(none)" else f"| {name} | {flags} |"
            for name, flags in results["variants"].items()]
  lines += ["", "## Metrics", "",
            "| method | " + " | ".join(METRIC_COLUMNS) + " |",
            "|---|" + "---|" * len(METRIC_COLUMNS)]
  for method, row in results["metrics"].items():
    label = method if method in ("LR", "LR+filter") else f"CR {method}"
    cells = [format_interval(row.get(c)) for c in METRIC_COLUMNS]
    lines.append(f"| {label} | " + " | ".join(cells) + " |")
  lines += ["", "LR's recall does not depend on the condition: its `recall@100` is also "
            "what a plain (unconditional) recommendation from LR recalls.", "",
            "## Paired differences", "",
            f"Each variant minus the paper's CR (or LR + filter, or LR) on the same "
            f"queries; **bold**: the {level}% interval lies above 0.", ""]
  rows = sorted(results["differences"].values(), key=len, reverse=True)
  labels: List[str] = []
  for row in rows:  # the fullest row's order: differences against the paper's CR first
    labels += [label for label in row if label not in labels]
  lines += ["| variant | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
  for name, row in results["differences"].items():
    cells = [_signed(row[label]) if label in row else "-" for label in labels]
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  lines += ["", "## Per seed", "",
            "Each seed's own difference (no interval), in the order of the seeds above.", "",
            "| variant | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
  for name, row in results["per_seed_differences"].items():
    cells = [", ".join(f"{v:+.3f}" for v in row[label]) if label in row else "-"
             for label in labels]
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  machine = results["machine"]
  times = []
  for seed, timings in results["timings_seconds"].items():
    train = sum(v for k, v in timings.items() if k.startswith("train_"))
    times.append(f"{seed}: training {train:.0f} s, exports "
                 f"{sum(v for k, v in timings.items() if k.startswith('export_')):.0f} s, "
                 f"queries {timings.get('answer_queries', 0):.0f} s")
  lines += ["", "## Run", "",
            f"Command: `{results['command']}`" if results.get("command") else "",
            f"Time: {results['total_seconds']:.0f} s in all ({'; '.join(times)}).",
            "Each variant's five-method report: seed<S>/<variant>/results.md.",
            f"Machine: {machine['cpu']}, {machine['cpu_count']} CPUs, "
            f"{machine['memory_gib']} GiB, {machine['gpus']} GPUs; {machine['platform']}, "
            f"Python {machine['python']}, TensorFlow {machine['tensorflow']}.", ""]
  return "\n".join(line for line in lines if line is not None) + "\n"


def write_all(results: dict, output_dir: str) -> None:
  """Writes ablation.json and ablation.md into output_dir (each whole, then renamed)."""
  for name, text in (("ablation.json", json.dumps(results, indent=1) + "\n"),
                     ("ablation.md", markdown(results))):
    path = os.path.join(output_dir, name)
    with open(path + ".tmp", "w") as f:
      f.write(text)
    os.replace(path + ".tmp", path)
