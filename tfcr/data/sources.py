"""Loads a data set by name: `movielens-100k`, `synthetic` or `tfds:<name>`."""

from tfcr.config import ConfigError, TrainConfig
from tfcr.data.schema import RecData


def load_dataset(config: TrainConfig) -> RecData:
  """Returns the data set named by `config.dataset`."""
  if config.dataset == "movielens-100k":
    from tfcr.data.movielens_tfds import load_movielens_100k
    data = load_movielens_100k(config.data_dir)
  elif config.dataset == "synthetic":
    from tfcr.data import synthetic
    try:
      data = synthetic.generate(n_users=config.synthetic_users, n_items=config.synthetic_items,
                                n_conditions=config.synthetic_conditions,
                                n_interactions=config.synthetic_interactions,
                                seed=config.seed)
    except ValueError as e:
      raise ConfigError(f"Bad synthetic data set parameters: {e}") from None
  elif config.dataset.startswith("tfds:"):
    from tfcr.data.tfds_movielens import load_tfds_movielens
    data = load_tfds_movielens(config.dataset[len("tfds:"):], config.data_dir)
  else:
    raise ConfigError(f"Unknown --dataset={config.dataset!r}; valid values: movielens-100k, "
                      f"synthetic, tfds:<name>.")
  return data.validate()
