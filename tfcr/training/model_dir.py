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
from tfcr.models.factory import ModelSizes, build_model, model_sizes
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
  conditions: the item -> condition ids table and the condition vocabulary; the shapes
  of the other tables (feature widths, the candidate tower's features, shared id rows),
  which the checkpoint fills."""
  user_ids: np.ndarray
  item_ids: np.ndarray
  user_feature_vocab_sizes: np.ndarray
  conditions: ItemConditions
  user_feature_widths: Optional[np.ndarray] = None
  item_feature_vocab_sizes: np.ndarray = dataclasses.field(
      default_factory=lambda: np.zeros([0], np.int64))
  item_feature_widths: Optional[np.ndarray] = None
  user_id_rows: int = 0
  item_id_rows: int = 0

  @classmethod
  def from_prepared(cls, prepared) -> "Vocabularies":
    sizes = model_sizes(prepared)
    return cls(prepared.data.users.user_id, prepared.data.catalog.item_id,
               np.array(sizes.user_feature_vocab_sizes, np.int64), prepared.conditions,
               np.array(sizes.user_feature_widths, np.int64),
               np.array(sizes.item_feature_vocab_sizes, np.int64),
               np.array(sizes.item_feature_widths, np.int64),
               sizes.user_id_rows, sizes.item_id_rows)

  def model_sizes(self) -> ModelSizes:
    ints = lambda a: None if a is None else [int(v) for v in a]  # pylint: disable=unnecessary-lambda-assignment
    return ModelSizes(len(self.user_ids), len(self.item_ids),
                      ints(self.user_feature_vocab_sizes), self.conditions,
                      user_feature_widths=ints(self.user_feature_widths),
                      item_feature_vocab_sizes=ints(self.item_feature_vocab_sizes),
                      item_feature_widths=ints(self.item_feature_widths),
                      user_id_rows=int(self.user_id_rows), item_id_rows=int(self.item_id_rows))


def _array_or_empty(values) -> np.ndarray:
  return np.zeros([0], np.int64) if values is None else np.asarray(values, np.int64)


def _widths(widths: np.ndarray, sizes: np.ndarray) -> Optional[np.ndarray]:
  """Recorded widths, or None (one value per row) when none were recorded."""
  return widths if len(widths) == len(sizes) else None


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
             user_feature_widths=_array_or_empty(vocabularies.user_feature_widths),
             item_feature_vocab_sizes=_array_or_empty(vocabularies.item_feature_vocab_sizes),
             item_feature_widths=_array_or_empty(vocabularies.item_feature_widths),
             id_rows=np.array([vocabularies.user_id_rows, vocabularies.item_id_rows]),
             condition_feature=np.array(conditions.feature),
             condition_vocabulary=conditions.vocabulary.astype(str),
             condition_row_splits=conditions.row_splits, condition_ids=conditions.ids)
    os.replace(temp, path)

  def read_vocabularies(self) -> Vocabularies:
    with np.load(self.file(VOCABULARIES)) as f:
      conditions = ItemConditions(str(f["condition_feature"]),
                                  f["condition_vocabulary"].astype(object),
                                  f["condition_row_splits"], f["condition_ids"])
      user_sizes = f["user_feature_vocab_sizes"]
      item_sizes = f["item_feature_vocab_sizes"]
      user_rows, item_rows = (int(v) for v in f["id_rows"])
      return Vocabularies(f["user_ids"].astype(object), f["item_ids"].astype(object),
                          user_sizes, conditions,
                          user_feature_widths=_widths(f["user_feature_widths"], user_sizes),
                          item_feature_vocab_sizes=item_sizes,
                          item_feature_widths=_widths(f["item_feature_widths"], item_sizes),
                          user_id_rows=user_rows, item_id_rows=item_rows)

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
