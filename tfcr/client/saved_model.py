"""`SavedModelClient`: the same calls as `RestClient` on an export loaded in this process
(no server)."""

import os
from typing import List, Sequence

from tfcr.client.base import Client
from tfcr.client.query import (Query, Results, ServingError, request_columns,
                               results_from_outputs, signature_for)


class SavedModelClient(Client):
  """The same calls on an export loaded in this process (no server).

  path: a version folder, EXPORT_DIR/<version>, or EXPORT_DIR (its highest version).
  """

  def __init__(self, path: str):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from tfcr.index.scann_cpu import load_scann_ops  # pylint: disable=g-import-not-at-top
    load_scann_ops()  # registers ScaNN's ops
    if not os.path.exists(os.path.join(path, "saved_model.pb")):
      versions = [int(n) for n in os.listdir(path) if n.isdigit()] if os.path.isdir(path) else []
      if not versions:
        raise FileNotFoundError(f"{path} holds no SavedModel nor numeric version folder.")
      path = os.path.join(path, str(max(versions)))
    self.path = path
    self._tf = tf
    self._servable = tf.saved_model.load(path)

  def predict(self, queries: Sequence[Query]) -> List[Results]:
    tf = self._tf
    queries = list(queries)
    columns = request_columns(queries)
    inputs = {name: tf.constant(value, tf.int32 if name == "k" else tf.string)
              for name, value in columns.items()}
    try:
      outputs = self._servable.signatures[signature_for(queries)](**inputs)
    except tf.errors.InvalidArgumentError as e:
      raise ServingError(e.message) from None
    return results_from_outputs(queries, {k: v.numpy() for k, v in outputs.items()})
