"""A trained model is rebuilt from its model dir alone (ModelDir), with identical outputs."""

import json

import numpy as np
import pytest

from tfcr.data import synthetic
from tfcr.data.fingerprint import DataFingerprint
from tfcr.errors import ConfigError
from tfcr.training import loop as train
from tfcr.training.config import TrainConfig
from tfcr.training.model_dir import ModelDir, load_trained_model


def test_reload_gives_the_same_embeddings(tmp_path, monkeypatch):
  data = synthetic.generate(n_users=40, n_items=60, n_conditions=5, n_interactions=800)
  config = TrainConfig(epochs=1, batch_size=64, embedding_dim=8, hidden_units=(16,),
                       model_dir=str(tmp_path), verbose=0)
  trained = {}
  original_evaluate = train.exact.evaluate

  def keep_model(model, prepared, seed, **kwargs):
    trained["model"], trained["prepared"] = model, prepared
    return original_evaluate(model, prepared, seed, **kwargs)

  monkeypatch.setattr(train.exact, "evaluate", keep_model)
  train.train_and_evaluate(config, data)
  model, prepared = trained["model"], trained["prepared"]

  loaded_config, loaded, vocabularies = load_trained_model(str(tmp_path))
  assert loaded_config.model == "cr"
  assert loaded_config.condition_feature == "topics"  # the synthetic data's default
  np.testing.assert_array_equal(vocabularies.item_ids, data.catalog.item_id)
  np.testing.assert_array_equal(vocabularies.user_ids, data.users.user_id)
  np.testing.assert_array_equal(vocabularies.conditions.ids, prepared.conditions.ids)
  np.testing.assert_array_equal(vocabularies.conditions.vocabulary,
                                ["[OOV]", "[NONE]", "c00", "c01", "c02", "c03", "c04"])
  items = np.arange(60)
  np.testing.assert_allclose(loaded.candidate_tower(items).numpy(),
                             model.candidate_tower(items).numpy(), rtol=1e-6)
  query = {"user": np.array([0, 1, 40]), "condition": np.array([0, 1, 6])}
  np.testing.assert_allclose(loaded.query_tower(query).numpy(),
                             model.query_tower(query).numpy(), rtol=1e-6)

  # config.json holds the training settings only; data.json the data's fingerprint.
  model_dir = ModelDir(str(tmp_path))
  with open(model_dir.file("config.json")) as f:
    written = json.load(f)
  assert not {"dataset", "data_dir", "export_dir", "synthetic_users"} & set(written)
  assert written["epochs"] == 1 and written["embedding_dim"] == 8
  fingerprint = model_dir.read_fingerprint()
  assert (fingerprint.name, fingerprint.num_users, fingerprint.num_items,
          fingerprint.num_interactions) == ("synthetic", 40, 60, 800)
  assert fingerprint.differences(DataFingerprint.of(data)) == []
  assert model_dir.is_finished()
  assert model_dir.read_metrics()["num_train_examples"] == len(prepared.train)


def test_empty_model_dir_is_a_clear_error(tmp_path):
  with pytest.raises(ConfigError, match="holds no trained model"):
    load_trained_model(str(tmp_path))
  with pytest.raises(ConfigError, match="holds no trained model"):
    ModelDir(str(tmp_path)).load_trained_model()
