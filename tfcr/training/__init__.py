"""Training: the configuration, the input pipeline, the training loop, the model dir
(what a run leaves behind, read and written in one place) and train-or-reuse."""
