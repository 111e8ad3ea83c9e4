"""The training configuration: one dataclass, written to the model dir as config.json.

It holds what determines the model and its training, nothing about where the data comes
from (`tfcr.data.sources.DataSource`, recorded in the model dir with the data's
fingerprint) or what is done with the model afterwards (export is the caller's step).
"""

import dataclasses
import json
import os
from typing import Optional, Tuple

from tfcr.data.derived import derivable
from tfcr.data.schema import RecData
from tfcr.errors import ConfigError
from tfcr.models import MODELS
from tfcr.training import STRATEGIES


# tfcr.training.optimizers builds them; named here, where no TensorFlow is imported.
OPTIMIZERS = ("adam", "lazy_adam", "adagrad")


@dataclasses.dataclass
class TrainConfig:
  """Everything that determines a training run (trainer/train.py has the flags)."""
  model: str = "cr"
  condition_feature: Optional[str] = None  # None: the data set's default one
  embedding_dim: int = 64
  hidden_units: Tuple[int, ...] = (128,)
  epochs: int = 20
  batch_size: int = 1024
  learning_rate: float = 0.01
  optimizer: str = "adam"  # tfcr.training.optimizers: lazy_adam for million-row id tables
  normalize_embeddings: bool = True
  temperature: float = 0.1
  extra_negatives: int = 0
  # Share of training examples whose condition is replaced by "no condition" (CR only):
  # one model then answers condition="" (plain recommendations) as well as conditions.
  condition_dropout: float = 0.0
  # Per example, negatives drawn from the items sharing its condition (CR only).
  hard_negatives: int = 0
  # Weight of the auxiliary loss between a conditional query and its condition's vector.
  condition_loss_weight: float = 0.0
  seed: int = 42
  min_rating: Optional[float] = None
  test_per_user: int = 2
  # Tower features (tfcr.data.features): user columns for the query tower (None: all of
  # the users table's) and item columns for the candidate tower.
  user_features: Optional[Tuple[str, ...]] = None
  item_features: Tuple[str, ...] = ()
  # Id-embedding rows (tfcr.data.id_rows): 0 = one row per id.
  max_vocabulary: int = 0
  hash_buckets: int = 0
  model_dir: str = ""
  verbose: int = 1
  # tf.distribute (tfcr.training.distribution); batch_size stays the global batch.
  distribution_strategy: str = "none"
  cross_replica_negatives: bool = True  # under a strategy: negatives of every replica

  # Fields that may differ when an interrupted run is resumed (they do not change
  # what is being trained, only how long or where it is written/shown; every replica
  # count trains on the same global batches).
  RESUMABLE_FIELDS = ("epochs", "model_dir", "verbose", "distribution_strategy")

  def resolved(self) -> "TrainConfig":
    """Checks every field; raises ConfigError naming the first bad one."""
    if self.model not in MODELS:
      raise ConfigError(f"Unknown model={self.model!r}; valid values: {', '.join(MODELS)}.")
    positive = {"epochs": self.epochs, "batch_size": self.batch_size,
                "embedding_dim": self.embedding_dim, "test_per_user": self.test_per_user}
    for name, value in positive.items():
      if value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value}.")
    if self.optimizer not in OPTIMIZERS:
      raise ConfigError(f"Unknown optimizer={self.optimizer!r}; valid values: "
                        f"{', '.join(OPTIMIZERS)}.")
    if not self.learning_rate > 0:
      raise ConfigError(f"learning_rate must be > 0, got {self.learning_rate}.")
    if self.extra_negatives < 0:
      raise ConfigError(f"extra_negatives must be >= 0, got {self.extra_negatives}.")
    if self.hard_negatives < 0:
      raise ConfigError(f"hard_negatives must be >= 0, got {self.hard_negatives}.")
    if self.condition_loss_weight < 0:
      raise ConfigError(f"condition_loss_weight must be >= 0, got "
                        f"{self.condition_loss_weight}.")
    if not 0 <= self.condition_dropout < 1:
      raise ConfigError(f"condition_dropout must be in [0, 1), got {self.condition_dropout}.")
    if not self.temperature > 0:
      raise ConfigError(f"temperature must be > 0, got {self.temperature}.")
    if any(h < 1 for h in self.hidden_units):
      raise ConfigError(f"hidden_units must be positive integers, got {self.hidden_units}.")
    for name in ("max_vocabulary", "hash_buckets"):
      if getattr(self, name) < 0:
        raise ConfigError(f"{name} must be >= 0 (0: off), got {getattr(self, name)}.")
    if self.distribution_strategy not in STRATEGIES:
      raise ConfigError(f"Unknown distribution_strategy={self.distribution_strategy!r}; "
                        f"valid values: {', '.join(STRATEGIES)}.")
    if not self.model_dir:
      raise ConfigError("model_dir is required: checkpoints, logs and metrics go there.")
    return dataclasses.replace(
        self, hidden_units=tuple(int(h) for h in self.hidden_units),
        user_features=(None if self.user_features is None
                       else tuple(str(f) for f in self.user_features)),
        item_features=tuple(str(f) for f in self.item_features),
        model_dir=os.path.abspath(os.path.expanduser(self.model_dir)))

  def for_data(self, data: RecData) -> "TrainConfig":
    """Resolved, with condition_feature set: the given one, else the data's default.
    Raises ConfigError when neither names one (listing the catalog's features)."""
    config = self.resolved()
    if config.condition_feature:
      return config
    if not data.default_condition_feature:
      valid = sorted(data.catalog.features) + derivable(data.catalog)
      raise ConfigError(f"{data.name} has no default condition feature: set "
                        f"condition_feature to one of {', '.join(valid) or '(none)'}.")
    return dataclasses.replace(config, condition_feature=data.default_condition_feature)

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

  @classmethod
  def from_dict(cls, values: dict) -> "TrainConfig":
    known = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in values.items() if k in known}
    for name in ("hidden_units", "item_features"):
      if name in values:
        values[name] = tuple(values[name])
    if values.get("user_features") is not None:
      values["user_features"] = tuple(values["user_features"])
    return cls(**values)

  def differences(self, other: "TrainConfig"):
    """Names of the fields that differ and matter for resuming."""
    return [f.name for f in dataclasses.fields(self)
            if f.name not in self.RESUMABLE_FIELDS
            and getattr(self, f.name) != getattr(other, f.name)]
