"""ScaNN (tree partitioning + asymmetric hashing + exact re-ranking) behind the
`tfcr.index` interface.

It searches the fewest leaves that reach a recall target on a sample of the model's
queries (measured at export, `tfcr.index.tuning`), more as n grows, so a large n (the
condition filter's later rounds) still reaches enough items; at n = num_items every leaf
is searched. Loading a servable that holds it needs ScaNN's ops (`tfcr.index.scann_cpu`).
"""

import math
from typing import Optional

import numpy as np
import tensorflow as tf

from tfcr.index import tuning as index_tuning
from tfcr.index.scann_cpu import load_scann_ops
from tfcr.utils import aligned


# Deep fetches re-rank this many AH candidates per candidate fetched, up to the cap. The
# strict filter's streaming fetch at a condition on 0.5% of 10M items (n = 3,000) found
# 0.79 of its exact top 10 re-ranking 4,000 candidates, 0.90 with 9,000 and 0.92 with
# 16,000, for +0.8 ms; at 1% (n = 1,500, 9,000 re-ranked) 0.90 -> 0.94 (measured at 10M
# items, d = 64, 300 queries, the leaves fixed).
REORDER_PER_FETCH = 6
REORDER_CAP = 16_000


def scann_leaves(num_items: int) -> int:
  """Partitions of the ScaNN tree: ~sqrt(N), the usual balance of scan and centroid cost
  (3,162 at 10M items: ~3,000 points a leaf, as at 1M; capping it at 2,000, as before,
  made each leaf searched at 10M cost 2.5x)."""
  return max(1, int(round(math.sqrt(num_items))))


def training_sample_size(num_items: int, num_leaves: int) -> int:
  """Points the tree's k-means trains on: all up to 250k, then ~100 per leaf (the
  k-means cost grows with sample x leaves; assigning every point stays exact)."""
  return min(num_items, max(250_000, 100 * num_leaves))


def _float_vectors(state, embeddings: np.ndarray) -> Optional[tf.Variable]:
  """The state's float32 dataset (the re-ranking vectors, [N, d], rows in item order), if
  it is the embeddings as given, so that other parts of the servable (the condition
  filter's exact path) can share it instead of holding a copy; else None. A sample of rows
  is compared: ScaNN keeps them unchanged for dot-product re-ranking."""
  dataset = state.dataset
  if tuple(dataset.shape) != embeddings.shape or not len(embeddings):
    return None
  rows = np.unique(np.linspace(0, len(embeddings) - 1, num=min(257, len(embeddings)),
                               dtype=np.int64))
  same = np.array_equal(tf.gather(dataset.value(), rows).numpy(), embeddings[rows])
  return dataset if same else None


class ScannIndex(tf.Module):
  """ScaNN searcher saved as its serialized state (requires ScaNN's ops, `tfcr.index.scann_cpu`
  before loading).

  With `tuning_queries` (a sample of the model's query vectors, as the servable passes),
  the number of leaves searched is the fewest whose recall@10 and recall@max_k on them
  reach `recall_target` times what searching every leaf reaches (`tfcr.index.tuning`);
  `tuning` then holds the choice, and `depth_tuning` the leaves tuned for deeper fetches
  (the strict filter's), which `search` interpolates between. Without, a rule of thumb.

  `vectors`: its float32 re-ranking vectors [N, d] as a tf.Variable (or None), which the
  condition filter shares. Read it densely (`.value()`, then `tf.gather`): a sparse op on
  a variable (ResourceGather) puts it in copy-on-read mode, and then every dense read, as
  the searcher's rebuild from `state` in each servable call, copies all N x d floats.
  """

  def __init__(self, embeddings: np.ndarray, max_k: int,
               tuning_queries: Optional[np.ndarray] = None,
               recall_target: float = index_tuning.DEFAULT_RECALL_TARGET,
               leaves_to_search_share=0.1, min_leaves_to_search: int = 128,
               min_points_to_search: int = 5000, reorder: int = 0,
               training_threads: int = 0, name: str = "scann_index"):
    super().__init__(name=name)
    scann_ops = load_scann_ops()
    if not 0 < recall_target <= 1:
      raise ValueError(f"recall_target must be in (0, 1], got {recall_target}.")
    embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
    self.num_items = int(embeddings.shape[0])
    self.num_leaves = scann_leaves(self.num_items)
    # Without tuning queries: a share of the leaves, but never fewer than
    # min_leaves_to_search leaves or ~min_points_to_search points (scoring a few
    # thousand hashed points costs microseconds; measured: 32 of 316 leaves gave recall@10
    # 0.70 at 100k items, 128 gave 0.96).
    per_leaf = self.num_items / self.num_leaves
    self.base_leaves = min(self.num_leaves, max(
        1, int(math.ceil(self.num_leaves * leaves_to_search_share)), min_leaves_to_search,
        int(math.ceil(min_points_to_search / per_leaf))))
    # Exact re-ranking of a few hundred AH candidates recovers the true top-k.
    self.max_k = int(max_k)
    self.reorder = int(reorder or max(250, 4 * max_k))
    # One tensor for the build and the tuning's exact search: the array's own memory when
    # it is aligned (tfcr.utils.aligned; the exporter's embeddings are), else one copy.
    # Given the NumPy array, the build converted it itself and held two more copies at
    # its peak (measured at 3M items); at 10M items each is 2.4 GiB (d = 64), and this
    # build is the export's peak.
    table = aligned.as_tensor(embeddings)
    builder = scann_ops.builder(table, max_k, "dot_product")
    norms = np.sqrt(np.einsum("ij,ij->i", embeddings, embeddings))  # no [N, d] temporary
    # Unit-norm embeddings (tfcr's default towers) partition better on the sphere:
    # measured recall@10 0.954 -> 0.980 at 1M items for the same cost.
    spherical = bool(np.allclose(norms, 1.0, atol=1e-3))
    if self.num_leaves > 1:
      builder = builder.tree(num_leaves=self.num_leaves,
                             num_leaves_to_search=self.base_leaves,
                             training_sample_size=training_sample_size(self.num_items,
                                                                       self.num_leaves),
                             spherical=spherical)
    # Anisotropic quantisation favours the large inner products that decide the top-k.
    builder = builder.score_ah(2, anisotropic_quantization_threshold=0.2)
    builder = builder.reorder(self.reorder)
    builder.training_threads = training_threads
    searcher = builder.build()
    del builder  # it holds `table`
    self.tuning = None
    # (depth, leaves) past max_k, leaves growing with depth (tfcr.index.tuning); empty
    # without tuning queries: deep fetches then get the base leaves and the 2n floor.
    self.depth_tuning = []
    if tuning_queries is not None and len(tuning_queries) and self.num_leaves > 1:
      self.tuning = self._tune(searcher, table, tuning_queries, recall_target, max_k)
      self.base_leaves = self.tuning.leaves
      self.depth_tuning = self._tune_depths(searcher, table, tuning_queries, recall_target,
                                            max_k)
    del table
    self.state = searcher.serialize_to_module()
    # The build's searcher holds its own copy of every vector (2.4 GiB at 10M items) and
    # stays in TensorFlow's resource manager, shared by name, until destroyed; the state
    # above is all the servable needs (serving rebuilds a searcher from it).
    tf.raw_ops.DestroyResourceOp(resource=searcher.searcher_handle, ignore_lookup_error=True)
    del searcher
    self.vectors = _float_vectors(self.state, embeddings)

  def _tune(self, searcher, embeddings, queries, target, max_k):
    ks = sorted({min(index_tuning.TUNING_K, self.num_items), min(max_k, self.num_items)})
    queries = np.asarray(queries, np.float32)
    deepest = index_tuning.exact_top_k(embeddings, queries, ks[-1])  # best first
    exact = {k: deepest[:, :k] for k in ks}
    queries = tf.constant(queries)

    def search(leaves, k):
      rows, _ = searcher.search_batched_parallel(
          queries, final_num_neighbors=k, pre_reorder_num_neighbors=self.pre_reorder(k),
          leaves_to_search=leaves)
      return rows.numpy()

    return index_tuning.fewest_leaves(search, exact, self.num_leaves, target)

  def _tune_depths(self, searcher, embeddings, queries, target, max_k):
    """[(depth, LeafChoice)] for the depths past max_k, each at least the leaves of the
    depth before: the fewest whose filtered recall@k (`tfcr.index.tuning`) at that
    depth reaches `target` times the every-leaf one."""
    depths = index_tuning.tuning_depths(max_k, self.num_items)
    if not depths:
      return []
    k = min(index_tuning.TUNING_K, self.num_items)
    queries = np.asarray(queries, np.float32)[:index_tuning.DEPTH_QUERIES]
    # Twice the deepest depth: enough members for an exact filtered top-k (~30 expected).
    exact_all = index_tuning.exact_top_k(embeddings, queries,
                                         min(2 * depths[-1], self.num_items))  # best first
    tuned, leaves = [], self.base_leaves
    for seed, depth in enumerate(depths):
      share = k * index_tuning.FETCH_OVERFETCH / depth
      exact = index_tuning.first_members(
          exact_all, index_tuning.sampled_members(exact_all, share, seed), k)
      full = (exact >= 0).all(axis=1)  # queries whose exact filtered top-k is complete
      at = tf.constant(queries[full])

      def search(leaves_, _, at=at, depth=depth, share=share, seed=seed, full=full):
        rows, scores = searcher.search_batched_parallel(
            at, final_num_neighbors=depth, pre_reorder_num_neighbors=self.pre_reorder(depth),
            leaves_to_search=leaves_)
        rows = np.where(np.isnan(scores.numpy()), -1, rows.numpy())  # ScaNN's padding
        # Members by the query's id in the whole sample, as for the exact list.
        members = index_tuning.sampled_members(rows, share, seed, np.flatnonzero(full))
        return index_tuning.first_members(rows, members, k)

      choice = index_tuning.fewest_leaves(search, {k: exact[full]}, self.num_leaves, target,
                                          at_least=leaves)
      tuned.append((depth, choice))
      leaves = choice.leaves
    return tuned

  def describe_tuning(self) -> str:
    """What the tuning chose, one line per depth (the export prints it)."""
    lines = [self.tuning.describe(self.num_leaves)] if self.tuning else []
    lines += [f"Fetches of {depth} (a strict filter on "
              f"{index_tuning.TUNING_K * index_tuning.FETCH_OVERFETCH / depth:.2%} of the "
              f"items; recall of its top {index_tuning.TUNING_K}): "
              f"{choice.describe(self.num_leaves)}" for depth, choice in self.depth_tuning]
    return "\n".join(lines)

  def leaves_for(self, n: tf.Tensor) -> tf.Tensor:
    """Leaves to search for a fetch of n (int32 scalar): the base leaves up to max_k, then
    interpolated on log(depth) between the tuned depths, the deepest's beyond it."""
    if not self.depth_tuning:
      return tf.constant(self.base_leaves)
    depths = [self.max_k] + [depth for depth, _ in self.depth_tuning]
    counts = [self.base_leaves] + [choice.leaves for _, choice in self.depth_tuning]
    log_depths = tf.constant(np.log(depths), tf.float32)
    counts = tf.constant(counts, tf.float32)
    x = tf.math.log(tf.cast(tf.maximum(n, self.max_k), tf.float32))
    i = tf.clip_by_value(
        tf.searchsorted(log_depths, tf.reshape(x, [1]), side="right")[0] - 1,
        0, len(depths) - 2)
    t = tf.clip_by_value((x - log_depths[i]) / (log_depths[i + 1] - log_depths[i]), 0.0, 1.0)
    return tf.cast(tf.math.ceil(counts[i] + t * (counts[i + 1] - counts[i])), tf.int32)

  def pre_reorder(self, n):
    """AH candidates re-ranked exactly for a fetch of n: at least `reorder`; large
    fetches (the strict filter's) re-rank REORDER_PER_FETCH x n, or their tail loses
    recall, at most REORDER_CAP so a huge n does not re-rank the world. Python ints or
    tensors."""
    if isinstance(n, int):
      return max(min(REORDER_PER_FETCH * n, REORDER_CAP), n, self.reorder)
    return tf.maximum(tf.minimum(REORDER_PER_FETCH * n, REORDER_CAP),
                      tf.maximum(n, self.reorder))

  def bind(self) -> "_BoundScann":
    """One searcher handle for every search of the graph being built.

    ScaNN rebuilds its searcher from `state` on the first call of a loaded servable. When
    several search sites of one graph ran that first call at once (a batch mixing strict
    and unfiltered rows), the build raced and corrupted memory (3 crashes in 20 fresh
    processes); with one handle, created before any search, it is built once.
    """
    scann_ops = load_scann_ops()
    return _BoundScann(self, scann_ops.searcher_from_module(self.state))

  def search(self, queries: tf.Tensor, n: tf.Tensor, max_n: Optional[int] = None):
    return self.bind().search(queries, n, max_n)


class _BoundScann:
  """A ScannIndex with its searcher handle created: `search` as ScannIndex.search."""

  # The condition filter calls only the branch it takes (tfcr.export.condition_filter): cheaper
  # than walking the strict branch's nodes as dead ones on every unfiltered call.
  call_filter_branches = True

  def __init__(self, index: ScannIndex, searcher):
    self.index = index
    self.num_items = index.num_items
    self.searcher = searcher

  def search(self, queries: tf.Tensor, n: tf.Tensor, max_n: Optional[int] = None):
    """max_n: a bound on n known when the graph is built (the unfiltered path's max_k),
    which lets it skip the leaf-count arithmetic when the tuned leaves suffice anyway."""
    index, searcher = self.index, self.searcher
    n = tf.cast(n, tf.int32)
    if max_n is None or max_n > self.num_items:
      n = tf.minimum(n, self.num_items)
    # The leaves tuned for a fetch this deep, and enough to hold ~2n points.
    per_leaf = self.num_items / index.num_leaves
    if index.num_leaves == 1:
      leaves = tf.constant(-1)
    elif (max_n is not None and max_n <= index.max_k
          and math.ceil(2.0 * max_n / per_leaf) <= index.base_leaves):
      leaves = tf.constant(index.base_leaves)
    else:
      leaves = tf.cast(tf.math.ceil(2.0 * tf.cast(n, tf.float32) / per_leaf), tf.int32)
      leaves = tf.maximum(leaves, index.leaves_for(n))
      leaves = tf.clip_by_value(leaves, index.base_leaves, index.num_leaves)
    rows, scores = searcher.search_batched(
        queries, final_num_neighbors=n, pre_reorder_num_neighbors=index.pre_reorder(n),
        leaves_to_search=leaves)
    # ScaNN pads with row 0 and NaN distance when fewer candidates were found.
    missing = tf.math.is_nan(scores)
    return (tf.where(missing, tf.constant(-np.inf, tf.float32), scores),
            tf.where(missing, -1, tf.cast(rows, tf.int32)))
