"""Where a data set comes from: `DataSource(dataset, data_dir, synthetic)` and `load()`.

    source = DataSource("movielens-100k", data_dir="~/.cache/tfcr")
    data = source.load()        # a validated RecData

Datasets: `movielens-100k` (RecBole's files, fetched from PyPI once), `synthetic` (the
generator, with its own options in `synthetic`), `files` (your own tables on disk, where
`files` says: `tfcr.data.files`) and `tfds:<name>` (TFDS's MovieLens ratings; needs
internet). A source is plain data, written to the model dir with the
fingerprint of what it loaded, so a later command can load the same data again.
"""

import dataclasses
import os
from typing import Callable, Optional

from tfcr.data.files import FileTables
from tfcr.data.schema import RecData
from tfcr.data.synthetic import SyntheticConfig
from tfcr.errors import ConfigError

DATASETS = ("movielens-100k", "synthetic", "files", "tfds:<name>")
# The synthetic source a binary gets without --synthetic_* flags.
DEFAULT_SYNTHETIC = SyntheticConfig(n_users=2000, n_items=5000, n_conditions=20,
                                    n_interactions=100_000, seed=42)


@dataclasses.dataclass(frozen=True)
class DataSource:
  """dataset: one of DATASETS; data_dir: where downloads and prepared files are cached;
  synthetic: the generator's options (used only by dataset="synthetic"); files: the
  tables (used only by dataset="files")."""
  dataset: str = "movielens-100k"
  data_dir: str = "~/.cache/tfcr"
  synthetic: SyntheticConfig = DEFAULT_SYNTHETIC
  files: Optional[FileTables] = None

  def resolved(self) -> "DataSource":
    """Checks the names and expands data_dir; raises ConfigError."""
    known = self.dataset in ("movielens-100k", "synthetic", "files") or (
        self.dataset.startswith("tfds:") and len(self.dataset) > len("tfds:"))
    if not known:
      raise ConfigError(f"Unknown dataset={self.dataset!r}; valid values: "
                        f"{', '.join(DATASETS)} (e.g. tfds:movielens/100k-ratings).")
    if self.dataset == "synthetic":
      try:
        self.synthetic.validate()
      except ValueError as e:
        raise ConfigError(f"Bad synthetic data set parameters: {e}") from None
    if self.dataset == "files":
      if self.files is None:
        raise ConfigError("dataset='files' needs interactions=PATH and items=PATH.")
      self.files.validate()
      # Absolute paths: the model dir records the source for later commands.
      absolute = {k: os.path.abspath(os.path.expanduser(getattr(self.files, k)))
                  for k in ("interactions", "items", "users") if getattr(self.files, k)}
      return dataclasses.replace(
          self, data_dir=os.path.abspath(os.path.expanduser(self.data_dir)),
          files=dataclasses.replace(self.files, **absolute))
    return dataclasses.replace(
        self, data_dir=os.path.abspath(os.path.expanduser(self.data_dir)))

  def load(self, log: Optional[Callable[[str], None]] = None) -> RecData:
    """The data set, validated. `log` hears what takes time (a first fetch)."""
    source = self.resolved()
    if source.dataset == "movielens-100k":
      from tfcr.data.movielens import files  # pylint: disable=g-import-not-at-top
      data = files.load_movielens_100k(source.data_dir, log=log)
    elif source.dataset == "files":
      from tfcr.data.files import load_files  # pylint: disable=g-import-not-at-top
      data = load_files(source.files)
    elif source.dataset == "synthetic":
      from tfcr.data import synthetic  # pylint: disable=g-import-not-at-top
      data = synthetic.generate(**dataclasses.asdict(source.synthetic))
    else:
      from tfcr.data.movielens.tfds_ratings import load_tfds_movielens  # pylint: disable=g-import-not-at-top
      data = load_tfds_movielens(source.dataset[len("tfds:"):], source.data_dir)
    return data.validate()

  def to_dict(self) -> dict:
    values = {"dataset": self.dataset, "data_dir": self.data_dir}
    if self.dataset == "synthetic":
      values["synthetic"] = dataclasses.asdict(self.synthetic)
    if self.dataset == "files" and self.files is not None:
      values["files"] = dataclasses.asdict(self.files)
    return values

  @classmethod
  def from_dict(cls, values: dict) -> "DataSource":
    synthetic, files = values.get("synthetic"), values.get("files")
    return cls(dataset=values["dataset"], data_dir=values.get("data_dir", "~/.cache/tfcr"),
               synthetic=SyntheticConfig(**synthetic) if synthetic else DEFAULT_SYNTHETIC,
               files=FileTables(**files) if files else None)
