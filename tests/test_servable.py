"""The exported servable, loaded in a fresh process, against a NumPy brute-force oracle."""

import itertools
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from tfcr.data import synthetic
from tfcr.data.conditions import NONE_ID, OOV_ID
from tfcr.data.sources import DataSource
from tfcr.training.config import TrainConfig
from tfcr.index.brute_force import BruteForceIndex
from tfcr.training.model_dir import load_trained_model
from tfcr.export.exporter import export_servable
from tfcr.training.loop import train_and_evaluate

HERE = os.path.dirname(os.path.abspath(__file__))
MAX_K = 12
RARE = "rare"  # a condition with 3 items: fewer than most k
THRESHOLDS = {"exact": 600, "mixed": 50, "stream": 0,  # exact_threshold of each export
              "mixed_called": 50}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  data = synthetic.generate(n_users=120, n_items=600, n_conditions=6, n_interactions=5000,
                            seed=3)
  topics = data.catalog.features["topics"].to_lists()
  for item in (5, 77, 300):
    topics[item].append(RARE)
  data.catalog = data.catalog.with_feature("topics", topics)
  model_dir = tmp_path_factory.mktemp("model")
  train_and_evaluate(TrainConfig(epochs=1, batch_size=128, embedding_dim=16,
                                 hidden_units=(32,), model_dir=str(model_dir), verbose=0),
                     data)
  config, model, vocabularies = load_trained_model(str(model_dir))
  return str(model_dir), model, vocabularies


@pytest.fixture(scope="module")
def exports(trained, tmp_path_factory):
  model_dir = trained[0]
  root = tmp_path_factory.mktemp("exports")
  return {
      # Every strict query scored exactly (all conditions are under the threshold).
      "exact": export_servable(model_dir, str(root / "exact"), "brute_force", MAX_K,
                               exact_threshold=THRESHOLDS["exact"]),
      # Common conditions stream; the rare one is scored exactly.
      "mixed": export_servable(model_dir, str(root / "mixed"), "brute_force", MAX_K,
                               exact_threshold=THRESHOLDS["mixed"]),
      # Everything streams, even the 3-item condition (the growth loop must finish it).
      "stream": export_servable(model_dir, str(root / "stream"), "brute_force", MAX_K,
                                exact_threshold=THRESHOLDS["stream"]),
      "scann": export_servable(model_dir, str(root / "scann"), "scann", MAX_K,
                               exact_threshold=50),
      # As "mixed", with the filter's cond called as ScaNN servables call it.
      "mixed_called": _export_with_called_branches(model_dir, str(root / "mixed_called")),
  }


def _export_with_called_branches(model_dir, export_dir):
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(BruteForceIndex, "call_filter_branches", True)
    return export_servable(model_dir, export_dir, "brute_force", MAX_K,
                           exact_threshold=THRESHOLDS["mixed_called"])


def run_requests(saved_model, requests, tmp_path, load_scann=True):
  requests_path, out_path = tmp_path / "requests.json", tmp_path / "out.npz"
  requests_path.write_text(json.dumps(requests))
  env = {**os.environ, "LOAD_SCANN": "1" if load_scann else "0"}
  result = subprocess.run([sys.executable, os.path.join(HERE, "servable_requests.py"),
                           saved_model, str(requests_path), str(out_path)], env=env,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  with np.load(out_path) as f:
    return [{key.split("/", 1)[1]: f[key] for key in f.files if key.startswith(f"{i}/")}
            for i in range(len(requests))]


def oracle(model, vocabularies, user_id, condition, k, filter_, exclude):
  """NumPy reference for one request row -> (item ids, scores, matches, num_scanned)."""
  users = {u: i + 1 for i, u in enumerate(vocabularies.user_ids)}
  conditions = vocabularies.conditions
  condition_id = NONE_ID if condition == "" else int(conditions.ids_of([condition])[0])
  query = model.query_tower({"user": np.array([users.get(user_id, 0)]),
                             "condition": np.array([condition_id])}).numpy()[0]
  items = model.candidate_tower(np.arange(len(vocabularies.item_ids))).numpy()
  scores = items @ query
  membership = conditions.membership()[:, condition_id]
  order = np.argsort(-scores, kind="stable")
  excluded = np.isin(vocabularies.item_ids[order], [e for e in exclude if e])
  keep = ~excluded
  strict = filter_ == "strict" and condition_id != NONE_ID
  if strict:
    keep &= membership[order]
  picked = order[keep][:k]
  real = condition_id not in (NONE_ID, OOV_ID)
  return (list(vocabularies.item_ids[picked]), scores[picked],
          list(membership[picked] & real), keep, strict and condition_id == OOV_ID)


def grid_requests():
  """Batches mixing users (known, unknown), conditions (common, rare, "", unknown), k,
  filters and exclusions."""
  users = ["u000", "u007", "nobody", "u119"]
  conditions = ["c00", "c03", RARE, "", "no-such-topic"]
  rows = list(itertools.product(users[:2] + users[2:3], conditions, [1, 5, MAX_K],
                                ["none", "strict"]))
  requests = []
  for batch_size in (1, 7, 16):
    for start in range(0, len(rows), batch_size * 5):
      batch = rows[start:start + batch_size]
      exclude = [["i0005", "i0300", ""] if i % 2 else ["", "", ""] for i in range(len(batch))]
      inputs = {"user_id": [r[0] for r in batch], "condition": [r[1] for r in batch],
                "k": [r[2] for r in batch], "filter": [r[3] for r in batch]}
      requests.append({"signature": "serving_default", "inputs": inputs})
      requests.append({"signature": "serving_exclusions",
                       "inputs": {**inputs, "exclude": exclude}})
  return requests


@pytest.mark.parametrize("variant", ["exact", "mixed", "stream", "mixed_called"])
def test_brute_force_servable_matches_numpy_oracle(trained, exports, tmp_path, variant):
  _, model, vocabularies = trained
  conditions = vocabularies.conditions
  requests = grid_requests()
  results = run_requests(exports[variant], requests, tmp_path)
  checked = 0
  for request, result in zip(requests, results):
    assert "error" not in result, result.get("error")
    inputs = request["inputs"]
    batch = len(inputs["user_id"])
    assert result["item_ids"].shape == (batch, MAX_K)
    for row in range(batch):
      exclude = inputs.get("exclude", [[]] * batch)[row]
      ids, scores, matches, keep, unknown_strict = oracle(
          model, vocabularies, inputs["user_id"][row], inputs["condition"][row],
          inputs["k"][row], inputs["filter"][row], exclude)
      got = [i for i in result["item_ids"][row] if i]
      assert got == ids, (variant, inputs, row)
      np.testing.assert_allclose(result["scores"][row][:len(ids)], scores, rtol=1e-4,
                                 atol=1e-5)
      assert list(result["condition_match"][row][:len(ids)]) == matches
      # Padding: "" ids, -inf scores and no match from position len(ids) on.
      assert all(i == "" for i in result["item_ids"][row][len(ids):])
      assert np.all(result["scores"][row][len(ids):] == -np.inf)
      assert not result["condition_match"][row][len(ids):].any()
      k = inputs["k"][row]
      scanned = result["num_scanned"][row]
      condition = inputs["condition"][row]
      size = int(np.sum(conditions.membership()[:, conditions.ids_of([condition])[0]]))
      strict = inputs["filter"][row] == "strict" and condition != ""
      if unknown_strict:
        assert scanned == 0 and not ids
      elif strict and size <= THRESHOLDS[variant]:
        assert scanned == size  # exact path: the condition's items are all scored
      elif len(ids) == k:
        # Streaming: the k-th kept candidate's position in the exact ranking.
        assert scanned == np.flatnonzero(keep)[k - 1] + 1, (variant, inputs, row)
      checked += 1
  assert checked > 100


def test_strict_guarantee_on_a_condition_with_fewer_than_k_items(trained, exports,
                                                                 tmp_path):
  requests = [{"signature": "serving_exclusions",
               "inputs": {"user_id": ["u001", "u002"], "condition": [RARE, RARE],
                          "k": [10, 10], "filter": ["strict", "strict"],
                          "exclude": [["", ""], ["i0077", ""]]}}]
  for variant in ("exact", "stream", "scann"):
    result = run_requests(exports[variant], requests, tmp_path)[0]
    first, second = ([i for i in row if i] for row in result["item_ids"])
    assert sorted(first) == ["i0005", "i0077", "i0300"], variant
    assert sorted(second) == ["i0005", "i0300"], variant
    assert result["condition_match"][0][:3].all()


def test_scann_exact_path_scores_from_the_index_vectors_match_numpy(trained, exports,
                                                                     tmp_path):
  """The ScaNN servable's strict exact path scores with the index's own float vectors
  (shared, not a copy): the same items in the same order with the same scores as NumPy."""
  _, model, vocabularies = trained
  users = ["u000", "u007", "u119", "nobody"]
  requests = [{"signature": "serving_exclusions",
               "inputs": {"user_id": users, "condition": [RARE] * 4, "k": [2, 3, 3, 3],
                          "filter": ["strict"] * 4,
                          "exclude": [[""], ["i0300"], [""], ["i0005"]]}}]
  result = run_requests(exports["scann"], requests, tmp_path)[0]
  assert "error" not in result, result.get("error")
  inputs = requests[0]["inputs"]
  for row, user in enumerate(users):
    ids, scores, _, _, _ = oracle(model, vocabularies, user, RARE, inputs["k"][row],
                                  "strict", inputs["exclude"][row])
    assert [i for i in result["item_ids"][row] if i] == ids, row
    np.testing.assert_allclose(result["scores"][row][:len(ids)], scores, rtol=1e-5,
                               atol=1e-6)
    assert result["num_scanned"][row] == 3  # the exact path scores the condition's items


@pytest.mark.parametrize("variant", ["scann", "mixed"])
def test_one_float_copy_of_the_item_vectors(trained, exports, variant):
  """The index and the condition filter's exact path share one [items, d] float32
  variable: a second copy was 2.4 GiB at 10M items, in the export and in the server."""
  _, model, vocabularies = trained
  shape = [len(vocabularies.item_ids), int(model.candidate_tower(np.arange(1)).shape[1])]
  checkpoint = os.path.join(exports[variant], "variables", "variables")
  tables = [name for name, got in tf.train.list_variables(checkpoint) if got == shape]
  assert len(tables) == 1, tables


@pytest.mark.parametrize("variant", ["scann", "mixed"])
def test_user_and_item_ids_live_in_the_checkpoint_not_in_the_graph(trained, exports,
                                                                    variant):
  """The id tables read their keys from variables: as constants, 10M item ids sat in
  saved_model.pb, which the model server parses and copies into its graphs."""
  _, _, vocabularies = trained
  with open(os.path.join(exports[variant], "saved_model.pb"), "rb") as f:
    graph = f.read()
  ids = [vocabularies.item_ids[0], vocabularies.item_ids[-1], vocabularies.user_ids[0],
         vocabularies.user_ids[-1]]
  assert [i for i in ids if str(i).encode() in graph] == []
  checkpoint = os.path.join(exports[variant], "variables", "variables")
  names = [name for name, _ in tf.train.list_variables(checkpoint)]
  assert any("item_id_of_row" in n for n in names) and any("user_ids" in n for n in names)


def test_bad_requests_are_invalid_argument(exports, tmp_path):
  ok = {"user_id": ["u001"], "condition": ["c01"], "k": [3], "filter": ["none"]}
  cases = [({"k": [0]}, "k must be in 1..12"), ({"k": [MAX_K + 1]}, "k must be in 1..12"),
           ({"filter": ["fuzzy"]}, 'filter must be \\"none\\" or \\"strict\\"'),
           ({"condition": ["c01", "c02"]}, "condition has a different batch size"),
           ({"k": [3, 4]}, "k has a different batch size")]
  requests = [{"signature": "serving_default", "inputs": {**ok, **bad}} for bad, _ in cases]
  requests.append({"signature": "serving_exclusions",
                   "inputs": {**ok, "exclude": [["a"], ["b"]]}})
  results = run_requests(exports["exact"], requests, tmp_path)
  for (_, message), result in zip(cases, results):
    assert message in str(result["error"]), (message, result)
  assert "exclude has a different batch size" in str(results[-1]["error"])


def _ops(saved_model_dir):
  proto = saved_model_pb2.SavedModel()
  with open(os.path.join(saved_model_dir, "saved_model.pb"), "rb") as f:
    proto.ParseFromString(f.read())
  ops = set()
  for graph in proto.meta_graphs:
    ops |= {node.op for node in graph.graph_def.node}
    for function in graph.graph_def.library.function:
      ops |= {node.op for node in function.node_def}
  return ops


def test_brute_force_variant_uses_only_standard_ops(exports, tmp_path):
  ops = _ops(exports["mixed"])
  assert "MatMul" in ops or "BatchMatMulV2" in ops  # the listing is real
  assert not [op for op in ops if op.startswith("Scann")]
  assert not ops & {"PyFunc", "PyFuncStateless", "EagerPyFunc"}
  assert any(op.startswith("Scann") for op in _ops(exports["scann"]))
  # And it loads and answers in a process that never imported ScaNN.
  request = [{"signature": "serving_default", "inputs": {
      "user_id": ["u001"], "condition": ["c02"], "k": [4], "filter": ["strict"]}}]
  result = run_requests(exports["mixed"], request, tmp_path, load_scann=False)[0]
  assert result["condition_match"][0][:4].all()


def test_versions_are_numbered(trained, tmp_path):
  model_dir = trained[0]
  first = export_servable(model_dir, str(tmp_path), "brute_force", 5)
  second = export_servable(model_dir, str(tmp_path), "brute_force", 5)
  assert (os.path.basename(first), os.path.basename(second)) == ("1", "2")
  assert export_servable(model_dir, str(tmp_path), "brute_force", 5,
                         version=7).endswith("/7")
  assert sorted(os.listdir(tmp_path)) == ["1", "2", "7"]  # no staging leftovers


@pytest.mark.slow
def test_scann_top10_overlap_on_10k_items(tmp_path):
  model_dir = tmp_path / "model"
  source = DataSource("synthetic", synthetic=synthetic.SyntheticConfig(
      n_users=2000, n_items=10000, n_conditions=30, n_interactions=40000, seed=42))
  train_and_evaluate(TrainConfig(epochs=2, model_dir=str(model_dir), verbose=0), source)
  scann = export_servable(str(model_dir), str(tmp_path / "scann"), "scann", 10)
  exact = export_servable(str(model_dir), str(tmp_path / "exact"), "brute_force", 10)
  users = [f"u{u:04d}" for u in range(0, 2000, 4)]
  conditions = [f"c{c:02d}" for c in range(30)]
  inputs = {"user_id": users, "condition": [conditions[i % 30] for i in range(len(users))],
            "k": [10] * len(users), "filter": ["none"] * len(users)}
  request = [{"signature": "serving_default", "inputs": inputs}]
  approximate = run_requests(scann, request, tmp_path)[0]["item_ids"]
  truth = run_requests(exact, request, tmp_path)[0]["item_ids"]
  overlap = np.mean([len(set(a) & set(t)) / 10 for a, t in zip(approximate, truth)])
  assert overlap >= 0.95, overlap


def test_wrong_dtype_or_rank_is_rejected(exports):
  signature = tf.saved_model.load(exports["exact"]).signatures["serving_default"]
  good = {"user_id": tf.constant(["u001"]), "condition": tf.constant(["c01"]),
          "k": tf.constant([3]), "filter": tf.constant(["none"])}
  assert signature(**good)["item_ids"].shape == (1, MAX_K)
  for bad in ({"k": tf.constant([3.0])}, {"k": tf.constant([3], tf.int64)},
              {"user_id": tf.constant([["u001"]])}, {"filter": tf.constant("none")}):
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError, TypeError)):
      signature(**{**good, **bad})


def test_export_writes_tf_serving_warmup_requests(exports):
  from tensorflow_serving.apis import prediction_log_pb2  # pylint: disable=g-import-not-at-top
  path = os.path.join(exports["scann"], "assets.extra", "tf_serving_warmup_requests")
  logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy())
          for r in tf.data.TFRecordDataset(path)]
  assert [tf.make_ndarray(log.predict_log.request.inputs["filter"]).tolist()
          for log in logs] == [[b"none"], [b"strict"]]
  # The model server replays them: the requests must be valid for the servable.
  from serving.model_manager import LoadedVersion  # pylint: disable=g-import-not-at-top
  from tfcr.index.scann_cpu import load_scann_ops  # pylint: disable=g-import-not-at-top
  load_scann_ops()
  assert LoadedVersion("cr", 1, exports["scann"]).warm_up() == 2


def test_scann_searcher_is_created_once_per_call_before_any_search(exports):
  """Every search of a call shares one searcher handle, made in the signature's own graph:
  when several cond / while-loop branches each rebuilt it on the first call of a fresh
  process (a batch mixing strict and unfiltered rows), ScaNN's build raced and crashed
  (3 of 20 processes)."""
  proto = saved_model_pb2.SavedModel()
  with open(os.path.join(exports["scann"], "saved_model.pb"), "rb") as f:
    proto.ParseFromString(f.read())
  library = proto.meta_graphs[0].graph_def.library.function
  rebuilders = {f.signature.name for f in library
                if any(node.op == "TensorsToScann" or node.op.endswith(">TensorsToScann")
                       for node in f.node_def)}
  assert rebuilders, "no ScaNN searcher in the export"
  sites = {}
  for function in library:
    for node in function.node_def:
      if "f" in node.attr and node.attr["f"].func.name in rebuilders:
        sites[function.signature.name] = sites.get(function.signature.name, 0) + 1
  searchers = [f.signature.name for f in library
               if any(node.op.endswith("ScannSearchBatched") for node in f.node_def)]
  assert sites and searchers
  # The handle is made only in the top-level traced functions (serve, serve_exclusions),
  # once in each; the searches live in branches and loop bodies and take it from there.
  assert all(name.startswith("__inference_serve") for name in sites), sites
  assert set(sites.values()) == {1}, sites
  assert not set(searchers) & set(sites), (searchers, sites)


def _filter_conds(saved_model_dir):
  """{signature function: [whether each If of it stays a called If (not lowered)]}."""
  proto = saved_model_pb2.SavedModel()
  with open(os.path.join(saved_model_dir, "saved_model.pb"), "rb") as f:
    proto.ParseFromString(f.read())
  kept = {}
  for function in proto.meta_graphs[0].graph_def.library.function:
    if function.signature.name.startswith("__inference_serve"):
      kept[function.signature.name] = [
          "_lower_using_switch_merge" in node.attr
          and not node.attr["_lower_using_switch_merge"].b
          for node in function.node_def if node.op in ("If", "StatelessIf")]
  assert len(kept) == 2, kept  # serve and serve_exclusions
  return kept


def test_strict_branch_is_called_for_scann_and_inlined_for_brute_force(exports):
  """ScaNN servables keep the strict/unfiltered tf.cond an If op that calls one branch:
  lowered to Switch/Merge, every unfiltered call walks the strict branch's few hundred
  nodes as dead ones, ~10% of a 1M-item call. Brute force keeps it lowered: its matmul
  runs 1.5x slower in a called branch (docs/benchmarks.md)."""
  assert all(flags == [True] for flags in _filter_conds(exports["scann"]).values())
  assert all(flags == [False] for flags in _filter_conds(exports["mixed"]).values())
  assert all(flags == [True] for flags in _filter_conds(exports["mixed_called"]).values())
