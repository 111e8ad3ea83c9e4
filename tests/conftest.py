"""Shared test set-up: tfcr first (it sets TF_USE_LEGACY_KERAS before TensorFlow loads),
quiet TF logs."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tfcr  # noqa: E402,F401  pylint: disable=wrong-import-position
