"""Helpers the notebooks in notebooks/ call, so their cells stay short.

    settings = notebook_settings()          # epochs, work dir: small under the test suite
    plot_topic_match({"LR": lr_metrics, "CR": cr_metrics})
    metrics_frame({"LR": lr_metrics, "CR": cr_metrics})
"""

import dataclasses
import os
from typing import Dict, Mapping, Sequence

SMALL_ENV = "TFCR_NOTEBOOK_SMALL"  # "1": quick settings (the notebook test sets it)
WORKDIR_ENV = "TFCR_NOTEBOOK_WORKDIR"
DATA_DIR_ENV = "TFCR_DATA_DIR"


@dataclasses.dataclass(frozen=True)
class NotebookSettings:
  small: bool
  epochs: int
  workdir: str
  data_dir: str


def notebook_settings(epochs: int = 20, small_epochs: int = 1,
                      workdir: str = "runs/notebooks") -> NotebookSettings:
  """Full settings, or quick ones when TFCR_NOTEBOOK_SMALL=1; TFCR_NOTEBOOK_WORKDIR and
  TFCR_DATA_DIR override where models and data go."""
  small = os.environ.get(SMALL_ENV, "") == "1"
  return NotebookSettings(
      small=small, epochs=small_epochs if small else epochs,
      workdir=os.path.abspath(os.path.expanduser(os.environ.get(WORKDIR_ENV) or workdir)),
      data_dir=os.path.expanduser(os.environ.get(DATA_DIR_ENV) or "~/.cache/tfcr"))


def metrics_frame(metrics: Mapping[str, Mapping[str, float]],
                  names: Sequence[str] = ("recall@10", "recall@100", "topic_match@10",
                                          "topic_match@100", "filtered_recall@100")):
  """One column per model, one row per metric (a pandas DataFrame)."""
  import pandas as pd  # pylint: disable=g-import-not-at-top
  return pd.DataFrame({model: {n: m[n] for n in names if n in m}
                       for model, m in metrics.items()}).round(4)


def plot_topic_match(metrics: Mapping[str, Mapping[str, float]], ks: Sequence[int] = (10, 100),
                     ax=None, title: str = "Topic match: share of retrieved items having "
                                           "the asked condition"):
  """Grouped bars of topic_match@k per model (e.g. {"LR": ..., "CR": ...}); returns the
  matplotlib Axes."""
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  if ax is None:
    _, ax = plt.subplots(figsize=(6, 3.5))
  models = list(metrics)
  width = 0.8 / max(len(models), 1)
  for m, model in enumerate(models):
    values = [metrics[model][f"topic_match@{k}"] for k in ks]
    positions = [i + (m - (len(models) - 1) / 2) * width for i in range(len(ks))]
    bars = ax.bar(positions, values, width, label=model)
    ax.bar_label(bars, labels=[f"{v:.0%}" for v in values], padding=2)
  ax.set_xticks(range(len(ks)), [f"top {k}" for k in ks])
  ax.set_ylim(0, 1.1)
  ax.set_ylabel("topic match")
  ax.set_title(title, fontsize=10)
  ax.legend(loc="upper right")
  return ax


def recommendations_by_condition(recommender, user_id: str, conditions: Sequence[str],
                                 items: Dict, k: int = 5, filter: str = "none"):  # pylint: disable=redefined-builtin
  """One DataFrame of the top k for a user under each condition (columns: condition,
  rank, title, attributes, score, condition_match)."""
  import pandas as pd  # pylint: disable=g-import-not-at-top
  from tfcr.client.formatting import results_frame  # pylint: disable=g-import-not-at-top
  frames = [results_frame(recommender.recommend(user_id, c, k=k, filter=filter), items)
            .reset_index().assign(condition=c or "(none)") for c in conditions]
  frame = pd.concat(frames, ignore_index=True)
  return frame[["condition", "rank", "title", "attributes", "score", "condition_match"]]
