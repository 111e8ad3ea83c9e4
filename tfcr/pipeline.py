"""Train-or-reuse and export-or-reuse: what the demo and the notebooks call so that running
them again picks up the model and servable already made instead of starting over.

    metrics = ensure_trained(TrainConfig(model_dir="runs/cr", epochs=20), data=data)
    path = ensure_exported("runs/cr", "exports/cr", index="scann")
"""

import json
import os
import shutil
from typing import Callable, Dict, Optional

from tfcr.config import TrainConfig

METRICS = "metrics.json"
EXPORTS = "exports.json"  # in the model dir: {export_dir: {"version", "index", "checkpoint"}}


def _read_json(path: str):
  with open(path) as f:
    return json.load(f)


def finished_run_differences(config: TrainConfig) -> Optional[list]:
  """None when `config.model_dir` holds no finished run (no metrics.json); else the
  settings (field names) in which that run differs from `config` ([] = the same run)."""
  config = config.resolved()
  metrics_path = os.path.join(config.model_dir, METRICS)
  config_path = os.path.join(config.model_dir, "config.json")
  if not (os.path.exists(metrics_path) and os.path.exists(config_path)):
    return None
  previous = TrainConfig.from_dict(_read_json(config_path))
  differing = config.differences(previous)
  if previous.epochs != config.epochs:
    differing.append("epochs")
  return differing


def ensure_trained(config: TrainConfig, data=None, retrain: bool = False,
                   log: Callable[[str], None] = print) -> Dict[str, float]:
  """Returns the metrics of the run in `config.model_dir`, training it first unless a
  finished run with the same settings is there. A run with other settings, or any run
  when `retrain`, is deleted and trained afresh; an interrupted one is resumed.

  data: an optional `RecData` (else `config.dataset` is loaded), as for train_and_evaluate.
  """
  from tfcr.train import train_and_evaluate  # pylint: disable=g-import-not-at-top
  config = config.resolved()
  differing = finished_run_differences(config)
  if differing == [] and not retrain:  # pylint: disable=g-explicit-bool-comparison
    log(f"Reusing the trained model in {config.model_dir}.")
    return _read_json(os.path.join(config.model_dir, METRICS))
  config_path = os.path.join(config.model_dir, "config.json")
  if os.path.exists(config_path):
    previous = TrainConfig.from_dict(_read_json(config_path))
    changed = differing or config.differences(previous)
    if retrain or changed:
      why = "retrain asked" if retrain else f"settings changed: {', '.join(changed)}"
      log(f"Training afresh in {config.model_dir} ({why}).")
      shutil.rmtree(config.model_dir)
  return train_and_evaluate(config, data=data)


def _latest_checkpoint(model_dir: str) -> str:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return os.path.basename(tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
                          or "")


def ensure_exported(model_dir: str, export_dir: str, index: str = "scann",
                    reexport: bool = False, log: Callable[[str], None] = print,
                    **export_args) -> str:
  """Returns EXPORT_DIR/<version> holding a servable of the latest checkpoint of
  `model_dir` with this index, exporting a new version unless one is already there.
  export_args go to `tfcr.servable.export_servable` (max_k, exact_threshold)."""
  from tfcr.servable import export_servable  # pylint: disable=g-import-not-at-top
  model_dir = os.path.abspath(os.path.expanduser(model_dir))
  export_dir = os.path.abspath(os.path.expanduser(export_dir))
  record_path = os.path.join(model_dir, EXPORTS)
  records = _read_json(record_path) if os.path.exists(record_path) else {}
  wanted = {"index": index, "checkpoint": _latest_checkpoint(model_dir),
            **{k: v for k, v in sorted(export_args.items())}}
  record = records.get(export_dir)
  if record and not reexport:
    path = os.path.join(export_dir, str(record["version"]))
    if ({k: v for k, v in record.items() if k != "version"} == wanted
        and os.path.exists(os.path.join(path, "saved_model.pb"))):
      log(f"Reusing the {index} servable in {path}.")
      return path
  path = export_servable(model_dir, export_dir, index=index, log=log, **export_args)
  records[export_dir] = {"version": int(os.path.basename(path)), **wanted}
  from tfcr.train import write_json_atomically  # pylint: disable=g-import-not-at-top
  write_json_atomically(record_path, records)
  log(f"Exported the {index} servable to {path}.")
  return path
