"""Global in-batch negatives: on 2 logical CPU devices under MirroredStrategy, a step with
cross-replica negatives has the loss and every gradient of one device on the global
batch (logQ, accidental hits within and across replicas and extra negatives on), and
without the gather the loss differs: the comparison detects TFRS's local softmax.

The computations run in tests/replica_equivalence.py, a process of its own (TF's devices
must be split before TF initializes); the reference is the single-device step, whose
loss tests/test_retrieval_loss.py checks against NumPy.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def results(tmp_path_factory):
  path = tmp_path_factory.mktemp("replicas") / "steps.npz"
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
  run = subprocess.run([sys.executable, os.path.join(HERE, "replica_equivalence.py"),
                        str(path)], cwd=os.path.dirname(HERE), env=env,
                       capture_output=True, text=True, timeout=240)
  assert run.returncode == 0, run.stderr[-3000:]
  with np.load(path) as f:
    return dict(f)


def gradients(results, kind):
  return [results[f"{kind}_grad_{i}"] for i in range(len(results["names"]))]


def test_gathered_loss_equals_the_single_device_loss(results):
  assert results["single_loss"] > 1.0
  np.testing.assert_allclose(results["gathered_loss"], results["single_loss"], rtol=1e-5)


def test_every_gathered_gradient_equals_the_single_device_gradient(results):
  names = results["names"]
  assert len(names) >= 8  # embeddings and MLP kernels and biases of both towers
  for name, single, gathered in zip(names, gradients(results, "single"),
                                    gradients(results, "gathered")):
    np.testing.assert_allclose(gathered, single, rtol=1e-5, atol=1e-6, err_msg=name)
  # Every weight takes part in the loss but one: the candidate tower's output bias adds
  # the same q.b to all of a query's scores, to which a softmax is blind.
  nonzero = [np.abs(g).max() > 1e-4 for g in gradients(results, "single")]
  assert sum(nonzero) == len(names) - 1, list(zip(names, nonzero))


def test_without_the_gather_loss_and_gradients_differ(results):
  # Each replica's softmax over its own 4 + 2 candidates misses half the negatives:
  # a smaller loss (fewer terms in each denominator).
  assert results["local_loss"] < results["single_loss"] - 0.1
  differing = [not np.allclose(local, single, rtol=1e-3, atol=1e-5)
               for local, single in zip(gradients(results, "local"),
                                        gradients(results, "single"))]
  assert sum(differing) >= len(differing) // 2


def test_a_keras_fit_step_under_the_strategy_equals_one_on_a_single_device(results):
  """Through tfcr's input pipeline (each replica takes its slice of the same global
  batch), Keras's reported loss (summed over replicas) and the SGD update (gradients
  summed over replicas) match one device's."""
  assert results["fit_single_loss"] > 1.0
  np.testing.assert_allclose(results["fit_mirrored_loss"], results["fit_single_loss"],
                             rtol=1e-5)
  moved = 0
  i = 0
  while f"fit_single_weight_{i}" in results:
    single, mirrored = results[f"fit_single_weight_{i}"], results[f"fit_mirrored_weight_{i}"]
    # atol: a weight whose gradient is ~0 (a bias at 0) moves by float32 rounding of the
    # gradient sum, whose order differs between one device and two replicas (seen: +-1e-6).
    np.testing.assert_allclose(mirrored, single, rtol=1e-5, atol=1e-5)
    moved += not np.allclose(single, results[f"initial_weight_{i}"])
    i += 1
  assert moved >= 8  # the step did update the trainable weights


def test_a_batch_that_does_not_split_over_the_replicas_is_one_line(results):
  assert list(results["indivisible"]) == [
      "batch_size=7 must be a multiple of the 2 replicas of the strategy (it is global: "
      "each replica takes 1/2).",
      "extra_negatives=3 must be a multiple of the 2 replicas of the strategy (it is "
      "global: each replica takes 1/2)."]
