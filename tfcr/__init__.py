"""tfcr: conditional retrieval for recommender systems, on TensorFlow Recommenders.

A two-tower retrieval model whose query tower also takes a condition (topic, genre,
brand...), trained on plain engagement pairs by sampling the condition from the engaged
item's own attributes (Lin et al., "Bootstrapping Conditional Retrieval for User-to-Item
Recommendations", RecSys 2024).
"""

import os

# TFRS needs Keras 2; this must happen before TensorFlow is first imported anywhere.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

__version__ = "0.1.0"
