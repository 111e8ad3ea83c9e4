r"""Exports a trained model as a servable: `python -m serving.export`.

  python -m serving.export --model_dir=runs/cr --export_dir=exports/cr --index=scann

Writes EXPORT_DIR/<version>/ (TF Serving layout; the next integer unless
--export_version is given). Flags live here; the work is
tfcr.export.exporter.export_servable.

With --index=milvus the items go to a Milvus collection instead and the version folder
holds a query-only servable (tfcr.export.milvus_export.export_to_milvus):

  python -m serving.export --model_dir=runs/cr --export_dir=exports/cr-query \
      --index=milvus --milvus_uri=catalog.db --collection=items [--overwrite]
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags  # pylint: disable=g-import-not-at-top
from tfcr import cli  # pylint: disable=g-import-not-at-top
from tfcr.index import INDEX_KINDS  # pylint: disable=g-import-not-at-top

flags.DEFINE_string("model_dir", None, "A tfcr-train model dir (config, checkpoints).")
flags.DEFINE_string("export_dir", None, "Where version folders are written.")
flags.DEFINE_enum("index", "scann", list(INDEX_KINDS) + ["milvus"],
                  "scann: approximate, needs ScaNN's ops to load (our model server has "
                  "them); brute_force: exact, standard TF ops only (stock TF Serving); "
                  "milvus: the items to a Milvus collection (--milvus_uri, --collection) "
                  "and a query-only servable (user_id, condition -> query_embedding) to "
                  "export_dir.")
flags.DEFINE_string("milvus_uri", None,
                    "--index=milvus: a Milvus Lite file path ending in .db (created if "
                    "missing), or a Milvus server address such as http://127.0.0.1:19530.")
flags.DEFINE_string("collection", None, "--index=milvus: the Milvus collection to write.")
flags.DEFINE_bool("overwrite", False,
                  "--index=milvus: replace the collection if it exists (otherwise an "
                  "error); the new one is swapped in only once written and indexed.")
flags.DEFINE_string("milvus_index_type", "HNSW",
                    "--index=milvus: the Milvus index: HNSW, HNSW_SQ, IVF_FLAT, IVF_SQ8, "
                    "FLAT, AUTOINDEX (all of which Milvus Lite builds), IVF_PQ, DISKANN, "
                    "SCANN (a Milvus server); see docs/milvus.md for which at what size.")
flags.DEFINE_string("milvus_index_params", None,
                    "--index=milvus: JSON overriding the index's build parameters, e.g. "
                    "'{\"M\": 32, \"efConstruction\": 400}' (HNSW) or '{\"nlist\": 4096}' "
                    "(IVF_*). Defaults: tfcr.index.milvus.INDEX_DEFAULTS; IVF nlist ~4 sqrt(N).")
flags.DEFINE_string("milvus_search_params", None,
                    "--index=milvus: JSON overriding the default search parameters saved "
                    "with the servable for clients, e.g. '{\"ef\": 256}' (HNSW) or "
                    "'{\"nprobe\": 64}' (IVF_*). Defaults reach recall@10 >= 0.95.")
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
  if FLAGS.index == "milvus":
    return _export_to_milvus()
  from tfcr.export.exporter import export_servable  # pylint: disable=g-import-not-at-top
  path = export_servable(FLAGS.model_dir, FLAGS.export_dir, index=FLAGS.index,
                         max_k=FLAGS.max_k, version=FLAGS.export_version,
                         exact_threshold=FLAGS.exact_threshold,
                         recall_target=FLAGS.scann_recall_target)
  print(f"Exported {FLAGS.index} servable to {path}")
  return 0


def _export_to_milvus():
  from tfcr.errors import ConfigError  # pylint: disable=g-import-not-at-top
  from tfcr.index import milvus  # pylint: disable=g-import-not-at-top
  missing = [f"--{name}" for name in ("milvus_uri", "collection") if not FLAGS[name].value]
  if missing:
    raise ConfigError(f"--index=milvus needs {' and '.join(missing)} (e.g. "
                      f"--milvus_uri=catalog.db --collection=items).")
  index_params = milvus.parse_params(FLAGS.milvus_index_params, "milvus_index_params")
  search_params = milvus.parse_params(FLAGS.milvus_search_params, "milvus_search_params")
  # Settings and the URI first: a bad one fails in a second, before TensorFlow loads.
  milvus.index_choice(FLAGS.milvus_index_type, 1, FLAGS.milvus_uri, index_params,
                      search_params)
  milvus.open_for_writing(FLAGS.milvus_uri, FLAGS.collection, FLAGS.overwrite).close()
  from tfcr.export.milvus_export import export_to_milvus  # pylint: disable=g-import-not-at-top
  path = export_to_milvus(
      FLAGS.model_dir, FLAGS.export_dir, FLAGS.milvus_uri, FLAGS.collection,
      overwrite=FLAGS.overwrite, index_type=FLAGS.milvus_index_type,
      index_params=index_params, search_params=search_params,
      version=FLAGS.export_version)
  print(f"Exported the items to Milvus collection {FLAGS.collection} at "
        f"{FLAGS.milvus_uri} and the query servable to {path}")
  return 0


def run():
  cli.run_binary(main, __name__, program="export")


if __name__ == "__main__":
  run()
