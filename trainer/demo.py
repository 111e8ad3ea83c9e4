r"""The end-to-end demo: `python -m trainer.demo` (what `make demo` runs).

Fetches MovieLens-100k, trains CR (and the LR baseline), exports the ScaNN servable,
starts the model server on free localhost ports, queries it over REST for a few users,
prints the results and the evaluation summary, then stops the server.

  python -m trainer.demo                       # reuses runs/demo from an earlier run
  python -m trainer.demo --retrain             # starts afresh
  python -m trainer.demo --users=196,405 --conditions=Sci-Fi,Romance --k=10
  python -m trainer.demo --keep_serving        # leave the server up for your own curl

The work is tfcr.demo.tour.run_demo; this file only turns flags into a DemoConfig.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # no C++ start-up chatter in the tour

from absl import flags  # pylint: disable=g-import-not-at-top

from tfcr import cli  # pylint: disable=g-import-not-at-top
from tfcr.index import INDEX_KINDS  # pylint: disable=g-import-not-at-top
from tfcr.training.config import TrainConfig  # pylint: disable=g-import-not-at-top
from trainer import training_flags  # pylint: disable=g-import-not-at-top

_TRAIN = TrainConfig()

flags.DEFINE_string("workdir", "runs/demo",
                    "Where the models (cr/, lr/), the export (export/) and server.log go. "
                    "Re-runs reuse what is there.")
flags.DEFINE_bool("retrain", False, "Delete --workdir's models and export and start afresh.")
training_flags.define_data(" (as for tfcr-train).", files=False)
flags.DEFINE_string("condition_feature", None,
                    "Item feature used as the condition (default: the data set's own, "
                    "genres on MovieLens).")
flags.DEFINE_integer("epochs", _TRAIN.epochs, "Training epochs of CR and LR.")
flags.DEFINE_integer("batch_size", _TRAIN.batch_size, "Training batch size.")
flags.DEFINE_integer("seed", _TRAIN.seed, "Seed of training (and of the synthetic data).")
flags.DEFINE_bool("compare_lr", True, "Also train LR, the baseline, for the summary.")
flags.DEFINE_enum("index", "scann", list(INDEX_KINDS), "Index of the servable.")
flags.DEFINE_list("users", [], "User ids to query (default: three users of the data).")
flags.DEFINE_list("conditions", [],
                  "Condition per user, e.g. Sci-Fi,Romance (default: each user's third "
                  "most frequent one).")
flags.DEFINE_integer("k", 5, "Items per request.")
flags.DEFINE_string("model_name", "", "Name the model is served under (default: from "
                    "the data set's name, e.g. movielens_100k).")
flags.DEFINE_integer("rest_port", 0, "REST port of the model server (0: a free one).")
flags.DEFINE_integer("grpc_port", 0, "gRPC port of the model server (0: a free one).")
flags.DEFINE_bool("keep_serving", False,
                  "After the demo requests, keep the server up until Ctrl-C.")
flags.adopt_module_key_flags(training_flags)
FLAGS = flags.FLAGS


def main(argv):
  cli.reject_positional_arguments(argv)
  cli.quiet_logging_unless_asked()
  from tfcr.client.local_server import ServerError  # pylint: disable=g-import-not-at-top
  from tfcr.demo.tour import DemoConfig, run_demo  # pylint: disable=g-import-not-at-top
  train = TrainConfig(condition_feature=FLAGS.condition_feature, epochs=FLAGS.epochs,
                      batch_size=FLAGS.batch_size, seed=FLAGS.seed, verbose=2)
  config = DemoConfig(workdir=FLAGS.workdir, train=train,
                      data=training_flags.data_source(FLAGS.seed),
                      compare_lr=FLAGS.compare_lr, retrain=FLAGS.retrain, index=FLAGS.index,
                      users=FLAGS.users, conditions=FLAGS.conditions, k=FLAGS.k,
                      model_name=FLAGS.model_name, rest_port=FLAGS.rest_port,
                      grpc_port=FLAGS.grpc_port, keep_serving=FLAGS.keep_serving)
  try:
    result = run_demo(config)
  except ServerError as e:
    return cli.fail("demo", e)
  except KeyboardInterrupt:
    print("demo: interrupted; the model server was stopped.", file=sys.stderr)
    return 130
  return 0 if result["server_exit"] == 0 else 1


def run():
  """Console-script entry point."""
  cli.run_binary(main, __name__, program="demo")


if __name__ == "__main__":
  run()
