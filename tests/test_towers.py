"""Towers and layers on hand-worked numbers; configs hold the constructor arguments and
rebuild layers that compute the same outputs."""

import numpy as np
import pytest
import tensorflow as tf

from tfcr.models.layers import MultiHotEmbedding, TableLookup
from tfcr.models.towers import CandidateTower, QueryTower


def _set_dense(dense, kernel, bias):
  dense.set_weights([np.array(kernel, np.float32), np.array(bias, np.float32)])


def test_query_tower_hand_worked():
  tower = QueryTower(num_users=2, user_feature_vocab_sizes=[], num_conditions=3,
                     embedding_dim=2, id_embedding_dim=2, condition_embedding_dim=1,
                     hidden_units=())
  tower({"user": tf.constant([1]), "condition": tf.constant([2])})
  tower.user_embedding.set_weights([np.array([[0, 0], [1, 2], [3, 4]], np.float32)])
  tower.condition_embedding.set_weights([np.array([[0], [5], [-1]], np.float32)])
  _set_dense(tower.crossing.layers[-1], [[1, 0], [0, 1], [1, 1]], [0.5, 0])
  out = tower({"user": tf.constant([1, 2]), "condition": tf.constant([2, 1])})
  # user 1, condition 2: concat [1, 2, -1] -> [1 + 0 - 1 + 0.5, 0 + 2 - 1] = [0.5, 1]
  # user 2, condition 1: concat [3, 4, 5]  -> [3 + 5 + 0.5, 4 + 5]        = [8.5, 9]
  np.testing.assert_allclose(out.numpy(), [[0.5, 1.0], [8.5, 9.0]])


def test_query_tower_user_features_and_unknown_user():
  tower = QueryTower(num_users=2, user_feature_vocab_sizes=[3], num_conditions=0,
                     embedding_dim=1, id_embedding_dim=1, feature_embedding_dim=1,
                     hidden_units=())
  tower({"user": tf.constant([0])})
  tower.user_features.assign_table([[0], [2], [1]])  # row 0 is the unknown user
  tower.user_embedding.set_weights([np.array([[0], [1], [2]], np.float32)])
  tower.user_features.embeddings[0].set_weights([np.array([[0], [10], [20]], np.float32)])
  _set_dense(tower.crossing.layers[-1], [[1], [1]], [0])
  out = tower({"user": tf.constant([0, 1, 2])})
  # unknown: 0 + feature 0 (0); user 1: 1 + feature 2 (20); user 2: 2 + feature 1 (10)
  np.testing.assert_allclose(out.numpy()[:, 0], [0, 21, 12])


def test_candidate_tower_hand_worked():
  tower = CandidateTower(num_items=3, num_conditions=4, max_conditions_per_item=2,
                         embedding_dim=1, id_embedding_dim=1, condition_embedding_dim=1,
                         hidden_units=())
  tower(tf.constant([0]))
  tower.item_conditions.assign_table([[2, 3], [2, -1], [1, -1]])
  tower.item_embedding.set_weights([np.array([[1], [2], [3]], np.float32)])
  tower.condition_embedding.embedding.set_weights(
      [np.array([[0], [10], [20], [40]], np.float32)])
  _set_dense(tower.crossing.layers[-1], [[1], [1]], [0])
  out = tower(tf.constant([0, 1, 2]))
  # item 0: 1 + (20 + 40) = 61; item 1: 2 + 20 = 22; item 2: 3 + 10 = 13
  np.testing.assert_allclose(out.numpy()[:, 0], [61, 22, 13])


def test_multi_hot_embedding_sums_and_ignores_padding():
  layer = MultiHotEmbedding(3, 2)
  out = layer(tf.constant([[-1, -1], [1, -1], [2, 1]]))
  table = layer.embedding.embeddings.numpy()
  np.testing.assert_allclose(out.numpy()[0], [0, 0])
  np.testing.assert_allclose(out.numpy()[1], table[1])
  np.testing.assert_allclose(out.numpy()[2], table[1] + table[2], rtol=1e-6)


_QUERY_DEFAULTS = dict(id_embedding_dim=64, feature_embedding_dim=16,
                       condition_embedding_dim=32)


@pytest.mark.parametrize("make, inputs, expected", [
    (lambda: QueryTower(5, [3, 4], 6, embedding_dim=8, hidden_units=(16, 8)),
     {"user": tf.constant([0, 3, 5]), "condition": tf.constant([0, 1, 5])},
     dict(num_users=5, user_feature_vocab_sizes=[3, 4], num_conditions=6, embedding_dim=8,
          hidden_units=[16, 8], normalize=False, **_QUERY_DEFAULTS)),
    (lambda: QueryTower(5, [], 0, embedding_dim=8, normalize=True),
     {"user": tf.constant([1, 2])},
     dict(num_users=5, user_feature_vocab_sizes=[], num_conditions=0, embedding_dim=8,
          hidden_units=[128], normalize=True, **_QUERY_DEFAULTS)),
    (lambda: CandidateTower(7, 5, 3, embedding_dim=8, hidden_units=(16,), name="items"),
     tf.constant([0, 6, 2]),
     dict(num_items=7, num_conditions=5, max_conditions_per_item=3, embedding_dim=8,
          id_embedding_dim=64, condition_embedding_dim=32, hidden_units=[16],
          normalize=False, name="items")),
])
def test_tower_config_round_trip(make, inputs, expected):
  tower = make()
  config = tower.get_config()
  assert {k: config[k] for k in expected} == expected  # the constructor's arguments
  tower(inputs)
  if isinstance(tower, CandidateTower):  # a non-zero table, so that it must be copied
    tower.item_conditions.assign_table(np.arange(21).reshape(7, 3) % 5)
  elif tower.user_features is not None:
    tower.user_features.assign_table(np.array([[0, 0], [1, 2], [2, 3], [1, 1], [2, 0],
                                               [0, 3]]))
  rebuilt = type(tower).from_config(config)
  rebuilt(inputs)
  assert not np.allclose(rebuilt(inputs).numpy(), tower(inputs).numpy())  # fresh weights
  rebuilt.set_weights(tower.get_weights())
  np.testing.assert_allclose(rebuilt(inputs).numpy(), tower(inputs).numpy())


def test_layer_config_holds_the_constructor_arguments():
  table = TableLookup(4, 2, name="t")
  config = table.get_config()
  assert (config["num_rows"], config["num_columns"], config["name"]) == (4, 2, "t")
  multi_hot = MultiHotEmbedding(5, 3, name="m")
  config = multi_hot.get_config()
  assert (config["input_dim"], config["output_dim"], config["name"]) == (5, 3, "m")


def test_layers_rebuilt_from_config_give_the_same_outputs():
  table = TableLookup(4, 2, name="t")
  table.assign_table([[1, 2], [3, 4], [5, 6], [7, 8]])
  rebuilt = TableLookup.from_config(table.get_config())
  rebuilt.set_weights(table.get_weights())
  np.testing.assert_array_equal(rebuilt(tf.constant([2, 0])).numpy(), [[5, 6], [1, 2]])
  multi_hot = MultiHotEmbedding(5, 3, name="m")
  ids = tf.constant([[4, -1], [0, 2]])
  multi_hot(ids)
  rebuilt = MultiHotEmbedding.from_config(multi_hot.get_config())
  rebuilt(ids)
  rebuilt.set_weights(multi_hot.get_weights())
  np.testing.assert_allclose(rebuilt(ids).numpy(), multi_hot(ids).numpy())
  table = multi_hot.embedding.embeddings.numpy()
  np.testing.assert_allclose(rebuilt(ids).numpy(), [table[4], table[0] + table[2]],
                             rtol=1e-6)


@pytest.mark.parametrize("make, message", [
    (lambda: TableLookup(0, 2), "num_rows"),
    (lambda: MultiHotEmbedding(3, 0), "output_dim"),
    (lambda: QueryTower(0, [], 0), "num_users"),
    (lambda: CandidateTower(3, 0, 1), "num_conditions"),
])
def test_bad_arguments_raise_value_error(make, message):
  with pytest.raises(ValueError, match=message):
    make()


def test_table_shape_mismatch_is_reported():
  layer = TableLookup(2, 2, name="user_features")
  with pytest.raises(ValueError, match="user_features"):
    layer.assign_table([[1, 2, 3]])


def test_normalized_towers_give_unit_vectors():
  query = QueryTower(3, [2], 4, embedding_dim=5, normalize=True)
  candidate = CandidateTower(6, 4, 2, embedding_dim=5, normalize=True)
  q = query({"user": tf.constant([0, 1, 3]), "condition": tf.constant([0, 2, 3])}).numpy()
  c = candidate(tf.constant([0, 5])).numpy()
  np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1, rtol=1e-5)
  np.testing.assert_allclose(np.linalg.norm(c, axis=1), 1, rtol=1e-5)
