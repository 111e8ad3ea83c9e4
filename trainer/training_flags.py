"""The data and training flags tfcr-train, tfcr-eval and the demo share, defined once.

A binary calls `define_data()` and/or `define_training()` at import time, then
`flags.adopt_module_key_flags` on this module so its --help lists them, and
`data_source()` / `training_values()` to read them.
"""

from typing import Any, Dict

from absl import flags

from tfcr.data.files import FORMATS, FileTables
from tfcr.data.sources import DEFAULT_SYNTHETIC, DataSource
from tfcr.data.synthetic import SyntheticConfig
from tfcr.errors import ConfigError
from tfcr.training.config import OPTIMIZERS, TrainConfig
from tfcr.training import STRATEGIES

# TrainConfig fields set by define_training's flags.
TRAINING_FIELDS = ("condition_feature", "embedding_dim", "hidden_units", "epochs",
                   "batch_size", "learning_rate", "normalize_embeddings", "temperature",
                   "extra_negatives", "min_rating", "test_per_user", "user_features",
                   "item_features", "max_vocabulary", "hash_buckets", "condition_dropout",
                   "optimizer", "hard_negatives", "condition_loss_weight",
                   "distribution_strategy", "cross_replica_negatives")
FILE_FLAGS = ("interactions", "items", "users", "file_format", "user_column", "item_column",
              "timestamp_column", "rating_column", "list_separator")
DATA_FLAGS = ("dataset", "synthetic_users", "synthetic_items", "synthetic_conditions",
              "synthetic_interactions") + FILE_FLAGS


def define_data(help_suffix: str = ".", files: bool = True) -> None:
  """--dataset, --data_dir, the --synthetic_* options of the synthetic source and, with
  `files`, the tables of the files source (the demo has a --users flag of its own)."""
  defaults = DataSource()
  flags.DEFINE_string("dataset", defaults.dataset,
                      "Data set: movielens-100k (files from the recbole wheel, cached under "
                      "--data_dir), synthetic (planted structure, see --synthetic_*), files "
                      "(your own tables: --interactions, --items, --users), or "
                      "tfds:<name>, e.g. tfds:movielens/100k-ratings (needs internet)"
                      + help_suffix)
  if files:
    _define_file_flags(help_suffix)
  flags.DEFINE_string("data_dir", defaults.data_dir, "Where data sets are cached.")
  flags.DEFINE_integer("synthetic_users", DEFAULT_SYNTHETIC.n_users,
                       "--dataset=synthetic: users" + help_suffix)
  flags.DEFINE_integer("synthetic_items", DEFAULT_SYNTHETIC.n_items,
                       "--dataset=synthetic: items" + help_suffix)
  flags.DEFINE_integer("synthetic_conditions", DEFAULT_SYNTHETIC.n_conditions,
                       "--dataset=synthetic: distinct condition values" + help_suffix)
  flags.DEFINE_integer("synthetic_interactions", DEFAULT_SYNTHETIC.n_interactions,
                       "--dataset=synthetic: interactions" + help_suffix)


def _define_file_flags(help_suffix: str) -> None:
  """The tables and column names of --dataset=files."""
  tables = FileTables(interactions="", items="")
  flags.DEFINE_string("interactions", None,
                      "--dataset=files: the interactions table, a file, a directory or a glob "
                      "of shards (Parquet, CSV, TSV or JSON lines)" + help_suffix)
  flags.DEFINE_string("items", None,
                      "--dataset=files: the items table; every column but the id is an item "
                      "feature, any of them a condition" + help_suffix)
  flags.DEFINE_string("users", None,
                      "--dataset=files: the optional users table (categorical feature columns)"
                      + help_suffix)
  flags.DEFINE_enum("file_format", None, list(FORMATS),
                    "--dataset=files: the tables' format (default: from each file's "
                    "extension)" + help_suffix)
  flags.DEFINE_string("user_column", tables.user_column,
                      "--dataset=files: the user id column" + help_suffix)
  flags.DEFINE_string("item_column", tables.item_column,
                      "--dataset=files: the item id column" + help_suffix)
  flags.DEFINE_string("timestamp_column", tables.timestamp_column,
                      "--dataset=files: interaction times, integer seconds or ISO-8601 "
                      "(without the column: file order)" + help_suffix)
  flags.DEFINE_string("rating_column", None,
                      "--dataset=files: the rating column --min_rating reads" + help_suffix)
  flags.DEFINE_string("list_separator", tables.list_separator,
                      "--dataset=files: separator of multi-valued string cells (Arrow list "
                      "columns need none)" + help_suffix)


def define_training(help_suffix: str = ".") -> None:
  """The flags of TRAINING_FIELDS."""
  defaults = TrainConfig()
  flags.DEFINE_string("condition_feature", None,
                      "Item-side categorical feature the condition is sampled from, e.g. "
                      "genres or decade on MovieLens, topics on synthetic. Default: the data "
                      "set's own (genres; topics)" + help_suffix)
  flags.DEFINE_integer("embedding_dim", defaults.embedding_dim,
                       "Size of the query and item embeddings" + help_suffix)
  flags.DEFINE_list("hidden_units", [str(h) for h in defaults.hidden_units],
                    "Hidden layer sizes of each tower's MLP, comma-separated" + help_suffix)
  flags.DEFINE_integer("epochs", defaults.epochs, "Training epochs" + help_suffix)
  flags.DEFINE_integer("batch_size", defaults.batch_size,
                       "Examples per batch; the other items of a batch are the negatives"
                       + help_suffix)
  flags.DEFINE_float("learning_rate", defaults.learning_rate,
                     "The optimizer's learning rate" + help_suffix)
  flags.DEFINE_enum("optimizer", defaults.optimizer, list(OPTIMIZERS),
                    "adam; lazy_adam (Adam on the id rows a batch touches only: much "
                    "faster with millions of users or items); adagrad" + help_suffix)
  flags.DEFINE_bool("normalize_embeddings", defaults.normalize_embeddings,
                    "L2-normalise both towers' outputs (cosine scores); pair with a small "
                    "--temperature" + help_suffix)
  flags.DEFINE_float("temperature", defaults.temperature,
                     "Softmax temperature: scores are divided by it" + help_suffix)
  flags.DEFINE_integer("extra_negatives", defaults.extra_negatives,
                       "Items drawn uniformly from the catalog per batch as extra negatives "
                       "(mixed negative sampling; the logQ correction uses the mixture)"
                       + help_suffix)
  flags.DEFINE_float("condition_dropout", defaults.condition_dropout,
                     "CR: share of training examples trained without their condition, so "
                     "that one model also answers condition=\"\" (plain recommendations)"
                     + help_suffix)
  flags.DEFINE_integer("hard_negatives", defaults.hard_negatives,
                       "CR: per example, N extra negatives drawn from the items sharing its "
                       "condition, scored against its own query only (logQ-corrected)"
                       + help_suffix)
  flags.DEFINE_float("condition_loss_weight", defaults.condition_loss_weight,
                     "CR: weight of an auxiliary softmax loss pulling each conditional "
                     "query towards a learned vector of its condition" + help_suffix)
  flags.DEFINE_float("min_rating", None,
                     "Only ratings >= this are positives (default: all interactions)"
                     + help_suffix)
  flags.DEFINE_integer("test_per_user", defaults.test_per_user,
                       "Each user's last N interactions in time are held out for evaluation"
                       + help_suffix)
  flags.DEFINE_list("user_features", None,
                    "User columns the query tower reads, comma-separated: categorical, "
                    "multi-valued, or numeric (bucketized by quantiles). Default: all of "
                    "the users table's (MovieLens: age_group, gender, occupation, zip3); "
                    "empty: none" + help_suffix)
  flags.DEFINE_list("item_features", [],
                    "Item columns the candidate tower reads besides the condition feature, "
                    "comma-separated (categorical, multi-valued, numeric); items without "
                    "training interactions are embedded from them (cold start)"
                    + help_suffix)
  flags.DEFINE_integer("max_vocabulary", defaults.max_vocabulary,
                       "Keep an id-embedding row only for the N users and N items with the "
                       "most training interactions; the rest share --hash_buckets hashed "
                       "rows (default N/10). 0: every id its own row" + help_suffix)
  flags.DEFINE_integer("hash_buckets", defaults.hash_buckets,
                       "Hashed id-embedding rows shared by the ids beyond --max_vocabulary, "
                       "or by all ids when --max_vocabulary is 0. 0: off" + help_suffix)
  flags.DEFINE_enum("distribution_strategy", defaults.distribution_strategy, list(STRATEGIES),
                    "none: one device; mirrored: the devices of this machine; "
                    "multi_worker_mirrored: the cluster of TF_CONFIG (run the same command "
                    "on every worker; docs/distributed.md). --batch_size is the global "
                    "batch" + help_suffix)
  flags.DEFINE_bool("cross_replica_negatives", defaults.cross_replica_negatives,
                    "Under a strategy, score every query against the candidates of all "
                    "replicas (the global batch), not only its own replica's"
                    + help_suffix)


def data_source(seed: int) -> DataSource:
  """The DataSource of the parsed data flags; the synthetic data is generated with
  `seed` (the run's --seed)."""
  f = flags.FLAGS
  synthetic = SyntheticConfig(
      n_users=f.synthetic_users, n_items=f.synthetic_items,
      n_conditions=f.synthetic_conditions, n_interactions=f.synthetic_interactions,
      seed=seed)
  files = None
  if f.dataset == "files" and "interactions" in f:
    files = FileTables(interactions=f.interactions or "", items=f.items or "",
                       users=f.users or "", file_format=f.file_format or "",
                       user_column=f.user_column, item_column=f.item_column,
                       timestamp_column=f.timestamp_column,
                       rating_column=f.rating_column or "",
                       list_separator=f.list_separator)
  return DataSource(dataset=f.dataset, data_dir=f.data_dir, synthetic=synthetic,
                    files=files)


def data_flags_given() -> bool:
  return any(flags.FLAGS[name].present for name in DATA_FLAGS if name in flags.FLAGS)


def training_values() -> Dict[str, Any]:
  """TrainConfig keyword arguments of TRAINING_FIELDS, from the parsed flags.

  Raises:
    ConfigError: --hidden_units holds something other than integers.
  """
  values = {name: flags.FLAGS[name].value for name in TRAINING_FIELDS}
  values["item_features"] = tuple(values["item_features"] or ())
  if values["user_features"] is not None:
    values["user_features"] = tuple(values["user_features"])
  try:
    values["hidden_units"] = tuple(int(h) for h in values["hidden_units"])
  except ValueError:
    raise ConfigError(f"hidden_units must be integers, got {values['hidden_units']}."
                      ) from None
  return values
