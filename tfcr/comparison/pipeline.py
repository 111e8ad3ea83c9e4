"""run_comparison(options): the library entry point behind `tfcr-eval`.

1. Resolves the CR and LR training configurations (from the given model dirs, or from
   one template with `model` set to cr and lr) and checks they differ only in the model.
2. Loads and prepares the data once: the same split, queries and exclusions for all.
3. Trains the models not given (OUTPUT_DIR/models/{cr,lr}), exports both as servables
   (OUTPUT_DIR/exports/{cr,lr}/<version>).
4. Answers the test queries with INDEX, LR, LR + filter, CR and CR + filter (servable
   calls in batches), measures single-row latency on a sample, computes the metrics with
   bootstrap confidence intervals, and writes results.{md,csv,json} and the plots.
"""

import dataclasses
import json
import os
import tempfile
import time
from typing import Dict, Optional, Sequence

from absl import logging
import numpy as np

from tfcr.comparison.baselines import PopularityIndex
from tfcr.data.schema import RecData
from tfcr.data.sources import DataSource
from tfcr.errors import ConfigError
from tfcr.export.exporter import export_servable
from tfcr.index import INDEX_KINDS
from tfcr.metrics import per_query as metrics_lib
from tfcr.metrics.bootstrap import Resamples, interval_of_samples
from tfcr.metrics.queries import Queries, build_queries
from tfcr.training.config import TrainConfig
from tfcr.training.loop import load_data, prepare_data, train_and_evaluate
from tfcr.training.model_dir import ModelDir
from tfcr.utils.machine import machine_description

METHODS = ("INDEX", "LR", "LR+filter", "CR", "CR+filter")
# method -> (model, servable filter); INDEX has no servable.
SERVED = {"LR": ("lr", "none"), "LR+filter": ("lr", "strict"),
          "CR": ("cr", "none"), "CR+filter": ("cr", "strict")}
K = 100
RECALL_KS = (10, 50, 100)
TOPIC_MATCH_KS = (10, 100)
NDCG_K = 100
CURVE_KS = (1, 2, 5, 10, 20, 50, 100)
# Training settings that may differ between the two compared runs: everything else
# (split, sizes, optimisation, seed, condition) must be identical, and so must the data.
MAY_DIFFER = ("model", "model_dir", "verbose")


@dataclasses.dataclass
class ComparisonOptions:
  """train: the template training configuration (its `model` and `model_dir` are set per
  model); data: where the data comes from (None: the source recorded in the loaded model
  dirs, else the default MovieLens-100k); data_dir: where that recorded source's files
  are now, when they moved; cr_model_dir / lr_model_dir: trained runs to load instead of
  training; explicit_fields: training fields the user set explicitly, checked against
  loaded runs."""
  train: TrainConfig
  output_dir: str
  data: Optional[DataSource] = None
  data_dir: str = ""
  cr_model_dir: str = ""
  lr_model_dir: str = ""
  index: str = "scann"
  bootstrap_samples: int = 1000
  confidence: float = 0.95
  latency_queries: int = 300
  batch_queries: int = 256
  explicit_fields: Sequence[str] = ()
  command: str = ""


@dataclasses.dataclass
class MethodOutput:
  """What one method returned for every query: rows [Q, K] item rows (-1 padding),
  scanned [Q] candidates scanned, latency_ms [L] single-row call times (None: no servable)."""
  rows: np.ndarray
  scanned: np.ndarray
  latency_ms: Optional[np.ndarray] = None


def _read_run(model_dir: str, model: str) -> ModelDir:
  run = ModelDir(model_dir)
  if not os.path.isdir(run.path):
    raise ConfigError(f"{model}_model_dir={run.path} does not exist.")
  config = run.read_config()
  if config is None:
    raise ConfigError(f"{model}_model_dir={run.path} holds no trained model (no config.json); "
                      f"train one with tfcr-train or leave it out to train here.")
  if config.model != model:
    raise ConfigError(f"{model}_model_dir={run.path} holds a {config.model.upper()} model, "
                      f"not {model.upper()}.")
  if not run.is_finished():
    raise ConfigError(f"{model}_model_dir={run.path} holds an unfinished training run (no "
                      f"metrics.json); finish it with tfcr-train --model_dir={run.path}.")
  return run


def load_compared_data(options: ComparisonOptions, runs: Dict[str, ModelDir]):
  """(RecData, fingerprint) of the comparison: options.data, else the source the loaded
  runs recorded, else MovieLens-100k; refused (ConfigError) when a loaded run was trained
  on other data."""
  source = options.data
  if source is None and runs:
    run = next(iter(runs.values()))
    recorded = run.read_fingerprint()
    if recorded is None or recorded.source is None:
      raise ConfigError(f"model_dir={run.path} does not record where its data came from "
                        f"(trained on data given from Python); name the dataset.")
    source = DataSource.from_dict(recorded.source)
    if options.data_dir:
      source = dataclasses.replace(source, data_dir=options.data_dir)
  data, fingerprint = load_data(source or DataSource(), log=logging.info)
  for run in runs.values():
    run.check_same_data(fingerprint)
  return data, fingerprint


def resolve_configs(options: ComparisonOptions, runs: Dict[str, ModelDir],
                    data: RecData) -> Dict[str, TrainConfig]:
  """{"cr": config, "lr": config}, resolved for `data`; raises ConfigError on any
  mismatch."""
  loaded = {m: dataclasses.replace(run.read_config(), model_dir=run.path)
            for m, run in runs.items()}
  template_flags = options.train
  for model, config in loaded.items():
    differing = [f for f in options.explicit_fields
                 if getattr(config, f) != getattr(template_flags, f)
                 and not (f == "condition_feature" and template_flags.condition_feature is None)]
    if differing:
      details = ", ".join(f"{f}={getattr(template_flags, f)} vs {getattr(config, f)}"
                          for f in differing)
      raise ConfigError(f"{model}_model_dir={config.model_dir} was trained with other "
                        f"settings than asked ({details}); drop those settings or train "
                        f"new models.")
  template = next(iter(loaded.values()), options.train)
  configs = {}
  for model in ("cr", "lr"):
    if model in loaded:
      configs[model] = loaded[model].for_data(data)
    else:
      configs[model] = dataclasses.replace(
          template, model=model, verbose=options.train.verbose,
          model_dir=os.path.join(options.output_dir, "models", model)).for_data(data)
  differing = [f.name for f in dataclasses.fields(TrainConfig)
               if f.name not in MAY_DIFFER
               and getattr(configs["cr"], f.name) != getattr(configs["lr"], f.name)]
  if differing:
    details = ", ".join(f"{f}: {getattr(configs['cr'], f)} vs {getattr(configs['lr'], f)}"
                        for f in differing)
    raise ConfigError(f"The CR and LR runs differ in more than the model ({details}); "
                      f"compare runs trained with the same data, split, sizes and seed.")
  return configs


def check_options(options: ComparisonOptions) -> None:
  if options.index not in INDEX_KINDS:
    raise ConfigError(f"Unknown index={options.index!r}; valid values: "
                      f"{', '.join(INDEX_KINDS)}.")
  if options.bootstrap_samples < 1:
    raise ConfigError(f"bootstrap_samples must be >= 1, got {options.bootstrap_samples}.")
  if not 0 < options.confidence < 1:
    raise ConfigError(f"confidence must be in (0, 1), got {options.confidence}.")
  if options.latency_queries < 0:
    raise ConfigError(f"latency_queries must be >= 0, got {options.latency_queries}.")
  if options.batch_queries < 1:
    raise ConfigError(f"batch_queries must be >= 1, got {options.batch_queries}.")
  if not options.output_dir:
    raise ConfigError("output_dir is required: models, exports and results go there.")


def make_output_dir(path: str) -> None:
  try:
    os.makedirs(path, exist_ok=True)
    tempfile.NamedTemporaryFile(dir=path).close()
  except OSError as e:
    raise ConfigError(f"output_dir={path} is not writable: {e.strerror}.") from None


def method_metrics(output: MethodOutput, queries: Queries, membership: np.ndarray,
                   num_items: int, resamples: Resamples, seed: int):
  """{metric name: Interval} for one method, plus its curves {name: {k: Interval}}."""
  positions = metrics_lib.hit_positions(output.rows, queries.targets)
  matches = metrics_lib.condition_matches(output.rows, queries.conditions, membership)
  result = {}
  for k in RECALL_KS:
    result[f"recall@{k}"] = resamples.mean(metrics_lib.recall_per_query(positions, k))
  result[f"ndcg@{NDCG_K}"] = resamples.mean(metrics_lib.ndcg_per_query(positions, NDCG_K))
  for k in TOPIC_MATCH_KS:
    result[f"topic_match@{k}"] = resamples.mean(
        metrics_lib.topic_match_per_query(matches, output.rows, k))
  result["scanned_median"] = resamples.quantile(output.scanned, 0.5)
  result["scanned_p90"] = resamples.quantile(output.scanned, 0.9)
  if output.latency_ms is not None and len(output.latency_ms):
    for name, q in (("latency_p50_ms", 0.5), ("latency_p99_ms", 0.99)):
      result[name] = interval_of_samples(output.latency_ms,
                                         lambda v, q=q: np.quantile(v, q, axis=-1),
                                         resamples.samples, seed, resamples.level)
  else:
    result["latency_p50_ms"] = result["latency_p99_ms"] = None
  result[f"coverage@{K}"] = resamples.coverage(output.rows, num_items, K)
  curves = {
      "recall": {k: resamples.mean(metrics_lib.recall_per_query(positions, k))
                 for k in CURVE_KS},
      "topic_match": {k: resamples.mean(metrics_lib.topic_match_per_query(
          matches, output.rows, k)) for k in CURVE_KS}}
  return result, curves


def topic_match_ceiling(queries: Queries, membership: np.ndarray, k: int) -> np.ndarray:
  """[Q] the best topic-match@k an unfiltered method returning k items can reach: the
  query's condition has only so many items left once the user's training items are out."""
  having = membership[:, queries.conditions].sum(axis=0)
  excluded_having = np.array([membership[queries.excluded(q), queries.conditions[q]].sum()
                              for q in range(len(queries))])
  return np.minimum(having - excluded_having, k) / k


def per_query_metric(output: MethodOutput, queries: Queries, membership: np.ndarray,
                     metric: str, k: int) -> np.ndarray:
  """[Q] one method's `metric` ("recall", "ndcg" or "topic_match") at k, per query."""
  positions = metrics_lib.hit_positions(output.rows, queries.targets)
  if metric == "recall":
    return metrics_lib.recall_per_query(positions, k)
  if metric == "ndcg":
    return metrics_lib.ndcg_per_query(positions, k)
  matches = metrics_lib.condition_matches(output.rows, queries.conditions, membership)
  return metrics_lib.topic_match_per_query(matches, output.rows, k)


def paired_comparisons(outputs: Dict[str, MethodOutput], queries: Queries,
                       membership: np.ndarray, resamples: Resamples):
  """The paper's claims as paired differences / ratios with confidence intervals."""
  def per_query(method, metric, k):
    return per_query_metric(outputs[method], queries, membership, metric, k)

  rows = []
  for a, b, metric in (("CR", "LR", "topic_match"), ("CR", "LR+filter", "recall"),
                       ("CR", "INDEX", "recall"), ("CR+filter", "LR+filter", "recall")):
    interval = resamples.mean_difference(per_query(a, metric, K), per_query(b, metric, K))
    rows.append({"name": f"{metric}@{K}: {a} - {b}", "kind": "difference",
                 **interval.to_dict()})
  for q, label in ((0.5, "median"), (0.9, "p90")):
    interval = resamples.quantile_ratio(outputs["CR+filter"].scanned,
                                        outputs["LR+filter"].scanned, q)
    rows.append({"name": f"scanned {label}: CR+filter / LR+filter", "kind": "ratio",
                 **interval.to_dict()})
  return rows


# Per condition value: (method, metric) pairs of the breakdown table.
BY_CONDITION = (("LR", "topic_match@100"), ("CR", "topic_match@100"),
                ("LR+filter", "recall@100"), ("CR", "recall@100"),
                ("LR+filter", "scanned_median"), ("CR+filter", "scanned_median"))


def by_condition(outputs: Dict[str, MethodOutput], queries: Queries, membership: np.ndarray,
                 vocabulary: np.ndarray, samples: int, seed: int, level: float):
  """The main metrics restricted to the queries of each condition value (each with its own
  bootstrap over those queries), most frequent condition first; with the best
  topic-match@100 possible on those queries."""
  ceiling = topic_match_ceiling(queries, membership, K)
  per_query = {}
  for method in {m for m, _ in BY_CONDITION}:
    out = outputs[method]
    positions = metrics_lib.hit_positions(out.rows, queries.targets)
    matches = metrics_lib.condition_matches(out.rows, queries.conditions, membership)
    per_query[method] = {
        "topic_match@100": metrics_lib.topic_match_per_query(matches, out.rows, K),
        "recall@100": metrics_lib.recall_per_query(positions, K),
        "scanned_median": out.scanned}
  ids, counts = np.unique(queries.conditions, return_counts=True)
  rows = []
  for position in np.argsort(-counts, kind="stable"):
    condition = ids[position]
    subset = np.flatnonzero(queries.conditions == condition)
    resamples = Resamples(len(subset), samples, seed + int(condition), level)
    row = {"condition": str(vocabulary[condition]), "queries": int(len(subset)),
           "items": int(membership[:, condition].sum())}
    row["best topic_match@100"] = resamples.mean(ceiling[subset]).to_dict()
    for method, metric in BY_CONDITION:
      values = per_query[method][metric][subset]
      interval = (resamples.quantile(values, 0.5) if metric == "scanned_median"
                  else resamples.mean(values))
      row[f"{method} {metric}"] = interval.to_dict()
    rows.append(row)
  return rows


def export_for_comparison(model_dir: str, export_root: str, index: str) -> str:
  """Exports a trained run as the servable the comparison queries; returns its path."""
  # recall_target 1.0: the comparison measures the models, so the index searches as
  # many leaves as it takes to lose nothing to ScaNN's partitioning.
  return export_servable(model_dir, export_root, index=index, max_k=K, recall_target=1.0,
                         log=logging.info)


def results_header(options: ComparisonOptions, data: RecData, config: TrainConfig,
                   prepared, queries: Queries, k: int, latency_sample: np.ndarray) -> dict:
  """What results.json says about the run before its metrics: data, sizes, protocol."""
  return {
      "command": options.command,
      "output_dir": options.output_dir,
      "dataset": data.name,
      "condition_feature": config.condition_feature,
      "seed": config.seed,
      "index": options.index,
      "k": k,
      "num_items": prepared.num_items,
      "num_users": prepared.num_users,
      "num_train_interactions": int(len(prepared.train)),
      "num_queries": len(queries),
      "num_skipped_queries": queries.num_skipped,
      "num_conditions": int(prepared.conditions.vocabulary_size - 2),
      "bootstrap": {"samples": options.bootstrap_samples, "confidence": options.confidence,
                    "unit": "test query", "seed": config.seed},
      "latency_queries": int(len(latency_sample)),
  }


def index_output(prepared, queries: Queries, k: int) -> MethodOutput:
  """INDEX's answers: the condition's items by training popularity."""
  logging.info("Answering %d test queries with INDEX", len(queries))
  rows, scanned = PopularityIndex(prepared.conditions,
                                  prepared.train.item_index).retrieve_all(queries, k)
  return MethodOutput(rows, scanned)


def latency_sample_of(queries: Queries, count: int, seed: int) -> np.ndarray:
  """The sorted query indices timed with single-row calls (a seeded sample)."""
  rng = np.random.default_rng(seed)
  return np.sort(rng.choice(len(queries), min(count, len(queries)), replace=False))


def answer_queries(client, method: str, filter_: str, queries: Queries, k: int,
                   options: ComparisonOptions, membership: np.ndarray,
                   latency_sample: np.ndarray, check_matches: bool = True) -> MethodOutput:
  """Every test query through one servable (`client`, a ServableClient) in batches, with
  `filter_`; then the single-row latency of `latency_sample`. check_matches: warn when the
  servable's condition_match disagrees with the catalog on the queries' conditions (off
  for queries asked without their condition)."""
  logging.info("Answering %d test queries with %s", len(queries), method)
  step = max(options.batch_queries, len(queries) // 4 // options.batch_queries
             * options.batch_queries)

  def progress(done):
    if done % step == 0 or done == len(queries):
      logging.info("  %s: %d/%d queries", method, done, len(queries))

  rows, servable_match, scanned = client.run_batched(queries, k, filter_,
                                                     options.batch_queries, progress)
  ours = metrics_lib.condition_matches(rows, queries.conditions, membership)
  if check_matches and not np.array_equal(ours, servable_match):
    logging.warning("%s: the servable's condition_match disagrees with the catalog on "
                    "%d results", method, int((ours != servable_match).sum()))
  latency = None
  if len(latency_sample):
    latency = client.measure_latency(queries, latency_sample, k, filter_)
  return MethodOutput(rows, scanned, latency)


def summarize(outputs: Dict[str, MethodOutput], queries: Queries, prepared,
              options: ComparisonOptions, seed: int) -> dict:
  """The five methods' metrics, curves, paired comparisons, topic-match ceiling and
  by-condition breakdown (bootstrap intervals over the test queries), as results.json
  holds them."""
  logging.info("Bootstrapping %d resamples of %d queries", options.bootstrap_samples,
               len(queries))
  membership = prepared.conditions.membership()
  k = outputs["INDEX"].rows.shape[1]
  resamples = Resamples(len(queries), options.bootstrap_samples, seed, options.confidence)
  method_results, curves = {}, {"recall": {}, "topic_match": {}}
  for method in METHODS:
    values, method_curves = method_metrics(outputs[method], queries, membership,
                                           prepared.num_items, resamples, seed)
    method_results[method] = {name: (v.to_dict() if v is not None else None)
                              for name, v in values.items()}
    for curve, points in method_curves.items():
      curves[curve][method] = {str(kk): v.to_dict() for kk, v in points.items()}
  return {
      "methods": method_results,
      "curves": curves,
      "comparisons": paired_comparisons(outputs, queries, membership, resamples),
      "topic_match_ceiling@100": resamples.mean(
          topic_match_ceiling(queries, membership, k)).to_dict(),
      "by_condition": by_condition(outputs, queries, membership,
                                   prepared.conditions.vocabulary, options.bootstrap_samples,
                                   seed, options.confidence),
      "scanned_per_query": {m: outputs[m].scanned.tolist() for m in METHODS},
  }


def run_comparison(options: ComparisonOptions) -> dict:
  """Runs the whole comparison (module docstring); returns the results written to
  OUTPUT_DIR/results.json. Raises ConfigError on bad options (before writing anything)."""
  from tfcr.comparison import plots, report  # pylint: disable=g-import-not-at-top

  started = time.perf_counter()
  timings = {}
  check_options(options)
  options.train.resolved()
  options = dataclasses.replace(
      options, output_dir=os.path.abspath(os.path.expanduser(options.output_dir)))
  runs = {m: _read_run(d, m) for m, d in (("cr", options.cr_model_dir),
                                          ("lr", options.lr_model_dir)) if d}
  data, fingerprint = load_compared_data(options, runs)
  configs = resolve_configs(options, runs, data)
  config = configs["cr"]
  logging.info("Loaded %s (condition feature %r)", data.name, config.condition_feature)
  prepared = prepare_data(config, data)
  queries = build_queries(prepared, config.seed)
  make_output_dir(options.output_dir)
  timings["load_data"] = time.perf_counter() - started

  export_paths = {}
  for model in ("cr", "lr"):
    if not getattr(options, f"{model}_model_dir"):
      logging.info("Training %s: %d epochs into %s", model.upper(), configs[model].epochs,
                   configs[model].model_dir)
      start = time.perf_counter()
      train_and_evaluate(configs[model], data, fingerprint=fingerprint)
      timings[f"train_{model}"] = time.perf_counter() - start
      logging.info("Trained %s in %.1f s", model.upper(), timings[f"train_{model}"])
    start = time.perf_counter()
    export_paths[model] = export_for_comparison(
        configs[model].model_dir, os.path.join(options.output_dir, "exports", model),
        options.index)
    timings[f"export_{model}"] = time.perf_counter() - start
    logging.info("Exported %s (%s) to %s in %.1f s", model.upper(), options.index,
                 export_paths[model], timings[f"export_{model}"])

  k = min(K, prepared.num_items)
  start = time.perf_counter()
  outputs = {"INDEX": index_output(prepared, queries, k)}
  latency_sample = latency_sample_of(queries, options.latency_queries, config.seed)
  item_ids = np.asarray(prepared.data.catalog.item_id)
  from tfcr.comparison.servable_runner import ServableClient  # pylint: disable=g-import-not-at-top
  clients = {m: ServableClient(export_paths[m], item_ids) for m in ("cr", "lr")}
  membership = prepared.conditions.membership()
  for method, (model, filter_) in SERVED.items():
    outputs[method] = answer_queries(clients[model], method, filter_, queries, k, options,
                                     membership, latency_sample)
  timings["answer_queries"] = time.perf_counter() - start

  start = time.perf_counter()
  summary = summarize(outputs, queries, prepared, options, config.seed)
  timings["bootstrap"] = time.perf_counter() - start

  results = {
      **results_header(options, data, config, prepared, queries, k, latency_sample),
      **summary,
      "models": {m: json.loads(configs[m].to_json()) for m in ("cr", "lr")},
      "export_paths": export_paths,
      "timings_seconds": timings,
      "machine": machine_description(),
  }
  start = time.perf_counter()
  plots.write_all(results, options.output_dir)
  timings["plots"] = time.perf_counter() - start
  timings["total"] = time.perf_counter() - started
  report.write_all(results, options.output_dir)
  logging.info("Wrote %s in %.1f s", os.path.join(options.output_dir, "results.md"),
               results["timings_seconds"]["total"])
  return results
