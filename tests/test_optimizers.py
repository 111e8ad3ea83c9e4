"""tfcr.training.optimizers: LazyAdam against a NumPy Adam applied to the touched rows."""

import numpy as np
import pytest
import tensorflow as tf

from tfcr.errors import ConfigError
from tfcr.training.optimizers import make_optimizer


def _numpy_lazy_adam(table, steps, lr=0.1, b1=0.9, b2=0.999, eps=1e-7):
  """steps: a list of {row: gradient row}; Adam's moments and update on those rows only."""
  table, m, v = table.copy(), np.zeros_like(table), np.zeros_like(table)
  for t, grads in enumerate(steps, start=1):
    alpha = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
    for row, g in grads.items():
      m[row] = b1 * m[row] + (1 - b1) * g
      v[row] = b2 * v[row] + (1 - b2) * g * g
      table[row] -= alpha * m[row] / (np.sqrt(v[row]) + eps)
  return table


def test_lazy_adam_updates_only_the_rows_a_batch_touches():
  start = np.arange(8, dtype=np.float32).reshape(4, 2)
  table = tf.Variable(start)
  optimizer = make_optimizer("lazy_adam", 0.1)
  batches = [np.array([0, 2, 0]), np.array([1])]  # row 0 twice: its gradients add up
  for rows in batches:
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(tf.gather(table, rows) * [[1.0, -2.0]])
    optimizer.apply_gradients([(tape.gradient(loss, table), table)])
  expected = _numpy_lazy_adam(start.astype(np.float64), [
      {0: np.array([2.0, -4.0]), 2: np.array([1.0, -2.0])}, {1: np.array([1.0, -2.0])}])
  np.testing.assert_allclose(table.numpy(), expected, rtol=1e-5)
  # The row no batch touched never moved.
  assert table.numpy()[3].tolist() == start[3].tolist()


def test_dense_gradients_get_plain_adam():
  lazy, plain = tf.Variable([1.0, -1.0]), tf.Variable([1.0, -1.0])
  for variable, name in ((lazy, "lazy_adam"), (plain, "adam")):
    optimizer = make_optimizer(name, 0.05)
    for _ in range(3):
      with tf.GradientTape() as tape:
        loss = tf.reduce_sum(variable ** 2)
      optimizer.apply_gradients([(tape.gradient(loss, variable), variable)])
  np.testing.assert_allclose(lazy.numpy(), plain.numpy(), rtol=1e-6)
  with pytest.raises(ConfigError, match="valid values: adam, lazy_adam, adagrad"):
    make_optimizer("sgd", 0.1)
