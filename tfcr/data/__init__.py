"""Data: the schema every source produces, the sources (MovieLens in `movielens/`,
synthetic, DataFrames), ids -> rows, condition extraction, derived features, the split,
the prepared arrays a model trains on, and the data fingerprint a model dir records."""
