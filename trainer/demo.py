r"""The end-to-end demo: `python -m trainer.demo` (what `make demo` runs).

Fetches MovieLens-100k, trains CR (and the LR baseline), exports the ScaNN servable,
starts the model server on free localhost ports, queries it over REST for a few users,
prints the results and the evaluation summary, then stops the server.

  python -m trainer.demo                       # reuses runs/demo from an earlier run
  python -m trainer.demo --retrain             # starts afresh
  python -m trainer.demo --users=196,405 --conditions=Sci-Fi,Romance --k=10
  python -m trainer.demo --keep_serving        # leave the server up for your own curl

The work is tfcr.demo.run_demo; this file only turns flags into a DemoConfig.
"""

import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # no C++ start-up chatter in the tour

from absl import flags  # pylint: disable=g-import-not-at-top

from tfcr import cli  # pylint: disable=g-import-not-at-top
from tfcr.config import TrainConfig  # pylint: disable=g-import-not-at-top

_TRAIN = TrainConfig()

flags.DEFINE_string("workdir", "runs/demo",
                    "Where the models (cr/, lr/), the export (export/) and server.log go. "
                    "Re-runs reuse what is there.")
flags.DEFINE_bool("retrain", False, "Delete --workdir's models and export and start afresh.")
flags.DEFINE_string("dataset", _TRAIN.dataset,
                    "movielens-100k, synthetic or tfds:<name> (as for tfcr-train).")
flags.DEFINE_string("data_dir", _TRAIN.data_dir, "Where data sets are cached.")
flags.DEFINE_string("condition_feature", None,
                    "Item feature used as the condition (default: genres on MovieLens).")
flags.DEFINE_integer("epochs", _TRAIN.epochs, "Training epochs of CR and LR.")
flags.DEFINE_integer("batch_size", _TRAIN.batch_size, "Training batch size.")
flags.DEFINE_integer("synthetic_users", _TRAIN.synthetic_users, "--dataset=synthetic: users.")
flags.DEFINE_integer("synthetic_items", _TRAIN.synthetic_items, "--dataset=synthetic: items.")
flags.DEFINE_integer("synthetic_interactions", _TRAIN.synthetic_interactions,
                     "--dataset=synthetic: interactions.")
flags.DEFINE_bool("compare_lr", True, "Also train LR, the baseline, for the summary.")
flags.DEFINE_enum("index", "scann", ["scann", "brute_force"], "Index of the servable.")
flags.DEFINE_list("users", [], "User ids to query (default: three users of the data).")
flags.DEFINE_list("conditions", [],
                  "Condition per user, e.g. Sci-Fi,Romance (default: each user's third "
                  "most frequent one).")
flags.DEFINE_integer("k", 5, "Items per request.")
flags.DEFINE_string("model_name", "", "Name the model is served under (default: from "
                    "--dataset, e.g. movielens_100k).")
flags.DEFINE_integer("rest_port", 0, "REST port of the model server (0: a free one).")
flags.DEFINE_integer("grpc_port", 0, "gRPC port of the model server (0: a free one).")
flags.DEFINE_bool("keep_serving", False,
                  "After the demo requests, keep the server up until Ctrl-C.")
FLAGS = flags.FLAGS


def main(argv):
  cli.reject_positional_arguments(argv)
  cli.quiet_logging_unless_asked()
  from tfcr.config import ConfigError  # pylint: disable=g-import-not-at-top
  from tfcr.data.errors import DataUnavailableError  # pylint: disable=g-import-not-at-top
  from tfcr.demo import DemoConfig, run_demo  # pylint: disable=g-import-not-at-top
  from tfcr.local_server import ServerError  # pylint: disable=g-import-not-at-top
  train = TrainConfig(dataset=FLAGS.dataset, data_dir=FLAGS.data_dir,
                      condition_feature=FLAGS.condition_feature, epochs=FLAGS.epochs,
                      batch_size=FLAGS.batch_size, synthetic_users=FLAGS.synthetic_users,
                      synthetic_items=FLAGS.synthetic_items,
                      synthetic_interactions=FLAGS.synthetic_interactions, verbose=2)
  config = DemoConfig(workdir=FLAGS.workdir, train=train, compare_lr=FLAGS.compare_lr,
                      retrain=FLAGS.retrain, index=FLAGS.index, users=FLAGS.users,
                      conditions=FLAGS.conditions, k=FLAGS.k, model_name=FLAGS.model_name,
                      rest_port=FLAGS.rest_port, grpc_port=FLAGS.grpc_port,
                      keep_serving=FLAGS.keep_serving)
  try:
    result = run_demo(config)
  except (ConfigError, DataUnavailableError, ServerError) as e:
    print(f"demo: error: {e}", file=sys.stderr)
    return 2
  except KeyboardInterrupt:
    print("demo: interrupted; the model server was stopped.", file=sys.stderr)
    return 130
  return 0 if result["server_exit"] == 0 else 1


def run():
  """Console-script entry point."""
  cli.run_binary(main, __name__)


if __name__ == "__main__":
  run()
