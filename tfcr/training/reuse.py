"""Train-or-reuse: what the demo, the notebooks and tfcr-eval call so that running them
again picks up the model already trained instead of starting over.

    metrics = ensure_trained(TrainConfig(model_dir="runs/cr", epochs=20), data)
"""

import shutil
from typing import Callable, Dict, Optional, Union

from tfcr.data.fingerprint import DataFingerprint
from tfcr.data.schema import RecData
from tfcr.data.sources import DataSource
from tfcr.training.config import TrainConfig
from tfcr.training.loop import load_data, train_and_evaluate
from tfcr.training.model_dir import ModelDir


def finished_run_differences(config: TrainConfig, data: RecData) -> Optional[list]:
  """None when `config.model_dir` holds no finished run (no metrics.json); else the
  settings (field names) in which that run differs from `config` ([] = the same run)."""
  config = config.for_data(data)
  model_dir = ModelDir(config.model_dir)
  if not model_dir.is_finished():
    return None
  previous = model_dir.read_config()
  differing = config.differences(previous)
  if previous.epochs != config.epochs:
    differing.append("epochs")
  return differing


def ensure_trained(config: TrainConfig, data: Union[RecData, DataSource],
                   retrain: bool = False, log: Callable[[str], None] = print,
                   fingerprint: Optional[DataFingerprint] = None) -> Dict[str, float]:
  """Returns the metrics of the run in `config.model_dir`, training it first unless a
  finished run with the same settings and data is there. A run with other settings, or
  any run when `retrain`, is deleted and trained afresh; an interrupted one is resumed.
  A run on other data is refused (ConfigError naming what differs) unless `retrain`.
  fingerprint: of `data` (a RecData), when the caller has it (it records the source).
  """
  data, fingerprint = load_data(data, log=log, fingerprint=fingerprint)
  config = config.for_data(data)
  model_dir = ModelDir(config.model_dir)
  if not retrain:
    model_dir.check_same_data(fingerprint)
  differing = finished_run_differences(config, data)
  if differing == [] and not retrain:  # pylint: disable=g-explicit-bool-comparison
    log(f"Reusing the trained model in {config.model_dir}.")
    return model_dir.read_metrics()
  previous = model_dir.read_config()
  if previous is not None:
    changed = differing or config.differences(previous)
    if retrain or changed:
      why = "retrain asked" if retrain else f"settings changed: {', '.join(changed)}"
      log(f"Training afresh in {config.model_dir} ({why}).")
      shutil.rmtree(config.model_dir)
  return train_and_evaluate(config, data, fingerprint=fingerprint)
