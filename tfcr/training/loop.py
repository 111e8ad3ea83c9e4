"""train_and_evaluate(config, data): the library entry point behind `tfcr-train`.

Trains (or resumes) the model of `config` on `data`, evaluates it exactly on the test
queries and writes metrics.json; the model dir's layout is `tfcr.training.model_dir`'s.
Re-running with the same model dir resumes from the last checkpoint, if the settings and
the data are the same. Every argument is checked and the data is prepared before anything
is written, so a bad run leaves no half-written model dir behind. Exporting a servable is
the caller's next step (`tfcr.export.exporter.export_servable`).

Under tf.distribute (`config.distribution_strategy`, `tfcr.training.distribution`) every
worker calls it alike: the chief alone writes the model dir, evaluates and returns the
metrics (the others return {}), and all resume from the same one of the chief's
checkpoints.
"""

import sys
import time
from typing import Callable, Dict, Optional, Union

import tensorflow as tf

from tfcr.data.fingerprint import DataFingerprint
from tfcr.data.prepare import PreparedData, prepare
from tfcr.data.schema import RecData
from tfcr.data.sources import DataSource
from tfcr.errors import ConfigError
from tfcr.metrics import exact
from tfcr.metrics.queries import build_queries
from tfcr.models.factory import build_model, fill_tables_from
from tfcr.training import distribution
from tfcr.training.config import TrainConfig
from tfcr.training.input_pipeline import training_dataset
from tfcr.training.model_dir import ModelDir, Vocabularies
from tfcr.training.optimizers import make_optimizer


def load_data(data: Union[RecData, DataSource],
              log: Optional[Callable[[str], None]] = None,
              fingerprint: Optional[DataFingerprint] = None):
  """(RecData, fingerprint): `data` as given, or loaded from a DataSource (whose spec the
  fingerprint then records, so later commands can load the same data). A RecData's
  `fingerprint`, when the caller has it, is used as it is (no second hashing)."""
  if isinstance(data, RecData) and fingerprint is not None:
    return data, fingerprint
  if isinstance(data, DataSource):
    source = data.resolved()
    loaded = source.load(log=log)
    return loaded, DataFingerprint.of(loaded, source.to_dict())
  if not isinstance(data, RecData):
    raise TypeError(f"data must be a RecData or a DataSource, got {type(data).__name__}.")
  return data, DataFingerprint.of(data)


def prepare_data(config: TrainConfig, data: RecData) -> PreparedData:
  """`prepare` with the data settings of a config resolved for `data` (`for_data`)."""
  return prepare(data, config.condition_feature, config.test_per_user, config.min_rating,
                 user_features=config.user_features, item_features=config.item_features,
                 max_vocabulary=config.max_vocabulary, hash_buckets=config.hash_buckets)


class _EpochCheckpoint(tf.keras.callbacks.Callback):
  """Saves a checkpoint (with the epoch and the training time so far) after every epoch."""

  def __init__(self, manager, epoch_var, seconds_var):
    super().__init__()
    self.manager, self.epoch_var, self.seconds_var = manager, epoch_var, seconds_var

  def on_epoch_begin(self, epoch, logs=None):
    self.started = time.perf_counter()

  def on_epoch_end(self, epoch, logs=None):
    self.epoch_var.assign(epoch + 1)
    self.seconds_var.assign_add(time.perf_counter() - self.started)
    self.manager.save(checkpoint_number=epoch + 1)


def train_and_evaluate(config: TrainConfig, data: Union[RecData, DataSource],
                       fingerprint: Optional[DataFingerprint] = None) -> Dict[str, float]:
  """Trains (or resumes) the model of `config` on `data`, evaluates it, writes metrics.json.

  data: a `RecData` (your own data, a notebook's) or a `DataSource` to load.
  fingerprint: of `data`, when the caller has it already (saves hashing it again).
  Returns the metrics dict ({} on a worker other than the chief). Raises
  tfcr.errors.ConfigError / DataError on bad settings or data and DataUnavailableError
  when data cannot be had, before writing anything.
  """
  config.resolved()  # bad settings fail before any data is loaded
  # Before any other TF work: a multi-worker strategy sets up the process's runtime.
  strategy = distribution.make_strategy(config.distribution_strategy)
  role = distribution.worker_role(config.distribution_strategy)
  data, fingerprint = load_data(data, fingerprint=fingerprint)
  config = config.for_data(data)
  prepared = prepare_data(config, data)
  queries = build_queries(prepared, config.seed)  # DataError when there is nothing to test
  num_train = len(prepared.train)
  if config.batch_size > num_train:
    raise ConfigError(f"batch_size={config.batch_size} is larger than the "
                      f"{num_train} training examples; use batch_size <= {num_train}.")
  distribution.check_divisible(strategy, config.batch_size, config.extra_negatives)
  model_dir = ModelDir(config.model_dir)
  vocabularies = Vocabularies.from_prepared(prepared)
  if role.is_chief:
    model_dir.start_run(config, fingerprint)
    model_dir.write_vocabularies(vocabularies)
  else:
    model_dir.check_same_run(config, fingerprint)
  with distribution.write_dir(model_dir.path, role) as write_root:
    model, train_seconds = _train(config, strategy, prepared, vocabularies, model_dir,
                                  ModelDir(write_root))
  if not role.is_chief:
    return {}  # evaluation runs once, on the chief

  metrics = exact.evaluate(model, prepared, seed=config.seed, queries=queries)
  steps = num_train // config.batch_size
  metrics["train_seconds"] = train_seconds
  metrics["examples_per_second"] = (steps * config.batch_size * config.epochs / train_seconds
                                    if train_seconds > 0 else 0.0)
  metrics["num_train_examples"] = num_train
  model_dir.write_metrics(metrics)
  if config.verbose:
    print(exact.format_table(
        metrics, f"{config.model.upper()} on {data.name} "
                 f"(condition: {config.condition_feature})"))
  return metrics


def _train(config: TrainConfig, strategy: tf.distribute.Strategy, prepared, vocabularies,
           model_dir: ModelDir, write_dir: ModelDir):
  """Trains, or resumes from model_dir's last checkpoint, under `strategy`; checkpoints
  and logs go to write_dir (model_dir itself on the chief). Returns (model, seconds
  spent training over all runs)."""
  tf.keras.utils.set_random_seed(config.seed)
  with strategy.scope():
    model = fill_tables_from(build_model(config, vocabularies.model_sizes()), prepared)
    model.compile(optimizer=make_optimizer(config.optimizer, config.learning_rate))
  epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False)
  seconds_var = tf.Variable(0.0, dtype=tf.float64, trainable=False)
  checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer, epoch=epoch_var,
                                   train_seconds=seconds_var)
  manager = tf.train.CheckpointManager(checkpoint, write_dir.checkpoint_dir, max_to_keep=2)
  # Every worker resumes from the same one of the chief's checkpoints.
  latest = distribution.agreed_checkpoint(strategy, model_dir.checkpoint_dir)
  if latest:
    # Optimizer slots are created lazily; expect_partial tolerates that they are
    # restored on first use.
    checkpoint.restore(latest).expect_partial()
  first_epoch = int(epoch_var.numpy())
  if first_epoch:
    print(f"Resuming from {latest} (epoch {first_epoch}/{config.epochs}).")

  conditions = prepared.conditions if config.model == "cr" else None
  steps = len(prepared.train) // config.batch_size
  if first_epoch < config.epochs:

    def dataset(num_replicas=1, first_replica=0, local_replicas=1):
      return training_dataset(prepared.train.user_index, prepared.train.item_index,
                              prepared.item_probability, conditions, config.batch_size,
                              config.seed, first_epoch, config.epochs,
                              extra_negatives=config.extra_negatives,
                              num_replicas=num_replicas, first_replica=first_replica,
                              local_replicas=local_replicas,
                              condition_dropout=config.condition_dropout,
                              hard_negatives=config.hard_negatives)

    verbose = config.verbose if config.verbose != 1 or sys.stdout.isatty() else 2
    model.fit(distribution.distribute(strategy, dataset), epochs=config.epochs,
              initial_epoch=first_epoch, steps_per_epoch=steps, verbose=verbose,
              callbacks=[_EpochCheckpoint(manager, epoch_var, seconds_var),
                         tf.keras.callbacks.TensorBoard(write_dir.log_dir)])

  return model, float(seconds_var.numpy())
