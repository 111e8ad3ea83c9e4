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
from trainer import training_flags  # pylint: disable=g-import-not-at-top

_DEFAULTS = TrainConfig()

training_flags.define()
flags.DEFINE_enum("model", _DEFAULTS.model, ["cr", "lr"],
                  "cr: conditional retrieval (query = user + condition); lr: the same "
                  "two-tower model without the condition (the paper's LR baseline).")
flags.DEFINE_integer("seed", _DEFAULTS.seed,
                     "Seed of initialisation, shuffling, condition sampling and evaluation.")
flags.DEFINE_string("model_dir", None,
                    "Checkpoints, TensorBoard logs, config.json and metrics.json. Re-running "
                    "with the same dir resumes from its last checkpoint.")
flags.DEFINE_string("export_dir", None,
                    "If set, export a servable to EXPORT_DIR/<next version>/ after training "
                    "(as python -m serving.export does).")
flags.DEFINE_enum("export_index", _DEFAULTS.export_index, ["scann", "brute_force"],
                  "Index of the exported servable.")
flags.DEFINE_integer("verbose", _DEFAULTS.verbose,
                     "0: silent, 1: progress bar (one line per epoch when not a terminal), "
                     "2: one line per epoch.")
flags.mark_flag_as_required("model_dir")
flags.adopt_module_key_flags(training_flags)

FLAGS = flags.FLAGS


def config_from_flags() -> TrainConfig:
  try:
    values = training_flags.config_values()
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  return TrainConfig(**values, model=FLAGS.model, seed=FLAGS.seed, model_dir=FLAGS.model_dir,
                     export_dir=FLAGS.export_dir or "", export_index=FLAGS.export_index,
                     verbose=FLAGS.verbose)


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
