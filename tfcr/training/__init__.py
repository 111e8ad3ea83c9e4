"""Training: the configuration, the input pipeline, the training loop, the model dir
(what a run leaves behind, read and written in one place) and train-or-reuse."""

# The tf.distribute strategies (tfcr.training.distribution), free of TensorFlow here so
# configurations and flags can name them.
STRATEGIES = ("none", "mirrored", "multi_worker_mirrored")
