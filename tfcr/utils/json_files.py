"""JSON files that readers never see half-written."""

import json
import os
import tempfile


def read_json(path: str):
  with open(path) as f:
    return json.load(f)


def write_json_atomically(path: str, payload, sort_keys: bool = True) -> None:
  """Writes JSON through a temp file beside `path` and a rename."""
  directory = os.path.dirname(path) or "."
  with tempfile.NamedTemporaryFile("w", dir=directory, delete=False, suffix=".tmp") as f:
    json.dump(payload, f, indent=2, sort_keys=sort_keys)
    f.write("\n")
  os.replace(f.name, path)
