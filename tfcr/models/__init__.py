"""Models: serializable layers, the query and candidate towers, the TFRS retrieval model,
the factory that builds them from a configuration, and batched embedding."""

# The model kinds (here, free of TensorFlow, so configurations and flags can name them):
# cr conditions the query tower on a condition, lr is the same two towers without it.
MODELS = ("cr", "lr")
