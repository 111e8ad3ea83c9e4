"""The tf.distribute strategy of a training run, and this process's role in it.

    none                   the default strategy: one device, no tf.distribute
    mirrored               MirroredStrategy over the devices of this machine
    multi_worker_mirrored  MultiWorkerMirroredStrategy: the cluster and this process's
                           task in it come from the TF_CONFIG environment variable

Under multi_worker_mirrored every worker runs the same binary with the same flags; one
of them is the chief (task "chief", else worker 0), the only one that writes the model
dir. The others write what tf.distribute makes every worker write (checkpoints,
TensorBoard summaries) to a temp dir of their own (`write_dir`), removed at the end.
"""

import dataclasses
import json
import os
import shutil
import tempfile
from typing import Callable, Mapping, Optional

import tensorflow as tf

from tfcr.errors import ConfigError
from tfcr.models.cross_replica import all_gather
from tfcr.training import STRATEGIES


@dataclasses.dataclass(frozen=True)
class WorkerRole:
  """task_type/task_id of this process in the cluster ("worker", 0 without one);
  has_chief: the cluster has a "chief" task (else worker 0 is the chief)."""
  task_type: str = "worker"
  task_id: int = 0
  num_workers: int = 1
  has_chief: bool = False

  @property
  def is_chief(self) -> bool:
    return self.task_type == "chief" or (self.task_type == "worker" and self.task_id == 0
                                         and not self.has_chief)


def worker_role(strategy_name: str, environ: Optional[Mapping[str, str]] = None
                ) -> WorkerRole:
  """This process's role: from TF_CONFIG under multi_worker_mirrored, else the one
  worker. Raises ConfigError when TF_CONFIG is set but unusable."""
  if strategy_name != "multi_worker_mirrored":
    return WorkerRole()
  environ = os.environ if environ is None else environ
  raw = environ.get("TF_CONFIG", "")
  if not raw:
    return WorkerRole()  # a cluster of one: the strategy runs on this machine alone
  try:
    tf_config = json.loads(raw)
    cluster = tf_config.get("cluster", {})
    task = tf_config["task"]
    task_type, task_id = str(task["type"]), int(task["index"])
  except (ValueError, KeyError, TypeError, AttributeError):
    raise ConfigError('TF_CONFIG must be JSON like {"cluster": {"worker": ["host:port", '
                      '...]}, "task": {"type": "worker", "index": 0}}, got '
                      f'{raw[:200]!r}.') from None
  if task_type not in cluster or not 0 <= task_id < len(cluster[task_type]):
    raise ConfigError(f"TF_CONFIG's task {task_type}:{task_id} is not in its cluster "
                      f"({', '.join(f'{k}: {len(v)}' for k, v in cluster.items())}).")
  num_workers = sum(len(cluster.get(kind, ())) for kind in ("chief", "worker"))
  return WorkerRole(task_type, task_id, num_workers, has_chief=bool(cluster.get("chief")))


def make_strategy(strategy_name: str) -> tf.distribute.Strategy:
  """The strategy of `strategy_name` (STRATEGIES). multi_worker_mirrored must be made
  before TensorFlow runs anything else in the process, so call this first."""
  if strategy_name == "none":
    return tf.distribute.get_strategy()
  if strategy_name == "mirrored":
    return tf.distribute.MirroredStrategy()
  if strategy_name == "multi_worker_mirrored":
    worker_role(strategy_name)  # a bad TF_CONFIG fails as one line, not in TF
    return tf.distribute.MultiWorkerMirroredStrategy()
  raise ConfigError(f"Unknown distribution_strategy={strategy_name!r}; valid values: "
                    f"{', '.join(STRATEGIES)}.")


class write_dir:  # pylint: disable=invalid-name
  """Context manager: `path` itself for the chief, a fresh temp dir for the others
  (removed on exit), for files every worker must write but only the chief's count
  (tf.distribute wants every worker to take part in saving a checkpoint)."""

  def __init__(self, path: str, role: WorkerRole):
    self.path, self.role, self.temp = path, role, None

  def __enter__(self) -> str:
    if self.role.is_chief:
      return self.path
    self.temp = tempfile.mkdtemp(prefix=f"tfcr-{self.role.task_type}{self.role.task_id}-")
    return self.temp

  def __exit__(self, *exc):
    if self.temp:
      shutil.rmtree(self.temp, ignore_errors=True)


def check_divisible(strategy: tf.distribute.Strategy, batch_size: int,
                    extra_negatives: int) -> int:
  """The number of replicas; ConfigError unless the global batch and the extra
  negatives split evenly over them (every replica takes an equal slice)."""
  replicas = strategy.num_replicas_in_sync
  for name, value in (("batch_size", batch_size), ("extra_negatives", extra_negatives)):
    if value % replicas:
      raise ConfigError(f"{name}={value} must be a multiple of the {replicas} replicas "
                        f"of the strategy (it is global: each replica takes 1/{replicas}).")
  return replicas


def distribute(strategy: tf.distribute.Strategy,
               make_dataset: Callable[..., tf.data.Dataset]):
  """The input of `model.fit` under `strategy`: make_dataset() itself without a
  strategy, else one dataset per input pipeline (worker), each holding the slices of
  its own replicas: make_dataset(num_replicas, first_replica, local_replicas)."""
  if not tf.distribute.has_strategy() and strategy is tf.distribute.get_strategy():
    return make_dataset()
  replicas = strategy.num_replicas_in_sync

  def pipeline(context: tf.distribute.InputContext) -> tf.data.Dataset:
    local = replicas // context.num_input_pipelines
    return make_dataset(num_replicas=replicas, first_replica=context.input_pipeline_id * local,
                        local_replicas=local)

  return strategy.distribute_datasets_from_function(pipeline)


def agreed_minimum(strategy: tf.distribute.Strategy, value: int) -> int:
  """The smallest `value` any replica passes (every worker must call it): workers that
  restart one after the other may have seen different last checkpoints."""
  if strategy.num_replicas_in_sync == 1:
    return value

  @tf.function
  def minimum():
    return strategy.run(lambda: tf.reduce_min(all_gather(tf.constant([value], tf.int64))))

  return int(strategy.experimental_local_results(minimum())[0])


def agreed_checkpoint(strategy: tf.distribute.Strategy, checkpoint_dir: str
                      ) -> Optional[str]:
  """The latest checkpoint ("ckpt-<epoch>", tf.train.CheckpointManager's naming) of
  checkpoint_dir, the oldest of those the workers see: one restarted while the chief
  was saving its last checkpoint has the one before (the manager keeps two)."""
  latest = tf.train.latest_checkpoint(checkpoint_dir)
  number = int(latest.rsplit("-", 1)[1]) if latest else 0
  agreed = agreed_minimum(strategy, number)
  if agreed == number:
    return latest
  return os.path.join(checkpoint_dir, f"ckpt-{agreed}") if agreed else None
