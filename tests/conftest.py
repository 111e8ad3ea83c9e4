"""Shared test set-up: Keras 2 before TensorFlow loads, quiet TF logs."""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
