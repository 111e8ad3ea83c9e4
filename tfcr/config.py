"""The training configuration: one dataclass, written to the model dir as config.json."""

import dataclasses
import json
import os
from typing import Optional, Tuple

MODELS = ("cr", "lr")
DEFAULT_CONDITION_FEATURE = {"movielens-100k": "genres", "synthetic": "topics",
                             "tfds": "genres"}


class ConfigError(ValueError):
  """A user mistake in the configuration; the message is one line that says the fix."""


@dataclasses.dataclass
class TrainConfig:
  """Everything that determines a training run (see trainer/train.py for the flags)."""
  dataset: str = "movielens-100k"
  data_dir: str = "~/.cache/tfcr"
  model: str = "cr"
  condition_feature: Optional[str] = None  # None: the data set's natural one
  embedding_dim: int = 64
  hidden_units: Tuple[int, ...] = (128,)
  epochs: int = 20
  batch_size: int = 1024
  learning_rate: float = 0.01
  normalize_embeddings: bool = True
  temperature: float = 0.1
  extra_negatives: int = 0
  seed: int = 42
  min_rating: Optional[float] = None
  test_per_user: int = 2
  model_dir: str = ""
  export_dir: str = ""  # when set, a servable is exported there after training
  export_index: str = "scann"
  synthetic_users: int = 2000
  synthetic_items: int = 5000
  synthetic_conditions: int = 20
  synthetic_interactions: int = 100000
  verbose: int = 1

  # Fields that may differ when an interrupted run is resumed (they do not change
  # what is being trained, only how long or where it is written/shown).
  RESUMABLE_FIELDS = ("epochs", "model_dir", "data_dir", "verbose", "export_dir",
                      "export_index")

  def resolved(self) -> "TrainConfig":
    """Checks every field and fills the data-set-dependent defaults; raises ConfigError."""
    family = "tfds" if self.dataset.startswith("tfds:") else self.dataset
    if family not in DEFAULT_CONDITION_FEATURE or self.dataset == "tfds:":
      raise ConfigError(f"Unknown --dataset={self.dataset!r}; valid values: movielens-100k, "
                        f"synthetic, tfds:<name> (e.g. tfds:movielens/100k-ratings).")
    if self.model not in MODELS:
      raise ConfigError(f"Unknown --model={self.model!r}; valid values: {', '.join(MODELS)}.")
    positive = {"epochs": self.epochs, "batch_size": self.batch_size,
                "embedding_dim": self.embedding_dim, "test_per_user": self.test_per_user}
    for name, value in positive.items():
      if value < 1:
        raise ConfigError(f"--{name} must be a positive integer, got {value}.")
    if not self.learning_rate > 0:
      raise ConfigError(f"--learning_rate must be > 0, got {self.learning_rate}.")
    if self.extra_negatives < 0:
      raise ConfigError(f"--extra_negatives must be >= 0, got {self.extra_negatives}.")
    if not self.temperature > 0:
      raise ConfigError(f"--temperature must be > 0, got {self.temperature}.")
    if any(h < 1 for h in self.hidden_units):
      raise ConfigError(f"--hidden_units must be positive integers, got {self.hidden_units}.")
    if self.export_index not in ("scann", "brute_force"):
      raise ConfigError(f"Unknown --export_index={self.export_index!r}; valid values: "
                        f"scann, brute_force.")
    if not self.model_dir:
      raise ConfigError("--model_dir is required: checkpoints, logs and metrics go there.")
    return dataclasses.replace(
        self, hidden_units=tuple(int(h) for h in self.hidden_units),
        condition_feature=self.condition_feature or DEFAULT_CONDITION_FEATURE[family],
        model_dir=os.path.abspath(os.path.expanduser(self.model_dir)),
        export_dir=(os.path.abspath(os.path.expanduser(self.export_dir))
                    if self.export_dir else ""),
        data_dir=os.path.abspath(os.path.expanduser(self.data_dir)))

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

  @classmethod
  def from_dict(cls, values: dict) -> "TrainConfig":
    known = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in values.items() if k in known}
    if "hidden_units" in values:
      values["hidden_units"] = tuple(values["hidden_units"])
    return cls(**values)

  def differences(self, other: "TrainConfig"):
    """Names of the fields that differ and matter for resuming."""
    return [f.name for f in dataclasses.fields(self)
            if f.name not in self.RESUMABLE_FIELDS
            and getattr(self, f.name) != getattr(other, f.name)]
