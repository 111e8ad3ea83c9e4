"""Training batches: determinism, resume equivalence, per-epoch condition statistics."""

import numpy as np

from tfcr.data.conditions import ItemConditions
from tfcr.data.schema import MultiValued
from tfcr.training.input_pipeline import training_dataset

# Item 0 has conditions {a, b}, item 1 {b, c, d}, item 2 none.
CONDITIONS = ItemConditions.from_multi_valued(
    "f", MultiValued.from_lists([["a", "b"], ["b", "c", "d"], []]))
# Condition ids: 0 OOV, 1 NONE, 2 a, 3 b, 4 c, 5 d (written out, not asked of the library).
CONDITION_ID = {"a": 2, "b": 3, "c": 4, "d": 5}
MEMBERSHIP = np.array([[0, 0, 1, 1, 0, 0],
                       [0, 0, 0, 1, 1, 1],
                       [0, 1, 0, 0, 0, 0]], dtype=bool)


def _batches(seed=3, first_epoch=0, epochs=2, n=600, batch_size=100, **options):
  users = np.arange(n) % 7
  items = np.arange(n) % 3
  probability = np.array([0.5, 0.3, 0.2], np.float32)
  ds = training_dataset(users, items, probability, CONDITIONS, batch_size, seed,
                        first_epoch, epochs, **options)
  return [{k: v.numpy() for k, v in b.items()} for b in ds]


def test_batches_are_complete_and_consistent():
  batches = _batches()
  assert len(batches) == 2 * 6
  for b in batches:
    assert b["user"].shape == (100,)
    assert b["user"].min() >= 1  # user row + 1: 0 is the unknown user
    np.testing.assert_allclose(b["sampling_probability"],
                               np.array([0.5, 0.3, 0.2])[b["item"]])
    # Every sampled condition belongs to the item.
    assert MEMBERSHIP[b["item"], b["condition"]].all()


def test_each_epoch_shuffles_every_row_once():
  batches = _batches(epochs=1)
  pairs = sorted(zip(*[np.concatenate([b[k] for b in batches]) for k in ("user", "item")]))
  expected = sorted(zip(np.arange(600) % 7 + 1, np.arange(600) % 3))
  assert pairs == expected


def test_deterministic_and_resumable():
  full = _batches(seed=3, epochs=3)
  again = _batches(seed=3, epochs=3)
  resumed = _batches(seed=3, first_epoch=2, epochs=3)
  for a, b in zip(full, again):
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])
  for a, b in zip(full[12:], resumed):  # epoch 2 is the same whether resumed or not
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])
  other = _batches(seed=4, epochs=1)
  assert not np.array_equal(full[0]["item"], other[0]["item"])
  # A new epoch draws new conditions for the same rows.
  assert not all(np.array_equal(full[i]["condition"], full[i + 6]["condition"])
                 for i in range(6))


def test_condition_aware_batches_are_deterministic_and_resumable():
  # Condition dropout and same-condition hard negatives are drawn from the seed too.
  options = {"condition_dropout": 0.4, "hard_negatives": 2, "extra_negatives": 8}
  full = _batches(seed=3, epochs=3, **options)
  again = _batches(seed=3, epochs=3, **options)
  resumed = _batches(seed=3, first_epoch=2, epochs=3, **options)
  assert {"hard_items", "extra_items"} <= set(full[0])
  for a, b in zip(full, again):
    assert a.keys() == b.keys()
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])
  for a, b in zip(full[12:], resumed):
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])
  other = _batches(seed=4, epochs=1, **options)
  assert not np.array_equal(full[0]["hard_items"], other[0]["hard_items"])
  condition = np.concatenate([b["condition"] for b in full])
  has_values = np.concatenate([b["item"] for b in full]) != 2  # item 2 has none: NONE
  dropped = condition[has_values] == 1
  assert 0.33 < dropped.mean() < 0.47  # 1,200 draws at P = 0.4


def test_condition_frequencies_are_uniform_per_item():
  batches = _batches(seed=11, epochs=30, n=3000, batch_size=500)
  items = np.concatenate([b["item"] for b in batches])
  conditions = np.concatenate([b["condition"] for b in batches])
  for item, values in [(0, "ab"), (1, "bcd")]:
    picked = conditions[items == item]
    for value in values:
      share = np.mean(picked == CONDITION_ID[value])
      # n = 30000 draws per item: binomial sd < 0.003, tolerance 0.015.
      assert abs(share - 1 / len(values)) < 0.015, (item, value, share)
  assert set(conditions[items == 2]) == {1}  # NONE


def test_extra_negatives_are_uniform_and_deterministic():
  users, items = np.arange(400) % 5, np.arange(400) % 3
  probability = np.array([0.5, 0.3, 0.2], np.float32)

  def extra(seed):
    ds = training_dataset(users, items, probability, None, 100, seed, 0, 20,
                          extra_negatives=50)
    return [(b["extra_items"].numpy(), b["extra_probability"].numpy()) for b in ds]

  batches = extra(5)
  drawn = np.concatenate([e for e, _ in batches])
  assert len(drawn) == 20 * 4 * 50
  # 4000 uniform draws over 3 items: each share 1/3 +- 0.0075 sd; tolerance 0.04.
  np.testing.assert_allclose(np.bincount(drawn, minlength=3) / len(drawn), [1 / 3] * 3,
                             atol=0.04)
  for e, p in batches:
    np.testing.assert_allclose(p, probability[e])
  assert all(np.array_equal(a, b) for (a, _), (b, _) in zip(batches, extra(5)))


def _replica_batches(num_replicas, first_replica, local_replicas):
  ds = training_dataset(np.arange(600) % 7, np.arange(600) % 3,
                        np.array([0.5, 0.3, 0.2], np.float32), CONDITIONS, 100, 3, 0, 2,
                        extra_negatives=8, num_replicas=num_replicas,
                        first_replica=first_replica, local_replicas=local_replicas)
  return [{k: v.numpy() for k, v in b.items()} for b in ds]


def test_replica_slices_put_together_are_the_global_batches():
  """Under tf.distribute each pipeline yields its replicas' slices: one pipeline per
  replica (two workers) or one for both (two devices of one machine), the slices of a
  step in replica order are the single-device batch, random draws included."""
  whole = _replica_batches(1, 0, 1)
  workers = [_replica_batches(2, r, 1) for r in (0, 1)]
  both = _replica_batches(2, 0, 2)
  assert len(whole) == 12 and len(workers[0]) == len(workers[1]) == 12
  assert len(both) == 24
  for step, batch in enumerate(whole):
    for key, values in batch.items():
      size = len(values) // 2
      assert workers[0][step][key].shape == (size,)
      np.testing.assert_array_equal(
          np.concatenate([workers[0][step][key], workers[1][step][key]]), values, key)
      np.testing.assert_array_equal(
          np.concatenate([both[2 * step][key], both[2 * step + 1][key]]), values, key)
