"""The servable: one SavedModel from (user id, condition) to the top items.

Signatures (inputs batched on dimension 0):

  serving_default(user_id: string [B], condition: string [B], k: int32 [B],
                  filter: string [B])
  serving_exclusions(... the same ..., exclude: string [B, E])
  -> item_ids string [B, max_k], scores float32 [B, max_k], condition_match bool [B, max_k],
     num_scanned int32 [B]

Behaviour the tests pin down:
* unknown user ids use the model's unknown-user embedding (popular-for-everyone results);
* condition "" means no condition (the NONE token); an unknown condition value uses the
  OOV embedding with filter "none" and gives an empty row with filter "strict";
* positions >= k are padded with "" / -inf / false; `condition_match` is false for ""
  and unknown conditions;
* bad input (k outside 1..max_k, a filter other than "none"/"strict", inputs of different
  batch sizes) fails with InvalidArgument naming the input.
"""

from typing import Optional

import numpy as np
import tensorflow as tf
from tensorflow.python.ops import lookup_ops  # TableInitializerBase: no public alias

from tfcr.data.conditions import NONE_ID, NUM_RESERVED, OOV_ID
from tfcr.errors import ConfigError
from tfcr.export.condition_filter import ConditionFilter
from tfcr.index import tuning as index_tuning
from tfcr.index.factory import make_index

FILTERS = ("none", "strict")


def _string_table(keys, values, default):
  initializer = tf.lookup.KeyValueTensorInitializer(
      tf.constant(np.asarray(keys).astype(str)), tf.constant(values))
  return tf.lookup.StaticHashTable(initializer, default_value=default)


class _PositionInitializer(lookup_ops.TableInitializerBase):
  """Fills a string -> int32 table from a string variable: ids[skip + i] -> first + i.

  A KeyValueTensorInitializer's keys are a constant of the traced initializer, so a 10M
  catalog's ids would sit in saved_model.pb, which the model server's loader parses and
  copies into its graphs (and keeps as the init op's constant). Read from a variable,
  they are in the checkpoint once and the graph stays small; both SavedModel loaders
  restore variables before they run the table initializers.
  """

  def __init__(self, ids: tf.Variable, skip: int, first: int):
    self._ids, self._skip, self._first = ids, skip, first
    super().__init__(tf.string, tf.int32)

  def initialize(self, table):
    keys = self._ids[self._skip:]
    values = tf.range(self._first, self._first + tf.size(keys, out_type=tf.int32))
    return tf.raw_ops.LookupTableImportV2(table_handle=table.resource_handle, keys=keys,
                                          values=values)


def id_variable(ids, name: str) -> tf.Variable:
  """A string variable of ids (the tables read their keys from it; see above)."""
  return tf.Variable(np.asarray(ids).astype(str).astype(object), trainable=False, name=name)


def user_table(user_ids: tf.Variable):
  """User id string -> model user id (row + 1; 0, the unknown user, for any other)."""
  return tf.lookup.StaticHashTable(_PositionInitializer(user_ids, 0, 1), default_value=0)


def condition_table(conditions):
  """Condition string -> condition id: "" (no condition) is a key too, for NONE_ID, so
  one lookup maps every condition string; unknown values map to OOV_ID."""
  return _string_table(
      np.concatenate([[""], conditions.vocabulary[NUM_RESERVED:]]),
      np.concatenate([[NONE_ID], np.arange(NUM_RESERVED, conditions.vocabulary_size)]
                     ).astype(np.int32), OOV_ID)


def sample_queries(query_tower, conditional: bool, vocabularies,
                   count: int = index_tuning.SAMPLE_SIZE, seed: int = 0) -> np.ndarray:
  """Query vectors like the ones the servable will see, to tune the index on: random
  known users; for a conditional model half without a condition and half with one drawn
  as training draws them (an item's condition, so common conditions more often)."""
  rng = np.random.default_rng(seed)
  users = rng.integers(1, len(vocabularies.user_ids) + 1, size=count, dtype=np.int32)
  inputs = {"user": users}
  if conditional:
    condition = np.full(count, NONE_ID, np.int32)
    entries = vocabularies.conditions.ids
    if len(entries):
      half = np.arange(count) % 2 == 1
      condition[half] = rng.choice(entries, size=int(half.sum()))
    inputs["condition"] = condition
  return np.asarray(query_tower({n: tf.constant(v) for n, v in inputs.items()}))


class Servable(tf.Module):
  """Query tower + ANN index + condition filter, with its id tables, as one tf.Module."""

  def __init__(self, query_tower, conditional: bool, vocabularies, item_embeddings,
               index: str = "scann", max_k: int = 100,
               exact_threshold: Optional[int] = None,
               recall_target: float = index_tuning.DEFAULT_RECALL_TARGET):
    super().__init__(name="tfcr_servable")
    if max_k < 1 or max_k > len(vocabularies.item_ids):
      raise ConfigError(f"max_k must be in 1..{len(vocabularies.item_ids)} (the catalog "
                        f"size), got {max_k}.")
    self.max_k = int(max_k)
    self.conditional = conditional
    self.query_tower = query_tower
    conditions = vocabularies.conditions
    self.user_ids = id_variable(vocabularies.user_ids, "user_ids")
    self.user_table = user_table(self.user_ids)
    self.condition_table = condition_table(conditions)
    # Item row r's id at r + 1; "" first, for row -1 (no item).
    self.item_id_of_row = id_variable(np.concatenate([[""], vocabularies.item_ids]),
                                      "item_id_of_row")
    self.item_table = tf.lookup.StaticHashTable(
        _PositionInitializer(self.item_id_of_row, 1, 0), default_value=-1)
    tuning_queries = (sample_queries(query_tower, conditional, vocabularies)
                      if index == "scann" else None)
    self.index = make_index(index, item_embeddings, self.max_k, tuning_queries,
                            recall_target)
    # The index's float vectors when it has them (both kinds do): one copy for both.
    vectors = getattr(self.index, "vectors", None)
    self.filter = ConditionFilter(conditions, item_embeddings if vectors is None else vectors,
                                  self.max_k, exact_threshold=exact_threshold)

  def _validate(self, user_id, condition, k, filter_, exclude):
    """One assertion for every input check, whose message names the first bad input.

    Each check as its own assertion cost 4-5 graph ops; at ~5 us of executor time per op
    on a small CPU that was ~0.03 ms of a ~0.6 ms call.
    """
    batch = tf.size(user_id)
    named = [("condition", tf.size(condition)), ("k", tf.size(k)), ("filter", tf.size(filter_))]
    if exclude is not None:
      named.append(("exclude", tf.shape(exclude)[0]))
    problems = [f"{name} has a different batch size (dimension 0) than user_id"
                for name, _ in named]
    bad = [tf.not_equal(size, batch) for _, size in named]
    problems.append(f"k must be in 1..{self.max_k} (max_k)")
    bad.append(tf.reduce_any((k < 1) | (k > self.max_k)))
    problems.append('filter must be "none" or "strict"')
    bad.append(tf.reduce_any((filter_ != "none") & (filter_ != "strict")))
    bad = tf.stack(bad)
    first = tf.argmax(tf.cast(bad, tf.int32), output_type=tf.int32)
    return tf.debugging.Assert(~tf.reduce_any(bad), [tf.gather(problems, first)],
                               name="valid_inputs")

  def _serve(self, user_id, condition, k, filter_, exclude):
    """exclude: [B, E] item ids, or None for none (serving_default)."""
    with tf.control_dependencies([self._validate(user_id, condition, k, filter_, exclude)]):
      user = self.user_table.lookup(user_id)
    condition_id = self.condition_table.lookup(condition)  # "" -> NONE_ID
    query_inputs = {"user": user}
    if self.conditional:
      query_inputs["condition"] = condition_id
    queries = self.query_tower(query_inputs)
    if exclude is None:
      excluded = tf.zeros([tf.size(user_id), 0], tf.int32)
    else:
      excluded = tf.where(exclude == "", -1, self.item_table.lookup(exclude))
    rows, scores, scanned = self.filter(self.index, queries, condition_id, k,
                                        filter_ == "strict", excluded)
    # Row -1 (padding) reads the leading "" / no-condition entries: no masking ops needed.
    item_ids = tf.gather(self.item_id_of_row, rows + 1)
    match = self.filter.has_condition(rows, condition_id)  # false for NONE and OOV
    return {"item_ids": item_ids, "scores": scores, "condition_match": match,
            "num_scanned": scanned}

  @tf.function(input_signature=[
      tf.TensorSpec([None], tf.string, name="user_id"),
      tf.TensorSpec([None], tf.string, name="condition"),
      tf.TensorSpec([None], tf.int32, name="k"),
      tf.TensorSpec([None], tf.string, name="filter")])
  def serve(self, user_id, condition, k, filter):  # pylint: disable=redefined-builtin
    return self._serve(user_id, condition, k, filter, None)

  @tf.function(input_signature=[
      tf.TensorSpec([None], tf.string, name="user_id"),
      tf.TensorSpec([None], tf.string, name="condition"),
      tf.TensorSpec([None], tf.int32, name="k"),
      tf.TensorSpec([None], tf.string, name="filter"),
      tf.TensorSpec([None, None], tf.string, name="exclude")])
  def serve_exclusions(self, user_id, condition, k, filter, exclude):  # pylint: disable=redefined-builtin
    return self._serve(user_id, condition, k, filter, exclude)
