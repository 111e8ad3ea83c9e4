"""The end-to-end demo behind `make demo` (`python -m trainer.demo`, flags live there).

Fetch data -> train CR (and the LR baseline) -> export the ScaNN servable -> start the
model server on localhost -> query it over REST for a few users (no condition; a genre
without filter; the same genre with the strict filter; the same with the user's rated
items excluded) -> print the evaluation summary -> stop the server.

Everything lands in one work dir (default runs/demo): cr/, lr/ (model dirs), export/
(TF Serving layout) and server.log. Running it again reuses the trained models and the
export; `retrain=True` starts afresh.
"""

import contextlib
import dataclasses
import json
import os
import re
import shutil
import sys
import time
from typing import Callable, Dict, List, Sequence

import numpy as np

from tfcr import client as client_lib
from tfcr.data.schema import RecData
from tfcr.data.sources import DataSource
from tfcr.export.reuse import ensure_exported
from tfcr.training.config import TrainConfig
from tfcr.training.loop import load_data as load_with_fingerprint
from tfcr.training.reuse import ensure_trained

SUMMARY_METRICS = ("recall@10", "recall@100", "topic_match@10", "topic_match@100",
                   "filtered_recall@100", "train_seconds")
METRIC_NOTES = {
    "recall@10": "held-out item in the top 10",
    "recall@100": "held-out item in the top 100",
    "topic_match@10": "top-10 items having the query's condition",
    "topic_match@100": "top-100 items having the query's condition",
    "filtered_recall@100": "recall@100 ranking only items with the condition",
    "train_seconds": "training time",
}


@dataclasses.dataclass
class DemoConfig:
  """What the demo runs on and shows.

  train: the CR model's training settings (epochs, condition_feature...); model_dir is
    set by the demo. data: where the data comes from. users: user ids to query (default: three users
    with different tastes from the data). conditions: one per user (cycled); default
    for each user a condition they engage with sometimes: the third most frequent
    among their items. k: results per request.
  """
  workdir: str = "runs/demo"
  train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
  data: DataSource = dataclasses.field(default_factory=DataSource)
  compare_lr: bool = True
  retrain: bool = False
  index: str = "scann"
  users: Sequence[str] = ()
  conditions: Sequence[str] = ()
  k: int = 5
  model_name: str = ""  # default: from the data set's name, e.g. movielens_100k
  rest_port: int = 0
  grpc_port: int = 0
  keep_serving: bool = False


class Printer:
  """Numbered steps with their durations, flushed at once (progress under `make`)."""

  def __init__(self, total_steps: int, out=None):
    self.total, self.step, self.out = total_steps, 0, out or sys.stdout
    self.started = time.perf_counter()
    self._step_started = self.started

  def __call__(self, text: str = "") -> None:
    print(text, file=self.out, flush=True)

  def section(self, title: str) -> None:
    self.step += 1
    self._step_started = time.perf_counter()
    self(f"\n[{self.step}/{self.total}] {title}")

  def done(self, text: str = "done") -> None:
    self(f"  {text} ({format_seconds(time.perf_counter() - self._step_started)})")

  def elapsed(self) -> float:
    return time.perf_counter() - self.started


def format_seconds(seconds: float) -> str:
  seconds = int(round(seconds))
  return f"{seconds // 60}m {seconds % 60:02d}s" if seconds >= 60 else f"{seconds} s"


@contextlib.contextmanager
def native_stderr_to(path: str):
  """Sends file descriptor 2 (where C++ libraries such as ScaNN log) to `path` for the
  block; Python's own sys.stderr is flushed first and restored after."""
  sys.stderr.flush()
  saved = os.dup(2)
  try:
    with open(path, "w") as log:
      os.dup2(log.fileno(), 2)
    yield
  finally:
    sys.stderr.flush()
    os.dup2(saved, 2)
    os.close(saved)


def short_path(path: str) -> str:
  """Relative to the current directory when inside it, else absolute."""
  relative = os.path.relpath(path)
  return path if relative.startswith("..") else relative


def load_data(source: DataSource, log: Callable[[str], None] = print) -> RecData:
  """Loads (fetching on first use) the data of `source`, saying what takes time."""
  return source.load(log=log)


def describe_data(data, condition_feature: str) -> str:
  feature = data.catalog.features.get(condition_feature)
  values = len(feature.vocabulary) if feature is not None else 0
  return (f"{data.name}: {len(data.users):,} users, {len(data.catalog):,} items, "
          f"{len(data.interactions):,} interactions, {values} values of "
          f"{condition_feature!r} (the condition)")


def user_history(data, user_id: str):
  """The item ids a user engaged with, oldest first ([] for unknown users)."""
  rows = np.flatnonzero(data.users.user_id == user_id)
  if not len(rows):
    return []
  inter = data.interactions
  mine = np.flatnonzero(inter.user_index == rows[0])
  mine = mine[np.argsort(inter.timestamp[mine], kind="stable")]
  return [str(i) for i in data.catalog.item_id[inter.item_index[mine]]]


def condition_counts(items: Dict[str, client_lib.ItemInfo], item_ids: Sequence[str]):
  return client_lib.top_values([a for i in item_ids for a in items[i].attributes], n=100)


def default_users(data, n: int = 3) -> List[str]:
  """n users with different history lengths (a light, a median and a heavy one) so the
  demo shows varied tastes; deterministic."""
  counts = np.bincount(data.interactions.user_index, minlength=len(data.users))
  order = np.argsort(counts, kind="stable")
  order = order[counts[order] >= 5] if (counts >= 5).any() else order
  picks = [order[int(q * (len(order) - 1))] for q in np.linspace(0.25, 0.9, n)]
  return [str(data.users.user_id[p]) for p in dict.fromkeys(picks)]


def pick_condition(counts) -> str:
  """A condition the user engages with sometimes: their third most frequent one."""
  if not counts:
    return ""
  return counts[min(2, len(counts) - 1)][0]


def _summary_table(columns: Dict[str, Dict[str, float]]) -> str:
  names = [m for m in SUMMARY_METRICS if all(m in c for c in columns.values())]
  rows = [["metric"] + list(columns) + ["what it measures"]]
  for name in names:
    values = []
    for metrics in columns.values():
      value = metrics[name]
      values.append(format_seconds(value) if name == "train_seconds" else f"{value:.3f}")
    rows.append([name] + values + [METRIC_NOTES[name]])
  widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
  lines = []
  for i, row in enumerate(rows):
    lines.append("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    if i == 0:
      lines.append("  " + "  ".join("-" * w for w in widths))
  return "\n".join(lines)


def curl_command(server, query: client_lib.Query) -> str:
  body = {"instances": [client_lib.request_rows([query])[0]]}
  return (f"curl -d '{json.dumps(body)}' "
          f"{server.client.model_url}:predict")


def run_demo(config: DemoConfig, out=None) -> Dict[str, object]:
  """Runs every step, printing as it goes; returns what it measured (for tests):
  {"metrics": {"CR": ..., "LR": ...}, "results": [Results...], "server_exit": int}."""
  from tfcr.client.local_server import LocalModelServer  # pylint: disable=g-import-not-at-top
  say = Printer(total_steps=6 if config.compare_lr else 5, out=out)
  workdir = os.path.abspath(os.path.expanduser(config.workdir))
  train = dataclasses.replace(config.train, model="cr", model_dir=os.path.join(workdir, "cr"))
  train.resolved()
  source = config.data.resolved()
  export_dir = os.path.join(workdir, "export")
  say(f"tfcr demo: conditional retrieval on {source.dataset}, trained, exported, served "
      f"and queried over REST.\nWork dir: {short_path(workdir)} (a re-run reuses its "
      f"models and export; --retrain starts afresh)")
  if config.retrain and os.path.isdir(workdir):
    say("  --retrain: deleting the previous models and export.")
    shutil.rmtree(workdir)
  os.makedirs(workdir, exist_ok=True)

  say.section("Data")
  data, fingerprint = load_with_fingerprint(source, log=say)
  train = train.for_data(data)
  say(f"  {describe_data(data, train.condition_feature)}")
  say.done()

  metrics = {}
  say.section(f"Train CR: query = user + {train.condition_feature} (the condition), "
              f"{train.epochs} epochs")
  metrics["CR"] = ensure_trained(train, data, fingerprint=fingerprint,
                                 log=lambda s: say("  " + s))
  say.done(f"CR: recall@10 {metrics['CR']['recall@10']:.3f}, "
           f"topic_match@10 {metrics['CR']['topic_match@10']:.3f}")
  if config.compare_lr:
    say.section(f"Train LR, the baseline: the same model without the condition, "
                f"{train.epochs} epochs")
    lr = dataclasses.replace(train, model="lr", model_dir=os.path.join(workdir, "lr"))
    metrics["LR"] = ensure_trained(lr, data, fingerprint=fingerprint,
                                   log=lambda s: say("  " + s))
    say.done(f"LR: recall@10 {metrics['LR']['recall@10']:.3f}, "
             f"topic_match@10 {metrics['LR']['topic_match@10']:.3f}")

  say.section(f"Export CR as a {config.index} servable (query tower + index + condition "
              f"filter in one SavedModel)")
  with native_stderr_to(os.path.join(workdir, "export.log")):  # ScaNN's C++ build log
    version_path = ensure_exported(train.model_dir, export_dir, index=config.index,
                                   log=lambda s: say("  " + s))
  say.done()

  say.section("Serve it: python -m serving.server (TF Serving's REST and gRPC APIs)")
  model_name = config.model_name or re.sub(r"\W+", "_", data.name.split("/")[-1])
  server = LocalModelServer(export_dir, model_name=model_name,
                            rest_port=config.rest_port, grpc_port=config.grpc_port,
                            log_path=os.path.join(workdir, "server.log"))
  say(f"  REST {server.rest_url}, gRPC {server.grpc_target}, log "
      f"{short_path(os.path.join(workdir, 'server.log'))}; waiting for the model to load ...")
  results, exit_status = [], None
  try:
    server.start()
    versions = server.client.available_versions()
    say.done(f"model {model_name!r} version {versions[-1]} AVAILABLE "
             f"({short_path(version_path)})")
    say.section(f"Query it over REST: POST {server.client.model_url}:predict")
    results = _query_users(config, data, train.condition_feature, server, say)
    if config.keep_serving:
      say(f"\nThe server keeps running (--keep_serving); try:\n  "
          f"{curl_command(server, client_lib.Query(results[0].query.user_id, k=3))}\n"
          f"Press Ctrl-C to stop it.")
      try:
        server.process.wait()
      except KeyboardInterrupt:
        pass
  finally:
    say("\nStopping the model server (SIGTERM) ...")
    exit_status = server.stop()
    say(f"  stopped, exit status {exit_status}")

  say(f"\nEvaluation on held-out interactions (each user's last {train.test_per_user}; "
      f"a CR query adds one {train.condition_feature} value of the held-out item)")
  say(_summary_table(metrics))
  if "LR" in metrics:
    say(f"  CR puts {metrics['CR']['topic_match@10']:.0%} of its top 10 in the asked "
        f"{train.condition_feature}, LR {metrics['LR']['topic_match@10']:.0%}: the paper's "
        f"finding (82.8% vs 20.3% on Pinterest).")
  say(f"\nDone in {format_seconds(say.elapsed())}. Next: notebooks/ (quickstart, serving, "
      f"your own data) and docs/.")
  return {"metrics": metrics, "results": results, "server_exit": exit_status,
          "export": version_path}


def _query_users(config: DemoConfig, data, feature: str, server, say) -> list:
  items = client_lib.item_info_from_catalog(data.catalog, feature)
  users = list(config.users) or default_users(data)
  results = []
  for n, user_id in enumerate(users):
    seen = user_history(data, user_id)
    counts = condition_counts(items, seen)
    if config.conditions:
      condition = config.conditions[n % len(config.conditions)]
    else:
      condition = pick_condition(counts)
    favourite = ", ".join(f"{name} {count}" for name, count in counts[:4])
    say(f"\n=== User {user_id}: {len(seen)} items in their history"
        + (f"; most frequent {feature}: {favourite}" if favourite else "")
        + (f"; asking for {condition!r}" if condition else ""))
    queries = [
        client_lib.Query(user_id, "", config.k, "none"),
        client_lib.Query(user_id, condition, config.k, "none"),
        client_lib.Query(user_id, condition, config.k, "strict"),
        client_lib.Query(user_id, condition, config.k, "strict", tuple(seen)),
    ]
    if n == 0:
      say(f"  The first request, as curl would send it:\n  "
          f"{curl_command(server, queries[2])}")
    for query in queries:
      answer = server.client.predict([query])[0]
      results.append(answer)
      say("")
      say(client_lib.format_results(answer, items, seen=seen, attribute_name=feature))
  return results
