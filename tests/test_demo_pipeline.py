"""Train-or-reuse (tfcr.training.reuse, tfcr.export.reuse): a finished run and its export
are reused; changed settings retrain; other data is refused."""

import os

import pytest

from tfcr.data.sources import DataSource
from tfcr.data.synthetic import SyntheticConfig
from tfcr.errors import ConfigError
from tfcr.export.reuse import ensure_exported
from tfcr.training.config import TrainConfig
from tfcr.training.reuse import ensure_trained, finished_run_differences


def test_train_and_export_or_reuse(tmp_path):
  source = DataSource("synthetic", data_dir=str(tmp_path / "data"),
                      synthetic=SyntheticConfig(n_users=80, n_items=100,
                                                n_interactions=1500, seed=42))
  data = source.load()
  config = TrainConfig(epochs=1, batch_size=256, verbose=0, model_dir=str(tmp_path / "cr"))
  assert finished_run_differences(config, data) is None
  messages = []
  first = ensure_trained(config, source, log=messages.append)
  assert messages == [] and finished_run_differences(config, data) == []

  # Reused whether the data comes as the source again or as the loaded RecData.
  again = ensure_trained(config, data, log=messages.append)
  assert again == first and messages[-1].startswith("Reusing the trained model")
  again = ensure_trained(config, source, log=messages.append)
  assert again == first and messages[-1].startswith("Reusing the trained model")

  export_dir = str(tmp_path / "export")
  path = ensure_exported(config.model_dir, export_dir, index="brute_force", log=messages.append)
  assert path == os.path.join(export_dir, "1") and messages[-1].startswith("Exported")
  assert ensure_exported(config.model_dir, export_dir, index="brute_force",
                         log=messages.append) == path
  assert messages[-1].startswith("Reusing the brute_force servable")

  # Other data is refused, naming what differs, and leaves the run as it was.
  other = DataSource("synthetic", data_dir=str(tmp_path / "data"),
                     synthetic=SyntheticConfig(n_users=80, n_items=120,
                                               n_interactions=1500, seed=42))
  with pytest.raises(ConfigError, match=r"trained on other data \(num_items 100 vs 120"):
    ensure_trained(config, other, log=messages.append)
  assert ensure_trained(config, source, log=messages.append) == first
  assert messages[-1].startswith("Reusing the trained model")

  longer = TrainConfig(**{**config.__dict__, "epochs": 2})
  assert finished_run_differences(longer, data) == ["epochs"]
  ensure_trained(longer, source, log=messages.append)
  assert "settings changed: epochs" in messages[-1]
  # A new checkpoint: the export is made again, as the next version.
  assert ensure_exported(config.model_dir, export_dir, index="brute_force",
                         log=messages.append) == os.path.join(export_dir, "2")

  ensure_trained(longer, source, retrain=True, log=messages.append)
  assert "retrain asked" in messages[-1]
  # retrain also trains afresh on other data.
  ensure_trained(longer, other, retrain=True, log=messages.append)
  assert "retrain asked" in messages[-1]
  assert finished_run_differences(longer, other.load()) == []
