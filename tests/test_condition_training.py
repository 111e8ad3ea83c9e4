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
