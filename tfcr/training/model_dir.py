"""The model dir: the one reader and writer of everything a training run leaves behind.

    config.json       the resolved TrainConfig
    data.json         the fingerprint of the training data (tfcr.data.fingerprint) and
                      the source that loaded it
    vocabularies.npz  user/item ids, user feature vocabulary sizes and the item ->
                      condition table: export needs no data set
    checkpoints/      one checkpoint per epoch (model, optimizer, epoch, train seconds)
    logs/             TensorBoard
    metrics.json      the evaluation after training (tfcr.metrics.exact)
    exports.json      the servables exported from it (tfcr.export.reuse)

Every file is written through a temp file and a rename, so readers never see half of one.
"""

import dataclasses
import os
import tempfile
from typing import Optional

import numpy as np
import tensorflow as tf

from tfcr.data.conditions import ItemConditions
from tfcr.data.fingerprint import DataFingerprint
from tfcr.errors import ConfigError
from tfcr.models.factory import ModelSizes, build_model
from tfcr.training.config import TrainConfig
from tfcr.utils.json_files import read_json, write_json_atomically

CONFIG = "config.json"
DATA = "data.json"
VOCABULARIES = "vocabularies.npz"
CHECKPOINTS = "checkpoints"
LOGS = "logs"
METRICS = "metrics.json"
EXPORTS = "exports.json"


@dataclasses.dataclass
class Vocabularies:
  """user_ids [U] str; item_ids [I] str; user_feature_vocab_sizes [F] int;
  conditions: the item -> condition ids table and the condition vocabulary."""
  user_ids: np.ndarray
  item_ids: np.ndarray
  user_feature_vocab_sizes: np.ndarray
  conditions: ItemConditions

  @classmethod
  def from_prepared(cls, prepared) -> "Vocabularies":
    return cls(prepared.data.users.user_id, prepared.data.catalog.item_id,
               np.array([len(v) for v in prepared.user_feature_vocabularies], np.int64),
               prepared.conditions)

  def model_sizes(self) -> ModelSizes:
    return ModelSizes(len(self.user_ids), len(self.item_ids),
                      [int(v) for v in self.user_feature_vocab_sizes], self.conditions)


class ModelDir:
  """One model dir (absolute path); see the module docstring for what it holds."""

  def __init__(self, path: str):
    self.path = os.path.abspath(os.path.expanduser(path))

  def file(self, name: str) -> str:
    return os.path.join(self.path, name)

  @property
  def checkpoint_dir(self) -> str:
    return self.file(CHECKPOINTS)

  @property
  def log_dir(self) -> str:
    return self.file(LOGS)

  def exists(self, name: str = CONFIG) -> bool:
    return os.path.exists(self.file(name))

  # ---- config.json and data.json ----

  def read_config(self) -> Optional[TrainConfig]:
    return TrainConfig.from_dict(read_json(self.file(CONFIG))) if self.exists(CONFIG) else None

  def write_config(self, config: TrainConfig) -> None:
    write_json_atomically(self.file(CONFIG), dataclasses.asdict(config))

  def read_fingerprint(self) -> Optional[DataFingerprint]:
    if not self.exists(DATA):
      return None
    return DataFingerprint.from_dict(read_json(self.file(DATA)))

  def check_same_run(self, config: TrainConfig, fingerprint: DataFingerprint) -> None:
    """Raises ConfigError when this dir holds a run of other settings or other data."""
    previous = self.read_config()
    if previous is not None:
      differing = config.differences(previous)
      if differing:
        raise ConfigError(f"model_dir={self.path} holds a run with different settings "
                          f"({', '.join(differing)}); use a new model_dir to start afresh.")
    self.check_same_data(fingerprint)

  def check_same_data(self, fingerprint: DataFingerprint) -> None:
    recorded = self.read_fingerprint()
    if recorded is None:
      return
    differing = recorded.differences(fingerprint)
    if differing:
      raise ConfigError(f"model_dir={self.path} was trained on other data "
                        f"({'; '.join(differing)}, trained on vs given); use the same data "
                        f"or a new model_dir.")

  def start_run(self, config: TrainConfig, fingerprint: DataFingerprint) -> None:
    """Creates the dir, or checks that a resumed one matches; records config and data."""
    self.check_same_run(config, fingerprint)
    try:
      os.makedirs(self.path, exist_ok=True)
      tempfile.NamedTemporaryFile(dir=self.path).close()
    except OSError as e:
      raise ConfigError(f"model_dir={self.path} is not writable: {e.strerror}.") from None
    self.write_config(config)
    write_json_atomically(self.file(DATA), fingerprint.to_dict())

  # ---- vocabularies.npz ----

  def write_vocabularies(self, vocabularies: Vocabularies) -> None:
    path = self.file(VOCABULARIES)
    temp = path + ".tmp.npz"
    conditions = vocabularies.conditions
    np.savez(temp, user_ids=vocabularies.user_ids.astype(str),
             item_ids=vocabularies.item_ids.astype(str),
             user_feature_vocab_sizes=vocabularies.user_feature_vocab_sizes,
             condition_feature=np.array(conditions.feature),
             condition_vocabulary=conditions.vocabulary.astype(str),
             condition_row_splits=conditions.row_splits, condition_ids=conditions.ids)
    os.replace(temp, path)

  def read_vocabularies(self) -> Vocabularies:
    with np.load(self.file(VOCABULARIES)) as f:
      conditions = ItemConditions(str(f["condition_feature"]),
                                  f["condition_vocabulary"].astype(object),
                                  f["condition_row_splits"], f["condition_ids"])
      return Vocabularies(f["user_ids"].astype(object), f["item_ids"].astype(object),
                          f["user_feature_vocab_sizes"], conditions)

  # ---- metrics.json, exports.json, checkpoints ----

  def read_metrics(self) -> Optional[dict]:
    return read_json(self.file(METRICS)) if self.exists(METRICS) else None

  def write_metrics(self, metrics: dict) -> None:
    write_json_atomically(self.file(METRICS), metrics, sort_keys=False)

  def read_exports(self) -> dict:
    return read_json(self.file(EXPORTS)) if self.exists(EXPORTS) else {}

  def write_exports(self, records: dict) -> None:
    write_json_atomically(self.file(EXPORTS), records)

  def latest_checkpoint(self) -> Optional[str]:
    return tf.train.latest_checkpoint(self.checkpoint_dir)

  def is_finished(self) -> bool:
    """A finished run: config, checkpoint and metrics are there."""
    return self.exists(CONFIG) and self.exists(METRICS)

  def load_trained_model(self):
    """Rebuilds the model of a training run and restores its latest checkpoint.

    Returns (config, model, vocabularies). Raises ConfigError when the dir holds no
    finished checkpoint.
    """
    latest = self.latest_checkpoint()
    if not self.exists(CONFIG) or not latest or not self.exists(VOCABULARIES):
      raise ConfigError(f"model_dir={self.path} holds no trained model ({CONFIG}, "
                        f"{VOCABULARIES} and a checkpoint); train one with tfcr-train first.")
    config = self.read_config()
    vocabularies = self.read_vocabularies()
    model = build_model(config, vocabularies.model_sizes())
    tf.train.Checkpoint(model=model).restore(latest).expect_partial()
    return config, model, vocabularies


def load_trained_model(model_dir: str):
  """(config, model, vocabularies) of the run in `model_dir`; see ModelDir."""
  return ModelDir(model_dir).load_trained_model()
