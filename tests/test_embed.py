"""tfcr.models.embed: the catalog embedded in batches gives the one-call result."""

import types

import numpy as np
import tensorflow as tf

from tfcr.models.embed import embed, item_embeddings


def test_item_embeddings_in_tiny_batches_equal_one_call_with_progress():
  tf.keras.utils.set_random_seed(0)
  tower = tf.keras.Sequential([tf.keras.layers.Embedding(23, 8), tf.keras.layers.Dense(5)])
  model = types.SimpleNamespace(candidate_tower=tower)
  whole = tower(np.arange(23, dtype=np.int32)).numpy()  # the reference: one call
  lines = []
  got = item_embeddings(model, 23, batch_size=4, log=lines.append)
  assert got.dtype == np.float32 and got.shape == (23, 5)
  np.testing.assert_allclose(got, whole, rtol=1e-6, atol=1e-7)
  assert lines and lines[-1].startswith("item embeddings: 23/23 rows (100%")


def test_embed_reports_every_batch_and_handles_empty_inputs():
  seen = []
  out = embed(lambda x: np.stack([x["a"], 2 * x["a"]], axis=1),
              {"a": np.arange(10, dtype=np.float32)}, batch_size=3,
              progress=lambda done, total: seen.append((done, total)))
  np.testing.assert_array_equal(out[:, 1], 2 * np.arange(10))
  assert seen == [(3, 10), (6, 10), (9, 10), (10, 10)]
  assert embed(lambda x: x["a"], {"a": np.zeros([0], np.float32)}).shape == (0, 0)
