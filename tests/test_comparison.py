"""The comparison's parts on hand-worked cases: metrics, INDEX, queries, bootstrap, report."""

import csv
import math

import numpy as np
import pytest

from tfcr.comparison import report
from tfcr.metrics import per_query as metrics
from tfcr.comparison.baselines import PopularityIndex
from tfcr.metrics.bootstrap import Resamples, interval_of_samples
from tfcr.metrics.queries import build_queries
from tfcr.data.conditions import ItemConditions
from tfcr.data.prepare import prepare
from tfcr.data.schema import Catalog, Interactions, MultiValued, RecData, Users

# Three queries, top-4 rows each (-1 = nothing returned there).
ROWS = np.array([[5, 3, 7, -1],
                 [2, 9, 1, 4],
                 [-1, -1, -1, -1]])
TARGETS = np.array([3, 6, 0])


def test_hit_positions_recall_and_ndcg_hand_worked():
  positions = metrics.hit_positions(ROWS, TARGETS)
  np.testing.assert_array_equal(positions, [1, -1, -1])
  np.testing.assert_array_equal(metrics.recall_per_query(positions, 1), [0, 0, 0])
  np.testing.assert_array_equal(metrics.recall_per_query(positions, 2), [1, 0, 0])
  # Target at 1-based position 2: DCG = 1 / log2(3); the ideal DCG of one relevant item is 1.
  np.testing.assert_allclose(metrics.ndcg_per_query(positions, 4), [1 / math.log2(3), 0, 0])
  np.testing.assert_allclose(metrics.ndcg_per_query(positions, 1), [0, 0, 0])
  np.testing.assert_allclose(metrics.ndcg_per_query(np.array([0]), 10), [1.0])


def test_topic_match_and_condition_matches_hand_worked():
  # 10 items, 4 condition ids; item i has condition 2 when i is odd, condition 3 when i >= 5.
  membership = np.zeros((10, 4), dtype=bool)
  membership[1::2, 2] = True
  membership[5:, 3] = True
  conditions = np.array([2, 3, 2])
  matches = metrics.condition_matches(ROWS, conditions, membership)
  np.testing.assert_array_equal(matches, [[True, True, True, False],
                                          [False, True, False, False],
                                          [False, False, False, False]])
  # Query 0 returned 3 items, all odd -> 1; query 1: 1 of 4 (item 9) has condition 3;
  # query 2 returned nothing -> 0.
  np.testing.assert_allclose(metrics.topic_match_per_query(matches, ROWS, 4), [1, 0.25, 0])
  np.testing.assert_allclose(metrics.topic_match_per_query(matches, ROWS, 1), [1, 0, 0])


def test_catalog_coverage_hand_worked():
  # Distinct items in the top 2: {5, 3, 2, 9} of 10; in the top 4: {5, 3, 7, 2, 9, 1, 4}.
  assert metrics.catalog_coverage(ROWS, 10, 2) == 0.4
  assert metrics.catalog_coverage(ROWS, 10, 4) == 0.7
  assert metrics.catalog_coverage(ROWS, 20, 4) == 0.35


def _conditions(lists, feature="topics"):
  return ItemConditions.from_multi_valued(feature, MultiValued.from_lists(lists))


def test_index_orders_by_training_popularity_and_skips_exclusions():
  # Items 0..5; topics: a = {0, 1, 3, 5}, b = {1, 2, 4}, item 3 also has b.
  conditions = _conditions([["a"], ["a", "b"], ["b"], ["a", "b"], ["b"], ["a"]])
  a, b = (int(i) for i in conditions.ids_of(["a", "b"]))
  # Training interactions per item: 0 -> 1, 1 -> 4, 2 -> 0, 3 -> 2, 4 -> 2, 5 -> 3.
  train_items = np.array([0, 1, 1, 1, 1, 3, 3, 4, 4, 5, 5, 5])
  index = PopularityIndex(conditions, train_items)
  np.testing.assert_array_equal(index.ranked(a), [1, 5, 3, 0])
  np.testing.assert_array_equal(index.ranked(b), [1, 3, 4, 2])  # 3 and 4 tie: item row order
  rows, scanned = index.retrieve(a, excluded=np.array([5]), k=2)
  np.testing.assert_array_equal(rows, [1, 3])
  assert scanned == 3  # 1, (5 excluded), 3: the 2nd kept item is the 3rd of the list
  rows, scanned = index.retrieve(b, excluded=np.array([1, 2]), k=3)
  np.testing.assert_array_equal(rows, [3, 4, -1])  # only 2 left: padded
  assert scanned == 4  # could not fill k: the whole list was scanned
  rows, scanned = index.retrieve(b, excluded=np.array([], dtype=np.int64), k=1)
  np.testing.assert_array_equal(rows, [1])
  assert scanned == 1


def _tiny_data():
  # 4 users, 8 items; item 7 has no topic (e.g. a movie of unknown year for "decade").
  topics = MultiValued.from_lists([["x"], ["y"], ["x", "y"], ["z"], ["x"], ["y"], ["z"], []])
  catalog = Catalog(np.array([f"i{i}" for i in range(8)], dtype=object),
                    features={"topics": topics})
  users = Users(np.array([f"u{u}" for u in range(4)], dtype=object))
  # user: items in time order; the last one of each user is held out (test_per_user=1).
  history = {0: [0, 1, 2, 0, 3], 1: [4, 5, 6], 2: [1, 3, 7], 3: [2, 2, 4, 6]}
  user_index = np.array([u for u, items in history.items() for _ in items], np.int32)
  item_index = np.array([i for items in history.values() for i in items], np.int32)
  n = len(item_index)
  inter = Interactions(user_index, item_index, np.ones(n, np.float32),
                       np.arange(n, dtype=np.int64))
  return RecData("tiny", users, catalog, inter)


def test_queries_skip_items_without_condition_and_exclude_training_items():
  prepared = prepare(_tiny_data(), "topics", test_per_user=1)
  queries = build_queries(prepared, seed=3)
  # User 2's held-out item 7 has no topic: skipped.
  assert queries.num_skipped == 1
  np.testing.assert_array_equal(queries.users, [0, 1, 3])
  np.testing.assert_array_equal(queries.targets, [3, 6, 6])
  np.testing.assert_array_equal(queries.user_ids, ["u0", "u1", "u3"])
  np.testing.assert_array_equal(queries.condition_values, ["z", "z", "z"])
  # Distinct training items, ascending (user 0 engaged item 0 twice).
  np.testing.assert_array_equal(queries.excluded(0), [0, 1, 2])
  np.testing.assert_array_equal(queries.excluded(1), [4, 5])
  np.testing.assert_array_equal(queries.excluded(2), [2, 4])
  sub = queries.subset(np.array([2, 0]))
  np.testing.assert_array_equal(sub.excluded(0), [2, 4])
  np.testing.assert_array_equal(sub.excluded(1), [0, 1, 2])


def test_bootstrap_mean_interval_contains_estimate_and_matches_normal_theory():
  rng = np.random.default_rng(0)
  values = (rng.random(2000) < 0.3).astype(float)
  resamples = Resamples(len(values), 2000, seed=1)
  drawn = np.concatenate(list(resamples.indices()))
  assert drawn.shape == (2000, 2000) and drawn.min() >= 0 and drawn.max() < 2000
  interval = resamples.mean(values)
  assert interval.value == values.mean()
  assert interval.low < interval.value < interval.high
  # The percentile interval of a mean is close to the normal one: +-1.96 standard errors.
  p = values.mean()
  normal_width = 2 * 1.96 * math.sqrt(p * (1 - p) / len(values))
  assert abs((interval.high - interval.low) / normal_width - 1) < 0.1


def test_bootstrap_is_deterministic_by_seed_and_narrows_with_more_queries():
  rng = np.random.default_rng(0)
  small, large = rng.random(100), rng.random(10000)
  first = Resamples(100, 500, seed=7).mean(small)
  assert first == Resamples(100, 500, seed=7).mean(small)
  assert first != Resamples(100, 500, seed=8).mean(small)
  wide = first.high - first.low
  narrow = Resamples(10000, 500, seed=7).mean(large)
  assert narrow.high - narrow.low < wide / 5  # ~ 1 / sqrt(100): 10x narrower
  assert narrow.low < 0.5 < narrow.high  # uniform(0, 1) has mean 0.5


def test_bootstrap_in_chunks_is_deterministic_and_agrees():
  rng = np.random.default_rng(4)
  values = rng.random(500)
  whole = Resamples(500, 1000, seed=3)
  chunked = Resamples(500, 1000, seed=3, chunk_entries=500 * 64)  # 16 chunks of 64
  assert chunked.chunk == 64 and whole.chunk == 1000
  assert sum(len(i) for i in chunked.indices()) == 1000
  first = chunked.mean(values)
  assert first == chunked.mean(values) == Resamples(500, 1000, seed=3,
                                                     chunk_entries=500 * 64).mean(values)
  other = whole.mean(values)
  width = other.high - other.low
  assert abs(first.low - other.low) < 0.15 * width
  assert abs(first.high - other.high) < 0.15 * width


def test_bootstrap_quantiles_differences_and_ratios():
  rng = np.random.default_rng(2)
  a = rng.integers(100, 200, 1000).astype(float)
  resamples = Resamples(1000, 400, seed=0)
  median = resamples.quantile(a, 0.5)
  assert median.value == np.median(a)
  assert median.low <= median.value <= median.high
  same = resamples.mean_difference(a, a)
  assert (same.value, same.low, same.high) == (0, 0, 0)
  ratio = resamples.quantile_ratio(a / 4, a, 0.5)  # paired: exactly 1/4 in every resample
  assert ratio.value == pytest.approx(0.25)
  assert ratio.low == pytest.approx(0.25) and ratio.high == pytest.approx(0.25)
  latency = interval_of_samples(a, lambda v: np.quantile(v, 0.99, axis=-1), 300, seed=0)
  assert latency.low <= latency.value <= latency.high
  with pytest.raises(ValueError):
    resamples.mean(a[:10])


def test_bootstrap_coverage_interval_is_centred_on_the_estimate():
  rng = np.random.default_rng(3)
  rows = rng.integers(0, 500, size=(300, 20))
  rows[:, -3:] = -1  # padding is not an item
  resamples = Resamples(300, 300, seed=0)
  interval = resamples.coverage(rows, 500, 20)
  assert interval.value == metrics.catalog_coverage(rows, 500, 20)
  assert interval.low < interval.value < interval.high
  # Shifted by the bootstrap bias: the estimate is (nearly) the middle of the interval.
  assert abs((interval.low + interval.high) / 2 - interval.value) < 0.3 * (
      interval.high - interval.low)


def _results():
  point = {"value": 0.5, "ci_low": 0.4, "ci_high": 0.6}
  return {"methods": {"INDEX": {"recall@10": point, "latency_p50_ms": None},
                      "CR": {"recall@10": {"value": 0.75, "ci_low": 0.7, "ci_high": 0.8},
                             "latency_p50_ms": {"value": 1.5, "ci_low": 1.25,
                                                "ci_high": 2.0}}}}


def _full_results():
  """_results() with everything else report.write_all needs (results.md)."""
  return {**_results(), "dataset": "tiny", "condition_feature": "topics", "num_queries": 3,
          "num_skipped_queries": 1, "num_items": 8, "num_users": 4, "num_conditions": 3,
          "num_train_interactions": 11, "seed": 3, "index": "brute_force", "k": 4,
          "latency_queries": 2, "bootstrap": {"samples": 10, "confidence": 0.9},
          "comparisons": [], "timings_seconds": {"total": 1.0},
          "machine": {"cpu": "cpu", "cpu_count": 1, "memory_gib": 1, "gpus": 0,
                      "platform": "linux", "python": "3", "tensorflow": "2"}}


def test_report_csv_file_holds_the_hand_written_rows(tmp_path):
  report.write_all(_full_results(), str(tmp_path))
  with open(tmp_path / "results.csv", newline="") as f:
    rows = list(csv.reader(f))
  assert rows == [["method", "metric", "value", "ci_low", "ci_high"],
                  ["INDEX", "recall@10", "0.5", "0.4", "0.6"],
                  ["INDEX", "latency_p50_ms", "", "", ""],  # no servable: empty cells
                  ["CR", "recall@10", "0.75", "0.7", "0.8"],
                  ["CR", "latency_p50_ms", "1.5", "1.25", "2.0"]]


def test_report_csv_rows_and_formatting():
  rows = report.csv_rows(_results())
  assert rows == [
      {"method": "INDEX", "metric": "recall@10", "value": 0.5, "ci_low": 0.4, "ci_high": 0.6},
      {"method": "INDEX", "metric": "latency_p50_ms", "value": "", "ci_low": "",
       "ci_high": ""},
      {"method": "CR", "metric": "recall@10", "value": 0.75, "ci_low": 0.7, "ci_high": 0.8},
      {"method": "CR", "metric": "latency_p50_ms", "value": 1.5, "ci_low": 1.25,
       "ci_high": 2.0}]
  assert report.CSV_FIELDS == ("method", "metric", "value", "ci_low", "ci_high")
  assert report.format_interval(_results()["methods"]["CR"]["recall@10"]) == (
      "0.750 [0.700, 0.800]")
  assert report.format_interval({"value": 540.0, "ci_low": 523.0, "ci_high": 556.4},
                                "scanned_median") == "540 [523, 556]"
  assert report.format_interval({"value": 1.5, "ci_low": 1.25, "ci_high": 2.0},
                                "latency_p50_ms") == "1.50 [1.25, 2.00]"
  assert report.format_interval(None) == "-"


def test_topic_match_ceiling_hand_worked():
  from tfcr.comparison.pipeline import topic_match_ceiling  # pylint: disable=g-import-not-at-top
  prepared = prepare(_tiny_data(), "topics", test_per_user=1)
  queries = build_queries(prepared, seed=3)
  membership = prepared.conditions.membership()
  # Every query asks for "z" (items 3 and 6), none of which its user trained on.
  np.testing.assert_allclose(topic_match_ceiling(queries, membership, 1), [1, 1, 1])
  np.testing.assert_allclose(topic_match_ceiling(queries, membership, 4), [0.5, 0.5, 0.5])
  # Asking user 0 for "x" (items 0, 2, 4): items 0 and 2 are excluded, one is left.
  queries.conditions[0] = prepared.conditions.ids_of(["x"])[0]
  np.testing.assert_allclose(topic_match_ceiling(queries, membership, 4)[0], 0.25)
