"""What a model dir must hold beyond checkpoints to rebuild the model without the data.

`vocabularies.npz` (written once, at the start of training) holds the id strings and the
item -> condition table, so export needs only the model dir: the servable maps request
strings to the rows the model was trained on.
"""

import dataclasses
import json
import os

import numpy as np
import tensorflow as tf

from tfcr.conditions import ItemConditions
from tfcr.config import ConfigError, TrainConfig

VOCABULARIES = "vocabularies.npz"


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

  def save(self, model_dir: str) -> None:
    path = os.path.join(model_dir, VOCABULARIES)
    temp = path + ".tmp.npz"
    np.savez(temp, user_ids=self.user_ids.astype(str), item_ids=self.item_ids.astype(str),
             user_feature_vocab_sizes=self.user_feature_vocab_sizes,
             condition_feature=np.array(self.conditions.feature),
             condition_vocabulary=self.conditions.vocabulary.astype(str),
             condition_row_splits=self.conditions.row_splits,
             condition_ids=self.conditions.ids)
    os.replace(temp, path)

  @classmethod
  def load(cls, model_dir: str) -> "Vocabularies":
    with np.load(os.path.join(model_dir, VOCABULARIES)) as f:
      conditions = ItemConditions(str(f["condition_feature"]),
                                  f["condition_vocabulary"].astype(object),
                                  f["condition_row_splits"], f["condition_ids"])
      return cls(f["user_ids"].astype(object), f["item_ids"].astype(object),
                 f["user_feature_vocab_sizes"], conditions)


def load_trained_model(model_dir: str):
  """Rebuilds the model of a training run and restores its latest checkpoint.

  Returns (config, model, vocabularies). Raises ConfigError when `model_dir` holds no
  finished checkpoint.
  """
  from tfcr.train import build_towers  # pylint: disable=g-import-not-at-top
  model_dir = os.path.abspath(os.path.expanduser(model_dir))
  config_path = os.path.join(model_dir, "config.json")
  checkpoint_dir = os.path.join(model_dir, "checkpoints")
  latest = tf.train.latest_checkpoint(checkpoint_dir)
  if not os.path.exists(config_path) or not latest or not os.path.exists(
      os.path.join(model_dir, VOCABULARIES)):
    raise ConfigError(f"--model_dir={model_dir} holds no trained model (config.json, "
                      f"{VOCABULARIES} and a checkpoint); train one with tfcr-train first.")
  with open(config_path) as f:
    config = TrainConfig.from_dict(json.load(f))
  vocabularies = Vocabularies.load(model_dir)
  model = build_towers(config, len(vocabularies.user_ids), len(vocabularies.item_ids),
                       [int(v) for v in vocabularies.user_feature_vocab_sizes],
                       vocabularies.conditions)
  checkpoint = tf.train.Checkpoint(model=model)
  checkpoint.restore(latest).expect_partial()
  return config, model, vocabularies
