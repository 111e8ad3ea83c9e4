r"""Compares INDEX, LR, LR + filter, CR and CR + filter: `python -m trainer.evaluate`
or `tfcr-eval`.

Trains an LR and a CR model with identical data, split, sizes and seed (or loads them
with --cr_model_dir / --lr_model_dir / --model_dirs), exports both as servables, answers
the same test queries with the five methods and writes results.md, results.csv,
results.json and PNG plots to --output_dir. Every metric has a bootstrap confidence
interval over test queries. docs/results.md shows the output for MovieLens-100k.

  tfcr-eval --dataset=movielens-100k --output_dir=runs/eval-genres
  tfcr-eval --dataset=movielens-100k --condition_feature=decade --output_dir=runs/eval-decade
  tfcr-eval --cr_model_dir=runs/cr --lr_model_dir=runs/lr --output_dir=runs/eval

With --variants, it runs the ablation of condition-aware training instead: LR and each
named CR variant trained per seed of --seeds, every variant's five-method report, and
ablation.{md,json} with the paired differences against the paper's CR pooled over seeds:

  tfcr-eval --variants=paper,hard_negatives,condition_loss,dropout,best --seeds=42,1,2 \
      --output_dir=runs/ablation-genres
"""

import logging as std_logging
import os
import shlex
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TF's C++ start-up chatter hides progress

from absl import flags, logging  # pylint: disable=g-import-not-at-top

from tfcr import cli  # pylint: disable=g-import-not-at-top
from tfcr.errors import ConfigError  # pylint: disable=g-import-not-at-top
from tfcr.index import INDEX_KINDS  # pylint: disable=g-import-not-at-top
from tfcr.training.config import TrainConfig  # pylint: disable=g-import-not-at-top
from trainer import training_flags  # pylint: disable=g-import-not-at-top

_DEFAULTS = TrainConfig()
_TRAIN_HELP = (" (training, as in tfcr-train; with loaded model dirs, a flag given must "
               "match their config.json).")

flags.DEFINE_string("output_dir", None,
                    "Where results.{md,csv,json}, the plots, and the trained models "
                    "(models/{cr,lr}) and servables (exports/{cr,lr}/<version>) go.")
flags.DEFINE_string("cr_model_dir", None,
                    "A finished tfcr-train --model=cr run to load instead of training CR.")
flags.DEFINE_string("lr_model_dir", None,
                    "A finished tfcr-train --model=lr run to load instead of training LR.")
flags.DEFINE_list("model_dirs", [],
                  "Comma-separated finished runs (their config.json says which is CR and "
                  "which LR); the same as --cr_model_dir and --lr_model_dir.")
flags.DEFINE_enum("index", "scann", list(INDEX_KINDS),
                  "Index of the exported servables the queries go through.")
flags.DEFINE_integer("bootstrap_samples", 1000,
                     "Bootstrap resamples of the test queries for the confidence intervals.")
flags.DEFINE_float("confidence", 0.95, "Level of the bootstrap confidence intervals.")
flags.DEFINE_integer("latency_queries", 300,
                     "Test queries (a seeded sample) timed with single-row servable calls "
                     "per method; 0 skips latency.")
flags.DEFINE_list("variants", [],
                  "Run the ablation of condition-aware CR training: comma-separated "
                  "variants out of paper, hard_negatives, condition_loss, dropout, best "
                  "(tfcr/comparison/variants.py says what each sets); paper, the "
                  "reference, is always run.")
flags.DEFINE_list("seeds", [],
                  "With --variants: the seeds to train and evaluate every model with "
                  "(default: --seed); results are pooled over them.")
flags.DEFINE_integer("batch_queries", 256,
                     "Queries per servable call when computing the metrics.")

# Data and training flags, passed through to the models trained here (see tfcr-train
# --helpfull). Without data flags, loaded model dirs load the data they recorded.
training_flags.define_data(" (as in tfcr-train; default with loaded model dirs: the data "
                           "they were trained on).")
training_flags.define_training(_TRAIN_HELP)
flags.DEFINE_integer("seed", _DEFAULTS.seed,
                     "Seed of training, of the test queries' conditions, of the latency "
                     "sample and of the bootstrap resamples.")
flags.DEFINE_integer("verbose", 0, "Keras progress while training: 0 silent, 2 one line "
                     "per epoch (phases are logged either way).")
flags.mark_flag_as_required("output_dir")
flags.adopt_module_key_flags(training_flags)

FLAGS = flags.FLAGS

TRAIN_FIELDS = training_flags.TRAINING_FIELDS + ("seed",)


def _train_config() -> TrainConfig:
  return TrainConfig(**training_flags.training_values(), seed=FLAGS.seed,
                     verbose=FLAGS.verbose, model_dir="(set per model)")


def _model_dirs():
  """(cr_model_dir, lr_model_dir) from --cr/lr_model_dir and --model_dirs."""
  from tfcr.training.model_dir import ModelDir  # pylint: disable=g-import-not-at-top
  dirs = {"cr": FLAGS.cr_model_dir or "", "lr": FLAGS.lr_model_dir or ""}
  if FLAGS.model_dirs:
    if any(dirs.values()):
      raise ConfigError("Use either --model_dirs or --cr_model_dir/--lr_model_dir, not both.")
    for path in FLAGS.model_dirs:
      try:
        config = ModelDir(path).read_config()
      except (OSError, ValueError, TypeError):
        config = None
      if config is None:
        raise ConfigError(f"--model_dirs: {path} holds no trained model (no readable "
                          f"config.json).")
      model = config.model
      if model not in dirs:
        raise ConfigError(f"--model_dirs: {path} holds an unknown model {model!r}.")
      if dirs[model]:
        raise ConfigError(f"--model_dirs names two {model.upper()} runs ({dirs[model]}, "
                        f"{path}); give one CR and one LR run.")
      dirs[model] = path
  return dirs["cr"], dirs["lr"]


def _progress_only(record) -> bool:
  """Keeps warnings and errors, and INFO lines logged by tfcr itself."""
  return (record.levelno >= std_logging.WARNING
          or f"{os.sep}tfcr{os.sep}" in record.pathname
          or f"{os.sep}trainer{os.sep}" in record.pathname)


def main(argv):
  cli.reject_positional_arguments(argv)
  if not FLAGS["verbosity"].present:
    # Progress lines of tfcr at INFO; TensorFlow's and TFDS's INFO chatter (checkpoint
    # sharding, SavedModel tracing) would drown them.
    logging.set_verbosity(logging.INFO)
    logging.get_absl_handler().addFilter(_progress_only)
  from tfcr.comparison.pipeline import ComparisonOptions, run_comparison  # pylint: disable=g-import-not-at-top
  cr_model_dir, lr_model_dir = _model_dirs()
  loads_runs = bool(cr_model_dir or lr_model_dir)
  data = (training_flags.data_source(FLAGS.seed)
          if training_flags.data_flags_given() or not loads_runs else None)
  options = ComparisonOptions(
      train=_train_config(), output_dir=FLAGS.output_dir, data=data,
      data_dir=FLAGS.data_dir if FLAGS["data_dir"].present else "",
      cr_model_dir=cr_model_dir, lr_model_dir=lr_model_dir, index=FLAGS.index,
      bootstrap_samples=FLAGS.bootstrap_samples, confidence=FLAGS.confidence,
      latency_queries=FLAGS.latency_queries, batch_queries=FLAGS.batch_queries,
      explicit_fields=tuple(f for f in TRAIN_FIELDS if FLAGS[f].present),
      command=" ".join(shlex.quote(a) for a in ["tfcr-eval"] + sys.argv[1:]))
  if FLAGS.variants or FLAGS.seeds:
    return _ablation(options, loads_runs)
  results = run_comparison(options)
  with open(os.path.join(results["output_dir"], "results.md")) as f:
    print(f.read())
  return 0


def _seeds():
  if not FLAGS.seeds:
    return [FLAGS.seed]
  try:
    seeds = [int(s) for s in FLAGS.seeds]
  except ValueError:
    raise ConfigError(f"--seeds must be comma-separated integers, got "
                      f"{','.join(FLAGS.seeds)}.") from None
  if len(set(seeds)) != len(seeds):
    raise ConfigError(f"--seeds names a seed twice: {','.join(FLAGS.seeds)}.")
  return seeds


def _ablation(options, loads_runs: bool) -> int:
  from tfcr.comparison.ablation import AblationOptions, run_ablation  # pylint: disable=g-import-not-at-top
  if not FLAGS.variants:
    raise ConfigError("--seeds goes with --variants (the ablation); name the variants, "
                      "e.g. --variants=paper,dropout.")
  if loads_runs:
    raise ConfigError("--variants trains its own models: leave out --cr_model_dir, "
                      "--lr_model_dir and --model_dirs.")
  sources = {seed: training_flags.data_source(seed) for seed in _seeds()}
  results = run_ablation(AblationOptions(comparison=options, variants=FLAGS.variants,
                                         sources=sources))
  with open(os.path.join(results["output_dir"], "ablation.md")) as f:
    print(f.read())
  return 0


def run():
  """Console-script entry point (`tfcr-eval`)."""
  cli.run_binary(main, __name__, program="tfcr-eval")


if __name__ == "__main__":
  run()
