"""The training flags tfcr-train and tfcr-eval share, defined once.

A binary calls `define()` at import time, then `flags.adopt_module_key_flags` on this
module so its --help lists them, and `config_values()` to read them.
"""

from typing import Any, Dict

from absl import flags

from tfcr.config import TrainConfig

# TrainConfig fields set by these flags (data_dir aside: it only says where data is cached).
FIELDS = ("dataset", "condition_feature", "embedding_dim", "hidden_units", "epochs",
          "batch_size", "learning_rate", "normalize_embeddings", "temperature",
          "extra_negatives", "min_rating", "test_per_user", "synthetic_users",
          "synthetic_items", "synthetic_conditions", "synthetic_interactions")


def define(help_suffix: str = ".") -> None:
  """Defines the flags of FIELDS and --data_dir; `help_suffix` ends each FIELDS help."""
  defaults = TrainConfig()
  flags.DEFINE_string("dataset", defaults.dataset,
                      "Data set: movielens-100k (files from the recbole wheel, cached under "
                      "--data_dir), synthetic (planted structure, see --synthetic_*), or "
                      "tfds:<name>, e.g. tfds:movielens/100k-ratings (needs internet)"
                      + help_suffix)
  flags.DEFINE_string("data_dir", defaults.data_dir, "Where data sets are cached.")
  flags.DEFINE_string("condition_feature", None,
                      "Item-side categorical feature the condition is sampled from, e.g. "
                      "genres or decade on MovieLens, topics on synthetic. Default: the data "
                      "set's natural one (genres; topics)" + help_suffix)
  flags.DEFINE_integer("embedding_dim", defaults.embedding_dim,
                       "Size of the query and item embeddings" + help_suffix)
  flags.DEFINE_list("hidden_units", [str(h) for h in defaults.hidden_units],
                    "Hidden layer sizes of each tower's MLP, comma-separated" + help_suffix)
  flags.DEFINE_integer("epochs", defaults.epochs, "Training epochs" + help_suffix)
  flags.DEFINE_integer("batch_size", defaults.batch_size,
                       "Examples per batch; the other items of a batch are the negatives"
                       + help_suffix)
  flags.DEFINE_float("learning_rate", defaults.learning_rate,
                     "Adam learning rate" + help_suffix)
  flags.DEFINE_bool("normalize_embeddings", defaults.normalize_embeddings,
                    "L2-normalise both towers' outputs (cosine scores); pair with a small "
                    "--temperature" + help_suffix)
  flags.DEFINE_float("temperature", defaults.temperature,
                     "Softmax temperature: scores are divided by it" + help_suffix)
  flags.DEFINE_integer("extra_negatives", defaults.extra_negatives,
                       "Items drawn uniformly from the catalog per batch as extra negatives "
                       "(mixed negative sampling; the logQ correction uses the mixture)"
                       + help_suffix)
  flags.DEFINE_float("min_rating", None,
                     "Only ratings >= this are positives (default: all interactions)"
                     + help_suffix)
  flags.DEFINE_integer("test_per_user", defaults.test_per_user,
                       "Each user's last N interactions in time are held out for evaluation"
                       + help_suffix)
  flags.DEFINE_integer("synthetic_users", defaults.synthetic_users,
                       "Synthetic: users" + help_suffix)
  flags.DEFINE_integer("synthetic_items", defaults.synthetic_items,
                       "Synthetic: items" + help_suffix)
  flags.DEFINE_integer("synthetic_conditions", defaults.synthetic_conditions,
                       "Synthetic: distinct condition values" + help_suffix)
  flags.DEFINE_integer("synthetic_interactions", defaults.synthetic_interactions,
                       "Synthetic: interactions" + help_suffix)


def config_values() -> Dict[str, Any]:
  """TrainConfig keyword arguments of FIELDS and data_dir, from the parsed flags.

  Raises:
    ValueError: --hidden_units holds something other than integers (a one-line message).
  """
  values = {name: flags.FLAGS[name].value for name in FIELDS + ("data_dir",)}
  try:
    values["hidden_units"] = tuple(int(h) for h in values["hidden_units"])
  except ValueError:
    raise ValueError(f"--hidden_units must be integers, got {values['hidden_units']}."
                     ) from None
  return values
