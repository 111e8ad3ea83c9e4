"""The training library end to end on a subset of the real MovieLens-100k."""

import dataclasses
import json

import numpy as np
import pytest

from tfcr.training.config import TrainConfig
from tfcr.data.movielens.files import load_movielens_100k
from tfcr.training.loop import train_and_evaluate


def _first_users(data, n_users):
  """The data set restricted to its first n users (all items kept)."""
  keep = data.interactions.user_index < n_users
  users = dataclasses.replace(data.users, user_id=data.users.user_id[:n_users],
                              features={k: v[:n_users] for k, v in data.users.features.items()})
  return dataclasses.replace(data, users=users,
                             interactions=data.interactions.select(keep)).validate()


@pytest.mark.slow
@pytest.mark.parametrize("model, condition", [("cr", "genres"), ("lr", "genres"),
                                              ("cr", "decade")])
def test_one_epoch_on_a_movielens_subset(tmp_path_factory, model, condition):
  data_dir = tmp_path_factory.getbasetemp() / "movielens-data"  # shared: fetched once
  data = _first_users(load_movielens_100k(str(data_dir)), 150)
  model_dir = tmp_path_factory.mktemp("run")
  config = TrainConfig(model=model, condition_feature=condition, epochs=1, batch_size=256,
                       model_dir=str(model_dir), verbose=0)
  metrics = train_and_evaluate(config, data=data)
  assert metrics["num_test_queries"] == 300
  assert json.loads((model_dir / "metrics.json").read_text()) == pytest.approx(metrics)
  # Even one epoch must beat a random ranking of the ~1600 unseen movies (recall@100 ~0.06).
  assert metrics["recall@100"] > 0.15
  if model == "cr":
    assert metrics["topic_match@10"] > 0.5
  assert np.isfinite(metrics["examples_per_second"])
