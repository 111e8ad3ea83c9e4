"""The query-only servable: (user id, condition) -> query embedding, for a catalog kept
in a vector database (`tfcr.export.milvus_export`) instead of inside the SavedModel.

Signature `serving_default` (inputs batched on dimension 0):

  user_id: string [B], condition: string [B]  ->  query_embedding: float32 [B, d]

with the full servable's id rules (`tfcr.export.servable`): an unknown user id uses the
unknown-user embedding, "" means no condition, an unknown condition value uses the OOV
embedding. Inputs of different batch sizes fail with InvalidArgument.

`save_query_servable` writes it as EXPORT_DIR/<version>/ the way the full exporter does:
to a temporary folder beside it, renamed at the end, with TF Serving's warm-up requests
in assets.extra/ and, when given, a JSON file describing where its catalog lives.
"""

import json
import os
import shutil
import tempfile
from typing import Optional

import tensorflow as tf

from tfcr.data.conditions import NUM_RESERVED
from tfcr.errors import ConfigError
from tfcr.export.servable import condition_table, id_variable, user_table

OUTPUT = "query_embedding"
CATALOG_FILE = "tfcr_catalog.json"  # in assets.extra/: where the items are searched


class QueryServable(tf.Module):
  """The query tower with its id tables, as one tf.Module."""

  def __init__(self, query_tower, conditional: bool, vocabularies):
    super().__init__(name="tfcr_query_servable")
    self.query_tower = query_tower
    self.conditional = conditional
    self.user_ids = id_variable(vocabularies.user_ids, "user_ids")
    self.user_table = user_table(self.user_ids)
    self.condition_table = condition_table(vocabularies.conditions)

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="user_id"),
                                tf.TensorSpec([None], tf.string, name="condition")])
  def serve(self, user_id, condition):
    check = tf.debugging.assert_equal(
        tf.size(condition), tf.size(user_id),
        message="condition has a different batch size (dimension 0) than user_id")
    with tf.control_dependencies([check]):
      inputs = {"user": self.user_table.lookup(user_id)}
    if self.conditional:
      inputs["condition"] = self.condition_table.lookup(condition)  # "" -> NONE_ID
    return {OUTPUT: self.query_tower(inputs)}


def _write_warmup_requests(saved_model_dir: str, vocabularies) -> None:
  """assets.extra/tf_serving_warmup_requests: one request, so a model server traces the
  signature before the version takes traffic."""
  from tensorflow_serving.apis import predict_pb2, prediction_log_pb2  # pylint: disable=g-import-not-at-top
  directory = os.path.join(saved_model_dir, "assets.extra")
  os.makedirs(directory, exist_ok=True)
  conditions = vocabularies.conditions
  condition = (conditions.vocabulary[NUM_RESERVED]
               if conditions.vocabulary_size > NUM_RESERVED else "")
  request = predict_pb2.PredictRequest()
  request.model_spec.signature_name = "serving_default"
  for name, value in (("user_id", str(vocabularies.user_ids[0])),
                      ("condition", str(condition))):
    request.inputs[name].CopyFrom(tf.make_tensor_proto([value], dtype=tf.string))
  log = prediction_log_pb2.PredictionLog(
      predict_log=prediction_log_pb2.PredictLog(request=request))
  with tf.io.TFRecordWriter(os.path.join(directory, "tf_serving_warmup_requests")) as writer:
    writer.write(log.SerializeToString())


def read_catalog_info(version_dir: str) -> Optional[dict]:
  """The catalog description saved with a query servable, or None when there is none."""
  path = os.path.join(version_dir, "assets.extra", CATALOG_FILE)
  if not os.path.exists(path):
    return None
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def save_query_servable(servable: QueryServable, vocabularies, target: str,
                        catalog_info: Optional[dict] = None) -> str:
  """Writes `servable` as the version folder `target` (which must not exist yet), via a
  temporary folder beside it; returns target."""
  export_dir = os.path.dirname(target)
  try:
    os.makedirs(export_dir, exist_ok=True)
  except OSError as e:
    raise ConfigError(f"export_dir={export_dir} is not writable: {e.strerror}.") from None
  staging = tempfile.mkdtemp(prefix=f".tmp-{os.path.basename(target)}-", dir=export_dir)
  try:
    tf.saved_model.save(servable, staging, signatures={"serving_default": servable.serve})
    _write_warmup_requests(staging, vocabularies)
    if catalog_info is not None:
      with open(os.path.join(staging, "assets.extra", CATALOG_FILE), "w",
                encoding="utf-8") as f:
        json.dump(catalog_info, f, indent=1, sort_keys=True)
    os.rename(staging, target)
  finally:
    shutil.rmtree(staging, ignore_errors=True)
  return target
