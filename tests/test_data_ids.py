"""tfcr.data.ids (ids -> rows) and tfcr.data.fingerprint, against Python references."""

import dataclasses
import logging

import numpy as np
import pytest

from tfcr.data import ids
from tfcr.data.fingerprint import DataFingerprint
from tfcr.data.schema import Catalog, Interactions, MultiValued, RecData, Users


def _dict_rows(table, queries):
  """The reference: a Python dict id -> row, -1 when absent."""
  position = {t: r for r, t in enumerate(table)}
  return [position.get(q, -1) for q in queries]


# ---- rows_of ----


def test_rows_of_hand_worked_with_missing_ids():
  table = np.array(["b", "a", "10", "c", "1"], dtype=object)
  queries = ["a", "zz", "10", "c", "b", "1", "", "100", "a"]
  rows = ids.rows_of(table, queries)
  assert rows.dtype == np.int64
  np.testing.assert_array_equal(rows, [1, -1, 2, 3, 0, 4, -1, -1, 1])
  assert list(rows) == _dict_rows(list(table), queries)


def test_rows_of_matches_a_dict_on_random_ids():
  rng = np.random.default_rng(0)
  alphabet = list("abcxyz019é")
  pool = sorted({"".join(rng.choice(alphabet, size=rng.integers(1, 5)))
                 for _ in range(400)})
  table = list(rng.permutation(pool)[:150])
  queries = list(rng.choice(pool, size=500))  # about 60% absent from the table
  rows = ids.rows_of(np.array(table, dtype=object), np.array(queries, dtype=object))
  expected = _dict_rows(table, queries)
  assert list(rows) == expected
  assert 0 < expected.count(-1) < len(expected)


def test_rows_of_bytes_and_numbers():
  table = np.array(["café", "b", "7"], dtype=object)
  # Bytes as TFDS gives them (a fixed-width bytes array and an object array of bytes).
  as_bytes = np.array(["café".encode("utf-8"), b"7", b"nope"])
  assert as_bytes.dtype.kind == "S"
  np.testing.assert_array_equal(ids.rows_of(table, as_bytes), [0, 2, -1])
  objects = np.array([b"b", "café".encode("utf-8"), b"x"], dtype=object)
  np.testing.assert_array_equal(ids.rows_of(table, objects), [1, 0, -1])
  # A bytes table queried with str, and numbers compared as their printed ids.
  np.testing.assert_array_equal(ids.rows_of(np.array([b"u1", b"u2"]), ["u2", "u3"]),
                                [1, -1])
  np.testing.assert_array_equal(ids.rows_of(np.array([7, 12]), ["12", "7", "70"]),
                                [1, 0, -1])
  np.testing.assert_array_equal(ids.rows_of([], ["a", "b"]), [-1, -1])


def test_id_strings_decodes_bytes():
  out = ids.id_strings(np.array([b"a", "é".encode("utf-8")]))
  assert out.dtype == object and list(out) == ["a", "é"]
  assert list(ids.id_strings(np.array([b"x", "y", 3], dtype=object))) == ["x", "y", "3"]
  assert list(ids.id_strings(np.array([5, 10]))) == ["5", "10"]


# ---- first_rows ----


def _first_rows_reference(values):
  seen, rows = set(), []
  for r, v in enumerate(values):
    if v not in seen:
      seen.add(v)
      rows.append(r)
  return rows


def test_first_rows_keeps_the_first_of_each_id_in_table_order(caplog):
  values = ["c", "a", "c", "b", "a", "a", "d"]
  with caplog.at_level(logging.WARNING):
    rows = ids.first_rows(np.array(values, dtype=object), what="item")
  assert list(rows) == [0, 1, 3, 6] == _first_rows_reference(values)
  assert "3 item rows repeat an id" in caplog.text
  rng = np.random.default_rng(1)
  random_values = list(rng.choice(["x%d" % i for i in range(30)], size=100))
  assert list(ids.first_rows(random_values)) == _first_rows_reference(random_values)
  # Bytes and str spellings of one id are the same id.
  assert list(ids.first_rows(np.array([b"a", "a", "b"], dtype=object))) == [0, 2]


def test_first_rows_is_quiet_without_repeats(caplog):
  with caplog.at_level(logging.WARNING):
    assert list(ids.first_rows(["b", "a"], what="user")) == [0, 1]
  assert "repeat" not in caplog.text


# ---- id_order ----


def test_id_order_numeric_when_all_digits():
  np.testing.assert_array_equal(ids.id_order(["10", "2", "1", "12"]), [2, 1, 0, 3])
  # Equal numbers keep their table order (stable).
  np.testing.assert_array_equal(ids.id_order(["2", "02", "1"]), [2, 0, 1])
  np.testing.assert_array_equal(ids.id_order(np.array([b"3", b"1", b"20"])), [1, 0, 2])


def test_id_order_as_strings_otherwise():
  # One non-numeric id: all are sorted as strings ("10" < "2" < "a").
  np.testing.assert_array_equal(ids.id_order(["2", "a", "10"]), [2, 0, 1])
  np.testing.assert_array_equal(ids.id_order(["u10", "u2", "u1"]), [2, 0, 1])
  assert len(ids.id_order([])) == 0


# ---- fingerprint ----


def _data(n_items=3, name="tiny"):
  items = np.array([f"i{i}" for i in range(n_items)], dtype=object)
  catalog = Catalog(items, features={"f": MultiValued.from_lists([["x"]] * n_items)})
  users = Users(np.array(["u0", "u1"], dtype=object))
  inter = Interactions(np.array([0, 0, 1, 1], np.int32), np.array([0, 1, 1, 2], np.int32),
                       np.array([5, 4, 3, 2], np.float32),
                       np.array([10, 11, 12, 13], np.int64))
  return RecData(name, users, catalog, inter)


def test_same_data_has_no_differences():
  a, b = DataFingerprint.of(_data()), DataFingerprint.of(_data())  # built separately
  assert a.differences(b) == [] and a == b
  assert (a.name, a.num_users, a.num_items, a.num_interactions) == ("tiny", 2, 3, 4)
  assert len(a.interactions_sha256) == 64
  assert DataFingerprint.from_dict(a.to_dict()) == a
  # Recording the source does not change what is compared.
  assert DataFingerprint.of(_data(), {"dataset": "synthetic"}).differences(a) == []


@pytest.mark.parametrize("change", ["rating", "timestamp", "item_index", "user_index"])
def test_changed_interactions_are_named(change):
  changed = _data()
  values = getattr(changed.interactions, change).copy()
  values[3] = values[3] - 1  # same length, one value different
  changed = dataclasses.replace(changed, interactions=dataclasses.replace(
      changed.interactions, **{change: values}))
  assert DataFingerprint.of(_data()).differences(DataFingerprint.of(changed)) == [
      "interactions"]


def test_extra_item_and_other_ids_are_named():
  given = DataFingerprint.of(_data())
  assert given.differences(DataFingerprint.of(_data(n_items=4))) == [
      "num_items 3 vs 4", "item ids"]
  renamed = _data()
  renamed.users.user_id = np.array(["u0", "u9"], dtype=object)
  assert given.differences(DataFingerprint.of(renamed)) == ["user ids"]
  assert given.differences(DataFingerprint.of(_data(name="other"))) == [
      "name 'tiny' vs 'other'"]
  fewer = _data()
  fewer = dataclasses.replace(fewer, interactions=fewer.interactions.select(slice(0, 3)))
  assert given.differences(DataFingerprint.of(fewer)) == ["num_interactions 4 vs 3",
                                                         "interactions"]
