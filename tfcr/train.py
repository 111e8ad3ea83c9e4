"""train_and_evaluate(config): the library entry point behind `tfcr-train`.

Model dir layout:
  config.json       the resolved configuration
  vocabularies.npz  user/item ids and item conditions: export needs no data set
  checkpoints/      one checkpoint per epoch (model, optimizer, epoch, train seconds)
  logs/             TensorBoard
  metrics.json      flat metrics of the evaluation after training

Re-running with the same model dir resumes from the last checkpoint. Every argument is
checked and the data is loaded before anything is written, so a bad run leaves no
half-written model dir behind.
"""

import json
import os
import sys
import tempfile
import time
from typing import Dict, Optional

import numpy as np
import tensorflow as tf

from tfcr import evaluation
from tfcr.config import ConfigError, TrainConfig
from tfcr.data.prepare import PreparedData, prepare
from tfcr.data.sources import load_dataset
from tfcr.input_pipeline import training_dataset
from tfcr.model.retrieval import RetrievalModel
from tfcr.model_io import Vocabularies
from tfcr.model.towers import CandidateTower, QueryTower


def build_towers(config: TrainConfig, num_users: int, num_items: int,
                 user_feature_vocab_sizes, conditions) -> RetrievalModel:
  """The CR or LR model of `config` with empty lookup tables (a checkpoint fills them)."""
  conditional = config.model == "cr"
  query_tower = QueryTower(
      num_users=num_users, user_feature_vocab_sizes=user_feature_vocab_sizes,
      num_conditions=conditions.vocabulary_size if conditional else 0,
      embedding_dim=config.embedding_dim, hidden_units=config.hidden_units,
      normalize=config.normalize_embeddings, name="query_tower")
  candidate_tower = CandidateTower(
      num_items=num_items, num_conditions=conditions.vocabulary_size,
      max_conditions_per_item=conditions.max_per_item(),
      embedding_dim=config.embedding_dim, hidden_units=config.hidden_units,
      normalize=config.normalize_embeddings, name="candidate_tower")
  return RetrievalModel(query_tower, candidate_tower, temperature=config.temperature)


def build_model(config: TrainConfig, prepared: PreparedData) -> RetrievalModel:
  """Builds the CR or LR model for the prepared data and fills its lookup tables."""
  model = build_towers(config, prepared.num_users, prepared.num_items,
                       [len(v) for v in prepared.user_feature_vocabularies],
                       prepared.conditions)
  if model.query_tower.user_features is not None:
    model.query_tower.user_features.assign_table(prepared.user_feature_table)
  model.candidate_tower.item_conditions.assign_table(prepared.conditions.padded())
  return model


def write_json_atomically(path: str, payload, sort_keys: bool = True) -> None:
  """Writes JSON through a temp file and rename, so readers never see half a file."""
  directory = os.path.dirname(path)
  with tempfile.NamedTemporaryFile("w", dir=directory, delete=False, suffix=".tmp") as f:
    json.dump(payload, f, indent=2, sort_keys=sort_keys)
    f.write("\n")
  os.replace(f.name, path)


def _prepare_model_dir(config: TrainConfig) -> None:
  """Creates the model dir (or checks a resumed one matches the config)."""
  path = config.model_dir
  config_path = os.path.join(path, "config.json")
  if os.path.exists(config_path):
    with open(config_path) as f:
      previous = TrainConfig.from_dict(json.load(f))
    differing = config.differences(previous)
    if differing:
      raise ConfigError(f"--model_dir={path} holds a run with different settings "
                        f"({', '.join(differing)}); use a new --model_dir to start afresh.")
  try:
    os.makedirs(path, exist_ok=True)
    probe = tempfile.NamedTemporaryFile(dir=path)
    probe.close()
  except OSError as e:
    raise ConfigError(f"--model_dir={path} is not writable: {e.strerror}.") from None
  write_json_atomically(config_path, json.loads(config.to_json()))


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


def train_and_evaluate(config: TrainConfig, data=None) -> Dict[str, float]:
  """Trains (or resumes) the model of `config`, evaluates it, writes metrics.json.

  data: an optional `RecData` to train on instead of loading `config.dataset` (for
  notebooks and your own data). Returns the metrics dict. Raises ConfigError on bad
  configuration and tfcr.data.errors.DataUnavailableError when data cannot be had.
  """
  config = config.resolved()
  if data is None:
    data = load_dataset(config)
  data_name = data.name  # own data (data=...) is labelled by its name, not --dataset
  prepared = prepare(data, config.condition_feature, config.test_per_user, config.min_rating)
  num_train = len(prepared.train)
  if config.batch_size > num_train:
    raise ConfigError(f"--batch_size={config.batch_size} is larger than the "
                      f"{num_train} training examples; use --batch_size <= {num_train}.")
  _prepare_model_dir(config)
  Vocabularies.from_prepared(prepared).save(config.model_dir)

  tf.keras.utils.set_random_seed(config.seed)
  model = build_model(config, prepared)
  model.compile(optimizer=tf.keras.optimizers.Adam(config.learning_rate))
  epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False)
  seconds_var = tf.Variable(0.0, dtype=tf.float64, trainable=False)
  checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer, epoch=epoch_var,
                                   train_seconds=seconds_var)
  manager = tf.train.CheckpointManager(checkpoint, os.path.join(config.model_dir,
                                                                "checkpoints"), max_to_keep=2)
  if manager.latest_checkpoint:
    # Optimizer slots are created lazily; expect_partial tolerates that they are
    # restored on first use.
    checkpoint.restore(manager.latest_checkpoint).expect_partial()
  first_epoch = int(epoch_var.numpy())
  if first_epoch:
    print(f"Resuming from {manager.latest_checkpoint} (epoch {first_epoch}/{config.epochs}).")

  conditions = prepared.conditions if config.model == "cr" else None
  steps = num_train // config.batch_size
  if first_epoch < config.epochs:
    dataset = training_dataset(prepared.train.user_index, prepared.train.item_index,
                               prepared.item_probability, conditions, config.batch_size,
                               config.seed, first_epoch, config.epochs,
                               extra_negatives=config.extra_negatives)
    verbose = config.verbose if config.verbose != 1 or sys.stdout.isatty() else 2
    model.fit(dataset, epochs=config.epochs, initial_epoch=first_epoch,
              steps_per_epoch=steps, verbose=verbose,
              callbacks=[_EpochCheckpoint(manager, epoch_var, seconds_var),
                         tf.keras.callbacks.TensorBoard(os.path.join(config.model_dir,
                                                                     "logs"))])

  metrics = evaluation.evaluate(model, prepared, seed=config.seed)
  train_seconds = float(seconds_var.numpy())
  metrics["train_seconds"] = train_seconds
  metrics["examples_per_second"] = (steps * config.batch_size * config.epochs / train_seconds
                                    if train_seconds > 0 else 0.0)
  metrics["num_train_examples"] = num_train
  write_json_atomically(os.path.join(config.model_dir, "metrics.json"), metrics,
                        sort_keys=False)
  if config.export_dir:
    from tfcr.servable import export_servable  # pylint: disable=g-import-not-at-top
    path = export_servable(config.model_dir, config.export_dir, index=config.export_index)
    if config.verbose:
      print(f"Exported {config.export_index} servable to {path}")
  if config.verbose:
    print(evaluation.format_table(
        metrics, f"{config.model.upper()} on {data_name} "
                 f"(condition: {config.condition_feature})"))
  return metrics
