"""`SavedModelClient`: the same calls as `RestClient` on an export loaded in this process
(no server). `load_servable` is the one way tfcr loads a servable in process."""

from typing import List, Sequence

from tfcr.client.base import Client
from tfcr.client.query import (Query, Results, ServingError, request_columns,
                               results_from_outputs, signature_for)


def load_servable(path: str):
  """(version folder, loaded SavedModel) of a version folder or of EXPORT_DIR's highest
  version, with ScaNN's ops registered first (harmless for brute-force servables)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfcr.export.exporter import version_path  # pylint: disable=g-import-not-at-top
  from tfcr.index.scann_cpu import load_scann_ops  # pylint: disable=g-import-not-at-top
  load_scann_ops()
  path = version_path(path)
  return path, tf.saved_model.load(path)


class SavedModelClient(Client):
  """The same calls on an export loaded in this process (no server).

  path: a version folder, EXPORT_DIR/<version>, or EXPORT_DIR (its highest version).
  """

  def __init__(self, path: str):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    self.path, self._servable = load_servable(path)
    self._tf = tf

  def signature(self, name: str):
    """The loaded servable's signature function `name` (e.g. serving_exclusions)."""
    return self._servable.signatures[name]

  def predict(self, queries: Sequence[Query]) -> List[Results]:
    tf = self._tf
    queries = list(queries)
    columns = request_columns(queries)
    inputs = {name: tf.constant(value, tf.int32 if name == "k" else tf.string)
              for name, value in columns.items()}
    try:
      outputs = self.signature(signature_for(queries))(**inputs)
    except tf.errors.InvalidArgumentError as e:
      raise ServingError(e.message) from None
    return results_from_outputs(queries, {k: v.numpy() for k, v in outputs.items()})
