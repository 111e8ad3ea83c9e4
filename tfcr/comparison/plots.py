"""The comparison's figures (matplotlib, written as PNG without a display).

* topic_match_vs_k.png and recall_vs_k.png: each method's metric at k = 1..100 with its
  bootstrap interval as a band;
* num_scanned.png: the distribution (empirical CDF) of candidates scanned per query.
"""

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

STYLE = {"INDEX": ("tab:gray", ":"), "LR": ("tab:blue", "--"), "LR+filter": ("tab:blue", "-"),
         "CR": ("tab:red", "--"), "CR+filter": ("tab:red", "-")}


def _title(results: dict) -> str:
  return f"{results['dataset']}, condition: {results['condition_feature']}"


def curve_plot(results: dict, curve: str, ylabel: str, path: str) -> None:
  fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
  for method, points in results["curves"][curve].items():
    ks = np.array([int(k) for k in points])
    value = np.array([p["value"] for p in points.values()])
    low = np.array([p["ci_low"] for p in points.values()])
    high = np.array([p["ci_high"] for p in points.values()])
    color, line = STYLE.get(method, (None, "-"))
    ax.plot(ks, value, line, color=color, marker="o", markersize=3, label=method)
    ax.fill_between(ks, low, high, color=color, alpha=0.15, linewidth=0)
  ax.set_xscale("log")
  ax.set_xlabel("k")
  ax.set_ylabel(ylabel)
  ax.set_ylim(0, 1.02)
  _finish(fig, ax, results, path)


def scanned_plot(results: dict, path: str) -> None:
  fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
  for method, scanned in results["scanned_per_query"].items():
    values = np.sort(np.asarray(scanned))
    color, line = STYLE.get(method, (None, "-"))
    median = results["methods"][method]["scanned_median"]["value"]
    ax.step(values, np.arange(1, len(values) + 1) / len(values), line, color=color,
            where="post", label=f"{method} (median {median:.0f})")
  ax.set_xscale("log")
  ax.set_xlabel(f"candidates scanned to fill k = {results['k']}")
  ax.set_ylabel("share of queries (CDF)")
  _finish(fig, ax, results, path)


def _finish(fig, ax, results: dict, path: str) -> None:
  """Title, grid and legend shared by every plot; saves and closes the figure."""
  ax.set_title(_title(results))
  ax.grid(True, alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def write_all(results: dict, output_dir: str) -> None:
  curve_plot(results, "topic_match", "topic-match@k", os.path.join(output_dir,
                                                                   "topic_match_vs_k.png"))
  curve_plot(results, "recall", "recall@k", os.path.join(output_dir, "recall_vs_k.png"))
  scanned_plot(results, os.path.join(output_dir, "num_scanned.png"))
