"""Command-line binaries: flags live here and nowhere else."""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
