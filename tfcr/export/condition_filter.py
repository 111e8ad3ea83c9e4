"""The condition filter: top-k items for a query, optionally only items having a condition.

Per query row (all inside one graph, so a single servable call does everything):

* no filter (`strict` false, or the condition is "" i.e. NONE): the index's top k, after
  dropping excluded items (k + #exclusions candidates are fetched).
* strict, unknown condition (OOV): an empty row; nothing can match.
* strict, rare condition (at most `exact_threshold` items, by default 1% of the catalog):
  the condition's own items are scored exactly (a gather and a dot product), cheaper than
  over-fetching from the index.
* strict, other conditions: streaming over-fetch. Fetch n = (k + #exclusions) / s * m
  candidates (s: the condition's share of the catalog, m: `overfetch`), keep those having
  the condition; rows still short of k search again with n * `growth`, until n reaches
  the catalog size, where the index returns everything. So a strict row always ends with
  min(k, items having the condition minus exclusions) items.

`num_scanned` is the serving cost of a row: the candidates the index returned, in ranking
order, up to and including the k-th kept one (all returned candidates when fewer than k
were kept); for the exact path, the condition's items scored. It depends on the model's
ranking, not on the fetch schedule, so it compares models (e.g. LR+filter vs CR+filter).
"""

import math
from typing import Optional

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import attr_value_pb2

from tfcr.data.conditions import NONE_ID, OOV_ID, ItemConditions

# From benchmarks/bench_servable.py (docs/benchmarks.md): exact scoring of a condition's
# items beats over-fetching from ScaNN below ~1% of the catalog (crossover ~10k items at
# 1M, 1.5k-2k at 100k). Exact scoring costs what the condition's items number, whatever
# the catalog (~0.1 ms per 1,000 at d=64), so on big catalogs the share stops applying:
# 1% of 10M items would be 100k exact scores, ~10 ms, against ~2 ms streaming.
EXACT_SHARE = 0.01
EXACT_MAX_ITEMS = 20_000


def default_exact_threshold(num_items: int) -> int:
  """Conditions with at most this many items are scored exactly: 1% of the catalog, at
  most EXACT_MAX_ITEMS."""
  return int(min(math.ceil(EXACT_SHARE * num_items), EXACT_MAX_ITEMS))


def _keep_functional(cond_output: tf.Tensor) -> None:
  """Runs the tf.cond that produced `cond_output` as an If op that calls one branch.

  By default TF lowers a tf.cond into Switch/Merge nodes of the enclosing graph: every
  input then passes a Switch, and the branch not taken is still walked node by node as
  dead. The strict branch has a few hundred nodes, so an unfiltered call paid ~0.06 ms
  for it, 10% of a 1M-item ScaNN servable call (docs/benchmarks.md). But a called branch
  misses the graph rewrites of the enclosing graph: brute force's matmul ran 1.5x slower
  in it. Hence per index (`call_filter_branches`). tf.cond has no public switch for this;
  the attribute is the one it sets itself.
  """
  op = cond_output.op
  while op.type == "Identity":
    op = op.inputs[0].op
  if op.type not in ("If", "StatelessIf"):
    raise AssertionError(f"expected the output of a tf.cond, got a {op.type} op")
  op._set_attr("_lower_using_switch_merge",  # pylint: disable=protected-access
               attr_value_pb2.AttrValue(b=False))


class ConditionFilter(tf.Module):
  """Retrieves top-k rows per query with optional strict condition filtering.

  Holds item -> conditions ([I, M], -1 padded), condition -> items (CSR) and the item
  embeddings (for the exact path) as variables, so the servable needs no side files.
  embeddings: [I, d] float32 array, or the index's own vectors as a tf.Variable (shared:
  at 10M items a second float32 copy is 2.4 GiB in the export and in the server).
  """

  def __init__(self, conditions: ItemConditions, embeddings: np.ndarray, max_k: int,
               overfetch: float = 1.5, growth: float = 4.0,
               exact_threshold: Optional[int] = None, name="condition_filter"):
    super().__init__(name=name)
    if exact_threshold is None:
      exact_threshold = default_exact_threshold(conditions.num_items)
    if max_k < 1 or overfetch < 1 or growth <= 1 or exact_threshold < 0:
      raise ValueError(f"ConditionFilter needs max_k >= 1, overfetch >= 1, growth > 1 and "
                       f"exact_threshold >= 0; got {max_k}, {overfetch}, {growth}, "
                       f"{exact_threshold}.")
    self.max_k = int(max_k)
    self.num_items = conditions.num_items
    self.overfetch = float(overfetch)
    self.growth = float(growth)
    self.exact_threshold = int(exact_threshold)
    row_splits, items = conditions.items_by_condition()
    counts = np.diff(row_splits).astype(np.int32)
    self.exact_width = int(min(self.exact_threshold, counts.max(initial=0)))
    # Item row r's conditions at r + 1 (-1 padded); a first row of -1 for row -1 (no
    # item), so lookups need no masking. NONE (an item without values) is padding too:
    # an item never "has" the empty condition, and OOV never appears.
    padded = conditions.padded()
    padded = np.where(padded == NONE_ID, -1, padded)
    self.item_conditions = tf.Variable(
        np.concatenate([np.full([1, padded.shape[1]], -1, padded.dtype), padded]),
        trainable=False, name="item_conditions")
    self.condition_row_splits = tf.Variable(row_splits, trainable=False,
                                            name="condition_row_splits")
    self.condition_items = tf.Variable(items, trainable=False, name="condition_items")
    self.condition_counts = tf.Variable(counts, trainable=False, name="condition_counts")
    if isinstance(embeddings, tf.Variable):
      self.embeddings = embeddings  # the index's own vectors, shared (one copy in memory)
    else:
      self.embeddings = tf.Variable(np.asarray(embeddings, np.float32), trainable=False,
                                    name="item_embeddings")
    self.dim = int(embeddings.shape[1])

  def has_condition(self, rows: tf.Tensor, condition: tf.Tensor) -> tf.Tensor:
    """rows: [b, n] item rows (-1 = none); condition: [b] -> [b, n] bool, false for row
    -1 and for the reserved NONE and OOV conditions."""
    item_conditions = tf.gather(self.item_conditions, rows + 1)
    return tf.reduce_any(item_conditions == condition[:, None, None], axis=-1)

  @staticmethod
  def is_excluded(rows: tf.Tensor, excluded_sorted: tf.Tensor) -> tf.Tensor:
    """rows: [b, n]; excluded_sorted: [b, E] ascending (-1 padding) -> [b, n] bool.
    Binary search keeps memory at O(b * n) whatever the number of exclusions."""
    if excluded_sorted.shape[1] == 0:
      return tf.zeros_like(rows, dtype=tf.bool)
    position = tf.searchsorted(excluded_sorted, rows)
    width = tf.shape(excluded_sorted)[1]
    found = tf.gather(excluded_sorted, tf.minimum(position, width - 1), batch_dims=1)
    return (found == rows) & (position < width) & (rows >= 0)

  def _top(self, scores, rows, keep):
    """Best max_k kept candidates per row, in score order -> (rows, scores) [b, max_k]."""
    scores = tf.where(keep, scores, -np.inf)
    width = tf.shape(scores)[1]
    top = tf.math.top_k(scores, k=tf.minimum(self.max_k, width))
    top_rows = tf.gather(rows, top.indices, batch_dims=1)
    top_rows = tf.where(top.values > -np.inf, top_rows, -1)
    pad = [[0, 0], [0, self.max_k - tf.shape(top_rows)[1]]]
    return (tf.pad(top_rows, pad, constant_values=-1),
            tf.pad(top.values, pad, constant_values=-np.inf))

  def _select(self, scores, rows, keep, k):
    """Best kept candidates of one search -> (rows, scores [b, max_k], scanned [b],
    enough [b]): scanned is the position of the k-th kept candidate, i.e. the candidates
    it took to fill the row, or all returned ones when fewer than k were kept."""
    kept_so_far = tf.cumsum(tf.cast(keep, tf.int32), axis=1)
    enough = tf.reduce_sum(tf.cast(keep, tf.int32), axis=1) >= k
    to_fill = tf.reduce_sum(tf.cast(kept_so_far < k[:, None], tf.int32), axis=1) + 1
    returned = tf.reduce_sum(tf.cast(rows >= 0, tf.int32), axis=1)
    top_rows, top_scores = self._top(scores, rows, keep)
    return top_rows, top_scores, tf.where(enough, to_fill, returned), enough

  def _unfiltered(self, index, queries, k, excluded):
    """The common case, no strict row: one search for the whole batch, no loop.

    Without exclusions (static: serving_default has none) the index's own top max(k)
    rows, already best first, are the answer: one search and a pad. Otherwise fetch
    k + #exclusions and keep the best k rows not excluded.
    """
    if excluded.shape[1] == 0:
      scores, rows = index.search(queries, tf.reduce_max(k), max_n=self.max_k)
      pad = [[0, 0], [0, self.max_k - tf.shape(rows)[1]]]
      rows = tf.pad(rows, pad, constant_values=-1)
      scores = tf.pad(scores, pad, constant_values=-np.inf)
      returned = tf.reduce_sum(tf.cast(rows >= 0, tf.int32), axis=1)
      return rows, scores, tf.minimum(k, returned)
    excluded = tf.sort(excluded, axis=1)
    need = k + tf.reduce_sum(tf.cast(excluded >= 0, tf.int32), axis=1)
    scores, rows = index.search(queries, tf.minimum(tf.reduce_max(need), self.num_items))
    keep = (rows >= 0) & ~self.is_excluded(rows, excluded)
    top_rows, top_scores, scanned, _ = self._select(scores, rows, keep, k)
    return top_rows, top_scores, scanned

  def _stream(self, index, queries, condition, k, strict, excluded, need):
    """Streaming over-fetch for all rows; returns rows, scores [b, max_k], scanned [b]."""
    batch = tf.shape(queries)[0]
    out_rows = tf.fill([batch, self.max_k], -1)
    out_scores = tf.fill([batch, self.max_k], tf.constant(-np.inf, tf.float32))
    out_scanned = tf.zeros([batch], tf.int32)
    active = tf.range(batch)
    n = tf.minimum(tf.reduce_max(need), self.num_items)

    def round_(active, n, out_rows, out_scores, out_scanned):
      scores, rows = index.search(tf.gather(queries, active), n)
      row_condition = tf.gather(condition, active)
      keep = rows >= 0
      keep &= ~self.is_excluded(rows, tf.gather(excluded, active))
      keep &= ~tf.gather(strict, active)[:, None] | self.has_condition(rows, row_condition)
      top_rows, top_scores, scanned, enough = self._select(scores, rows, keep,
                                                           tf.gather(k, active))
      done = enough | (n >= self.num_items)
      done_at = tf.where(done)[:, 0]
      targets = tf.gather(active, done_at)[:, None]
      out_rows = tf.tensor_scatter_nd_update(out_rows, targets,
                                             tf.gather(top_rows, done_at))
      out_scores = tf.tensor_scatter_nd_update(out_scores, targets,
                                               tf.gather(top_scores, done_at))
      out_scanned = tf.tensor_scatter_nd_update(out_scanned, targets,
                                                tf.gather(scanned, done_at))
      next_n = tf.minimum(tf.cast(tf.math.ceil(tf.cast(n, tf.float32) * self.growth),
                                  tf.int32), self.num_items)
      return (tf.boolean_mask(active, tf.reshape(~done, [-1])), next_n, out_rows, out_scores,
              out_scanned)

    _, _, out_rows, out_scores, out_scanned = tf.while_loop(
        lambda active, *_: tf.size(active) > 0, round_,
        (active, n, out_rows, out_scores, out_scanned),
        shape_invariants=(tf.TensorShape([None]), tf.TensorShape([]),
                          tf.TensorShape([None, self.max_k]),
                          tf.TensorShape([None, self.max_k]), tf.TensorShape([None])))
    return out_rows, out_scores, out_scanned

  def _exact(self, queries, condition, excluded):
    """Scores each row's condition items exactly (rare conditions)."""
    starts = tf.gather(self.condition_row_splits, condition)
    lengths = tf.gather(self.condition_counts, condition)
    width = tf.maximum(tf.reduce_max(lengths), 1)
    offsets = tf.range(width, dtype=tf.int64)
    in_row = offsets[None, :] < tf.cast(lengths, tf.int64)[:, None]
    entry = tf.where(in_row, starts[:, None] + offsets[None, :], 0)
    rows = tf.where(in_row, tf.gather(self.condition_items, entry), -1)
    # A dense read and a gather from the tensor, never tf.gather on the variable: that is
    # a sparse op (ResourceGather), which puts the variable in copy-on-read mode, and the
    # index reads the same variable densely on every call (tfcr.index: `vectors`).
    table = tf.ensure_shape(self.embeddings.value(), [self.num_items, self.dim])
    vectors = tf.gather(table, tf.maximum(rows, 0))
    scores = tf.einsum("bd,bnd->bn", queries, vectors)
    keep = in_row & ~self.is_excluded(rows, excluded)
    top_rows, top_scores = self._top(scores, rows, keep)
    return top_rows, top_scores, lengths

  def __call__(self, index, queries, condition, k, strict, excluded):
    """Top-k per row.

    index: a `tfcr.index` index; queries: [B, d]; condition: [B] int32 condition ids;
    k: [B] int32 in 1..max_k; strict: [B] bool; excluded: [B, E] int32 item rows (-1 =
    padding). Returns rows [B, max_k] int32 (-1 = padding), scores [B, max_k] float32
    (-inf = padding) and num_scanned [B] int32; positions >= k are padding.
    """
    strict = strict & (condition != NONE_ID)  # "" has nothing to filter by
    index = index.bind()  # one searcher handle for every search below
    rows, scores, scanned = tf.cond(
        tf.reduce_any(strict),
        lambda: self._filtered(index, queries, condition, k, strict, excluded),
        lambda: self._unfiltered(index, queries, k, excluded))
    if index.call_filter_branches:
      _keep_functional(rows)
    within_k = tf.range(self.max_k)[None, :] < k[:, None]
    # Every path already scores its missing rows -inf.
    return tf.where(within_k, rows, -1), tf.where(within_k, scores, -np.inf), scanned

  def _filtered(self, index, queries, condition, k, strict, excluded):
    """A batch with strict rows: its unfiltered rows, streamed strict rows and exact
    strict rows are computed apart and merged."""
    unknown = strict & (condition == OOV_ID)
    count = tf.gather(self.condition_counts, condition)
    exact = strict & ~unknown & (count <= self.exact_threshold)
    excluded = tf.sort(excluded, axis=1)
    num_excluded = tf.reduce_sum(tf.cast(excluded >= 0, tf.int32), axis=1)
    share = tf.cast(tf.maximum(count, 1), tf.float32) / self.num_items
    strict_need = tf.cast(tf.math.ceil(tf.cast(k + num_excluded, tf.float32) / share
                                       * self.overfetch), tf.int32)
    batch = tf.shape(queries)[0]
    rows = tf.fill([batch, self.max_k], -1)
    scores = tf.fill([batch, self.max_k], tf.constant(-np.inf, tf.float32))
    scanned = tf.zeros([batch], tf.int32)
    # Unfiltered rows search apart, so that a strict row's large fetch does not inflate
    # their search, and once: k + #exclusions candidates always fill them.
    rows, scores, scanned = self._merge(
        ~strict, rows, scores, scanned,
        lambda at: self._unfiltered(index, tf.gather(queries, at), tf.gather(k, at),
                                    tf.gather(excluded, at)))
    rows, scores, scanned = self._merge(
        strict & ~exact & ~unknown, rows, scores, scanned,
        lambda at: self._stream(index, tf.gather(queries, at), tf.gather(condition, at),
                                tf.gather(k, at), tf.gather(strict, at),
                                tf.gather(excluded, at), tf.gather(strict_need, at)))
    return self._merge(
        exact, rows, scores, scanned,
        lambda at: self._exact(tf.gather(queries, at), tf.gather(condition, at),
                               tf.gather(excluded, at)))

  def _merge(self, group, rows, scores, scanned, compute):
    """Runs `compute` on the rows in `group` (if any) and writes them into the outputs."""
    at = tf.cast(tf.where(group)[:, 0], tf.int32)

    def run():
      new_rows, new_scores, new_scanned = compute(at)
      target = at[:, None]
      return (tf.tensor_scatter_nd_update(rows, target, new_rows),
              tf.tensor_scatter_nd_update(scores, target, new_scores),
              tf.tensor_scatter_nd_update(scanned, target, new_scanned))

    return tf.cond(tf.size(at) > 0, run, lambda: (rows, scores, scanned))
