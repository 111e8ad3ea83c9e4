"""Training throughput: tfcr's CR and LR trainers vs a plain TFRS two-tower model.

    .venv/bin/python benchmarks/bench_training.py                       # MovieLens-100k
    .venv/bin/python benchmarks/bench_training.py --dataset=synthetic   # 100k/100k/1M
    .venv/bin/python benchmarks/bench_training.py --profile             # + variants
    .venv/bin/python benchmarks/bench_training.py --condition_aware     # issue 19's

--condition_aware times, instead, the paper's CR against each variant of
`tfcr.comparison.variants` (same-condition hard negatives, the condition loss, condition
dropout, all of them), on tfcr's real fit path, alternating round by round.

Three models, trained on the same (user, item) training pairs with the same batch size,
optimizer (Adam, same learning rate) and number of steps:

* CR: the real tfcr path, as `tfcr.training.loop.train_and_evaluate` runs it: `build_model`,
  `compile(Adam(learning_rate))`, `tfcr.training.input_pipeline.training_dataset`, `fit` with
  `steps_per_epoch` (without the checkpoint/TensorBoard callbacks and the evaluation).
* LR: the same with `model="lr"` (no condition; user features, item multi-hot, logQ and
  accidental-hit removal stay).
* plain: the TFRS tutorial two-tower model of the same size: user-id Embedding + the
  same MLP -> embedding_dim, item-id Embedding + the same MLP -> embedding_dim,
  `tfrs.tasks.Retrieval()` with its defaults (no logQ, no accidental-hit removal, no
  metrics), fed by `from_tensor_slices({...}).shuffle(...).repeat().batch(B).prefetch(...)`.

Every model is warmed up (one short fit, which traces the train function); then timed
rounds alternate plain / CR / LR / plain / CR / LR ..., each a `fit` of --steps_per_round
batches. The machines are shared and noisy (other processes come and go), so the table
reports medians over rounds, ratios of the medians, and the min..max of the per-round
ratios. Each round is timed from the end of its first step to the end of its last one
(steady state, what a long run sees: tfcr trains all epochs from one iterator), both

* examples/s: wall clock, the throughput;
* examples/CPU-s: process CPU time (all threads, tf.data's included), which other
  processes on the machine disturb much less than the wall clock.

The whole `fit` call is logged per round too (in brackets) but not tabulated: it adds
iterator start-up (the tutorial pipeline's shuffle-buffer fill) and, on teardown, a
variable wait (up to ~2.5 s seen on the 1M-row synthetic set), both once per fit call,
i.e. once per training run in tfcr.

--profile adds
1. the input pipelines alone (no training);
2. the pipelines swapped in the fit path: the plain model on tfcr's batch pipeline, CR
   on its own batches materialized in memory (no per-batch pipeline work);
3. model variants timed on the same in-memory batches by calling each model's compiled
   train function directly (no pipeline, no Keras loop; less noisy): a ladder from the
   plain model to CR adding one ingredient per rung (condition, user features, item
   multi-hot, L2 norm, temperature, logQ, accidental-hit removal), CR with its loss or
   towers computed more cheaply (same function), CR under XLA, and the plain model with
   Adagrad (how much of a step is Adam's update).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tfcr  # noqa: E402,F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)

import argparse
import dataclasses
import random
import statistics
import tempfile
import time
from typing import Dict, List, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from tfcr.data.prepare import PreparedData, prepare
from tfcr.data.sources import DEFAULT_SYNTHETIC, DataSource
from tfcr.data.synthetic import SyntheticConfig
from tfcr.models.factory import build_model, fill_tables_from, model_sizes
from tfcr.models.retrieval import RetrievalModel
from tfcr.models.towers import QueryTower
from tfcr.training.config import TrainConfig
from tfcr.training.input_pipeline import training_dataset
from tfcr.utils.machine import machine_line

_DEFAULTS = TrainConfig()
_DATA_DEFAULTS = DataSource()


# ---------------------------------------------------------------- the plain TFRS model --

class PlainTwoTower(tfrs.models.Model):
  """The TFRS tutorial two-tower model: id embeddings + MLPs, default Retrieval task."""

  def __init__(self, num_users: int, num_items: int, id_embedding_dim: int,
               hidden_units, embedding_dim: int):
    super().__init__()

    def tower(vocabulary_size):
      return tf.keras.Sequential(
          [tf.keras.layers.Embedding(vocabulary_size, id_embedding_dim)]
          + [tf.keras.layers.Dense(units, activation="relu") for units in hidden_units]
          + [tf.keras.layers.Dense(embedding_dim)])

    # Same table sizes as tfcr: user ids are shifted by one (0 = unknown user).
    self.user_model = tower(num_users + 1)
    self.item_model = tower(num_items)
    self.task = tfrs.tasks.Retrieval()

  def compute_loss(self, features, training=False):
    return self.task(self.user_model(features["user"]), self.item_model(features["item"]))


def plain_dataset(prepared: PreparedData, batch_size: int, seed: int) -> tf.data.Dataset:
  """The usual TFRS tutorial pipeline over the same training (user, item) pairs."""
  train = prepared.train
  pairs = {"user": train.user_index.astype(np.int32) + 1,
           "item": train.item_index.astype(np.int32)}
  return (tf.data.Dataset.from_tensor_slices(pairs)
          .shuffle(min(len(train), 100_000), seed=seed, reshuffle_each_iteration=True)
          .repeat()
          .batch(batch_size, drop_remainder=True)
          .prefetch(tf.data.AUTOTUNE))


# ------------------------------------------------------------------ the tfcr models --

def tfcr_dataset(config: TrainConfig, prepared: PreparedData, steps: int,
                 conditions="auto") -> tf.data.Dataset:
  """tfcr's training_dataset, exactly as train_and_evaluate calls it, with enough
  epochs for `steps` batches."""
  if conditions == "auto":
    conditions = prepared.conditions if config.model == "cr" else None
  steps_per_epoch = len(prepared.train) // config.batch_size
  epochs = -(-steps // steps_per_epoch)
  return training_dataset(prepared.train.user_index, prepared.train.item_index,
                          prepared.item_probability, conditions, config.batch_size,
                          config.seed, 0, epochs, extra_negatives=config.extra_negatives,
                          condition_dropout=config.condition_dropout,
                          hard_negatives=config.hard_negatives)


def built_model(config: TrainConfig, prepared: PreparedData) -> RetrievalModel:
  """The CR or LR model with its lookup tables filled, as train_and_evaluate builds it."""
  return fill_tables_from(build_model(config, model_sizes(prepared)), prepared)


def tfcr_model(config: TrainConfig, prepared: PreparedData) -> RetrievalModel:
  tf.keras.utils.set_random_seed(config.seed)
  model = built_model(config, prepared)
  model.compile(optimizer=tf.keras.optimizers.Adam(config.learning_rate))
  return model


# --------------------------------------------------------------------- measurement --

class _StepClock(tf.keras.callbacks.Callback):
  """Wall and process CPU time from the end of the first step to the end of the last."""

  def on_train_begin(self, logs=None):
    self.first = self.last = None

  def on_train_batch_end(self, batch, logs=None):
    now = (time.perf_counter(), time.process_time())
    if self.first is None:
      self.first = now
    self.last = now


@dataclasses.dataclass
class Contender:
  name: str
  model: tf.keras.Model
  dataset: tf.data.Dataset
  # Examples/s per round: steady wall clock, steady process CPU time, whole fit call.
  steady: List[float] = dataclasses.field(default_factory=list)
  cpu: List[float] = dataclasses.field(default_factory=list)
  fit: List[float] = dataclasses.field(default_factory=list)

  def clear(self) -> None:
    self.steady.clear(), self.cpu.clear(), self.fit.clear()

  def run(self, steps: int, batch_size: int, record: bool = True) -> None:
    clock = _StepClock()
    start = time.perf_counter()
    self.model.fit(self.dataset, epochs=1, steps_per_epoch=steps, verbose=0,
                   callbacks=[clock])
    total = time.perf_counter() - start
    if record:
      examples = (steps - 1) * batch_size
      self.fit.append(steps * batch_size / total)
      self.steady.append(examples / (clock.last[0] - clock.first[0]))
      self.cpu.append(examples / (clock.last[1] - clock.first[1]))


def measure(contenders: List[Contender], rounds: int, steps: int, batch_size: int,
            warmup_steps: int, log=print) -> None:
  for c in contenders:
    start = time.perf_counter()
    c.run(warmup_steps, batch_size, record=False)
    log(f"  warm-up {c.name}: {time.perf_counter() - start:.1f} s")
  for r in range(rounds):
    for c in contenders:
      c.run(steps, batch_size)
    log(f"  round {r + 1}/{rounds} (examples/s, whole fit call in brackets): " + ", ".join(
        f"{c.name} {c.steady[-1]:,.0f} ({c.fit[-1]:,.0f})" for c in contenders))


def _ratios(a: List[float], b: List[float]):
  per_round = [x / y for x, y in zip(a, b)]
  return statistics.median(a) / statistics.median(b), min(per_round), max(per_round)


def format_table(contenders: List[Contender], baseline: str) -> str:
  base = next(c for c in contenders if c.name == baseline)
  rows = [("model", "examples/s", f"/{baseline}", "per round",
           "examples/CPU-s", f"/{baseline}", "per round")]
  for c in contenders:
    row = [c.name]
    for mine, theirs in ((c.steady, base.steady), (c.cpu, base.cpu)):
      ratio, low, high = _ratios(mine, theirs)
      row += [f"{statistics.median(mine):,.0f}", f"{ratio:.2f}", f"{low:.2f}..{high:.2f}"]
    rows.append(tuple(row))
  widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
  lines = []
  for i, row in enumerate(rows):
    cells = [row[0].ljust(widths[0])] + [v.rjust(w) for v, w in zip(row[1:], widths[1:])]
    lines.append("| " + " | ".join(cells) + " |")
    if i == 0:
      lines.append("|" + "|".join("-" * (w + 1) + (":" if j else "-")
                                  for j, w in enumerate(widths)) + "|")
  return "\n".join(lines)


def pipeline_throughput(dataset: tf.data.Dataset, steps: int, batch_size: int,
                        repeats: int = 3) -> float:
  """Median examples/s of iterating `steps` batches of a data set, without training."""
  rates = []
  for _ in range(repeats):
    iterator = iter(dataset)
    next(iterator)
    start = time.perf_counter()
    for _ in range(steps - 1):
      next(iterator)
    rates.append((steps - 1) * batch_size / (time.perf_counter() - start))
  return statistics.median(rates)


# ------------------------------------------------------------------ profile variants --

class _NoMultiHotCandidate(tf.keras.layers.Layer):
  """CandidateTower without the item -> conditions multi-hot (id embedding + MLP)."""

  def __init__(self, tower):
    super().__init__()
    self.tower = tower
    self.num_items, self.num_conditions = tower.num_items, tower.num_conditions

  def call(self, item):
    embedding = self.tower.crossing(self.tower.item_embedding(tf.cast(item, tf.int32)))
    if getattr(self.tower, "normalize", False):
      embedding = tf.math.l2_normalize(embedding, axis=-1)
    return embedding


class _MergedFeatureQueryTower(QueryTower):
  """QueryTower whose user features share one embedding table (with per-feature offsets):
  one gather and one optimizer update instead of one per feature. Same function class."""

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    sizes = self.user_feature_vocab_sizes
    self.feature_offsets = tf.constant(np.cumsum([0] + sizes[:-1]), tf.int32)
    self.merged_features = tf.keras.layers.Embedding(sum(sizes), self.feature_embedding_dim)

  def call(self, inputs):
    user = tf.cast(inputs["user"], tf.int32)
    # Single-valued features only (width 1 each): the ids of the feature table itself.
    features = self.merged_features(tf.maximum(self.user_features.table(user), 0)
                                    + self.feature_offsets)
    parts = [self.user_embedding(user),
             tf.reshape(features, [-1, features.shape[1] * features.shape[2]])]
    if self.condition_embedding is not None:
      parts.append(self.condition_embedding(tf.cast(inputs["condition"], tf.int32)))
    embedding = self.crossing(tf.concat(parts, axis=-1))
    return tf.math.l2_normalize(embedding, axis=-1) if self.normalize else embedding


class _DenseMultiHotCandidate(tf.keras.layers.Layer):
  """CandidateTower computing the sum of the item's condition embeddings as
  multi_hot[item] @ matrix ([I, C] 0/1 table, C = condition vocabulary): one gather and
  one matmul, with a dense gradient, instead of gather/mask/sum and a sparse update."""

  def __init__(self, tower, membership: np.ndarray):
    super().__init__()
    self.tower = tower
    self.num_items, self.num_conditions = tower.num_items, tower.num_conditions
    self.multi_hot = tf.constant(membership.astype(np.float32))
    self.matrix = self.add_weight(
        name="condition_matrix", shape=(tower.num_conditions, tower.condition_embedding_dim),
        initializer=tf.keras.initializers.RandomUniform(-0.05, 0.05))

  def call(self, item):
    item = tf.cast(item, tf.int32)
    parts = [self.tower.item_embedding(item),
             tf.matmul(tf.gather(self.multi_hot, item), self.matrix)]
    embedding = self.tower.crossing(tf.concat(parts, axis=-1))
    if getattr(self.tower, "normalize", False):
      embedding = tf.math.l2_normalize(embedding, axis=-1)
    return embedding


def lean_retrieval_loss(query, candidates, sampling_probability, candidate_ids,
                        temperature):
  """The loss of tfrs.tasks.Retrieval(remove_accidental_hits=True, temperature) with
  logQ, computed with fewer [B, B] passes: no one-hot label matrix, no argmax over it,
  accidental hits masked with one tf.where, sparse softmax cross-entropy."""
  scores = tf.matmul(query, candidates, transpose_b=True)
  if temperature is not None and temperature != 1.0:
    scores = scores / temperature
  num_queries = tf.shape(scores)[0]
  rows = tf.range(num_queries)
  log_q = tf.math.log(tf.clip_by_value(sampling_probability, 1e-6, 1.0))
  hits = tf.logical_and(tf.equal(candidate_ids[:num_queries, tf.newaxis],
                                 candidate_ids[tf.newaxis, :]),
                        tf.not_equal(rows[:, tf.newaxis],
                                     tf.range(tf.shape(scores)[1])[tf.newaxis, :]))
  scores = tf.where(hits, tf.float32.min, scores - log_q[tf.newaxis, :])
  return tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(rows, scores))


def folded_retrieval_loss(task, query, candidates, sampling_probability, candidate_ids,
                          temperature):
  """The same loss with temperature and logQ folded into the embeddings, so that no
  [B, B] pass is spent on them: (q / t, -1) . (c, log p) = q . c / t - log p.
  `task` is a tfrs.tasks.Retrieval(remove_accidental_hits=True) without temperature."""
  scale = 1.0 / temperature if temperature else 1.0
  log_q = tf.math.log(tf.clip_by_value(sampling_probability, 1e-6, 1.0))
  query = tf.concat([query * scale, -tf.ones_like(query[:, :1])], axis=1)
  candidates = tf.concat([candidates, log_q[:, tf.newaxis]], axis=1)
  return task(query, candidates, candidate_ids=candidate_ids, compute_metrics=False,
              compute_batch_metrics=False)


class _Variant(RetrievalModel):
  """RetrievalModel with logQ, accidental-hit removal and/or temperature switched off,
  or the same loss computed by `lean_retrieval_loss` or `folded_retrieval_loss`."""

  def __init__(self, query_tower, candidate_tower, temperature, log_q=True,
               remove_hits=True, lean=False, folded=False):
    super().__init__(query_tower, candidate_tower, temperature=temperature)
    self.log_q, self.lean, self.folded, self.temperature = log_q, lean, folded, temperature
    self.task = tfrs.tasks.Retrieval(remove_accidental_hits=remove_hits,
                                     temperature=None if folded else temperature)

  def compute_loss(self, features, training=False):
    query = self.query_tower(self.query_inputs(features))
    candidates = self.candidate_tower(features["item"])
    if self.lean:
      return lean_retrieval_loss(query, candidates, features["sampling_probability"],
                                 features["item"], self.temperature)
    if self.folded:
      return folded_retrieval_loss(self.task, query, candidates,
                                   features["sampling_probability"], features["item"],
                                   self.temperature)
    return self.task(query, candidates,
                     candidate_sampling_probability=(features["sampling_probability"]
                                                     if self.log_q else None),
                     candidate_ids=features["item"], compute_metrics=False,
                     compute_batch_metrics=False)


def _presampled_dataset(config, prepared, steps) -> tf.data.Dataset:
  """tfcr's batches, materialized once: the model sees no per-batch pipeline work."""
  batches = list(tfcr_dataset(config, prepared, steps).take(steps))
  stacked = {k: tf.stack([b[k] for b in batches]) for k in batches[0]}
  return tf.data.Dataset.from_tensor_slices(stacked).repeat().prefetch(tf.data.AUTOTUNE)


def profile_models(config: TrainConfig, prepared: PreparedData,
                   plain_model: tf.keras.Model) -> List[Tuple[str, tf.keras.Model]]:
  """The CR model, variants of it that switch off (or rewrite) one ingredient each, and
  the plain model, all compiled like tfcr does."""
  cr = dataclasses.replace(config, model="cr")

  def variant(user_features=True, multi_hot=True, temperature=True, normalize=True,
              merged_features=False, dense_multi_hot=False, **task):
    tf.keras.utils.set_random_seed(cr.seed)
    base = built_model(cr, prepared)
    query, candidate = base.query_tower, base.candidate_tower
    merged_features = merged_features and bool(query.user_feature_vocab_sizes)
    if not user_features or merged_features:
      query = (_MergedFeatureQueryTower if merged_features else QueryTower)(
          num_users=prepared.num_users,
          user_feature_vocab_sizes=query.user_feature_vocab_sizes if user_features else [],
          num_conditions=prepared.conditions.vocabulary_size,
          embedding_dim=cr.embedding_dim, hidden_units=cr.hidden_units,
          normalize=getattr(base.query_tower, "normalize", False))
      if query.user_features is not None:
        query.user_features.assign_table(prepared.user_feature_table)
    if not normalize:  # The towers read the flag when called.
      query.normalize = candidate.normalize = False
    if not multi_hot:
      candidate = _NoMultiHotCandidate(candidate)
    elif dense_multi_hot:
      candidate = _DenseMultiHotCandidate(candidate, prepared.conditions.membership())
    model = _Variant(query, candidate, cr.temperature if temperature else None, **task)
    model.compile(optimizer=tf.keras.optimizers.Adam(cr.learning_rate))
    return model

  # A ladder from the plain model to CR, adding one ingredient per rung, so the
  # differences between neighbours add up to the whole gap; then CR's loss and towers
  # computed more cheaply (same function).
  xla_model = tfcr_model(cr, prepared)
  xla_model.compile(optimizer=tf.keras.optimizers.Adam(cr.learning_rate), jit_compile=True)
  tf.keras.utils.set_random_seed(cr.seed)
  adagrad_plain = PlainTwoTower(prepared.num_users, prepared.num_items,
                                xla_model.query_tower.id_embedding_dim,
                                xla_model.query_tower.hidden_units,
                                xla_model.query_tower.embedding_dim)
  adagrad_plain.compile(optimizer=tf.keras.optimizers.Adagrad(cr.learning_rate))
  off = dict(user_features=False, multi_hot=False, normalize=False, temperature=False,
             log_q=False, remove_hits=False)
  return [
      ("plain", plain_model),
      ("+condition", variant(**off)),
      ("+user features", variant(**{**off, "user_features": True})),
      ("+item multi-hot", variant(**{**off, "user_features": True, "multi_hot": True})),
      ("+L2 norm", variant(log_q=False, remove_hits=False, temperature=False)),
      ("+temperature", variant(log_q=False, remove_hits=False)),
      ("+logQ", variant(remove_hits=False)),
      ("+hit removal = CR", variant()),
      ("CR (tfcr model)", tfcr_model(cr, prepared)),
      ("CR lean loss", variant(lean=True)),
      ("CR folded loss", variant(folded=True)),
      ("CR merged userfeat", variant(merged_features=True)),
      ("CR dense multihot", variant(dense_multi_hot=True)),
      ("CR all three", variant(merged_features=True, dense_multi_hot=True, folded=True)),
      ("CR XLA", xla_model),
      ("plain Adagrad", adagrad_plain),
  ]


def time_train_steps(models: List[Tuple[str, tf.keras.Model]], dataset: tf.data.Dataset,
                     rounds: int, steps: int, seed: int = 0) -> Dict[str, List[float]]:
  """Seconds per step of each model's compiled train function on the same in-memory
  batches (no pipeline work, no Keras loop), rounds in shuffled order."""
  for _, model in models:
    model.fit(dataset, epochs=1, steps_per_epoch=2, verbose=0)  # Traces train_function.
  seconds = {name: [] for name, _ in models}
  rng = random.Random(seed)
  for _ in range(rounds):
    for name, model in rng.sample(models, len(models)):
      step, iterator = model.make_train_function(), iter(dataset)
      step(iterator)
      start = time.perf_counter()
      for _ in range(steps):
        logs = step(iterator)
      float(logs["loss"])  # Waits for the last step.
      seconds[name].append((time.perf_counter() - start) / steps)
  return seconds


def format_step_table(seconds: Dict[str, List[float]], reference: str = "CR (tfcr model)",
                      baseline: str = "plain") -> str:
  """Median ms/step (+ms: over the rung above, for the ladder), and speed relative to
  `baseline` and `reference` (medians of the per-round ratios; IQR for the baseline)."""
  def paired(name, other):
    ratios = sorted(o / m for m, o in zip(seconds[name], seconds[other]))
    n = len(ratios)
    return ratios[n // 2], ratios[n // 4], ratios[(3 * n) // 4]

  rows = [("variant", "ms/step", "+ms", f"speed x {baseline}", "IQR",
           f"speed x {reference}")]
  previous = None
  for name in seconds:
    ms = 1000 * statistics.median(seconds[name])
    ratio, low, high = paired(name, baseline)
    rung = name.startswith("+")
    rows.append((name, f"{ms:.2f}", f"{ms - previous:+.2f}" if rung and previous else "",
                 f"{ratio:.2f}", f"{low:.2f}..{high:.2f}",
                 f"{paired(name, reference)[0]:.2f}"))
    previous = ms if (rung or previous is None) else previous
  widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
  lines = []
  for i, row in enumerate(rows):
    cells = [row[0].ljust(widths[0])] + [v.rjust(w) for v, w in zip(row[1:], widths[1:])]
    lines.append("| " + " | ".join(cells) + " |")
    if i == 0:
      lines.append("|" + "|".join("-" * (w + 1) + (":" if j else "-")
                                  for j, w in enumerate(widths)) + "|")
  return "\n".join(lines)


def check_rewritten_losses(config: TrainConfig, prepared: PreparedData):
  """Relative differences between tfcr's loss and the lean and folded losses, one batch."""
  cr = dataclasses.replace(config, model="cr")
  model = tfcr_model(cr, prepared)
  batch = next(iter(tfcr_dataset(cr, prepared, 1)))
  reference = float(model.compute_loss(batch))
  query = model.query_tower(model.query_inputs(batch))
  candidates = model.candidate_tower(batch["item"])
  lean = float(lean_retrieval_loss(query, candidates, batch["sampling_probability"],
                                   batch["item"], cr.temperature))
  folded = float(folded_retrieval_loss(
      tfrs.tasks.Retrieval(remove_accidental_hits=True), query, candidates,
      batch["sampling_probability"], batch["item"], cr.temperature))
  return abs(lean - reference) / abs(reference), abs(folded - reference) / abs(reference)


_VARIANT_NOTES = """\
  plain               the plain TFRS model (ignores the extra features)
  +condition          tfcr's towers with only id embeddings + condition embedding, and
                      TFRS's task without temperature, logQ or hit removal
  +user features ...  each rung adds one ingredient to the rung above it;
  +hit removal = CR   the last rung is CR (as a copy of tfcr's model class)
  CR (tfcr model)     tfcr.models.factory.build_model + fill_tables itself
  CR lean loss        same loss, lean_retrieval_loss (no label matrix, one tf.where)
  CR folded loss      same loss, temperature and logQ folded into the embeddings
  CR merged userfeat  same model, the user features in one table with offsets
  CR dense multihot   same model, multi-hot as multi_hot[item] @ matrix
  CR all three        merged userfeat + dense multihot + folded loss
  CR XLA              tfcr's model compiled with jit_compile=True
  plain Adagrad       the plain model with Adagrad instead of Adam (optimizer probe: Adam
                      updates every row of its moment tables every step)"""


def profile(args, config: TrainConfig, prepared: PreparedData, plain: Contender,
            cr: Contender) -> None:
  steps, batch_size = args.steps_per_round, config.batch_size
  lr = dataclasses.replace(config, model="lr")
  print("\nProfile 1: input pipelines alone (examples/s of iterating the batches, "
        "no training):")
  pipelines = {"plain (tutorial shuffle/batch)": plain.dataset,
               "tfcr LR (no conditions)": tfcr_dataset(lr, prepared, steps),
               "tfcr CR (with condition sampling)": cr.dataset}
  for name, dataset in pipelines.items():
    print(f"  {name:36s} {pipeline_throughput(dataset, steps, batch_size):>12,.0f}")

  print("\nProfile 2: pipelines swapped, in the real fit path (plain model on tfcr's "
        "batch pipeline; CR on its batches materialized in memory):")
  swapped = [plain, Contender("plain tfcr-pipe", plain.model,
                              tfcr_dataset(lr, prepared, steps, conditions=None)),
             cr, Contender("CR presampled", cr.model,
                           _presampled_dataset(config, prepared, steps))]
  for c in swapped:
    c.clear()
  measure(swapped, args.rounds, steps, batch_size, args.warmup_steps)
  print(format_table(swapped, "plain"))

  lean, folded = check_rewritten_losses(config, prepared)
  print(f"\nProfile 3: model variants. Rewritten losses vs tfcr's loss on one batch: "
        f"relative difference {lean:.1e} (lean), {folded:.1e} (folded).")
  print(_VARIANT_NOTES)
  rounds = max(args.rounds, 15)
  print(f"Timing each variant's train step on the same in-memory CR batches, {rounds} "
        f"rounds x {steps} steps, shuffled order:")
  tf.get_logger().setLevel("ERROR")  # The plain model retraces once for the CR batches.
  seconds = time_train_steps(profile_models(config, prepared, plain.model),
                             _presampled_dataset(config, prepared, steps), rounds, steps)
  print(format_step_table(seconds))


# ------------------------------------------------------------------------------ main --

def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--dataset", default="movielens-100k",
                 choices=["movielens-100k", "synthetic"])
  p.add_argument("--data_dir", default=_DATA_DEFAULTS.data_dir,
                 help="where MovieLens-100k is (or gets) prepared")
  p.add_argument("--batch_size", type=int, default=_DEFAULTS.batch_size,
                 help="default: TrainConfig's")
  p.add_argument("--learning_rate", type=float, default=_DEFAULTS.learning_rate,
                 help="Adam's, for all models; default: TrainConfig's")
  p.add_argument("--rounds", type=int, default=5,
                 help="timed rounds per model (alternating models)")
  p.add_argument("--steps_per_round", type=int, default=100,
                 help="batches per timed round")
  p.add_argument("--warmup_steps", type=int, default=5,
                 help="batches of the untimed first fit (tracing)")
  p.add_argument("--synthetic_users", type=int, default=100_000)
  p.add_argument("--synthetic_items", type=int, default=100_000)
  p.add_argument("--synthetic_conditions", type=int, default=DEFAULT_SYNTHETIC.n_conditions)
  p.add_argument("--synthetic_interactions", type=int, default=1_000_000)
  p.add_argument("--seed", type=int, default=_DEFAULTS.seed)
  p.add_argument("--condition_aware", action="store_true",
                 help="time the CR variants of the ablation (tfcr-eval --variants) against "
                      "the paper's CR instead")
  p.add_argument("--profile", action="store_true",
                 help="also profile: pipelines alone, pipelines swapped, model variants")
  args = p.parse_args(argv)
  for name in ("batch_size", "rounds", "steps_per_round", "warmup_steps"):
    if getattr(args, name) < 1 or (name == "steps_per_round" and args.steps_per_round < 2):
      p.error(f"--{name} must be a positive integer (steps_per_round >= 2).")
  return args


def condition_aware(args, config: TrainConfig, prepared: PreparedData) -> int:
  """The paper's CR vs each condition-aware variant: examples/s on the real fit path."""
  from tfcr.comparison import variants  # pylint: disable=g-import-not-at-top
  contenders = []
  for name in variants.VARIANTS:
    variant_config = dataclasses.replace(config, model="cr", **variants.settings_of(name))
    contenders.append(Contender(name, tfcr_model(variant_config, prepared),
                                tfcr_dataset(variant_config, prepared, args.steps_per_round)))
  print(f"Batch {config.batch_size}, Adam({config.learning_rate}), {args.rounds} rounds x "
        f"{args.steps_per_round} steps per variant, alternating "
        f"{'/'.join(c.name for c in contenders)}; variants: " + "; ".join(
            f"{n} {variants.describe(n)}" for n in variants.VARIANTS))
  measure(contenders, args.rounds, args.steps_per_round, config.batch_size,
          args.warmup_steps)
  print()
  print(f"Training throughput of the CR variants, {args.dataset}, batch "
        f"{config.batch_size} (median of {args.rounds} rounds; ratios of medians to the "
        f"paper's CR, and min..max of per-round ratios):")
  print(format_table(contenders, "paper"))
  return 0


def main(argv=None) -> int:
  args = parse_args(argv)
  config = TrainConfig(
      model="cr", batch_size=args.batch_size, learning_rate=args.learning_rate,
      seed=args.seed, model_dir=tempfile.gettempdir(), verbose=0).resolved()
  source = DataSource(
      dataset=args.dataset, data_dir=args.data_dir,
      synthetic=SyntheticConfig(
          n_users=args.synthetic_users, n_items=args.synthetic_items,
          n_conditions=args.synthetic_conditions,
          n_interactions=args.synthetic_interactions, seed=args.seed))

  print(f"Machine: {machine_line()}; TFRS {tfrs.__version__}")
  start = time.perf_counter()
  try:
    data = source.load()  # What train_and_evaluate does with a DataSource.
  except Exception as e:  # DataUnavailableError, or a loader under construction.
    print(f"Could not load {args.dataset}: {type(e).__name__}: {e}\n"
          f"Try --dataset=synthetic.")
    return 1
  config = config.for_data(data)  # condition_feature: the data set's default
  prepared = prepare(data, config.condition_feature, config.test_per_user,
                     config.min_rating)
  num_train = len(prepared.train)
  if config.batch_size > num_train:
    print(f"--batch_size={config.batch_size} exceeds the {num_train} training examples.")
    return 2
  print(f"Data: {args.dataset}: {prepared.num_users:,} users, {prepared.num_items:,} "
        f"items, {num_train:,} training pairs, condition {config.condition_feature} "
        f"({prepared.conditions.vocabulary_size} ids, <= "
        f"{prepared.conditions.max_per_item()} per item), "
        f"{len(prepared.user_feature_names)} user features; loaded in "
        f"{time.perf_counter() - start:.1f} s")

  if args.condition_aware:
    return condition_aware(args, config, prepared)
  cr_config = dataclasses.replace(config, model="cr")
  lr_config = dataclasses.replace(config, model="lr")
  cr = Contender("CR", tfcr_model(cr_config, prepared),
                 tfcr_dataset(cr_config, prepared, args.steps_per_round))
  lr = Contender("LR", tfcr_model(lr_config, prepared),
                 tfcr_dataset(lr_config, prepared, args.steps_per_round))
  query = cr.model.query_tower
  tf.keras.utils.set_random_seed(config.seed)
  plain_model = PlainTwoTower(prepared.num_users, prepared.num_items,
                              query.id_embedding_dim, query.hidden_units,
                              query.embedding_dim)
  plain_model.compile(optimizer=tf.keras.optimizers.Adam(config.learning_rate))
  plain = Contender("plain", plain_model, plain_dataset(prepared, config.batch_size,
                                                        config.seed))
  contenders = [plain, cr, lr]
  print(f"Sizes: id embedding {query.id_embedding_dim}, hidden {list(query.hidden_units)}, "
        f"embedding {query.embedding_dim}")
  print(f"Batch {config.batch_size}, Adam({config.learning_rate}), {args.rounds} rounds "
        f"x {args.steps_per_round} steps per model, alternating "
        f"{'/'.join(c.name for c in contenders)}")

  measure(contenders, args.rounds, args.steps_per_round, config.batch_size,
          args.warmup_steps)
  sizes = {c.name: sum(int(np.prod(w.shape)) for w in c.model.trainable_weights)
           for c in contenders}
  print("Trainable parameters: " + ", ".join(f"{k} {v:,}" for k, v in sizes.items()))
  print()
  print(f"Training throughput, {args.dataset}, batch {config.batch_size} "
        f"(median of {args.rounds} rounds; ratios of medians, and min..max of "
        f"per-round ratios):")
  print(format_table(contenders, "plain"))
  steady_ratio = _ratios(cr.steady, plain.steady)[0]
  print(f"CR/plain (steady) = {steady_ratio:.2f}: target >= 0.9 "
        f"{'met' if steady_ratio >= 0.9 else 'NOT met'}.")

  if args.profile:
    profile(args, config, prepared, plain, cr)
  return 0


if __name__ == "__main__":
  sys.exit(main())
