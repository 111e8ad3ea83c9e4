"""run_ablation(options): `tfcr-eval --variants=... --seeds=...`, the CR variants against
the paper's CR and against LR (+ filter), over several seeds.

Per seed (OUTPUT_DIR/seed<S>/): the data is loaded and split once; LR and every CR variant
(`tfcr.comparison.variants`) are trained with that seed (models/<name>) and exported
(exports/<name>/<version>); INDEX, LR and LR + filter answer the test queries once, and each
variant's CR answers them unfiltered, with the strict filter, and with condition="" (its
plain recommendations). Each variant then gets the five-method report of a plain
`tfcr-eval` run, with that variant as CR (<name>/results.{md,csv,json} and plots).

Over all seeds (OUTPUT_DIR/ablation.{md,json}): every variant's main metrics and their
paired differences against the paper's CR and against LR + filter, pooled over the seeds
(`tfcr.metrics.bootstrap.SeedPooledResamples`: the mean over seeds, with a bootstrap
interval over the test queries), and each seed's own differences, to show how much they
move from seed to seed.
"""

import dataclasses
import os
import time
from typing import Dict, Sequence

from absl import logging
import numpy as np

from tfcr.comparison import variants as variants_lib
from tfcr.comparison.pipeline import (K, SERVED, ComparisonOptions, MethodOutput,
                                      check_options, make_output_dir, answer_queries,
                                      export_for_comparison, index_output,
                                      latency_sample_of, per_query_metric, results_header,
                                      summarize)
from tfcr.data.sources import DataSource
from tfcr.errors import ConfigError
from tfcr.metrics.bootstrap import SeedPooledResamples
from tfcr.metrics.queries import build_queries
from tfcr.training.loop import load_data, prepare_data, train_and_evaluate
from tfcr.utils.machine import machine_description

UNCONDITIONAL = "CR, condition \"\""
# Per-query metrics pooled over seeds: name -> (metric, k).
POOLED = (("recall@10", "recall", 10), ("recall@100", "recall", 100),
          ("ndcg@100", "ndcg", 100), ("topic_match@100", "topic_match", 100))


@dataclasses.dataclass
class AblationOptions:
  """comparison: the template (training settings, index, bootstrap, output_dir; its
  cr/lr_model_dir must be empty); variants: names in `tfcr.comparison.variants.VARIANTS`;
  sources: seed -> where that seed's data comes from (synthetic data is generated per
  seed)."""
  comparison: ComparisonOptions
  variants: Sequence[str]
  sources: Dict[int, DataSource]


@dataclasses.dataclass
class SeedRun:
  """One seed's per-query outputs: {method key: MethodOutput} and the queries."""
  seed: int
  dataset: str
  condition_feature: str
  queries: object
  outputs: Dict[str, MethodOutput]
  membership: np.ndarray
  timings: Dict[str, float]


def _check(options: AblationOptions):
  check_options(options.comparison)
  if options.comparison.cr_model_dir or options.comparison.lr_model_dir:
    raise ConfigError("variants train their own models: leave cr_model_dir and "
                      "lr_model_dir empty.")
  if not options.sources:
    raise ConfigError("seeds: give at least one seed.")
  variants_lib.parse_variants(options.variants)
  set_fields = [f for f in variants_lib.VARIANT_FIELDS
                if getattr(options.comparison.train, f)]
  if set_fields:
    raise ConfigError(f"{', '.join(set_fields)} are set by each variant "
                      f"({', '.join(variants_lib.VARIANTS)}); leave them out with variants.")


def _run_seed(options: AblationOptions, names, seed: int, loaded: dict) -> SeedRun:
  from tfcr.comparison import plots, report  # pylint: disable=g-import-not-at-top
  from tfcr.comparison.servable_runner import ServableClient  # pylint: disable=g-import-not-at-top

  comparison = options.comparison
  root = os.path.join(comparison.output_dir, f"seed{seed}")
  source = options.sources[seed]
  key = repr(source)
  if key not in loaded:  # MovieLens is the same for every seed: load it once
    loaded.clear()
    loaded[key] = load_data(source, log=logging.info)
  data, fingerprint = loaded[key]
  template = dataclasses.replace(comparison.train, seed=seed)
  configs = {"lr": dataclasses.replace(template, model="lr",
                                       model_dir=os.path.join(root, "models", "lr"))}
  for name in names:
    configs[name] = dataclasses.replace(
        template, model="cr", model_dir=os.path.join(root, "models", name),
        **variants_lib.settings_of(name))
  configs = {name: c.for_data(data) for name, c in configs.items()}
  prepared = prepare_data(configs["lr"], data)
  queries = build_queries(prepared, seed)
  membership = prepared.conditions.membership()
  item_ids = np.asarray(prepared.data.catalog.item_id)
  k = min(K, prepared.num_items)
  latency_sample = latency_sample_of(queries, comparison.latency_queries, seed)
  unconditional = dataclasses.replace(
      queries, condition_values=np.full(len(queries), "", dtype=object))

  timings, clients = {}, {}
  for name, config in configs.items():
    logging.info("Seed %d: training %s (%s) into %s", seed, name,
                 "LR" if name == "lr" else variants_lib.describe(name), config.model_dir)
    start = time.perf_counter()
    train_and_evaluate(config, data, fingerprint=fingerprint)
    timings[f"train_{name}"] = time.perf_counter() - start
    start = time.perf_counter()
    path = export_for_comparison(config.model_dir, os.path.join(root, "exports", name),
                                 comparison.index)
    timings[f"export_{name}"] = time.perf_counter() - start
    logging.info("Seed %d: %s trained in %.1f s, exported in %.1f s", seed, name,
                 timings[f"train_{name}"], timings[f"export_{name}"])
    clients[name] = ServableClient(path, item_ids)

  start = time.perf_counter()
  outputs = {"INDEX": index_output(prepared, queries, k)}
  for method in ("LR", "LR+filter"):
    outputs[method] = answer_queries(clients["lr"], method, SERVED[method][1], queries, k,
                                     comparison, membership, latency_sample)
  for name in names:
    for method in ("CR", "CR+filter"):
      outputs[f"{name}:{method}"] = answer_queries(
          clients[name], f"{name} {method}", SERVED[method][1], queries, k, comparison,
          membership, latency_sample)
    outputs[f"{name}:{UNCONDITIONAL}"] = answer_queries(
        clients[name], f"{name} {UNCONDITIONAL}", "none", unconditional, k, comparison,
        membership, np.zeros(0, np.int64), check_matches=False)
  timings["answer_queries"] = time.perf_counter() - start

  for name in names:  # each variant's five-method report, as plain tfcr-eval writes it
    out_dir = os.path.join(root, name)
    os.makedirs(out_dir, exist_ok=True)
    five = {m: outputs[m] for m in ("INDEX", "LR", "LR+filter")}
    five.update({m: outputs[f"{name}:{m}"] for m in ("CR", "CR+filter")})
    variant_options = dataclasses.replace(comparison, output_dir=out_dir)
    results = {
        **results_header(variant_options, data, configs[name], prepared, queries, k,
                         latency_sample),
        **summarize(five, queries, prepared, variant_options, seed),
        "variant": name, "variant_flags": variants_lib.describe(name),
        "timings_seconds": {t: v for t, v in timings.items()
                            if t.endswith(("_lr", f"_{name}"))},
        "machine": machine_description()}
    plots.write_all(results, out_dir)
    report.write_all(results, out_dir)
  return SeedRun(seed, data.name, configs["lr"].condition_feature, queries, outputs,
                 membership, timings)


def _shared_queries(runs: Sequence[SeedRun]) -> bool:
  first = runs[0].queries
  return all(len(r.queries) == len(first)
             and np.array_equal(r.queries.users, first.users)
             and np.array_equal(r.queries.targets, first.targets) for r in runs)


def pooled_tables(runs: Sequence[SeedRun], names, samples: int, level: float, seed: int):
  """(metrics, differences, per_seed): the ablation's pooled numbers (module docstring)."""
  shared = _shared_queries(runs)
  pooled = SeedPooledResamples([len(r.queries) for r in runs], samples, seed, level, shared)

  def values(method, metric, k):
    return [per_query_metric(r.outputs[method], r.queries, r.membership, metric, k)
            for r in runs]

  def scanned(method):
    return [r.outputs[method].scanned for r in runs]

  metrics = {}
  for method in ("LR", "LR+filter"):
    metrics[method] = {label: pooled.mean(values(method, m, k)).to_dict()
                       for label, m, k in POOLED}
  for name in names:
    row = {label: pooled.mean(values(f"{name}:CR", m, k)).to_dict() for label, m, k in POOLED}
    row["filtered recall@100"] = pooled.mean(values(f"{name}:CR+filter", "recall", K)).to_dict()
    row["scanned median / LR+filter"] = pooled.quantile_ratio(
        scanned(f"{name}:CR+filter"), scanned("LR+filter"), 0.5).to_dict()
    row["unconditional recall@100"] = pooled.mean(
        values(f"{name}:{UNCONDITIONAL}", "recall", K)).to_dict()
    metrics[name] = row

  # (label, method a, method b, metric, k); a and b are formatted with the variant.
  comparisons = (
      ("recall@100 - paper", "{v}:CR", "paper:CR", "recall", K),
      ("recall@10 - paper", "{v}:CR", "paper:CR", "recall", 10),
      ("topic_match@100 - paper", "{v}:CR", "paper:CR", "topic_match", K),
      ("filtered recall@100 - paper", "{v}:CR+filter", "paper:CR+filter", "recall", K),
      ("unconditional recall@100 - paper", "{v}:" + UNCONDITIONAL, "paper:" + UNCONDITIONAL,
       "recall", K),
      ("recall@100 - LR+filter", "{v}:CR", "LR+filter", "recall", K),
      ("unconditional recall@100 - LR", "{v}:" + UNCONDITIONAL, "LR", "recall", K))
  differences, per_seed = {}, {}
  for name in names:
    differences[name], per_seed[name] = {}, {}
    for label, a, b, metric, k in comparisons:
      a = a.format(v=name)
      if a == b:
        continue
      first, second = values(a, metric, k), values(b, metric, k)
      differences[name][label] = pooled.mean_difference(first, second).to_dict()
      per_seed[name][label] = [float(np.mean(x - y)) for x, y in zip(first, second)]
  return metrics, differences, per_seed, shared


def run_ablation(options: AblationOptions) -> dict:
  """Runs every seed and variant (module docstring); returns what ablation.json holds.
  Raises ConfigError on bad options before writing anything."""
  from tfcr.comparison import ablation_report  # pylint: disable=g-import-not-at-top

  started = time.perf_counter()
  _check(options)
  names = variants_lib.parse_variants(options.variants)
  comparison = dataclasses.replace(
      options.comparison,
      output_dir=os.path.abspath(os.path.expanduser(options.comparison.output_dir)))
  comparison.train.resolved()
  options = dataclasses.replace(options, comparison=comparison)
  make_output_dir(comparison.output_dir)
  seeds = list(options.sources)
  runs, loaded = [], {}
  for number, seed in enumerate(seeds):
    logging.info("Ablation: seed %d (%d of %d), variants %s", seed, number + 1, len(seeds),
                 ", ".join(names))
    runs.append(_run_seed(options, names, seed, loaded))
  metrics, differences, per_seed, shared = pooled_tables(
      runs, names, comparison.bootstrap_samples, comparison.confidence, seeds[0])
  results = {
      "command": comparison.command, "output_dir": comparison.output_dir,
      "dataset": runs[0].dataset, "condition_feature": runs[0].condition_feature,
      "seeds": seeds, "variants": {n: variants_lib.describe(n) for n in names},
      "num_queries": [len(r.queries) for r in runs], "shared_queries": shared,
      "bootstrap": {"samples": comparison.bootstrap_samples,
                    "confidence": comparison.confidence, "unit": "test query"},
      "metrics": metrics, "differences": differences, "per_seed_differences": per_seed,
      "timings_seconds": {f"seed{r.seed}": r.timings for r in runs},
      "total_seconds": time.perf_counter() - started,
      "machine": machine_description()}
  ablation_report.write_all(results, comparison.output_dir)
  logging.info("Wrote %s in %.1f s", os.path.join(comparison.output_dir, "ablation.md"),
               results["total_seconds"])
  return results
