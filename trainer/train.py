r"""Trains a conditional retrieval model: `python -m trainer.train` or `tfcr-train`.

This file is intentionally kept short: it turns flags into a `TrainConfig` and calls
`tfcr.train.train_and_evaluate`, which tests and notebooks call directly.

  tfcr-train --dataset=movielens-100k --model=cr --model_dir=runs/cr
  tfcr-train --flagfile=my.flags
"""

import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TF's C++ start-up chatter hides progress

from absl import app, flags  # pylint: disable=g-import-not-at-top

from tfcr import cli  # pylint: disable=g-import-not-at-top
from tfcr.config import TrainConfig  # pylint: disable=g-import-not-at-top

_DEFAULTS = TrainConfig()

flags.DEFINE_string("dataset", _DEFAULTS.dataset,
                    "Data set: movielens-100k (files from the recbole wheel, cached under "
                    "--data_dir), synthetic (planted structure, see --synthetic_*), or "
                    "tfds:<name>, e.g. tfds:movielens/100k-ratings (needs internet).")
flags.DEFINE_string("data_dir", _DEFAULTS.data_dir, "Where data sets are cached.")
flags.DEFINE_enum("model", _DEFAULTS.model, ["cr", "lr"],
                  "cr: conditional retrieval (query = user + condition); lr: the same "
                  "two-tower model without the condition (the paper's LR baseline).")
flags.DEFINE_string("condition_feature", None,
                    "Item-side categorical feature the condition is sampled from, e.g. "
                    "genres or decade on MovieLens, topics on synthetic. Default: the data "
                    "set's natural one (genres; topics).")
flags.DEFINE_integer("embedding_dim", _DEFAULTS.embedding_dim,
                     "Size of the query and item embeddings.")
flags.DEFINE_list("hidden_units", [str(h) for h in _DEFAULTS.hidden_units],
                  "Hidden layer sizes of each tower's MLP, comma-separated.")
flags.DEFINE_integer("epochs", _DEFAULTS.epochs, "Training epochs.")
flags.DEFINE_integer("batch_size", _DEFAULTS.batch_size,
                     "Examples per batch; the other items of a batch are the negatives.")
flags.DEFINE_float("learning_rate", _DEFAULTS.learning_rate, "Adam learning rate.")
flags.DEFINE_bool("normalize_embeddings", _DEFAULTS.normalize_embeddings,
                  "L2-normalise both towers' outputs (cosine scores); pair with a small "
                  "--temperature.")
flags.DEFINE_float("temperature", _DEFAULTS.temperature,
                   "Softmax temperature: scores are divided by it.")
flags.DEFINE_integer("extra_negatives", _DEFAULTS.extra_negatives,
                     "Items drawn uniformly from the catalog per batch as extra negatives "
                     "(mixed negative sampling; the logQ correction uses the mixture).")
flags.DEFINE_integer("seed", _DEFAULTS.seed,
                     "Seed of initialisation, shuffling, condition sampling and evaluation.")
flags.DEFINE_float("min_rating", None,
                   "Only ratings >= this are positives (default: all interactions).")
flags.DEFINE_integer("test_per_user", _DEFAULTS.test_per_user,
                     "Each user's last N interactions in time are held out for evaluation.")
flags.DEFINE_string("model_dir", None,
                    "Checkpoints, TensorBoard logs, config.json and metrics.json. Re-running "
                    "with the same dir resumes from its last checkpoint.")
flags.DEFINE_string("export_dir", None,
                    "If set, export a servable to EXPORT_DIR/<next version>/ after training "
                    "(as python -m serving.export does).")
flags.DEFINE_enum("export_index", _DEFAULTS.export_index, ["scann", "brute_force"],
                  "Index of the exported servable.")
flags.DEFINE_integer("synthetic_users", _DEFAULTS.synthetic_users, "Synthetic: users.")
flags.DEFINE_integer("synthetic_items", _DEFAULTS.synthetic_items, "Synthetic: items.")
flags.DEFINE_integer("synthetic_conditions", _DEFAULTS.synthetic_conditions,
                     "Synthetic: distinct condition values.")
flags.DEFINE_integer("synthetic_interactions", _DEFAULTS.synthetic_interactions,
                     "Synthetic: interactions.")
flags.DEFINE_integer("verbose", _DEFAULTS.verbose,
                     "0: silent, 1: progress bar (one line per epoch when not a terminal), "
                     "2: one line per epoch.")
flags.mark_flag_as_required("model_dir")

FLAGS = flags.FLAGS


def config_from_flags() -> TrainConfig:
  try:
    hidden_units = tuple(int(h) for h in FLAGS.hidden_units)
  except ValueError:
    raise app.UsageError(f"--hidden_units must be integers, got {FLAGS.hidden_units}.")
  return TrainConfig(
      dataset=FLAGS.dataset, data_dir=FLAGS.data_dir, model=FLAGS.model,
      condition_feature=FLAGS.condition_feature, embedding_dim=FLAGS.embedding_dim,
      hidden_units=hidden_units, epochs=FLAGS.epochs, batch_size=FLAGS.batch_size,
      learning_rate=FLAGS.learning_rate,
      normalize_embeddings=FLAGS.normalize_embeddings, temperature=FLAGS.temperature,
      extra_negatives=FLAGS.extra_negatives, seed=FLAGS.seed,
      min_rating=FLAGS.min_rating, test_per_user=FLAGS.test_per_user,
      model_dir=FLAGS.model_dir, export_dir=FLAGS.export_dir or "",
      export_index=FLAGS.export_index, synthetic_users=FLAGS.synthetic_users,
      synthetic_items=FLAGS.synthetic_items,
      synthetic_conditions=FLAGS.synthetic_conditions,
      synthetic_interactions=FLAGS.synthetic_interactions, verbose=FLAGS.verbose)


def main(argv):
  cli.reject_positional_arguments(argv)
  cli.quiet_logging_unless_asked()  # Keras prints the progress
  from tfcr.config import ConfigError  # pylint: disable=g-import-not-at-top
  from tfcr.data.errors import DataUnavailableError  # pylint: disable=g-import-not-at-top
  from tfcr.train import train_and_evaluate  # pylint: disable=g-import-not-at-top
  try:
    train_and_evaluate(config_from_flags())
  except (ConfigError, DataUnavailableError) as e:
    print(f"tfcr-train: error: {e}", file=sys.stderr)
    return 2
  return 0


def run():
  """Console-script entry point (`tfcr-train`)."""
  cli.run_binary(main, __name__)


if __name__ == "__main__":
  run()
