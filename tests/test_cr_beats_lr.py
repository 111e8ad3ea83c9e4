"""The paper's claim at test-suite scale: on data with planted condition affinities, CR's
retrieved items have the asked condition far more often than LR's (tiny, not slow)."""

import numpy as np

from tfcr.data import synthetic
from tfcr.data.prepare import prepare
from tfcr.metrics.queries import build_queries
from tfcr.training.config import TrainConfig
from tfcr.training.loop import train_and_evaluate


def test_cr_beats_lr_on_topic_match(tmp_path):
  data = synthetic.generate(n_users=150, n_items=200, n_conditions=8, n_interactions=6000,
                            seed=3)
  settings = dict(epochs=4, batch_size=128, embedding_dim=16, hidden_units=(32,),
                  learning_rate=0.02, verbose=0, seed=3)
  cr = train_and_evaluate(TrainConfig(model="cr", model_dir=str(tmp_path / "cr"),
                                      **settings), data)
  lr = train_and_evaluate(TrainConfig(model="lr", model_dir=str(tmp_path / "lr"),
                                      **settings), data)
  # What a ranking blind to the condition gets on average: the share of the catalog
  # having each query's condition (computed from the catalog, not by tfcr.metrics).
  prepared = prepare(data, "topics")
  queries = build_queries(prepared, seed=3)
  share = prepared.conditions.membership().mean(axis=0)[queries.conditions].mean()
  assert share < 0.35
  assert cr["topic_match@10"] > 0.8, cr
  assert cr["topic_match@10"] > lr["topic_match@10"] + 0.3, (cr, lr)
  assert cr["num_test_queries"] == lr["num_test_queries"] == len(queries) > 0
  assert np.isfinite([cr["recall@10"], lr["recall@10"]]).all()
