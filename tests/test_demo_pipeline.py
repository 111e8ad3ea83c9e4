"""tfcr.pipeline: a finished run and its export are reused; changed settings retrain."""

import os

from tfcr.training.config import TrainConfig
from tfcr.export.reuse import ensure_exported
from tfcr.training.reuse import ensure_trained, finished_run_differences


def test_train_and_export_or_reuse(tmp_path):
  config = TrainConfig(dataset="synthetic", synthetic_users=80, synthetic_items=100,
                       synthetic_interactions=1500, epochs=1, batch_size=256, verbose=0,
                       model_dir=str(tmp_path / "cr"))
  assert finished_run_differences(config) is None
  messages = []
  first = ensure_trained(config, log=messages.append)
  assert messages == [] and finished_run_differences(config) == []

  again = ensure_trained(config, log=messages.append)
  assert again == first and messages[-1].startswith("Reusing the trained model")

  export_dir = str(tmp_path / "export")
  path = ensure_exported(config.model_dir, export_dir, index="brute_force", log=messages.append)
  assert path == os.path.join(export_dir, "1") and messages[-1].startswith("Exported")
  assert ensure_exported(config.model_dir, export_dir, index="brute_force",
                         log=messages.append) == path
  assert messages[-1].startswith("Reusing the brute_force servable")

  longer = TrainConfig(**{**config.__dict__, "epochs": 2})
  assert finished_run_differences(longer) == ["epochs"]
  ensure_trained(longer, log=messages.append)
  assert "settings changed: epochs" in messages[-1]
  # A new checkpoint: the export is made again, as the next version.
  assert ensure_exported(config.model_dir, export_dir, index="brute_force",
                         log=messages.append) == os.path.join(export_dir, "2")

  ensure_trained(longer, retrain=True, log=messages.append)
  assert "retrain asked" in messages[-1]
