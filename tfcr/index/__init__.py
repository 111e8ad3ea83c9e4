"""Nearest-neighbour indexes over item embeddings behind one `search` interface.

    scores, rows = index.search(queries, n)

queries: [B, d] float32; n: int32 scalar, how many candidates to return per query;
optional max_n: a Python int bound on n, when the caller knows one (fewer graph ops).
Returns scores [B, n'] float32 (best first, -inf where there is no candidate) and rows
[B, n'] int32 (item rows, -1 where there is no candidate), n' <= n. Both indexes are
tf.Modules, so they are saved inside the servable.

A graph that searches in several places (the condition filter: plain, streamed and
merged paths) calls `index.bind()` once and searches through what it returns, so that
all searches of one call share one searcher handle.

`vectors` is the index's float32 item vectors [N, d] as a tf.Variable (None if it has
none): the condition filter's exact path shares it rather than holding a second copy
(2.4 GiB at 10M items, d = 64). It is read densely only (`.value()`, then `tf.gather`):
a sparse op on a variable (ResourceGather) switches it to copy-on-read, after which every
dense read, such as brute force's matmul or ScaNN's searcher rebuild in each call, would
copy the whole table.

`call_filter_branches` tells the condition filter how to build its strict/unfiltered
cond for this index (see `tfcr.export.condition_filter`).

Modules: `brute_force`, `scann` (with `tuning`, its leaf count, and `scann_cpu`, its
SIMD kernels and ops), `factory` (`make_index` by name).

* `BruteForceIndex`: exact dot products and top-k; standard TensorFlow ops only, so a
  stock TF Serving can load a servable that uses it.
* `ScannIndex`: ScaNN (tree partitioning + asymmetric hashing + exact re-ranking). It
  searches the fewest leaves that reach a recall target on a sample of the model's
  queries (measured at export, `tfcr.index.tuning`), and more as n grows, by leaf counts
  tuned for deeper fetches (the condition filter's strict ones); at n = num_items every
  leaf is searched.
"""

# The index kinds a servable can hold (here, free of TensorFlow, so flags can name them).
INDEX_KINDS = ("scann", "brute_force")
