"""Tower features (tfcr.data.features, FeatureEmbeddings) and shared id rows
(tfcr.data.id_rows, IdEmbedding): hand-worked encodings and embeddings, the settings'
errors, and that cold items are embedded from their features."""

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from tfcr.data import features as features_lib
from tfcr.data import id_rows
from tfcr.data.dataframes import from_dataframes
from tfcr.data.prepare import prepare
from tfcr.data.schema import MultiValued
from tfcr.errors import ConfigError
from tfcr.models.embed import item_embeddings, query_embeddings
from tfcr.models.layers import FeatureEmbeddings, IdEmbedding
from tfcr.models.towers import QueryTower
from tfcr.training.config import TrainConfig
from tfcr.training.loop import train_and_evaluate
from tfcr.training.model_dir import ModelDir


def test_numeric_columns_are_bucketized_by_quantiles():
  # np.quantile (linear) of [0,0,1,1,2,2,3,3] at 1/4, 2/4, 3/4: 0.75, 1.5, 2.25.
  values = np.array([0, 0, 1, 1, 2, 2, 3, 3, np.nan])
  feature = features_lib.encode_feature("price", values, num_buckets=4)
  assert feature.kind == "numeric"
  assert feature.table[:, 0].tolist() == [0, 0, 1, 1, 2, 2, 3, 3, -1]  # NaN: no value
  assert list(feature.vocabulary) == ["<0.75", "[0.75,1.5)", "[1.5,2.25)", ">=2.25"]


def test_categorical_and_multi_valued_columns():
  color = features_lib.encode_feature("color", np.array(["red", "", "blue", "red"],
                                                        dtype=object))
  assert list(color.vocabulary) == ["blue", "red"]
  assert color.table[:, 0].tolist() == [1, -1, 0, 1]  # "": no value
  tags = features_lib.encode_feature("tags", MultiValued.from_lists(
      [["b", "a"], [], ["c"]]))
  # Vocabulary sorted (a, b, c); rows keep their order, padded with -1.
  assert tags.table.tolist() == [[1, 0], [-1, -1], [2, -1]]
  long_row = MultiValued.from_lists([[f"v{i:03d}" for i in range(100)]])
  assert features_lib.encode_feature("t", long_row).width == features_lib.MAX_VALUES_PER_ROW


def test_user_feature_columns_from_dataframes_keep_their_kind():
  users = pd.DataFrame({"user_id": ["u1", "u2"], "age": [31, 58],
                        "langs": [["en", "fr"], ["de"]], "plan": ["free", "pro|trial"],
                        "country": ["fr", None]})
  inter = pd.DataFrame({"user_id": ["u1", "u2"], "item_id": ["a", "a"]})
  items = pd.DataFrame({"item_id": ["a"], "kind": ["x"], "price": [9.5]})
  data = from_dataframes(inter, items, users)
  f = data.users.features
  assert f["age"].dtype == np.float64 and f["age"].tolist() == [31.0, 58.0]
  assert f["langs"].to_lists() == [["en", "fr"], ["de"]]
  assert f["plan"].to_lists() == [["free"], ["pro", "trial"]]  # split on the separator
  assert list(f["country"]) == ["fr", ""]
  # A numeric item attribute is a condition candidate and a numeric tower feature.
  assert data.catalog.features["price"].to_lists() == [["9.5"]]
  assert data.catalog.metadata["price"].tolist() == [9.5]


def test_unknown_feature_names_list_the_valid_ones():
  users = pd.DataFrame({"user_id": ["u1"], "age": [3]})
  data = from_dataframes(pd.DataFrame({"user_id": ["u1"] * 3, "item_id": ["a", "b", "a"]}),
                         pd.DataFrame({"item_id": ["a", "b"], "kind": ["x", "y"]}), users)
  with pytest.raises(ConfigError, match=r"user_features='agee'; valid values: age\."):
    prepare(data, "kind", test_per_user=1, user_features=["agee"])
  with pytest.raises(ConfigError, match=r"item_features='size'; valid values: kind\."):
    prepare(data, "kind", test_per_user=1, item_features=["size"])
  with pytest.raises(ConfigError, match="max_vocabulary must be >= 0"):
    prepare(data, "kind", test_per_user=1, max_vocabulary=-1)


def test_feature_embeddings_hand_worked():
  layer = FeatureEmbeddings(num_rows=2, vocab_sizes=[3, 2], widths=[2, 1], output_dim=1)
  layer(tf.constant([0]))
  layer.assign_table([[0, 2, 1], [1, -1, -1]])  # row 1 has one value of feature 0, none of 1
  layer.embeddings[0].set_weights([np.array([[1.0], [10.0], [100.0]], np.float32)])
  layer.embeddings[1].set_weights([np.array([[-1.0], [-2.0]], np.float32)])
  out = layer(tf.constant([0, 1])).numpy()
  np.testing.assert_allclose(out, [[1 + 100, -2], [10, 0]])


def test_id_rows_keep_the_most_frequent_and_hash_the_rest():
  ids = np.array(["a", "b", "c", "d", "e"], dtype=object)
  counts = np.array([5, 0, 3, 3, 1])
  rows, num_rows = id_rows.embedding_rows(ids, counts, max_vocabulary=2, hash_buckets=3)
  assert num_rows == 1 + 2 + 3
  assert rows[0] == 1 and rows[2] == 2  # most interactions; tie c/d broken by table row
  assert rows[1] == 0  # no training interactions: the shared untrained row
  assert 3 <= rows[3] <= 5 and 3 <= rows[4] <= 5
  # The bucket is a function of the id string, not of its position in the table.
  flipped, _ = id_rows.embedding_rows(ids[::-1], counts[::-1], hash_buckets=97)
  straight, _ = id_rows.embedding_rows(ids, counts, hash_buckets=97)
  assert flipped[::-1].tolist() == straight.tolist()
  plain, n = id_rows.embedding_rows(ids, counts)
  assert plain.tolist() == [1, 0, 2, 3, 4] and n == 5


def test_shared_id_rows_keep_the_embedding_small_however_many_users():
  tower = QueryTower(num_users=10_000_000, user_feature_vocab_sizes=[], num_conditions=0,
                     embedding_dim=8, id_embedding_dim=8, hidden_units=(), num_id_rows=1001)
  tower({"user": tf.constant([0])})
  trainable = sum(int(np.prod(w.shape)) for w in tower.trainable_weights)
  assert trainable == 1001 * 8 + (8 * 8 + 8)  # id rows + the projection: no 10M x 8 table
  layer = IdEmbedding(num_ids=4, output_dim=1, num_rows=2)
  layer(tf.constant([0]))
  layer.assign_table([0, 1, 1, 0])
  layer.embedding.set_weights([np.array([[7.0], [9.0]], np.float32)])
  assert layer(tf.constant([0, 1, 2, 3])).numpy()[:, 0].tolist() == [7, 9, 9, 7]


def _brand_data(seed=0, n_users=200, n_brands=10, items_per_brand=40, cold_per_brand=5):
  """Users who each buy one brand; the last `cold_per_brand` items of each brand are in
  the items table but never bought."""
  rng = np.random.default_rng(seed)
  n_items = n_brands * items_per_brand
  items = pd.DataFrame({"item_id": [f"i{i}" for i in range(n_items)],
                        "brand": [f"b{i % n_brands}" for i in range(n_items)],
                        "genre": [f"g{g}" for g in rng.integers(0, 5, n_items)]})
  warm = np.arange(n_items) < n_brands * (items_per_brand - cold_per_brand)
  rows = []
  for u in range(n_users):
    choices = np.flatnonzero(warm & (np.arange(n_items) % n_brands == u % n_brands))
    for t, item in enumerate(rng.choice(choices, 30)):
      rows.append((f"u{u}", f"i{item}", t))
  inter = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
  return from_dataframes(inter, items), ~warm, n_brands


def _cold_brand_precision(item_features, tmp_path):
  data, cold, n_brands = _brand_data()
  config = TrainConfig(condition_feature="genre", item_features=item_features, epochs=8,
                       batch_size=256, embedding_dim=16, hidden_units=(32,), verbose=0,
                       model_dir=str(tmp_path / "model"))
  train_and_evaluate(config, data)
  _, model, vocabularies = ModelDir(config.model_dir).load_trained_model()
  items = item_embeddings(model, len(vocabularies.item_ids))
  cold_rows = np.flatnonzero(cold)
  users = np.arange(1, 201, dtype=np.int32)
  none = np.full(len(users), 1, np.int32)  # the NONE condition
  scores = query_embeddings(model, users, none) @ items[cold_rows].T
  top = cold_rows[np.argsort(-scores, axis=1)[:, :5]]
  brand_of_item = np.arange(len(items)) % n_brands
  return float(np.mean(brand_of_item[top] == ((users - 1) % n_brands)[:, None]))


def test_cold_items_are_found_by_their_features(tmp_path):
  # Chance is 1/10: a cold item's id embedding is untrained, only its brand can help.
  with_brand = _cold_brand_precision(("brand",), tmp_path / "brand")
  without = _cold_brand_precision((), tmp_path / "plain")
  assert with_brand > 0.6, with_brand
  assert without < 0.3, without
