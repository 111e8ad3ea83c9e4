"""Export-or-reuse: what the demo and the notebooks call so that running them again
picks up the servable already exported instead of exporting a new version.

    path = ensure_exported("runs/cr", "exports/cr", index="scann")
"""

import os
from typing import Callable

from tfcr.export.exporter import export_servable
from tfcr.training.model_dir import ModelDir


def ensure_exported(model_dir: str, export_dir: str, index: str = "scann",
                    reexport: bool = False, log: Callable[[str], None] = print,
                    **export_args) -> str:
  """Returns EXPORT_DIR/<version> holding a servable of the latest checkpoint of
  `model_dir` with this index, exporting a new version unless one is already there.
  export_args go to `export_servable` (max_k, exact_threshold). The model dir's
  exports.json records what was exported where."""
  run = ModelDir(model_dir)
  export_dir = os.path.abspath(os.path.expanduser(export_dir))
  records = run.read_exports()
  wanted = {"index": index,
            "checkpoint": os.path.basename(run.latest_checkpoint() or ""),
            **{k: v for k, v in sorted(export_args.items())}}
  record = records.get(export_dir)
  if record and not reexport:
    path = os.path.join(export_dir, str(record["version"]))
    if ({k: v for k, v in record.items() if k != "version"} == wanted
        and os.path.exists(os.path.join(path, "saved_model.pb"))):
      log(f"Reusing the {index} servable in {path}.")
      return path
  path = export_servable(run.path, export_dir, index=index, log=log, **export_args)
  records[export_dir] = {"version": int(os.path.basename(path)), **wanted}
  run.write_exports(records)
  log(f"Exported the {index} servable to {path}.")
  return path
