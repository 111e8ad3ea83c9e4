"""export_servable(model_dir, export_dir): a trained model as EXPORT_DIR/<version>/.

The version folder is a TF Serving SavedModel (`tfcr.export.servable`) plus TF Serving's
warm-up requests; it is written to a temporary folder beside it and renamed at the end, so
a model server polling export_dir never sees half a version.
"""

import os
import re
import shutil
import tempfile
import time
from typing import Callable, List, Optional

import tensorflow as tf

from tfcr.data.conditions import NUM_RESERVED
from tfcr.errors import ConfigError
from tfcr.export.servable import FILTERS, Servable
from tfcr.index import tuning as index_tuning
from tfcr.index import INDEX_KINDS
from tfcr.models.embed import item_embeddings
from tfcr.training.model_dir import load_trained_model
from tfcr.utils.resources import folder_bytes, peak_rss_bytes


def _write_warmup_requests(saved_model_dir: str, vocabularies) -> None:
  """Writes assets.extra/tf_serving_warmup_requests (TF Serving's warm-up file).

  ScaNN rebuilds its searcher from the saved state on the first call (about a second at
  1M items); a model server replays these requests before a version takes traffic.
  """
  from tensorflow_serving.apis import predict_pb2, prediction_log_pb2  # pylint: disable=g-import-not-at-top
  directory = os.path.join(saved_model_dir, "assets.extra")
  os.makedirs(directory, exist_ok=True)
  condition = (vocabularies.conditions.vocabulary[NUM_RESERVED]
               if vocabularies.conditions.vocabulary_size > NUM_RESERVED else "")
  with tf.io.TFRecordWriter(os.path.join(directory, "tf_serving_warmup_requests")) as writer:
    for filter_ in FILTERS:
      request = predict_pb2.PredictRequest()
      request.model_spec.signature_name = "serving_default"
      for name, value, dtype in (("user_id", str(vocabularies.user_ids[0]), tf.string),
                                 ("condition", str(condition), tf.string),
                                 ("k", 1, tf.int32), ("filter", filter_, tf.string)):
        request.inputs[name].CopyFrom(tf.make_tensor_proto([value], dtype=dtype))
      log = prediction_log_pb2.PredictionLog(
          predict_log=prediction_log_pb2.PredictLog(request=request))
      writer.write(log.SerializeToString())


def version_target(export_dir: str, version: Optional[int]):
  """(absolute export_dir, version, its folder) of the version to write: `version`, or
  the next one. Raises ConfigError for a version < 1 or a folder that exists."""
  export_dir = os.path.abspath(os.path.expanduser(export_dir))
  version = next_version(export_dir) if version is None else int(version)
  if version < 1:
    raise ConfigError(f"version must be a positive integer, got {version}.")
  target = os.path.join(export_dir, str(version))
  if os.path.exists(target):
    raise ConfigError(f"{target} already exists; pick another version or leave it out to "
                      f"use the next one.")
  return export_dir, version, target


def versions(export_dir: str) -> List[int]:
  """The numeric version folders of export_dir, ascending ([] when there is none)."""
  if not os.path.isdir(export_dir):
    return []
  return sorted(int(n) for n in os.listdir(export_dir) if re.fullmatch(r"\d+", n))


def version_path(path: str) -> str:
  """A version folder as it is, or EXPORT_DIR's highest version; raises
  FileNotFoundError when `path` is neither."""
  if os.path.exists(os.path.join(path, "saved_model.pb")):
    return path
  found = versions(path)
  if not found:
    raise FileNotFoundError(f"{path} holds no SavedModel nor numeric version folder.")
  return os.path.join(path, str(found[-1]))


def next_version(export_dir: str) -> int:
  """1 + the highest numeric version folder in export_dir (1 when there is none)."""
  return max(versions(export_dir), default=0) + 1


def export_servable(model_dir: str, export_dir: str, index: str = "scann", max_k: int = 100,
                    version: Optional[int] = None,
                    exact_threshold: Optional[int] = None,
                    recall_target: float = index_tuning.DEFAULT_RECALL_TARGET,
                    log: Callable[[str], None] = print) -> str:
  """Exports the model of `model_dir` as EXPORT_DIR/<version>/; returns that path.

  recall_target: the ScaNN index searches the fewest leaves whose recall@10 and
  recall@max_k against exact search, on a sample of the model's queries, reach this share
  of what searching every leaf reaches (the choice is reported through `log`).

  Written to a temporary folder beside it and renamed at the end, so a model server
  polling export_dir never sees half a version.
  """
  if index not in INDEX_KINDS:
    raise ConfigError(f"Unknown index={index!r}; valid values: {', '.join(INDEX_KINDS)}.")
  if not 0 < recall_target <= 1:
    raise ConfigError(f"recall_target must be in (0, 1], got {recall_target}.")
  export_dir, version, _ = version_target(export_dir, version)
  started = time.perf_counter()
  config, model, vocabularies = load_trained_model(model_dir)
  # A k beyond the catalog means "everything": cap it rather than refuse small catalogs.
  max_k = min(max_k, len(vocabularies.item_ids))
  embeddings = item_embeddings(model, len(vocabularies.item_ids), log=log)
  servable = Servable(model.query_tower, config.model == "cr", vocabularies, embeddings,
                      index=index, max_k=max_k, exact_threshold=exact_threshold,
                      recall_target=recall_target)
  del embeddings  # the servable holds its own copies
  built = time.perf_counter()
  if getattr(servable.index, "tuning", None) is not None:
    for line in servable.index.describe_tuning().splitlines():
      log(line)
  log(f"Built the {index} servable of {len(vocabularies.item_ids):,} items in "
      f"{built - started:.1f} s; saving it.")
  target = save_version(servable, vocabularies, export_dir, version)
  log(f"Export: {time.perf_counter() - started:.1f} s in all, peak RSS "
      f"{peak_rss_bytes() / 2**30:.2f} GiB, SavedModel {folder_bytes(target) / 2**20:,.0f} MiB.")
  return target


def _make_dir(export_dir: str) -> None:
  try:
    os.makedirs(export_dir, exist_ok=True)
  except OSError as e:
    raise ConfigError(f"export_dir={export_dir} is not writable: {e.strerror}.") from None


def save_version(servable: Servable, vocabularies, export_dir: str, version: int) -> str:
  """Saves `servable` as export_dir/<version>/ with its warm-up requests; returns the path.

  Written to a temporary folder beside it and renamed at the end, so a model server
  polling export_dir never sees half a version.
  """
  target = os.path.join(export_dir, str(version))
  _make_dir(export_dir)
  staging = tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=export_dir)
  try:
    tf.saved_model.save(
        servable, staging,
        signatures={"serving_default": servable.serve,
                    "serving_exclusions": servable.serve_exclusions},
        options=tf.saved_model.SaveOptions(namespace_whitelist=["Scann"]))
    _write_warmup_requests(staging, vocabularies)
    os.rename(staging, target)
  finally:
    shutil.rmtree(staging, ignore_errors=True)
  return target
