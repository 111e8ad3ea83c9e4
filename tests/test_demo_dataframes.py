"""tfcr.data.dataframes: pandas tables -> RecData, and training on them."""

import numpy as np
import pandas as pd
import pytest

from tfcr.data import synthetic
from tfcr.data.dataframes import from_dataframes, split_values, to_dataframes
from tfcr.data.prepare import prepare
from tfcr.errors import DataError
from tfcr.training.config import TrainConfig
from tfcr.training.loop import train_and_evaluate


def _frames():
  interactions = pd.DataFrame({
      "user_id": [1, 1, 2, 2, 3, 3, 3, 9],          # user 9 is not in the users table
      "item_id": ["a", "b", "b", "c", "a", "c", "zz", "a"],  # zz is not in the items table
      "timestamp": pd.to_datetime(["2024-01-0%d" % d for d in range(1, 9)]),
  })
  items = pd.DataFrame({
      "item_id": ["a", "b", "c", "d"],
      "name": ["Apple", "Bread", "Cheese", None],
      "category": ["fruit|fresh", ["bakery"], np.nan, "deli | fresh "],
      "brand": ["acme", "acme", "bolt", 7],
  })
  users = pd.DataFrame({"user_id": ["1", "2", "3"], "country": ["fr", "de", None]})
  return interactions, items, users


def test_split_values():
  assert split_values("a|b| |c") == ["a", "b", "c"]
  assert split_values(["x", None, "y"]) == ["x", "y"]
  assert split_values(float("nan")) == []
  assert split_values(1990) == ["1990"]
  assert split_values("a,b", sep=",") == ["a", "b"]
  assert split_values("a|b", sep=None) == ["a|b"]


def test_from_dataframes_tables_ids_and_attributes():
  interactions, items, users = _frames()
  data = from_dataframes(interactions, items, users, title="name", name="shop")
  assert data.name == "shop"
  assert list(data.users.user_id) == ["1", "2", "3"]
  assert list(data.users.features["country"]) == ["fr", "de", ""]
  assert list(data.catalog.item_id) == ["a", "b", "c", "d"]
  assert list(data.catalog.metadata) == ["title"]
  assert list(data.catalog.metadata["title"]) == ["Apple", "Bread", "Cheese", ""]
  assert sorted(data.catalog.features) == ["brand", "category"]
  assert data.default_condition_feature is None  # two attributes: the caller picks one
  assert data.catalog.features["category"].to_lists() == [
      ["fruit", "fresh"], ["bakery"], [], ["deli", "fresh"]]
  assert data.catalog.features["brand"].to_lists() == [["acme"], ["acme"], ["bolt"], ["7"]]
  # The interactions of user 9 and item zz are dropped; the rest map to table rows.
  assert len(data.interactions) == 6
  assert data.users.user_id[data.interactions.user_index].tolist() == ["1", "1", "2", "2",
                                                                      "3", "3"]
  assert data.catalog.item_id[data.interactions.item_index].tolist() == ["a", "b", "b", "c",
                                                                        "a", "c"]
  assert np.all(np.diff(data.interactions.timestamp) > 0)  # datetimes became seconds
  assert np.all(data.interactions.rating == 1.0)


def test_defaults_without_users_table_timestamp_or_title():
  interactions = pd.DataFrame({"user": ["u2", "u1", "u2"], "item": [10, 11, 10],
                               "stars": [5, 3, 4]})
  items = pd.DataFrame({"item": [10, 11], "tags": ["x;y", "y"]})
  data = from_dataframes(interactions, items, user_id="user", item_id="item",
                         rating="stars", sep={"tags": ";"})
  assert list(data.users.user_id) == ["u2", "u1"]
  assert data.users.features == {}
  assert data.catalog.metadata == {}  # no title column: clients show the id
  assert data.default_condition_feature == "tags"  # the only attribute
  assert list(data.catalog.item_id) == ["10", "11"]
  assert list(data.interactions.timestamp) == [0, 1, 2]  # row order
  assert list(data.interactions.rating) == [5.0, 3.0, 4.0]
  assert data.catalog.features["tags"].to_lists() == [["x", "y"], ["y"]]


def test_missing_columns_are_named():
  interactions, items, _ = _frames()
  with pytest.raises(DataError, match="no 'item_id' column"):
    from_dataframes(interactions, items.rename(columns={"item_id": "id"}))
  with pytest.raises(DataError, match="no 'colour' column"):
    from_dataframes(interactions, items, attributes=["colour"])
  with pytest.raises(DataError, match="no 'label' column"):
    from_dataframes(interactions, items, title="label")
  with pytest.raises(DataError, match="no interaction"):
    from_dataframes(interactions.assign(item_id="nope"), items)


def test_round_trip_and_a_new_condition_type_is_trainable(tmp_path, capsys):
  source = synthetic.generate(n_users=60, n_items=80, n_conditions=5, n_interactions=1200,
                              seed=3)
  interactions, items, users = to_dataframes(source)
  # A new attribute, never used by the generator: a brand per item, 20 items each.
  items["brand"] = ["brand_%d" % (i % 4) for i in range(len(items))]
  data = from_dataframes(interactions, items, users, title="title", year="year")
  assert len(data.interactions) == len(source.interactions)
  assert data.catalog.features["topics"].to_lists() == source.catalog.features["topics"].to_lists()
  np.testing.assert_array_equal(data.catalog.metadata["year"], source.catalog.metadata["year"])
  np.testing.assert_array_equal(data.catalog.metadata["title"],
                                source.catalog.metadata["title"])
  prepared = prepare(data, "brand")
  assert list(prepared.conditions.vocabulary[2:]) == ["brand_0", "brand_1", "brand_2",
                                                      "brand_3"]

  def train(model):
    return train_and_evaluate(
        TrainConfig(model=model, condition_feature="brand", epochs=4, batch_size=128,
                    embedding_dim=16, hidden_units=(32,), verbose=1,
                    model_dir=str(tmp_path / model)), data)

  cr = train("cr")
  # The summary names the data trained on.
  assert "CR on dataframes (condition: brand)" in capsys.readouterr().out
  lr = train("lr")
  # Brands say nothing of the users' tastes, so a ranking that ignores the condition
  # (random, or LR's) returns the query's brand at about its share of the catalog:
  # 20 / 80 items for every brand, written out here from the catalog.
  brands = np.array([i % 4 for i in range(len(items))])
  random_rate = np.mean([np.mean(brands == b) for b in range(4)])
  assert random_rate == 0.25
  assert lr["topic_match@10"] < random_rate + 0.15, lr
  # CR is asked for a brand and has learnt what it means: well above both.
  assert cr["topic_match@10"] > random_rate + 0.4, cr
  assert cr["topic_match@10"] > lr["topic_match@10"] + 0.3, (cr, lr)
  assert cr["num_skipped_queries"] == 0 and cr["num_test_queries"] == 2 * 60
