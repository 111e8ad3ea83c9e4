"""The optimizers a training run can use: `make_optimizer(name, learning_rate)`.

* adam: Keras's Adam. On a sparse (embedding) gradient it still decays the moments and
  updates every row of the table, each step: with a million-row id table that dense work,
  not the model, is most of a step (and its 256 MB temporaries mostly page faults).
* lazy_adam: Adam on the rows a batch touches only (the moments of the other rows wait),
  as recommenders with large id tables use; dense gradients get plain Adam's update.
* adagrad: Adagrad, sparse by nature.
"""

import tensorflow as tf

from tfcr.errors import ConfigError
from tfcr.training.config import OPTIMIZERS


class LazyAdam(tf.keras.optimizers.Adam):
  """Adam whose sparse updates touch only the gradient's rows (repeated rows summed)."""

  def update_step(self, gradient, variable):
    if not isinstance(gradient, tf.IndexedSlices):
      return super().update_step(gradient, variable)
    dtype = variable.dtype
    step = tf.cast(self.iterations + 1, dtype)
    beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
    alpha = (tf.cast(self.learning_rate, dtype) * tf.sqrt(1 - tf.pow(beta_2, step))
             / (1 - tf.pow(beta_1, step)))
    index = self._index_dict[self._var_key(variable)]
    m, v = self._momentums[index], self._velocities[index]
    rows, position = tf.unique(gradient.indices)
    values = tf.math.unsorted_segment_sum(gradient.values, position, tf.size(rows))
    m_rows = beta_1 * tf.gather(m, rows) + (1 - beta_1) * values
    v_rows = beta_2 * tf.gather(v, rows) + (1 - beta_2) * tf.square(values)
    m.scatter_update(tf.IndexedSlices(m_rows, rows))
    v.scatter_update(tf.IndexedSlices(v_rows, rows))
    variable.scatter_sub(tf.IndexedSlices(alpha * m_rows / (tf.sqrt(v_rows) + self.epsilon),
                                          rows))
    return None


def make_optimizer(name: str, learning_rate: float) -> tf.keras.optimizers.Optimizer:
  if name == "adam":
    return tf.keras.optimizers.Adam(learning_rate)
  if name == "lazy_adam":
    return LazyAdam(learning_rate)
  if name == "adagrad":
    return tf.keras.optimizers.Adagrad(learning_rate)
  raise ConfigError(f"Unknown optimizer={name!r}; valid values: {', '.join(OPTIMIZERS)}.")
