"""tfcr: conditional retrieval for recommender systems, on TensorFlow Recommenders.

A two-tower retrieval model whose query tower also takes a condition (topic, genre,
brand...), trained on plain engagement pairs by sampling the condition from the engaged
item's own attributes (Lin et al., "Bootstrapping Conditional Retrieval for User-to-Item
Recommendations", RecSys 2024).

Subpackages, lowest layer first (a layer imports only lower ones; tests/test_architecture
checks it):

  errors, utils   the errors a user can fix; atomic JSON files, the machine description
  data            schema, sources (movielens/, synthetic, DataFrames), ids -> rows,
                  conditions, derived features, split, prepared arrays, fingerprint
  models, index   layers, towers, the retrieval model and its factory; brute force,
                  ScaNN, leaf tuning, ScaNN's CPU kernels
  metrics         test queries, per-query metrics, exact evaluation, bootstrap
  training        configuration, input pipeline, training loop, model dir, reuse
  export          condition filter, servable, exporter, reuse
  client          REST / in-process clients, result tables, a local model server
  comparison      the five-method evaluation behind tfcr-eval
  demo, cli       `make demo` and the notebooks' helpers; the binaries' start-up
"""

import os

# TFRS needs Keras 2. This is the one place that says so: it runs before TensorFlow is
# first imported, because every entry point (trainer/, serving/, tests, notebooks)
# imports tfcr first.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

__version__ = "0.1.0"
