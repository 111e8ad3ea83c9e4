"""Fetches the MovieLens-100k atomic files shipped inside the RecBole wheel.

RecBole's wheel carries MovieLens-100k in its "atomic file" format (tab-separated with
a typed header, e.g. `user_id:token  item_id:token  rating:float  timestamp:float`). We
take it from the wheel because PyPI is reachable where grouplens.org often is not (e.g.
behind a proxy that only lets package registries through). RecBole itself is never
installed or imported: the wheel is a zip and we read three members out of it.

Layout: `<data_dir>/movielens-100k/raw/ml-100k.{inter,item,user}`.
"""

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from typing import Sequence

from absl import logging

from tfcr.errors import DataUnavailableError

RECBOLE_REQUIREMENT = "recbole==1.2.1"
FILE_NAMES = ("ml-100k.inter", "ml-100k.item", "ml-100k.user")
_MEMBER_DIR = "recbole/dataset_example/ml-100k/"
_PIP_TIMEOUT_S = 600


def raw_dir(data_dir: str) -> str:
  """Returns where the three raw files live under `data_dir`."""
  return os.path.join(data_dir, "movielens-100k", "raw")


def has_raw_files(directory: str) -> bool:
  """True when `directory` holds all three MovieLens-100k atomic files."""
  return all(os.path.isfile(os.path.join(directory, n)) for n in FILE_NAMES)


def _pip_download_command(dest: str, pip_args: Sequence[str]) -> list:
  # --only-binary: an sdist would make pip build metadata, i.e. run RecBole's setup.py.
  return [sys.executable, "-m", "pip", "download", RECBOLE_REQUIREMENT, "--no-deps",
          "--only-binary=:all:", "--disable-pip-version-check", "-q", "-d", dest,
          *pip_args]


def _unavailable(what: str, target: str) -> DataUnavailableError:
  return DataUnavailableError(
      f"MovieLens-100k: {what}. Fix: allow access to PyPI for `pip download "
      f"{RECBOLE_REQUIREMENT}`, or put {', '.join(FILE_NAMES)} (RecBole atomic files) "
      f"in {target} by hand.")


def _download_wheel(dest: str, pip_args: Sequence[str], target: str) -> str:
  """Downloads the RecBole wheel into `dest`; returns its path."""
  command = _pip_download_command(dest, pip_args)
  try:
    result = subprocess.run(command, capture_output=True, text=True,
                            timeout=_PIP_TIMEOUT_S, check=False)
  except (OSError, subprocess.TimeoutExpired) as e:
    raise _unavailable(f"could not run pip ({type(e).__name__}: {e})", target) from e
  if result.returncode != 0:
    # pip's last stderr line is usually the reason ("No matching distribution...").
    lines = [l.strip() for l in (result.stderr or "").splitlines() if l.strip()]
    reason = lines[-1] if lines else f"exit status {result.returncode}"
    raise _unavailable(f"`pip download {RECBOLE_REQUIREMENT}` failed ({reason})", target)
  wheels = glob.glob(os.path.join(dest, "recbole-*.whl"))
  if not wheels:
    raise _unavailable(f"pip download produced no RecBole wheel in {dest}", target)
  return wheels[0]


def _extract(wheel: str, dest: str, target: str) -> None:
  """Copies the three atomic files out of the wheel (a zip) into `dest`."""
  try:
    with zipfile.ZipFile(wheel) as archive:
      members = set(archive.namelist())
      missing = [n for n in FILE_NAMES if _MEMBER_DIR + n not in members]
      if missing:
        raise _unavailable(f"{os.path.basename(wheel)} lacks {', '.join(missing)}",
                           target)
      for name in FILE_NAMES:
        with archive.open(_MEMBER_DIR + name) as src, \
            open(os.path.join(dest, name), "wb") as dst:
          shutil.copyfileobj(src, dst)
  except zipfile.BadZipFile as e:
    raise _unavailable(f"{os.path.basename(wheel)} is not a valid wheel ({e})",
                       target) from e


def fetch_movielens_100k(data_dir: str, pip_args: Sequence[str] = ()) -> str:
  """Makes sure the MovieLens-100k atomic files are under `data_dir`; returns their dir.

  Cached: when the three files are already in `raw_dir(data_dir)` nothing runs.
  Otherwise `pip download`s the RecBole wheel into a temp dir next to the target,
  extracts the files there and only then moves them into place, so a failed or
  interrupted fetch never leaves a half-written file where the cache check looks.

  Args:
    data_dir: root data directory.
    pip_args: extra arguments for `pip download` (e.g. `--index-url ...`).

  Returns:
    The directory holding ml-100k.inter, ml-100k.item and ml-100k.user.

  Raises:
    DataUnavailableError: pip failed (e.g. no network) or the wheel lacks the files.
  """
  target = raw_dir(data_dir)
  if has_raw_files(target):
    return target
  parent = os.path.dirname(target)
  os.makedirs(parent, exist_ok=True)
  logging.info("Fetching MovieLens-100k from the %s wheel into %s", RECBOLE_REQUIREMENT,
               target)
  # Same file system as the target, so the final moves are atomic renames.
  with tempfile.TemporaryDirectory(dir=parent, prefix=".fetch-") as tmp:
    wheel = _download_wheel(os.path.join(tmp, "wheel"), pip_args, target)
    staged = os.path.join(tmp, "raw")
    os.makedirs(staged)
    _extract(wheel, staged, target)
    try:
      os.rename(staged, target)  # The usual case: the whole directory at once.
    except OSError:
      # The target already exists (e.g. a user put some of the files there by hand):
      # keep theirs and move in only what is missing, each file atomically.
      os.makedirs(target, exist_ok=True)
      for name in FILE_NAMES:
        if not os.path.isfile(os.path.join(target, name)):
          os.replace(os.path.join(staged, name), os.path.join(target, name))
  return target
