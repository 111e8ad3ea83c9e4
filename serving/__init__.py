"""Export binary and model server for tfcr servables (TF Serving's REST and gRPC APIs)."""

import tfcr  # noqa: F401  (sets TF_USE_LEGACY_KERAS before anything imports TensorFlow)
