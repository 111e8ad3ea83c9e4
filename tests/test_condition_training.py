"""Condition-aware training: condition dropout in the input pipeline, several condition
types in one model, and CR's unconditional recall."""

import numpy as np
import pytest

from tfcr.data import synthetic
from tfcr.data.conditions import NONE_ID, ItemConditions, union_of_features
from tfcr.data.prepare import prepare
from tfcr.data.schema import Catalog, MultiValued
from tfcr.errors import ConfigError
from tfcr.training.config import TrainConfig
from tfcr.training.input_pipeline import training_dataset
from tfcr.training.loop import train_and_evaluate


def _conditions_of(dropout, seed=7):
  rng = np.random.default_rng(0)
  items = rng.integers(0, 50, 4096)
  conditions = ItemConditions.from_multi_valued("t", MultiValued.from_lists(
      [[f"v{i % 5}", f"w{i % 3}"] for i in range(50)]))
  dataset = training_dataset(np.zeros(4096, np.int64), items, np.full(50, 0.02, np.float32),
                             conditions, batch_size=4096, seed=seed, first_epoch=0, epochs=1,
                             condition_dropout=dropout)
  return next(iter(dataset))["condition"].numpy()


def test_condition_dropout_replaces_a_share_by_none_and_keeps_the_rest():
  kept = _conditions_of(0.0)
  dropped = _conditions_of(0.3)
  assert not (kept == NONE_ID).any()  # every item has values
  share = float(np.mean(dropped == NONE_ID))
  assert 0.27 < share < 0.33, share  # 4096 draws: 3 sigma is about 0.02
  # The examples not dropped keep the condition they had without dropout.
  np.testing.assert_array_equal(dropped[dropped != NONE_ID], kept[dropped != NONE_ID])
  np.testing.assert_array_equal(_conditions_of(0.3), dropped)  # deterministic by seed
  with pytest.raises(ConfigError, match=r"condition_dropout must be in \[0, 1\)"):
    TrainConfig(condition_dropout=1.0, model_dir="x").resolved()


def test_several_condition_types_share_one_namespaced_vocabulary():
  catalog = Catalog(item_id=np.array(["a", "b"], dtype=object), features={
      "genres": MultiValued.from_lists([["Drama", "Comedy"], ["Horror"]]),
      "decade": MultiValued.from_lists([["1990s"], []])})
  union = union_of_features(catalog, ["genres", "decade"])
  assert union.to_lists() == [["genres=Drama", "genres=Comedy", "decade=1990s"],
                              ["genres=Horror"]]
  conditions = ItemConditions.from_catalog(catalog, "genres,decade")
  assert conditions.feature == "genres,decade"
  assert list(conditions.vocabulary) == ["[OOV]", "[NONE]", "decade=1990s", "genres=Comedy",
                                         "genres=Drama", "genres=Horror"]
  with pytest.raises(ConfigError, match="Unknown condition_feature='brand'"):
    ItemConditions.from_catalog(catalog, "genres,brand")
  with pytest.raises(ConfigError, match="names a feature twice"):
    ItemConditions.from_catalog(catalog, "genres,genres")


def test_a_derived_type_joins_a_catalog_one():
  data = synthetic.generate(n_users=30, n_items=40, n_conditions=4, n_interactions=300,
                            seed=2)
  prepared = prepare(data, "topics,decade", test_per_user=1)
  vocabulary = set(prepared.conditions.vocabulary)
  topics = data.catalog.features["topics"].vocabulary
  assert {f"topics={t}" for t in topics} | {"decade=1950s", "decade=2010s"} <= vocabulary
  # Every item has its topics and its decade.
  row = prepared.conditions
  first = [prepared.conditions.vocabulary[i]
           for i in row.ids[row.row_splits[0]:row.row_splits[1]]]
  year = int(data.catalog.metadata["year"][0])
  assert f"decade={year // 10 * 10}s" in first
  assert sorted(v for v in first if v.startswith("topics=")) == sorted(
      f"topics={t}" for t in data.catalog.features["topics"].row(0))


def test_cr_reports_its_unconditional_recall(tmp_path):
  data = synthetic.generate(n_users=80, n_items=60, n_conditions=5, n_interactions=1600,
                            seed=4)
  metrics = train_and_evaluate(TrainConfig(epochs=2, batch_size=128, embedding_dim=8,
                                           hidden_units=(16,), condition_dropout=0.5,
                                           verbose=0, model_dir=str(tmp_path / "cr")), data)
  assert 0 <= metrics["unconditional_recall@10"] <= metrics["unconditional_recall@100"] <= 1
  lr = train_and_evaluate(TrainConfig(model="lr", epochs=1, batch_size=128, embedding_dim=8,
                                      verbose=0, model_dir=str(tmp_path / "lr")), data)
  assert "unconditional_recall@10" not in lr  # LR's recall is already unconditional


def test_hard_negative_pools_and_draws_stay_within_the_condition():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfcr.training import hard_negatives  # pylint: disable=g-import-not-at-top
  conditions = ItemConditions.from_multi_valued("t", MultiValued.from_lists(
      [["x"], ["x", "y"], ["y"], [], ["x"]]))  # ids: 2 = x, 3 = y; item 3 has NONE
  splits, items = hard_negatives.pools(conditions)
  pool = {c: items[splits[c]:splits[c + 1]].tolist() for c in range(4)}
  assert pool == {0: [0, 1, 2, 3, 4], 1: [0, 1, 2, 3, 4], 2: [0, 1, 4], 3: [1, 2]}
  uniform = tf.random.stateless_uniform([3, 200], seed=[1, 2], dtype=tf.float64)
  drawn, share = hard_negatives.sample(tf.constant(splits), tf.constant(items),
                                       tf.constant([2, 3, 1]), uniform)
  drawn, share = drawn.numpy(), share.numpy()
  assert set(drawn[0]) == {0, 1, 4} and set(drawn[1]) == {1, 2} and len(set(drawn[2])) == 5
  np.testing.assert_allclose(share[:, 0], [1 / 3, 1 / 2, 1 / 5])


def _masked_numpy_loss(queries, candidates, probability, ids, mask, temperature):
  """Sum over queries of -log softmax over the unmasked candidates of q . c / T - log p,
  accidental hits (another column with the positive's id) removed; positive = column i."""
  scores = queries @ candidates.T / temperature - np.log(probability)[None, :]
  b = len(queries)
  hits = (ids[:b, None] == ids[None, :]) & ~np.eye(b, len(ids), dtype=bool)
  scores = np.where(mask & ~hits, scores, -np.inf)
  top = scores.max(axis=1, keepdims=True)
  log_softmax = scores - top - np.log(np.exp(scores - top).sum(axis=1, keepdims=True))
  return -np.trace(log_softmax[:, :b])


def test_hard_negatives_are_scored_by_their_own_query_with_their_probability():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfcr.models.retrieval import RetrievalModel  # pylint: disable=g-import-not-at-top
  from tfcr.models.towers import CandidateTower, QueryTower  # pylint: disable=g-import-not-at-top
  tf.keras.utils.set_random_seed(3)
  query_tower = QueryTower(4, [], 4, embedding_dim=4, hidden_units=())
  candidate_tower = CandidateTower(6, 4, 1, embedding_dim=4, hidden_units=())
  model = RetrievalModel(query_tower, candidate_tower, temperature=0.5)
  share = np.array([0.3, 0.2, 0.2, 0.1, 0.1, 0.1], np.float32)
  items = np.array([0, 2, 3])
  hard = np.array([[4, 5], [2, 1], [5, 5]])  # row 1's 2 is its own positive: a hit
  pool_share = np.array([[0.25, 0.25], [0.5, 0.5], [1 / 3, 1 / 3]], np.float32)
  features = {"user": tf.constant([1, 2, 3]), "item": tf.constant(items),
              "condition": tf.constant([2, 3, 2]),
              "sampling_probability": tf.constant(share[items]),
              "hard_items": tf.constant(hard), "hard_share": tf.constant(pool_share),
              "hard_probability": tf.constant(share[hard])}
  loss = model.compute_loss(features).numpy()
  flat = hard.ravel()
  # Hand-worked: B = 3 shared columns, no extra; a hard column's expected count for its
  # own query is 3 * share + 2 draws / pool size, over the same 3 as the shared ones.
  hard_probability = (3 * share[flat] + 2 * pool_share.ravel()) / 3
  np.testing.assert_allclose(hard_probability[:2], [(0.3 + 0.5) / 3, (0.3 + 0.5) / 3])
  ids = np.concatenate([items, flat])
  probability = np.concatenate([share[items], hard_probability])
  mask = np.concatenate([np.ones((3, 3), bool), np.repeat(np.eye(3, dtype=bool), 2, axis=1)],
                        axis=1)
  queries = query_tower(model.query_inputs(features)).numpy().astype(np.float64)
  candidates = candidate_tower(tf.constant(ids)).numpy().astype(np.float64)
  expected = _masked_numpy_loss(queries, candidates, probability, ids, mask, 0.5)
  np.testing.assert_allclose(loss, expected, rtol=1e-4)
  unmasked = _masked_numpy_loss(queries, candidates, probability, ids,
                                np.ones_like(mask), 0.5)
  assert not np.isclose(loss, unmasked, rtol=1e-3)  # the mask matters


def test_condition_loss_on_hand_worked_numbers():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfcr.models.retrieval import condition_loss  # pylint: disable=g-import-not-at-top
  vectors = tf.constant([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
  query = tf.constant([[1.0, 0.0], [0.0, 2.0], [5.0, 5.0]])
  # Row 0: logits [0, 0, 1, 0], label 2 -> log(3 + e) - 1; row 1: logits [0, 0, 0, 2],
  # label 3 -> log(3 + e^2) - 2; row 2 has NONE: not counted.
  value = condition_loss(query, vectors, tf.constant([2, 3, 1]), 1.0, normalize=False)
  expected = (np.log(3 + np.e) - 1) + (np.log(3 + np.e ** 2) - 2)
  np.testing.assert_allclose(value.numpy(), expected, rtol=1e-6)
  halved = condition_loss(query, vectors, tf.constant([2, 3, 1]), 2.0, normalize=False)
  np.testing.assert_allclose(halved.numpy(), (np.log(3 + np.e ** 0.5) - 0.5)
                             + (np.log(3 + np.e) - 1), rtol=1e-6)


def test_hard_negatives_and_condition_loss_train_end_to_end(tmp_path):
  data = synthetic.generate(n_users=80, n_items=60, n_conditions=5, n_interactions=1600,
                            seed=5)
  config = TrainConfig(epochs=2, batch_size=128, embedding_dim=8, hidden_units=(16,),
                       hard_negatives=4, condition_loss_weight=0.5, verbose=0,
                       model_dir=str(tmp_path / "cr"))
  metrics = train_and_evaluate(config, data)
  assert np.isfinite(metrics["recall@10"]) and metrics["recall@100"] > 0
