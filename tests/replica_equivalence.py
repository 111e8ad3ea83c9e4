"""Run by tests/test_cross_replica_negatives.py in a process of its own: TensorFlow's
devices can only be split into logical ones before TF initializes.

On 2 logical CPU devices under MirroredStrategy, one training step of a small CR model
(logQ correction, accidental hits within and across replicas, extra negatives) is
computed three ways and written to the .npz named by argv[1]:

  single_*    one device, the whole global batch (the reference);
  gathered_*  2 replicas with cross-replica negatives: per-replica loss and gradients
              of a GradientTape, summed over the replicas (what the optimizer applies);
  local_*     2 replicas without the gather (TFRS's local softmax);
  fit_*       one `model.fit` step through tfcr's input pipeline and the strategy
              (Keras's own loss reduction and gradient aggregation, SGD at rate 1),
              on one device and on 2 replicas: the reported loss and the new weights;
  indivisible the ConfigError messages for a batch and extra negatives that do not
              split over the 2 replicas.
"""

import sys

import tfcr  # noqa: F401  (sets up Keras 2 before TensorFlow loads)
import numpy as np
import tensorflow as tf

tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2)

# pylint: disable=wrong-import-position
from tfcr.data.conditions import ItemConditions
from tfcr.data.schema import MultiValued
from tfcr.errors import ConfigError
from tfcr.models.retrieval import RetrievalModel
from tfcr.models.towers import CandidateTower, QueryTower
from tfcr.training import distribution
from tfcr.training.input_pipeline import training_dataset

NUM_USERS, NUM_ITEMS, NUM_CONDITIONS = 9, 12, 5
# Global batch of 8 (4 per replica) and 4 extra negatives (2 per replica). Item 3 is a
# positive on both replicas and item 7 twice on replica 1; extra item 5 is replica 0's
# positive and extra item 1 replica 1's: accidental hits within and across replicas.
FEATURES = {
    "user": np.array([1, 2, 3, 4, 5, 6, 7, 8], np.int32),
    "item": np.array([0, 3, 5, 2, 3, 7, 7, 1], np.int32),
    "condition": np.array([2, 3, 1, 4, 0, 2, 3, 1], np.int32),
    "sampling_probability": np.array([.05, .2, .1, .08, .2, .15, .15, .07], np.float32),
    "extra_items": np.array([5, 10, 1, 11], np.int32),
    "extra_probability": np.array([.1, .01, .07, .02], np.float32),
}
BATCH_KEYS = ("user", "item", "condition", "sampling_probability")


def replica_slice(features, replica, replicas=2):
  out = {}
  for key, values in features.items():
    size = len(values) // replicas
    out[key] = tf.constant(values[replica * size:(replica + 1) * size])
  return out


def build(cross_replica_negatives=True):
  rng = np.random.default_rng(0)
  query = QueryTower(NUM_USERS, [3], NUM_CONDITIONS, embedding_dim=4, hidden_units=(8,))
  candidate = CandidateTower(NUM_ITEMS, NUM_CONDITIONS, 2, embedding_dim=4,
                             hidden_units=(8,))
  model = RetrievalModel(query, candidate, temperature=0.5,
                         cross_replica_negatives=cross_replica_negatives)
  model.compute_loss(replica_slice(FEATURES, 0, replicas=1))  # builds every weight
  query.user_features.assign_table(rng.integers(0, 3, (NUM_USERS + 1, 1)))
  candidate.item_conditions.assign_table(rng.integers(-1, NUM_CONDITIONS, (NUM_ITEMS, 2)))
  return model


def initial_weights():
  tf.keras.utils.set_random_seed(0)
  model = build()
  # Initial embeddings are tiny: scaled up so that every score visibly matters.
  return [w * 2.5 if w.dtype.kind == "f" else w for w in model.get_weights()]


def dense(gradient):
  return tf.convert_to_tensor(gradient)


def single_step(weights):
  model = build()
  model.set_weights(weights)
  with tf.GradientTape() as tape:
    loss = model.compute_loss(replica_slice(FEATURES, 0, replicas=1))
  grads = tape.gradient(loss, model.trainable_variables)
  return float(loss), [dense(g).numpy() for g in grads], [v.name for v in
                                                          model.trainable_variables]


def distributed_step(strategy, weights, cross_replica_negatives):
  with strategy.scope():
    model = build(cross_replica_negatives)
  model.set_weights(weights)
  inputs = strategy.experimental_distribute_values_from_function(
      lambda context: replica_slice(FEATURES, context.replica_id_in_sync_group))

  @tf.function
  def step(features):
    def replica_step(features):
      with tf.GradientTape() as tape:
        loss = model.compute_loss(features)
      return loss, [dense(g) for g in tape.gradient(loss, model.trainable_variables)]
    loss, grads = strategy.run(replica_step, args=(features,))
    total = strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None)
    return total, [strategy.reduce(tf.distribute.ReduceOp.SUM, g, axis=None) for g in grads]

  loss, grads = step(inputs)
  return float(loss), [g.numpy() for g in grads]


def fit_step(strategy, weights):
  """One Keras fit step on tfcr's own input pipeline (batch 8, 4 extra negatives)."""
  conditions = ItemConditions.from_multi_valued(
      "f", MultiValued.from_lists([[f"c{(i + j) % 3}" for j in range(i % 3)]
                                   for i in range(NUM_ITEMS)]))
  rng = np.random.default_rng(1)
  users, items = rng.integers(0, NUM_USERS, 40), rng.integers(0, NUM_ITEMS, 40)
  probability = (np.bincount(items, minlength=NUM_ITEMS) / 40).astype(np.float32)
  assert conditions.vocabulary_size == NUM_CONDITIONS

  def make_dataset(num_replicas=1, first_replica=0, local_replicas=1):
    return training_dataset(users, items, probability, conditions, 8, seed=5,
                            first_epoch=0, epochs=1, extra_negatives=4,
                            num_replicas=num_replicas, first_replica=first_replica,
                            local_replicas=local_replicas)

  with strategy.scope():
    model = build()
    model.compile(optimizer=tf.keras.optimizers.SGD(learning_rate=1.0))
  model.set_weights(weights)
  history = model.fit(distribution.distribute(strategy, make_dataset), epochs=1,
                      steps_per_epoch=1, verbose=0)
  return history.history["loss"][0], model.get_weights()


def main(path):
  mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
  assert mirrored.num_replicas_in_sync == 2
  weights = initial_weights()
  single_loss, single_grads, names = single_step(weights)
  gathered_loss, gathered_grads = distributed_step(mirrored, weights, True)
  local_loss, local_grads = distributed_step(mirrored, weights, False)
  fit_single_loss, fit_single_weights = fit_step(tf.distribute.get_strategy(), weights)
  fit_mirrored_loss, fit_mirrored_weights = fit_step(mirrored, weights)
  indivisible = []
  for batch, extra in ((7, 0), (8, 3)):
    try:
      distribution.check_divisible(mirrored, batch, extra)
    except ConfigError as e:
      indivisible.append(str(e))
  assert distribution.check_divisible(mirrored, 8, 4) == 2
  arrays = {"indivisible": np.array(indivisible), "single_loss": single_loss, "gathered_loss": gathered_loss,
            "local_loss": local_loss, "fit_single_loss": fit_single_loss,
            "fit_mirrored_loss": fit_mirrored_loss, "names": np.array(names)}
  for i in range(len(names)):
    arrays[f"single_grad_{i}"] = single_grads[i]
    arrays[f"gathered_grad_{i}"] = gathered_grads[i]
    arrays[f"local_grad_{i}"] = local_grads[i]
  for i, (a, b, w) in enumerate(zip(fit_single_weights, fit_mirrored_weights, weights)):
    arrays[f"fit_single_weight_{i}"], arrays[f"fit_mirrored_weight_{i}"] = a, b
    arrays[f"initial_weight_{i}"] = w
  np.savez(path, **arrays)


if __name__ == "__main__":
  main(sys.argv[1])
