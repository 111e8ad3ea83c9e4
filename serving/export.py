r"""Exports a trained model as a servable: `python -m serving.export`.

  python -m serving.export --model_dir=runs/cr --export_dir=exports/cr --index=scann

Writes EXPORT_DIR/<version>/ (TF Serving layout; the next integer unless
--export_version is given). Flags live here; the work is
tfcr.export.exporter.export_servable.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags  # pylint: disable=g-import-not-at-top
from tfcr import cli  # pylint: disable=g-import-not-at-top
from tfcr.index import INDEX_KINDS  # pylint: disable=g-import-not-at-top

flags.DEFINE_string("model_dir", None, "A tfcr-train model dir (config, checkpoints).")
flags.DEFINE_string("export_dir", None, "Where version folders are written.")
flags.DEFINE_enum("index", "scann", list(INDEX_KINDS),
                  "scann: approximate, needs ScaNN's ops to load (our model server has "
                  "them); brute_force: exact, standard TF ops only (stock TF Serving).")
flags.DEFINE_integer("max_k", 100, "Largest k a request may ask for.")
flags.DEFINE_integer("export_version", None, "Version folder; default: the next integer.")
flags.DEFINE_integer("exact_threshold", None,
                     "Strict filter: conditions with at most this many items are scored "
                     "exactly instead of by over-fetching (default: 1% of the catalog, the "
                     "measured crossover).")
flags.DEFINE_float("scann_recall_target", 0.97,
                   "ScaNN index: search the fewest leaves whose recall@10 and recall@max_k "
                   "against exact search, on a sample of the model's own queries, reach "
                   "this share of what searching every leaf reaches (measured at export). "
                   "Lower is faster; 1.0 loses nothing to the partitioning.")
flags.mark_flags_as_required(["model_dir", "export_dir"])
FLAGS = flags.FLAGS


def main(argv):
  cli.reject_positional_arguments(argv)
  cli.quiet_logging_unless_asked()
  from tfcr.export.exporter import export_servable  # pylint: disable=g-import-not-at-top
  path = export_servable(FLAGS.model_dir, FLAGS.export_dir, index=FLAGS.index,
                         max_k=FLAGS.max_k, version=FLAGS.export_version,
                         exact_threshold=FLAGS.exact_threshold,
                         recall_target=FLAGS.scann_recall_target)
  print(f"Exported {FLAGS.index} servable to {path}")
  return 0


def run():
  cli.run_binary(main, __name__, program="export")


if __name__ == "__main__":
  run()
