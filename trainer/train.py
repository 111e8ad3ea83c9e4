r"""Trains a conditional retrieval model: `python -m trainer.train` or `tfcr-train`.

This file only turns flags into a `DataSource` and a `TrainConfig`, calls
`tfcr.training.loop.train_and_evaluate` (which tests and notebooks call directly) and,
with --export_dir, `tfcr.export.exporter.export_servable` after it.

  tfcr-train --dataset=movielens-100k --model=cr --model_dir=runs/cr
  tfcr-train --flagfile=my.flags
  TF_CONFIG=... tfcr-train --distribution_strategy=multi_worker_mirrored ...  (each worker)
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TF's C++ start-up chatter hides progress

from absl import flags  # pylint: disable=g-import-not-at-top

from tfcr import cli  # pylint: disable=g-import-not-at-top
from tfcr.index import INDEX_KINDS  # pylint: disable=g-import-not-at-top
from tfcr.training.config import TrainConfig  # pylint: disable=g-import-not-at-top
from trainer import training_flags  # pylint: disable=g-import-not-at-top

_DEFAULTS = TrainConfig()

training_flags.define_data()
training_flags.define_training()
flags.DEFINE_enum("model", _DEFAULTS.model, ["cr", "lr"],
                  "cr: conditional retrieval (query = user + condition); lr: the same "
                  "two-tower model without the condition (the paper's LR baseline).")
flags.DEFINE_integer("seed", _DEFAULTS.seed,
                     "Seed of initialisation, shuffling, condition sampling, evaluation and "
                     "of the synthetic data.")
flags.DEFINE_string("model_dir", None,
                    "Checkpoints, TensorBoard logs, config.json, data.json (the data's "
                    "fingerprint) and metrics.json. Re-running with the same dir resumes "
                    "from its last checkpoint.")
flags.DEFINE_string("export_dir", None,
                    "If set, export a servable to EXPORT_DIR/<next version>/ after training "
                    "(as python -m serving.export does).")
flags.DEFINE_enum("export_index", "scann", list(INDEX_KINDS),
                  "Index of the exported servable.")
flags.DEFINE_integer("verbose", _DEFAULTS.verbose,
                     "0: silent, 1: progress bar (one line per epoch when not a terminal), "
                     "2: one line per epoch.")
flags.mark_flag_as_required("model_dir")
flags.adopt_module_key_flags(training_flags)

FLAGS = flags.FLAGS


def config_from_flags() -> TrainConfig:
  return TrainConfig(**training_flags.training_values(), model=FLAGS.model, seed=FLAGS.seed,
                     model_dir=FLAGS.model_dir, verbose=FLAGS.verbose)


def main(argv):
  cli.reject_positional_arguments(argv)
  cli.quiet_logging_unless_asked()  # Keras prints the progress
  from tfcr.training.distribution import worker_role  # pylint: disable=g-import-not-at-top
  from tfcr.training.loop import train_and_evaluate  # pylint: disable=g-import-not-at-top
  config = config_from_flags().resolved()
  source = training_flags.data_source(FLAGS.seed).resolved()
  export_dir = os.path.abspath(os.path.expanduser(FLAGS.export_dir)) if FLAGS.export_dir else ""
  train_and_evaluate(config, source)
  # Under multi_worker_mirrored every worker runs this; the chief alone exports.
  if export_dir and worker_role(config.distribution_strategy).is_chief:
    from tfcr.export.exporter import export_servable  # pylint: disable=g-import-not-at-top
    path = export_servable(config.model_dir, export_dir, index=FLAGS.export_index)
    if config.verbose:
      print(f"Exported {FLAGS.export_index} servable to {path}")
  return 0


def run():
  """Console-script entry point (`tfcr-train`)."""
  cli.run_binary(main, __name__, program="tfcr-train")


if __name__ == "__main__":
  run()
