"""The catalog in Milvus Lite (a real engine on a temp .db file) with the query-only
servable in front, against a NumPy brute-force oracle and the one-servable path."""

import os
import subprocess
import sys

import numpy as np
import pytest

from tfcr.client.local_server import LocalModelServer
from tfcr.client.milvus import MilvusSearchClient
from tfcr.client.query import Query
from tfcr.client.saved_model import SavedModelClient
from tfcr.data import synthetic
from tfcr.data.conditions import NONE_ID
from tfcr.errors import ConfigError
from tfcr.export.exporter import export_servable
from tfcr.export.milvus_export import export_to_milvus
from tfcr.index import milvus
from tfcr.training.config import TrainConfig
from tfcr.training.loop import train_and_evaluate
from tfcr.training.model_dir import load_trained_model

_BIN = os.path.dirname(sys.executable)
RARE = "rare"  # a condition of 3 items: fewer than k
RARE_ITEMS = (5, 77, 300)
USERS = ["u000", "u007", "u059", "nobody"]
CONDITIONS = ["c00", "c03", RARE, "", "no-such-topic"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  data = synthetic.generate(n_users=60, n_items=400, n_conditions=5, n_interactions=2500,
                            seed=5)
  topics = data.catalog.features["topics"].to_lists()
  for item in RARE_ITEMS:
    topics[item].append(RARE)
  data.catalog = data.catalog.with_feature("topics", topics)
  model_dir = tmp_path_factory.mktemp("model")
  train_and_evaluate(TrainConfig(epochs=1, batch_size=128, embedding_dim=8,
                                 hidden_units=(16,), model_dir=str(model_dir), verbose=0),
                     data)
  _, model, vocabularies = load_trained_model(str(model_dir))
  item_topics = dict(zip(np.asarray(data.catalog.item_id).astype(str), topics))
  return str(model_dir), model, vocabularies, item_topics


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
  """An exact (FLAT) collection and its query servable, in a fresh Milvus Lite file."""
  root = tmp_path_factory.mktemp("milvus")
  uri = str(root / "catalog.db")
  path = export_to_milvus(trained[0], str(root / "query"), uri, "items", index_type="FLAT",
                          batch_size=150, log=lambda _: None)
  return uri, path


@pytest.fixture(scope="module")
def client(exported):
  client = MilvusSearchClient(exported[1])
  yield client
  client.close()


def oracle(model, vocabularies, item_topics, query: Query):
  """NumPy reference for one query -> (item ids, scores): every item's dot product with
  the query embedding, best first, less the exclusions and, under strict with a
  condition, the items without it."""
  users = {u: i + 1 for i, u in enumerate(vocabularies.user_ids)}
  conditions = vocabularies.conditions
  if query.condition == "":
    condition_id = NONE_ID
  else:
    condition_id = int(conditions.ids_of([query.condition])[0])  # OOV for unknown
  embedding = model.query_tower({"user": np.array([users.get(query.user_id, 0)]),
                                 "condition": np.array([condition_id])}).numpy()[0]
  items = model.candidate_tower(np.arange(len(vocabularies.item_ids))).numpy()
  scores = items @ embedding
  ids = np.asarray(vocabularies.item_ids).astype(str)
  keep = ~np.isin(ids, list(query.exclude))
  if query.filter == "strict" and query.condition:
    keep &= np.array([query.condition in item_topics[i] for i in ids])
  order = [r for r in np.argsort(-scores, kind="stable") if keep[r]][:query.k]
  return list(ids[order]), scores[order]


def grid():
  return [Query(u, c, k, f, exclude)
          for u in USERS for c in CONDITIONS for k in (1, 7) for f in ("none", "strict")
          for exclude in ((), ("i0005", "i0300", "i0010"))]


def test_the_collection_holds_the_model_item_embeddings_and_conditions(trained, exported):
  _, model, vocabularies, item_topics = trained
  store = milvus.connect(exported[0])
  rows = store.query("items", filter='item_id != ""', limit=10000,
                     output_fields=[milvus.ITEM_ID, milvus.EMBEDDING, milvus.CONDITIONS])
  store.close()
  ids = np.asarray(vocabularies.item_ids).astype(str)
  expected = model.candidate_tower(np.arange(len(ids))).numpy()  # not the exporter's code
  assert sorted(r[milvus.ITEM_ID] for r in rows) == sorted(ids)
  row_of = {item: i for i, item in enumerate(ids)}
  got = np.array([rows[j][milvus.EMBEDDING] for j in range(len(rows))], np.float32)
  want = expected[[row_of[r[milvus.ITEM_ID]] for r in rows]]
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
  for r in rows:
    assert sorted(r[milvus.CONDITIONS]) == sorted(item_topics[r[milvus.ITEM_ID]])
  assert sum(RARE in r[milvus.CONDITIONS] for r in rows) == len(RARE_ITEMS)


def test_results_equal_numpy_brute_force(trained, client):
  _, model, vocabularies, item_topics = trained
  queries = grid()
  answers = client.predict(queries)
  for query, results in zip(queries, answers):
    want_ids, want_scores = oracle(model, vocabularies, item_topics, query)
    assert results.item_ids == want_ids, query
    np.testing.assert_allclose([r.score for r in results.items], want_scores, rtol=1e-4,
                               atol=1e-5)
    if query.filter == "strict" and query.condition in client.condition_shares:
      # Scored exactly (the catalog's conditions are all small): every item having it,
      # less the exclusions, was scored.
      having = [i for i, t in item_topics.items()
                if query.condition in t and i not in query.exclude]
      assert results.num_scanned == len(having), query
    else:
      assert results.num_scanned is None  # a search: Milvus does not report it
    for r in results.items:
      assert r.condition_match == (query.condition in item_topics[r.item_id]), (query, r)
      assert r.item_id not in query.exclude
    if query.filter == "strict" and query.condition:
      assert all(r.condition_match for r in results.items), query
  rare = client.recommend("u000", RARE, k=7, filter="strict")
  assert sorted(rare.item_ids) == sorted(f"i{i:04d}" for i in RARE_ITEMS)  # fewer than k
  assert client.recommend("u000", "no-such-topic", k=7, filter="strict").items == []


def test_strict_searches_through_the_index_filter_equal_numpy_too(trained, client,
                                                                 monkeypatch):
  """With the exact path off, strict requests go through Milvus's filtered search."""
  from tfcr.client import milvus as milvus_client  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(milvus_client, "EXACT_MAX_ITEMS", 0)
  _, model, vocabularies, item_topics = trained
  queries = [q for q in grid() if q.filter == "strict"]
  for query, results in zip(queries, client.predict(queries)):
    assert results.item_ids == oracle(model, vocabularies, item_topics, query)[0], query
    assert results.num_scanned is None


def test_results_agree_with_the_one_servable_exact_path(trained, client, tmp_path):
  one = SavedModelClient(export_servable(trained[0], str(tmp_path / "bf"), "brute_force",
                                         max_k=10, log=lambda _: None))
  queries = grid()
  for mine, theirs in zip(client.predict(queries), one.predict(queries)):
    assert mine.item_ids == theirs.item_ids, mine.query
    np.testing.assert_allclose([r.score for r in mine.items],
                               [r.score for r in theirs.items], rtol=1e-4, atol=1e-5)
    assert ([r.condition_match for r in mine.items]
            == [r.condition_match for r in theirs.items]), mine.query


def test_exclusions_leave_out_the_top_items(client):
  top = client.recommend("u007", "c03", k=5, filter="strict")
  excluded = top.item_ids[:3]
  again = client.recommend("u007", "c03", k=5, filter="strict", exclude=excluded)
  assert not set(excluded) & set(again.item_ids)
  assert again.item_ids[:2] == top.item_ids[3:5]  # the rest move up, in order
  assert len(again.items) == 5


def test_the_default_hnsw_index_reaches_its_recall_target_and_overwrite_swaps(
    trained, exported, client, tmp_path):
  uri = exported[0]
  with pytest.raises(ConfigError, match="already exists"):
    export_to_milvus(trained[0], str(tmp_path / "q"), uri, "items", log=lambda _: None)
  path = export_to_milvus(trained[0], str(tmp_path / "q"), uri, "items", overwrite=True,
                          log=lambda _: None)  # default index: HNSW
  store = milvus.connect(uri)
  assert store.describe_index("items", milvus.EMBEDDING)["index_type"] == "HNSW"
  assert store.list_collections() == ["items"]  # the staging collection is gone
  store.close()
  hnsw = MilvusSearchClient(path)
  queries = [Query(u, c, 10, f) for u in USERS for c in CONDITIONS[:4]
             for f in ("none", "strict")]
  exact = client.predict(queries)
  answers = hnsw.predict(queries)
  found = [len(set(a.item_ids) & set(e.item_ids)) / len(e.item_ids)
           for a, e in zip(answers, exact) if e.item_ids]
  assert np.mean(found) >= 0.95
  # Strict requests for small conditions skip the graph: exact, as on the FLAT index.
  for query, a, e in zip(queries, answers, exact):
    if query.filter == "strict" and query.condition:
      assert a.item_ids == e.item_ids, query


def test_bad_settings_are_one_line_config_errors(trained, tmp_path):
  uri = str(tmp_path / "x.db")
  with pytest.raises(ConfigError, match="Unknown milvus_index_type='BOGUS'; valid values: HNSW"):
    export_to_milvus(trained[0], str(tmp_path / "q"), uri, "items", index_type="bogus")
  with pytest.raises(ConfigError, match="Milvus Lite .* cannot build milvus_index_type=DISKANN"):
    export_to_milvus(trained[0], str(tmp_path / "q"), uri, "items", index_type="DISKANN")
  with pytest.raises(ConfigError, match="must be a JSON object"):
    milvus.parse_params("ef=64", "milvus_search_params")
  assert not os.path.exists(tmp_path / "q")


def test_a_model_server_embeds_as_the_in_process_servable(exported, client):
  queries = [Query(u, c, 5, "strict", ("i0005",)) for u in USERS for c in CONDITIONS]
  with LocalModelServer(os.path.dirname(exported[1]), model_name="query") as server:
    rest = MilvusSearchClient(rest_url=server.rest_url, model_name="query",
                              milvus_uri=exported[0], collection="items")
    # The embeddings agree; the searches then agree up to HNSW's approximation (a
    # strict search's graph walk can end one item short for a vector a rounding away).
    np.testing.assert_allclose(rest.query_embeddings(queries),
                               client.query_embeddings(queries), rtol=1e-5, atol=1e-6)
    # Milvus Lite's filtered HNSW walk is not repeatable call to call: compare sets.
    pairs = list(zip(rest.predict(queries), client.predict(queries)))
    overlap = [len(set(a.item_ids) & set(b.item_ids)) / max(len(b.item_ids), 1)
               for a, b in pairs]
    assert np.mean(overlap) >= 0.8, overlap
    for over_rest, _ in pairs:
      assert "i0005" not in over_rest.item_ids  # the exclusion holds over REST too


def _run(script, *args):
  # Level 3 hides TF's C++ start-up lines (cuInit on machines without a GPU).
  return subprocess.run([os.path.join(_BIN, script), *args], capture_output=True, text=True,
                        timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


def test_the_binaries_export_query_and_fail_in_one_line(trained, tmp_path):
  uri, export_dir = str(tmp_path / "catalog.db"), str(tmp_path / "query")
  done = _run("tfcr-export", f"--model_dir={trained[0]}", f"--export_dir={export_dir}",
              "--index=milvus", f"--milvus_uri={uri}", "--collection=items")
  assert done.returncode == 0, done.stderr[-3000:]
  answer = _run("tfcr-milvus-query", f"--servable={export_dir}", "--user_id=u000,nobody",
                f"--condition={RARE}", "--filter=strict", "--k=5")
  assert answer.returncode == 0, answer.stderr[-3000:]
  assert answer.stdout.count(f'condition "{RARE}", filter strict: 3 items') == 2, answer.stdout

  unreachable = _run("tfcr-export", f"--model_dir={trained[0]}",
                     f"--export_dir={tmp_path / 'other'}", "--index=milvus",
                     "--milvus_uri=http://127.0.0.1:9", "--collection=items")
  assert unreachable.returncode == 2
  lines = unreachable.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith(
      "export: error: Cannot reach Milvus at milvus_uri=http://127.0.0.1:9"), lines
  assert not os.path.exists(tmp_path / "other")  # nothing written

  missing = _run("tfcr-milvus-query", f"--servable={export_dir}", "--collection=nope",
                 "--user_id=u000")
  assert missing.returncode == 2
  assert missing.stderr.strip().splitlines() == [
      f"tfcr-milvus-query: error: No collection 'nope' in Milvus at {uri}; collections "
      f"there: items (tfcr-export --index=milvus writes one)."]


def test_filtered_searches_are_widened_by_the_condition_share():
  # ef 512 over a filter keeping half the items: 512 / 0.5 = 1024 candidates visited.
  assert milvus.search_params_for({"ef": 512}, 10, share=0.5) == {
      "metric_type": "IP", "params": {"ef": 1024}}
  # 1%: 51,200, capped at MAX_EF.
  assert milvus.search_params_for({"ef": 512}, 10, share=0.01)["params"] == {
      "ef": milvus.MAX_EF}
  assert milvus.search_params_for({"ef": 8}, 20)["params"] == {"ef": 20}  # ef >= k
  # nprobe 10 / 0.1 = 100 cells, but there are only 50.
  assert milvus.search_params_for({"nprobe": 10}, 10, 0.1, nlist=50)["params"] == {
      "nprobe": 50}
  assert milvus.filter_expression('say "hi"', True, ["a", "", "a", "b"]) == (
      'array_contains(conditions, "say \\"hi\\"") and item_id not in ["a", "b"]')
  assert milvus.filter_expression("c00", False) == ""
  assert milvus.filter_expression("", True) == ""


def test_an_index_left_by_pymilvus_retrying_create_index_is_waited_for(tmp_path):
  # During a long Lite build pymilvus may retry create_index; the retry then finds the
  # first call's index ("already exists"). That index is taken; one of another type is not.
  from pymilvus.exceptions import MilvusException  # pylint: disable=g-import-not-at-top
  from tfcr.index import milvus_writer  # pylint: disable=g-import-not-at-top
  store = milvus.connect(str(tmp_path / "retry.db"))
  vectors = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
  milvus_writer.write_collection(store, "items", [f"i{i}" for i in range(50)], vectors,
                                 [[] for _ in range(50)], milvus.index_choice("FLAT", 50),
                                 log=lambda _: None)
  store.release_collection("items")
  params = store.prepare_index_params()
  params.add_index(field_name=milvus.EMBEDDING, index_type="FLAT", metric_type=milvus.METRIC,
                   params={"params": {}})
  logged = []
  milvus_writer._create_index(store, "items", params, milvus.index_choice("FLAT", 50),
                              logged.append)
  assert "exists" in logged[0]
  with pytest.raises(MilvusException, match="already exists"):
    milvus_writer._create_index(store, "items", params, milvus.index_choice("HNSW", 50),
                                logged.append)
  store.close()
