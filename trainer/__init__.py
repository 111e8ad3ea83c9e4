"""Command-line binaries: flags live here and nowhere else."""

import tfcr  # noqa: F401  (sets TF_USE_LEGACY_KERAS before anything imports TensorFlow)
