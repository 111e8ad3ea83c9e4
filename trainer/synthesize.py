r"""Writes the synthetic data set as files: `python -m trainer.synthesize`.

  python -m trainer.synthesize --output_dir=data/synth --num_users=1000000 \
      --num_items=1000000 --num_interactions=10000000 --format=parquet

Writes OUTPUT_DIR/interactions/part-*.parquet (user_id, item_id, timestamp, rating),
OUTPUT_DIR/items.parquet (item_id, topics as a list, title, year) and
OUTPUT_DIR/users.parquet (user_id, segment, region): the planted structure of
tfcr.data.synthetic, in the layout `--dataset=files` reads, e.g.

  tfcr-train --dataset=files --interactions=data/synth/interactions \
      --items=data/synth/items.parquet --users=data/synth/users.parquet \
      --rating_column=rating --condition_feature=topics --model_dir=runs/synth
"""

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags  # pylint: disable=g-import-not-at-top

from tfcr import cli  # pylint: disable=g-import-not-at-top
from tfcr.data.table_writer import WRITE_FORMATS  # pylint: disable=g-import-not-at-top

flags.DEFINE_string("output_dir", None, "A new folder for the tables.")
flags.DEFINE_integer("num_users", 1000, "Users.")
flags.DEFINE_integer("num_items", 2000, "Items.")
flags.DEFINE_integer("num_interactions", 50_000, "Interactions (>= 3 per user).")
flags.DEFINE_integer("num_conditions", 20, "Distinct values of the items' `topics`.")
flags.DEFINE_enum("format", "parquet", list(WRITE_FORMATS),
                  "parquet (topics as a list column) or csv (topics joined by '|').")
flags.DEFINE_integer("shard_rows", 1_000_000, "Interactions per shard file.")
flags.DEFINE_integer("seed", 42, "Seed of the generator.")
flags.mark_flag_as_required("output_dir")
FLAGS = flags.FLAGS


def main(argv):
  cli.reject_positional_arguments(argv)
  from tfcr.data import synthetic  # pylint: disable=g-import-not-at-top
  from tfcr.data.table_writer import write_tables  # pylint: disable=g-import-not-at-top
  from tfcr.errors import ConfigError  # pylint: disable=g-import-not-at-top
  config = synthetic.SyntheticConfig(
      n_users=FLAGS.num_users, n_items=FLAGS.num_items, n_conditions=FLAGS.num_conditions,
      n_interactions=FLAGS.num_interactions, seed=FLAGS.seed)
  try:
    config.validate()
  except ValueError as e:
    raise ConfigError(str(e)) from None
  if os.path.exists(FLAGS.output_dir):  # before minutes of generating
    raise ConfigError(f"output_dir={os.path.abspath(FLAGS.output_dir)} exists; give a new "
                      f"folder.")
  started = time.perf_counter()
  print(f"Generating {FLAGS.num_interactions} interactions of {FLAGS.num_users} users "
        f"and {FLAGS.num_items} items...", flush=True)
  data = synthetic.generate(n_users=FLAGS.num_users, n_items=FLAGS.num_items,
                            n_conditions=FLAGS.num_conditions,
                            n_interactions=FLAGS.num_interactions, seed=FLAGS.seed)
  path = write_tables(data, FLAGS.output_dir, file_format=FLAGS.format,
                      shard_rows=FLAGS.shard_rows, log=lambda m: print(m, flush=True))
  print(f"Wrote {path} in {time.perf_counter() - started:.1f} s", flush=True)
  return 0


def run():
  cli.run_binary(main, __name__, program="synthesize")


if __name__ == "__main__":
  run()
