"""This process's role in a cluster, from TF_CONFIG, and the distribution settings' checks
(the strategies themselves run in test_cross_replica_negatives and test_multi_worker)."""

import json

import pytest

from tfcr.errors import ConfigError
from tfcr.training.config import TrainConfig
from tfcr.training.distribution import worker_role


def tf_config(cluster, task_type, index):
  return {"TF_CONFIG": json.dumps({"cluster": cluster,
                                   "task": {"type": task_type, "index": index}})}


WORKERS = {"worker": ["a:1", "b:1", "c:1"]}
WITH_CHIEF = {"chief": ["a:1"], "worker": ["b:1", "c:1"]}  # as Vertex AI sets it up


@pytest.mark.parametrize("cluster,task_type,index,chief", [
    (WORKERS, "worker", 0, True), (WORKERS, "worker", 2, False),
    (WITH_CHIEF, "chief", 0, True), (WITH_CHIEF, "worker", 0, False),
    (WITH_CHIEF, "worker", 1, False)])
def test_the_chief_is_the_chief_task_else_worker_0(cluster, task_type, index, chief):
  role = worker_role("multi_worker_mirrored", tf_config(cluster, task_type, index))
  assert role.is_chief == chief
  assert role.num_workers == 3
  assert (role.task_type, role.task_id) == (task_type, index)


def test_without_a_cluster_the_one_process_is_the_chief():
  assert worker_role("multi_worker_mirrored", {}).is_chief
  # TF_CONFIG means nothing without the multi-worker strategy.
  assert worker_role("mirrored", tf_config(WORKERS, "worker", 1)).is_chief
  assert worker_role("none", tf_config(WORKERS, "worker", 1)).num_workers == 1


@pytest.mark.parametrize("environ,message", [
    ({"TF_CONFIG": "{not json"}, "TF_CONFIG must be JSON"),
    ({"TF_CONFIG": json.dumps({"cluster": WORKERS})}, "TF_CONFIG must be JSON"),
    (tf_config(WORKERS, "worker", 3), "task worker:3 is not in its cluster (worker: 3)"),
    (tf_config(WORKERS, "chief", 0), "task chief:0 is not in its cluster")])
def test_an_unusable_tf_config_is_one_line(environ, message):
  with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
    worker_role("multi_worker_mirrored", environ)


def test_config_checks_the_strategy_and_resumes_across_replica_counts():
  with pytest.raises(ConfigError, match="distribution_strategy='tpu'; valid values: none, "
                                        "mirrored, multi_worker_mirrored"):
    TrainConfig(model_dir="m", distribution_strategy="tpu").resolved()
  one = TrainConfig(model_dir="m")
  assert one.cross_replica_negatives and one.distribution_strategy == "none"
  # The same global batches on any replica count: a run may resume on another cluster,
  # but not with the other kind of negatives.
  assert TrainConfig(model_dir="m", distribution_strategy="mirrored").differences(one) == []
  assert TrainConfig(model_dir="m", cross_replica_negatives=False).differences(one) == [
      "cross_replica_negatives"]
