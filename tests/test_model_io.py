"""A trained model is rebuilt from its model dir alone, with identical outputs."""

import numpy as np
import pytest

from tfcr.errors import ConfigError
from tfcr.training.config import TrainConfig
from tfcr.data import synthetic
from tfcr.data.prepare import prepare
from tfcr.training.model_dir import load_trained_model
from tfcr.training import loop as train


def test_reload_gives_the_same_embeddings(tmp_path, monkeypatch):
  data = synthetic.generate(n_users=40, n_items=60, n_conditions=5, n_interactions=800)
  config = TrainConfig(dataset="synthetic", epochs=1, batch_size=64, embedding_dim=8,
                       hidden_units=(16,), model_dir=str(tmp_path), verbose=0)
  trained = {}
  original_evaluate = train.evaluation.evaluate

  def keep_model(model, prepared, seed):
    trained["model"], trained["prepared"] = model, prepared
    return original_evaluate(model, prepared, seed)

  monkeypatch.setattr(train.evaluation, "evaluate", keep_model)
  train.train_and_evaluate(config, data=data)
  model, prepared = trained["model"], trained["prepared"]

  loaded_config, loaded, vocabularies = load_trained_model(str(tmp_path))
  assert loaded_config.model == "cr"
  np.testing.assert_array_equal(vocabularies.item_ids, data.catalog.item_id)
  np.testing.assert_array_equal(vocabularies.conditions.ids, prepared.conditions.ids)
  items = np.arange(60)
  np.testing.assert_allclose(loaded.candidate_tower(items).numpy(),
                             model.candidate_tower(items).numpy(), rtol=1e-6)
  query = {"user": np.array([0, 1, 40]), "condition": np.array([0, 1, 6])}
  np.testing.assert_allclose(loaded.query_tower(query).numpy(),
                             model.query_tower(query).numpy(), rtol=1e-6)


def test_empty_model_dir_is_a_clear_error(tmp_path):
  with pytest.raises(ConfigError, match="holds no trained model"):
    load_trained_model(str(tmp_path))
