"""MovieLens-100k from RecBole's atomic files: fetching, the TFDS builder, the RecData."""

import logging
import os
import sys

import numpy as np
import pytest

import tfcr  # pylint: disable=unused-import  (Keras 2 before TensorFlow)
from tfcr.data.movielens import files as movielens_tfds
from tfcr.data.movielens import recbole_files
from tfcr.errors import DataUnavailableError
from tfcr.data.movielens.files import load_movielens_100k, read_atomic_file
from tfcr.data.movielens.tables import age_group, display_title, zip3

# Rows deliberately out of id order; user "10" and item "12" check numeric sorting
# (as strings they would come right after "1").
_USERS = [
    "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token",
    "3\t30\tM\twriter\t32067",
    "1\t24\tM\ttechnician\t85711",
    "10\t56\tF\tretired\tT8H1N",
    "2\t53\tF\tother\t94043",
    "5\t15\tF\tstudent\t15213",
    "4\t44\tM\tengineer\t43537",
]
_ITEMS = [
    "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq",
    "1\tToy Story\t1995\tAnimation Children's Comedy",
    "12\tUsual Suspects, The\t1995\tCrime Thriller",
    "2\tGoldenEye\t1995\tAction Adventure Thriller",
    "3\tFour Rooms\t1995\tThriller",
    "4\tGet Shorty\t1995\tAction Comedy Drama",
    "5\tCopycat\t1995\tCrime Drama Thriller",
    "6\tNo Genres Movie\t1996\t",          # Empty genres.
    "7\tTwelve Monkeys\t\tDrama Sci-Fi",    # Empty year.
]
# (user, item, rating, timestamp); the row with item 99 names an unknown item.
_RATINGS = [
    ("10", "12", 4, 881250949), ("1", "1", 5, 874965758), ("1", "2", 3, 876893171),
    ("2", "1", 4, 888550871), ("2", "3", 2, 888551039), ("3", "4", 3, 889237247),
    ("3", "5", 4, 889237269), ("4", "6", 1, 892002353), ("4", "7", 5, 892003242),
    ("5", "12", 5, 875072484), ("5", "1", 3, 875072723), ("10", "2", 2, 880605158),
    ("1", "99", 4, 874965800), ("1", "3", 4, 876893119), ("2", "4", 3, 888552084),
    ("3", "6", 2, 889237455), ("4", "1", 4, 892002352), ("5", "2", 1, 875072262),
    ("10", "3", 3, 880605189), ("1", "4", 3, 876892948), ("2", "5", 4, 888552199),
    ("3", "7", 5, 889237640), ("4", "12", 4, 892003008), ("5", "3", 2, 875073153),
    ("10", "4", 5, 880606923), ("1", "5", 3, 876893228), ("2", "6", 1, 888553018),
    ("3", "1", 4, 889237412), ("4", "2", 3, 892002905), ("5", "4", 4, 875072604),
]
_INTER = (["user_id:token\titem_id:token\trating:float\ttimestamp:float"] +
          [f"{u}\t{i}\t{r}\t{t}" for u, i, r, t in _RATINGS])
_USER_IDS = ["1", "2", "3", "4", "5", "10"]
_ITEM_IDS = ["1", "2", "3", "4", "5", "6", "7", "12"]


def _write_raw(directory) -> str:
  os.makedirs(directory, exist_ok=True)
  for name, lines in [("ml-100k.inter", _INTER), ("ml-100k.item", _ITEMS),
                      ("ml-100k.user", _USERS)]:
    with open(os.path.join(directory, name), "w", encoding="utf-8") as f:
      f.write("\n".join(lines) + "\n")
  return str(directory)


@pytest.fixture(scope="module")
def raw_dir(tmp_path_factory):
  return _write_raw(tmp_path_factory.mktemp("raw"))


@pytest.fixture(scope="module")
def data(raw_dir, tmp_path_factory):
  return load_movielens_100k(str(tmp_path_factory.mktemp("data")), raw_dir=raw_dir)


def _failing_pip(monkeypatch, message="ERROR: no network here"):
  """Makes the pip download fail at once, without touching the network."""
  script = f"import sys; sys.stderr.write({message!r} + '\\n'); sys.exit(1)"
  monkeypatch.setattr(recbole_files, "_pip_download_command",
                      lambda dest, pip_args: [sys.executable, "-c", script])


def _fake_pip_wheel(monkeypatch, members):
  """Makes "pip download" write a fake RecBole wheel holding `members` {path: text}."""
  script = ("import sys, zipfile, os\n"
            "with zipfile.ZipFile(os.path.join(sys.argv[1], "
            "'recbole-1.2.1-py3-none-any.whl'), 'w') as z:\n"
            f"  for name, text in {members!r}.items(): z.writestr(name, text)\n")
  monkeypatch.setattr(
      recbole_files, "_pip_download_command",
      lambda dest, pip_args: [sys.executable, "-c",
                              f"import os; os.makedirs({dest!r}, exist_ok=True)\n" + script,
                              dest])


def test_counts_order_and_name(data):
  assert data.name == "movielens-100k"
  assert data.default_condition_feature == "genres"
  assert list(data.users.user_id) == _USER_IDS
  assert list(data.catalog.item_id) == _ITEM_IDS
  assert len(data.interactions) == len(_RATINGS) - 1
  data.validate()


def test_catalog_titles_years_genres(data):
  assert sorted(data.catalog.metadata) == ["title", "year"]
  # Display titles: the year appended when it is known.
  assert list(data.catalog.metadata["title"]) == [
      "Toy Story (1995)", "GoldenEye (1995)", "Four Rooms (1995)", "Get Shorty (1995)",
      "Copycat (1995)", "No Genres Movie (1996)", "Twelve Monkeys",
      "Usual Suspects, The (1995)"]
  year = data.catalog.metadata["year"]
  assert year.dtype == np.int32
  assert list(year) == [1995, 1995, 1995, 1995, 1995, 1996, 0, 1995]
  genres = data.catalog.features["genres"]
  assert list(data.catalog.features) == ["genres"]
  assert list(genres.vocabulary) == sorted(genres.vocabulary)
  assert [sorted(g) for g in genres.to_lists()] == [
      ["Animation", "Children's", "Comedy"], ["Action", "Adventure", "Thriller"],
      ["Thriller"], ["Action", "Comedy", "Drama"], ["Crime", "Drama", "Thriller"],
      [], ["Drama", "Sci-Fi"], ["Crime", "Thriller"]]


def test_user_features(data):
  f = data.users.features
  assert sorted(f) == ["age_group", "gender", "occupation", "zip3"]
  # Users in id order 1, 2, 3, 4, 5, 10.
  assert list(f["age_group"]) == ["18-24", "50-55", "25-34", "35-44", "<18", "56+"]
  assert list(f["gender"]) == ["M", "F", "M", "M", "F", "F"]
  assert list(f["occupation"]) == ["technician", "other", "writer", "engineer",
                                   "student", "retired"]
  assert list(f["zip3"]) == ["857", "940", "320", "435", "152", "T8H"]


def test_interactions_keep_file_order_and_map_ids(data):
  inter = data.interactions
  assert inter.user_index.dtype == np.int32 and inter.item_index.dtype == np.int32
  assert inter.rating.dtype == np.float32 and inter.timestamp.dtype == np.int64
  # First row "10  12  4  881250949": user "10" is row 5, item "12" is row 7.
  assert (inter.user_index[0], inter.item_index[0]) == (5, 7)
  assert (inter.rating[0], inter.timestamp[0]) == (4.0, 881250949)
  # The row after the dropped ("1", "99") one: "1  3  4  876893119".
  assert (inter.user_index[12], inter.item_index[12]) == (0, 2)
  assert (inter.rating[12], inter.timestamp[12]) == (4.0, 876893119)
  kept = [r for r in _RATINGS if r[1] != "99"]
  assert [(data.users.user_id[u], data.catalog.item_id[i]) for u, i in
          zip(inter.user_index, inter.item_index)] == [(u, i) for u, i, _, _ in kept]
  np.testing.assert_array_equal(inter.rating, [r for _, _, r, _ in kept])
  np.testing.assert_array_equal(inter.timestamp, [t for _, _, _, t in kept])


def test_unknown_item_is_dropped_and_logged(raw_dir, tmp_path, caplog):
  with caplog.at_level(logging.WARNING):
    data = load_movielens_100k(str(tmp_path), raw_dir=raw_dir)
  assert len(data.interactions) == len(_RATINGS) - 1
  assert "dropped 1 of 30 interactions" in caplog.text


def test_second_call_reuses_prepared_data(raw_dir, tmp_path, monkeypatch):
  load_movielens_100k(str(tmp_path), raw_dir=raw_dir)
  root = tmp_path / "tfcr_movielens100k"
  before = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
  assert any("interactions" in str(p) for p in before)

  def fail(*args, **kwargs):
    raise AssertionError("regenerated although already prepared")

  monkeypatch.setattr(movielens_tfds.Movielens100kFiles, "_split_generators", fail)
  again = load_movielens_100k(str(tmp_path), raw_dir=raw_dir)
  after = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
  assert after == before
  assert len(again.interactions) == len(_RATINGS) - 1


def test_unavailable_when_pip_fails(tmp_path, monkeypatch):
  _failing_pip(monkeypatch)
  with pytest.raises(DataUnavailableError) as info:
    load_movielens_100k(str(tmp_path))
  message = str(info.value)
  assert "\n" not in message
  assert "ERROR: no network here" in message
  assert recbole_files.raw_dir(str(tmp_path)) in message
  assert "ml-100k.inter" in message and "by hand" in message
  # Nothing half-written: no raw dir, no leftover temp dir.
  assert os.listdir(tmp_path / "movielens-100k") == []


def test_unavailable_with_real_pip_offline(tmp_path, monkeypatch):
  # A real pip run that cannot succeed and never touches the network: no index, no
  # config files, find-links pointing at an empty directory.
  empty = tmp_path / "empty"
  empty.mkdir()
  monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
  monkeypatch.setenv("PIP_FIND_LINKS", str(empty))
  monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
  with pytest.raises(DataUnavailableError, match="pip download recbole==1.2.1"):
    recbole_files.fetch_movielens_100k(str(tmp_path / "data"), pip_args=["--no-index"])
  assert not os.path.exists(recbole_files.raw_dir(str(tmp_path / "data")))


def test_unavailable_when_wheel_lacks_files(tmp_path, monkeypatch):
  _fake_pip_wheel(monkeypatch, {"recbole/__init__.py": ""})
  with pytest.raises(DataUnavailableError, match="lacks ml-100k.inter"):
    recbole_files.fetch_movielens_100k(str(tmp_path))
  assert os.listdir(tmp_path / "movielens-100k") == []


def test_fetch_extracts_from_wheel_then_caches(tmp_path, monkeypatch):
  members = {f"recbole/dataset_example/ml-100k/{name}": f"contents of {name}\n"
             for name in recbole_files.FILE_NAMES}
  members["recbole/dataset_example/ml-100k/ml-100k.kg"] = "not wanted\n"
  _fake_pip_wheel(monkeypatch, members)
  target = recbole_files.fetch_movielens_100k(str(tmp_path))
  assert target == recbole_files.raw_dir(str(tmp_path))
  assert sorted(os.listdir(target)) == sorted(recbole_files.FILE_NAMES)
  with open(os.path.join(target, "ml-100k.item")) as f:
    assert f.read() == "contents of ml-100k.item\n"
  assert os.listdir(tmp_path / "movielens-100k") == ["raw"]  # Temp dir cleaned up.
  _failing_pip(monkeypatch)  # Cached: pip must not run again.
  assert recbole_files.fetch_movielens_100k(str(tmp_path)) == target


def test_bad_raw_dir_is_unavailable(tmp_path):
  with pytest.raises(DataUnavailableError, match="lacks some of"):
    load_movielens_100k(str(tmp_path / "data"), raw_dir=str(tmp_path))


def test_atomic_file_columns_found_by_header_name(tmp_path):
  path = tmp_path / "reordered.user"
  path.write_text("zip_code:token\textra:float\tuser_id:token\tage:token\n"
                  "85711\t0.5\t1\t24\n\n94043\t1.5\t2\n")
  rows = list(read_atomic_file(str(path), required=("user_id", "age")))
  assert rows == [{"zip_code": "85711", "extra": "0.5", "user_id": "1", "age": "24"},
                  {"zip_code": "94043", "extra": "1.5", "user_id": "2", "age": ""}]
  with pytest.raises(DataUnavailableError, match="gender"):
    list(read_atomic_file(str(path), required=("gender",)))


def test_display_title():
  assert display_title("Star Wars", 1977) == "Star Wars (1977)"
  assert display_title("Twelve Monkeys", 0) == "Twelve Monkeys"
  assert display_title("Babylon 5 (1994)", 1994) == "Babylon 5 (1994)"  # already in it


def test_zip3():
  assert list(zip3(np.array(["85711", "T8H1N", "12"]))) == ["857", "T8H", "12"]
  assert list(zip3(np.array([b"94043"]))) == ["940"]


def test_age_group_boundaries():
  ages = [0, 7, 17, 18, 24, 25, 34, 35, 44, 45, 49, 50, 55, 56, 73]
  assert list(age_group(np.array(ages))) == [
      "", "<18", "<18", "18-24", "18-24", "25-34", "25-34", "35-44", "35-44",
      "45-49", "45-49", "50-55", "50-55", "56+", "56+"]
  # MovieLens-1M's bucket starts give the same labels.
  assert list(age_group(np.array([1, 18, 25, 35, 45, 50, 56]))) == [
      "<18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+"]


@pytest.mark.slow
def test_real_movielens_100k_from_recbole_wheel(tmp_path):
  data = load_movielens_100k(str(tmp_path))
  assert (len(data.users), len(data.catalog), len(data.interactions)) == (
      943, 1682, 100000)
  genres = data.catalog.features["genres"]
  assert len(genres.vocabulary) == 19 and "unknown" in genres.vocabulary
  drama = list(genres.vocabulary).index("Drama")
  assert int((genres.value_ids == drama).sum()) == 725
  assert data.catalog.metadata["title"][0] == "Toy Story (1995)"
  assert data.catalog.metadata["year"][0] == 1995
  assert set(data.users.features["age_group"]) <= {
      "<18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+"}
  assert set(data.users.features["gender"]) == {"M", "F"}
  assert set(data.interactions.rating) == {1.0, 2.0, 3.0, 4.0, 5.0}
