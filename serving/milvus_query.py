r"""Queries a catalog exported to Milvus: `python -m serving.milvus_query`.

  python -m serving.milvus_query --servable=exports/cr-query --user_id=u0001 \
      --condition=c03 --filter=strict --k=10

Embeds (user, condition) with the query servable (in this process, or through a model
server with --rest_url and --model_name) and searches the Milvus collection the export
recorded (or --milvus_uri / --collection). Flags live here; the work is
tfcr.client.milvus.MilvusSearchClient.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags  # pylint: disable=g-import-not-at-top
from tfcr import cli  # pylint: disable=g-import-not-at-top

flags.DEFINE_string("servable", None,
                    "A query servable (tfcr-export --index=milvus): EXPORT_DIR or one of "
                    "its version folders, run in this process.")
flags.DEFINE_string("rest_url", None,
                    "Instead of --servable: a model server's REST root serving the query "
                    "servable, e.g. http://127.0.0.1:8501 (with --model_name).")
flags.DEFINE_string("model_name", None, "With --rest_url: the query servable's name.")
flags.DEFINE_string("milvus_uri", None,
                    "Milvus Lite file (.db) or server address; default: the one the "
                    "export recorded with --servable.")
flags.DEFINE_string("collection", None, "Default: the one the export recorded.")
flags.DEFINE_list("user_id", None, "User ids to query (comma-separated).")
flags.DEFINE_string("condition", "", 'A condition value, e.g. "Comedy"; "" for none.')
flags.DEFINE_integer("k", 10, "Results per user.")
flags.DEFINE_enum("filter", "none", ["none", "strict"],
                  "strict: only items having the condition (a Milvus array_contains "
                  "filter); none: the model's ranking.")
flags.DEFINE_list("exclude", [], "Item ids to leave out (comma-separated).")
flags.DEFINE_string("milvus_search_params", None,
                    "JSON overriding the search parameters the export recorded, e.g. "
                    "'{\"ef\": 256}'.")
flags.mark_flags_as_required(["user_id"])
FLAGS = flags.FLAGS


def main(argv):
  cli.reject_positional_arguments(argv)
  cli.quiet_logging_unless_asked()
  from tfcr.client.formatting import format_results  # pylint: disable=g-import-not-at-top
  from tfcr.client.milvus import MilvusSearchClient  # pylint: disable=g-import-not-at-top
  from tfcr.client.query import Query  # pylint: disable=g-import-not-at-top
  from tfcr.index.milvus import parse_params  # pylint: disable=g-import-not-at-top
  client = MilvusSearchClient(
      servable=FLAGS.servable, milvus_uri=FLAGS.milvus_uri, collection=FLAGS.collection,
      rest_url=FLAGS.rest_url, model_name=FLAGS.model_name,
      search_params=parse_params(FLAGS.milvus_search_params, "milvus_search_params"))
  queries = [Query(u, FLAGS.condition, FLAGS.k, FLAGS.filter, tuple(FLAGS.exclude))
             for u in FLAGS.user_id]
  for results in client.predict(queries):
    print(format_results(results))
  return 0


def run():
  cli.run_binary(main, __name__, program="tfcr-milvus-query")


if __name__ == "__main__":
  run()
