"""`--dataset=files`: your own tables on disk (Parquet shards, CSV, TSV, JSON lines),
checked against the DataFrames they were written from, end to end through tfcr-train,
and with each kind of bad input."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tfcr.data import synthetic
from tfcr.data.dataframes import to_dataframes
from tfcr.data.files import FileTables, load_files
from tfcr.errors import DataError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def frames():
  """Tiny synthetic tables with their own column names and a never-seen `brand`."""
  data = synthetic.generate(n_users=60, n_items=80, n_conditions=6, n_interactions=1500,
                            seed=1)
  inter, items, users = to_dataframes(data)
  inter = inter.rename(columns={"user_id": "uid", "item_id": "sku", "timestamp": "ts"})
  items = items.rename(columns={"item_id": "sku"}).drop(columns=["title", "year"])
  items["brand"] = [f"b{i % 4}" for i in range(len(items))]
  items["price"] = np.round(np.linspace(1, 50, len(items)), 2)
  # Three items nobody interacted with: they must still be served (cold start).
  items = pd.concat([items, pd.DataFrame({"sku": ["new1", "new2", "new3"],
                                          "topics": [["c00"], ["c01"], []],
                                          "brand": ["b2"] * 3, "price": [5.0, 25.0, 45.0]})],
                    ignore_index=True)
  users = users.rename(columns={"user_id": "uid"})
  return inter, items, users


def _write(frames, directory, kind):
  inter, items, users = frames
  os.makedirs(directory / "inter", exist_ok=True)
  flat = items.assign(topics=items["topics"].map("|".join))
  if kind == "parquet":  # two shards, topics as an Arrow list column
    for n, part in enumerate((inter.iloc[:700], inter.iloc[700:])):
      pq.write_table(pa.Table.from_pandas(part), directory / "inter" / f"part-{n}.parquet")
    pq.write_table(pa.Table.from_pandas(items), directory / "items.parquet")
    pq.write_table(pa.Table.from_pandas(users), directory / "users.parquet")
    return FileTables(str(directory / "inter"), str(directory / "items.parquet"),
                      str(directory / "users.parquet"), user_column="uid",
                      item_column="sku", timestamp_column="ts")
  if kind == "csv":
    inter.to_csv(directory / "inter" / "a.csv", index=False)
    flat.to_csv(directory / "items.csv", index=False)
    return FileTables(str(directory / "inter" / "*.csv"), str(directory / "items.csv"),
                      user_column="uid", item_column="sku", timestamp_column="ts")
  if kind == "tsv":
    inter.to_csv(directory / "inter" / "a.tsv", sep="\t", index=False)
    flat.assign(topics=items["topics"].map(";".join)).to_csv(directory / "items.tsv",
                                                             sep="\t", index=False)
    return FileTables(str(directory / "inter" / "a.tsv"), str(directory / "items.tsv"),
                      user_column="uid", item_column="sku", timestamp_column="ts",
                      list_separator=";")
  inter.to_json(directory / "inter" / "a.jsonl", orient="records", lines=True)
  items.to_json(directory / "items.jsonl", orient="records", lines=True)
  return FileTables(str(directory / "inter" / "a.jsonl"), str(directory / "items.jsonl"),
                    user_column="uid", item_column="sku", timestamp_column="ts")


@pytest.mark.parametrize("kind", ["parquet", "csv", "tsv", "json"])
def test_tables_read_back_as_written(frames, tmp_path, kind):
  inter, items, _ = frames
  data = load_files(_write(frames, tmp_path, kind))
  assert len(data.catalog) == len(items) and len(data.interactions) == len(inter)
  got_users = data.users.user_id[data.interactions.user_index]
  got_items = data.catalog.item_id[data.interactions.item_index]
  np.testing.assert_array_equal(got_users.astype(str), inter["uid"].astype(str))
  np.testing.assert_array_equal(got_items.astype(str), inter["sku"].astype(str))
  np.testing.assert_array_equal(data.interactions.timestamp, inter["ts"])
  row = {str(i): r for r, i in enumerate(data.catalog.item_id)}
  for _, item in items.iterrows():
    topics = data.catalog.features["topics"].row(row[str(item["sku"])])
    assert sorted(topics) == sorted(item["topics"])
    assert data.catalog.features["brand"].row(row[str(item["sku"])]) == [item["brand"]]
  if kind == "parquet":  # the users table's features came along
    assert set(data.users.features) == {"segment", "region"}


def test_iso_timestamps_are_seconds(frames, tmp_path):
  inter, items, _ = frames
  (tmp_path / "inter").mkdir()
  iso = inter.assign(ts=pd.to_datetime(inter["ts"], unit="s", utc=True)
                     .dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
  iso.to_csv(tmp_path / "inter" / "a.csv", index=False)
  items.assign(topics=items["topics"].map("|".join)).to_csv(tmp_path / "items.csv",
                                                            index=False)
  data = load_files(FileTables(str(tmp_path / "inter"), str(tmp_path / "items.csv"),
                               user_column="uid", item_column="sku", timestamp_column="ts"))
  np.testing.assert_array_equal(data.interactions.timestamp, inter["ts"])


def _csv_tables(tmp_path, inter, items, **kwargs):
  inter.to_csv(tmp_path / "inter.csv", index=False)
  items.to_csv(tmp_path / "items.csv", index=False)
  return FileTables(str(tmp_path / "inter.csv"), str(tmp_path / "items.csv"), **kwargs)


ITEMS = pd.DataFrame({"item_id": ["a", "b", "c"], "color": ["red", "blue", "red"]})
INTER = pd.DataFrame({"user_id": ["u1", "u1", "u2", "u2"], "item_id": ["a", "b", "c", "a"],
                      "timestamp": [1, 2, 3, 4]})


@pytest.mark.parametrize("change, message", [
    (lambda t: FileTables(t.interactions + ".missing", t.items), "no such file"),
    (lambda t: FileTables(t.interactions, t.items, item_column="sku"),
     "inter.csv: no column 'sku'; its columns are user_id, item_id, timestamp"),
    (lambda t: FileTables(t.interactions, t.items, rating_column="stars"),
     "no column 'stars'"),
    (lambda t: FileTables(t.interactions, t.items, file_format="xml"), "file_format"),
])
def test_bad_paths_and_columns_name_the_file_and_column(tmp_path, change, message):
  tables = _csv_tables(tmp_path, INTER, ITEMS)
  with pytest.raises((DataError, ValueError), match=message):
    load_files(change(tables))


def test_an_empty_table_is_refused(tmp_path):
  tables = _csv_tables(tmp_path, INTER.iloc[:0], ITEMS)
  with pytest.raises(DataError, match="inter.csv: the table is empty"):
    load_files(tables)


def test_an_item_listed_twice_must_agree(tmp_path):
  same = pd.concat([ITEMS, ITEMS.iloc[:1]])
  assert len(load_files(_csv_tables(tmp_path, INTER, same)).catalog) == 3
  other = pd.concat([ITEMS, pd.DataFrame({"item_id": ["a"], "color": ["green"]})])
  with pytest.raises(DataError, match="item 'a' is listed twice with different attributes"):
    load_files(_csv_tables(tmp_path, INTER, other))


def test_interactions_with_unknown_items_are_dropped_or_refused(tmp_path):
  stray = pd.concat([INTER, pd.DataFrame({"user_id": ["u1"], "item_id": ["zz"],
                                          "timestamp": [5]})])
  assert len(load_files(_csv_tables(tmp_path, stray, ITEMS)).interactions) == 4
  none = INTER.assign(item_id="zz")
  with pytest.raises(DataError, match="no interaction names a user and an item"):
    load_files(_csv_tables(tmp_path, none, ITEMS))


@pytest.mark.parametrize("column, values, message", [
    ("timestamp", ["mon", "tue", "wed", "thu"],
     "inter.csv, column 'timestamp': holds neither integer seconds nor ISO-8601 times"),
    ("user_id", ["u1", None, "u2", "u2"], "column 'user_id': 1 rows have no id"),
])
def test_columns_of_the_wrong_type_name_file_and_column(tmp_path, column, values, message):
  with pytest.raises(DataError, match=message):
    load_files(_csv_tables(tmp_path, INTER.assign(**{column: values}), ITEMS))


def test_float_ids_are_refused(tmp_path):
  # CSV ids are read as text; a Parquet file can hold float ids, which name nothing.
  pq.write_table(pa.Table.from_pandas(INTER.assign(item_id=[1.5, 2.5, 3.5, 1.5])),
                 tmp_path / "inter.parquet")
  ITEMS.to_csv(tmp_path / "items.csv", index=False)
  with pytest.raises(DataError, match="inter.parquet, column 'item_id': ids must be strings "
                                      "or integers, not double"):
    load_files(FileTables(str(tmp_path / "inter.parquet"), str(tmp_path / "items.csv")))


def test_a_non_numeric_rating_column_is_refused(tmp_path):
  tables = _csv_tables(tmp_path, INTER.assign(stars=["x", "y", "z", "w"]), ITEMS,
                       rating_column="stars")
  with pytest.raises(DataError, match="'stars' is not numeric"):
    load_files(tables)


def _train(*args):
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
  return subprocess.run([sys.executable, "-m", "trainer.train", *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=300)


def test_train_export_and_a_strict_query_on_a_new_condition_column(frames, tmp_path):
  tables = _write(frames, tmp_path, "parquet")
  model_dir, export_dir = tmp_path / "model", tmp_path / "export"
  result = _train("--dataset=files", f"--interactions={tables.interactions}/*.parquet",
                  f"--items={tables.items}", f"--users={tables.users}", "--user_column=uid",
                  "--item_column=sku", "--timestamp_column=ts", "--condition_feature=brand",
                  "--epochs=2", "--batch_size=64", "--embedding_dim=8", "--hidden_units=16",
                  "--user_features=segment,region", "--item_features=topics,price",
                  "--max_vocabulary=30", "--hash_buckets=5",
                  f"--model_dir={model_dir}", f"--export_dir={export_dir}",
                  "--export_index=brute_force", "--verbose=0")
  assert result.returncode == 0, result.stderr[-2000:]
  recorded = json.loads((model_dir / "data.json").read_text())
  assert recorded["source"]["dataset"] == "files"
  assert recorded["source"]["files"]["item_column"] == "sku"
  from tfcr.client import SavedModelClient  # pylint: disable=g-import-not-at-top
  client = SavedModelClient(str(export_dir))
  items = frames[1]
  brand_of = dict(zip(items["sku"].astype(str), items["brand"]))
  answer = client.recommend(str(frames[0]["uid"].iloc[0]), "b2", k=10, filter="strict")
  assert len(answer.items) == 10
  assert all(brand_of[r.item_id] == "b2" and r.condition_match for r in answer.items)
  # Every b2 item, the three never interacted with included, is in the index; a user
  # unknown to the model still gets them.
  b2 = sorted(sku for sku, brand in brand_of.items() if brand == "b2")
  for user in (str(frames[0]["uid"].iloc[0]), "someone-new"):
    everything = client.recommend(user, "b2", k=len(b2), filter="strict")
    assert sorted(r.item_id for r in everything.items) == b2
  config = json.loads((model_dir / "config.json").read_text())
  assert config["item_features"] == ["topics", "price"] and config["max_vocabulary"] == 30


def test_binary_bad_input_is_one_line_and_writes_nothing(tmp_path):
  tables = _csv_tables(tmp_path, INTER, ITEMS)
  for extra, message in ((["--item_column=sku"], "no column 'sku'"),
                         (["--condition_feature=size"], "Unknown condition_feature='size'"),
                         (["--condition_feature=color", "--item_features=size"],
                          "Unknown item_features='size'; valid values: color"),
                         (["--condition_feature=color", "--user_features=age"],
                          "Unknown user_features='age'"),
                         (["--hash_buckets=-3"], "hash_buckets must be >= 0"),
                         ([], "")):
    args = ["--dataset=files", f"--interactions={tables.interactions}",
            f"--model_dir={tmp_path / 'model'}", "--epochs=1", "--batch_size=2"]
    if extra or message:
      args.append(f"--items={tables.items}")
    result = _train(*args, *extra)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("tfcr-train: error: ") and message in lines[0]
    assert not (tmp_path / "model").exists()


@pytest.mark.slow  # real MovieLens-100k, three short trainings
def test_movielens_as_files_trains_like_movielens(tmp_path_factory):
  from tfcr.data.movielens.files import load_movielens_100k  # pylint: disable=g-import-not-at-top
  from tfcr.training.config import TrainConfig  # pylint: disable=g-import-not-at-top
  from tfcr.training.loop import train_and_evaluate  # pylint: disable=g-import-not-at-top
  data = load_movielens_100k(str(tmp_path_factory.getbasetemp() / "movielens-data"))
  inter, items, users = to_dataframes(data)
  items = items.drop(columns=["title", "year"])
  root = tmp_path_factory.mktemp("movielens-files")
  (root / "pq").mkdir()
  half = len(inter) // 2
  pq.write_table(pa.Table.from_pandas(inter.iloc[:half]), root / "pq" / "part-0.parquet")
  pq.write_table(pa.Table.from_pandas(inter.iloc[half:]), root / "pq" / "part-1.parquet")
  pq.write_table(pa.Table.from_pandas(items), root / "items.parquet")
  pq.write_table(pa.Table.from_pandas(users), root / "users.parquet")
  names = {"user_id": "viewer", "item_id": "film", "timestamp": "when", "rating": "stars"}
  inter.rename(columns=names).to_csv(root / "inter.csv", index=False)
  items.rename(columns={"item_id": "film", "genres": "kinds"}).assign(
      kinds=lambda f: f["kinds"].map(";".join)).to_csv(root / "items.csv", index=False)
  users.rename(columns={"user_id": "viewer"}).to_csv(root / "users.csv", index=False)
  sources = {
      "movielens": (data, "genres"),
      "parquet": (load_files(FileTables(str(root / "pq"), str(root / "items.parquet"),
                                        str(root / "users.parquet"), rating_column="rating")),
                  "genres"),
      "csv": (load_files(FileTables(str(root / "inter.csv"), str(root / "items.csv"),
                                    str(root / "users.csv"), user_column="viewer",
                                    item_column="film", timestamp_column="when",
                                    rating_column="stars", list_separator=";")), "kinds"),
  }
  metrics = {}
  for name, (source, condition) in sources.items():
    config = TrainConfig(condition_feature=condition, epochs=3, verbose=0,
                         model_dir=str(tmp_path_factory.mktemp(name)))
    metrics[name] = train_and_evaluate(config, source)
  for name in ("parquet", "csv"):
    for key in ("recall@10", "recall@100", "topic_match@10", "topic_match@100"):
      assert abs(metrics[name][key] - metrics["movielens"][key]) <= 0.01, (name, key, metrics)
  assert metrics["movielens"]["recall@100"] > 0.5  # it did learn something


def test_a_year_column_gives_the_derived_decade(tmp_path):
  from tfcr.data.prepare import prepare  # pylint: disable=g-import-not-at-top
  items = ITEMS.assign(year=[1994, 2003, None])
  data = load_files(_csv_tables(tmp_path, INTER, items))
  prepared = prepare(data, "decade", test_per_user=1, item_features=["year"])
  assert prepared.data.catalog.features["decade"].to_lists() == [["1990s"], ["2000s"], []]
  # ...and the year itself is a numeric candidate-tower feature (unknown: no value).
  assert prepared.item_features[0].kind == "numeric"
  assert prepared.item_features[0].table[2].tolist() == [-1]
