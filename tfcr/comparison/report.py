"""The comparison's written outputs: results.json, results.csv and results.md.

results.csv has one row per (method, metric): method, metric, value, ci_low, ci_high
(empty cells where a metric does not apply, e.g. INDEX has no servable latency); it holds
the same numbers as results.json["methods"].
"""

import csv
import json
import os
from typing import List

CSV_FIELDS = ("method", "metric", "value", "ci_low", "ci_high")
QUALITY = (("recall@10", "recall@10"), ("recall@50", "recall@50"),
           ("recall@100", "recall@100"), ("ndcg@100", "NDCG@100"),
           ("topic_match@10", "topic-match@10"), ("topic_match@100", "topic-match@100"),
           ("coverage@100", "coverage@100"))
COST = (("scanned_median", "scanned, median"), ("scanned_p90", "scanned, p90"),
        ("latency_p50_ms", "latency p50 (ms)"), ("latency_p99_ms", "latency p99 (ms)"))
PLOTS = (("topic_match_vs_k.png", "Topic match vs k"), ("recall_vs_k.png", "Recall vs k"),
         ("num_scanned.png", "Candidates scanned per query"))


def csv_rows(results: dict) -> List[dict]:
  rows = []
  for method, values in results["methods"].items():
    for metric, interval in values.items():
      interval = interval or {}
      rows.append({"method": method, "metric": metric,
                   **{f: interval.get(f, "") for f in CSV_FIELDS[2:]}})
  return rows


def format_interval(interval, metric: str = "") -> str:
  """'0.853 [0.838, 0.867]'; counts and milliseconds with fewer decimals; '-' for none."""
  if interval is None:
    return "-"
  if metric.startswith("scanned"):
    fmt = "{:.0f}"
  elif metric.startswith("latency") or interval["value"] >= 10:
    fmt = "{:.2f}"
  else:
    fmt = "{:.3f}"
  return (f"{fmt.format(interval['value'])} "
          f"[{fmt.format(interval['ci_low'])}, {fmt.format(interval['ci_high'])}]")


def _table(results: dict, columns) -> List[str]:
  lines = ["| method | " + " | ".join(label for _, label in columns) + " |",
           "|---|" + "---|" * len(columns)]
  for method, values in results["methods"].items():
    cells = [format_interval(values.get(metric), metric) for metric, _ in columns]
    lines.append(f"| {method} | " + " | ".join(cells) + " |")
  return lines


def markdown(results: dict) -> str:
  """The human-readable report (results.md)."""
  t = results["timings_seconds"]
  machine = results["machine"]
  level = int(round(results["bootstrap"]["confidence"] * 100))
  lines = [
      f"# Retrieval comparison: {results['dataset']}, condition "
      f"`{results['condition_feature']}`", "",
      f"{results['num_queries']} test queries ({results['num_skipped_queries']} held-out "
      f"items without a `{results['condition_feature']}` value skipped), "
      f"{results['num_items']} items, {results['num_users']} users, "
      f"{results['num_conditions']} condition values, "
      f"{results['num_train_interactions']} training interactions; seed "
      f"{results['seed']}; index `{results['index']}`; k = {results['k']}. "
      f"Each cell: value [{level}% bootstrap interval over test queries, "
      f"{results['bootstrap']['samples']} resamples]. Latency: single-row "
      f"`serving_exclusions` calls on {results['latency_queries']} sampled queries.", "",
      "## Quality", ""]
  lines += _table(results, QUALITY)
  if results.get("topic_match_ceiling@100"):
    lines += ["", "Best topic-match@100 possible for a method returning 100 items (a "
              "condition has only so many items the user has not seen): "
              f"{format_interval(results['topic_match_ceiling@100'])}."]
  lines += ["", "## Serving cost", "",
            "Candidates scanned: the servable's `num_scanned` (candidates taken from the "
            "index, in ranking order, to fill k; excluded items count); for INDEX, the "
            "position of the k-th kept item in the condition's popularity list.", ""]
  lines += _table(results, COST)
  lines += ["", "## Paired comparisons", "", "| comparison | value |", "|---|---|"]
  for row in results["comparisons"]:
    lines.append(f"| {row['name']} | {format_interval(row)} |")
  if results.get("by_condition"):
    lines += ["", "## By condition value", "",
              "The same metrics on each condition value's queries (medians of candidates "
              "scanned; intervals from a bootstrap over those queries).", ""]
    columns = [name for name in results["by_condition"][0]
               if name not in ("condition", "queries", "items")]
    lines.append("| condition | queries | items | " + " | ".join(columns) + " |")
    lines.append("|---|---|---|" + "---|" * len(columns))
    for row in results["by_condition"]:
      cells = [format_interval(row[c], c.split(" ")[-1]) for c in columns]
      lines.append(f"| {row['condition']} | {row['queries']} | {row['items']} | "
                   + " | ".join(cells) + " |")
  lines += ["", "## Plots", ""]
  lines += [f"![{title}]({name})" for name, title in PLOTS]
  timing = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in t.items())
  lines += ["", "## Run", "",
            f"Command: `{results['command']}`" if results.get("command") else "",
            f"Time: {timing}.",
            f"Machine: {machine['cpu']}, {machine['cpu_count']} CPUs, "
            f"{machine['memory_gib']} GiB, {machine['gpus']} GPUs; {machine['platform']}, "
            f"Python {machine['python']}, TensorFlow {machine['tensorflow']}.", ""]
  return "\n".join(line for i, line in enumerate(lines)
                   if line or i == 0 or lines[i - 1]) + "\n"


def write_all(results: dict, output_dir: str) -> None:
  """Writes results.json, results.csv and results.md into output_dir."""
  with open(os.path.join(output_dir, "results.json"), "w") as f:
    json.dump(results, f, indent=1)
    f.write("\n")
  with open(os.path.join(output_dir, "results.csv"), "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
    writer.writeheader()
    writer.writerows(csv_rows(results))
  with open(os.path.join(output_dir, "results.md"), "w") as f:
    f.write(markdown(results))
