"""Exact top-n by dot product over all items (see `tfcr.index` for the interface).

Standard TensorFlow ops only, so a stock TF Serving can load a servable that uses it.
"""

from typing import Optional

import numpy as np
import tensorflow as tf


class BruteForceIndex(tf.Module):
  """Exact top-n by dot product over all items."""

  # The condition filter's strict/unfiltered cond is inlined (tfcr.export.condition_filter):
  # its matmul runs 1.5x slower inside a called branch (measured at 1M items).
  call_filter_branches = False

  def __init__(self, embeddings: np.ndarray, name: str = "brute_force_index"):
    super().__init__(name=name)
    self.num_items = int(embeddings.shape[0])
    # asarray: no host copy when the embeddings are float32 already (the variable makes one).
    self.embeddings = tf.Variable(np.asarray(embeddings, np.float32), trainable=False,
                                  name="item_embeddings")
    self.vectors = self.embeddings  # shared with the condition filter (see tfcr.index)

  def bind(self) -> "BruteForceIndex":
    return self

  def search(self, queries: tf.Tensor, n: tf.Tensor, max_n: Optional[int] = None):
    """max_n: a bound on n known when the graph is built (see ScannIndex)."""
    scores = tf.linalg.matmul(queries, self.embeddings, transpose_b=True)
    if max_n is None or max_n > self.num_items:
      n = tf.minimum(n, self.num_items)
    top = tf.math.top_k(scores, k=n)
    return top.values, top.indices
