"""TFDS's movielens/*-ratings mapped to tfcr's schema, on mocked TFDS data (no network)."""

import numpy as np
import pytest
import requests

import tfcr  # pylint: disable=unused-import  (Keras 2 before TensorFlow)
import tensorflow as tf
import tensorflow_datasets as tfds

from tfcr.data.movielens import tfds_ratings as tfds_movielens
from tfcr.errors import ConfigError, DataUnavailableError
from tfcr.data.movielens.tfds_ratings import load_tfds_movielens, split_title_year

# One 100k-ratings example per rating, denormalized as TFDS stores it:
# (user, age, is_male, occupation, zip, movie, title, genres, rating, timestamp).
_ROWS = [
    ("7", 57.0, True, "administrator", "91344", "1", "Toy Story (1995)",
     ["Animation", "Children", "Comedy"], 4.0, 891350900),
    ("7", 57.0, True, "administrator", "91344", "101", "Heavy Metal (1981)",
     ["Action", "Animation", "Horror", "Sci-Fi"], 3.0, 891350901),
    ("13", 47.0, True, "educator", "29206", "1", "Toy Story (1995)",
     ["Animation", "Children", "Comedy"], 5.0, 882140392),
    ("2", 53.0, False, "other", "94043", "267", "unknown", ["Unknown"], 1.0, 888550871),
    ("13", 47.0, True, "educator", "29206", "1300", "1-900 (1994)", ["Romance"], 3.0,
     882397040),
    ("2", 53.0, False, "other", "94043", "101", "Heavy Metal (1981)",
     ["Action", "Animation", "Horror", "Sci-Fi"], 2.0, 888550900),
]


def _as_dataset(builder, *args, **kwargs):
  """Replaces TFDS's random mock examples with `_ROWS`."""
  del args, kwargs
  genres = builder.info.features["movie_genres"].feature
  occupations = builder.info.features["user_occupation_label"]

  def examples():
    for user, age, male, occupation, zip_code, movie, title, names, rating, ts in _ROWS:
      yield {
          "user_id": user, "raw_user_age": age,
          "bucketized_user_age": 45.0, "user_gender": male,
          "user_occupation_text": occupation, "user_occupation_label": occupations.str2int(
              "other/not specified"), "user_zip_code": zip_code,
          "movie_id": movie, "movie_title": title,
          "movie_genres": [genres.str2int(n) for n in names],
          "user_rating": rating, "timestamp": ts,
      }

  return tf.data.Dataset.from_generator(
      examples, output_signature=builder.info.features.get_tensor_spec())


@pytest.mark.parametrize("title, expected", [
    ("Toy Story (1995)", ("Toy Story", 1995)),
    ("City of Lost Children, The (1995)", ("City of Lost Children, The", 1995)),
    ("Nothing (no year)", ("Nothing (no year)", 0)),
    ("1-900 (1994)", ("1-900", 1994)),
    ("Babylon 5 (1994) ", ("Babylon 5", 1994)),
    ("Seven (Se7en) (1995)", ("Seven (Se7en)", 1995)),
    ("unknown", ("unknown", 0)),
    ("", ("", 0)),
])
def test_split_title_year(title, expected):
  assert split_title_year(title) == expected


def test_random_mock_data_gives_valid_recdata():
  with tfds.testing.mock_data(num_examples=50, policy=tfds.testing.MockPolicy.USE_CODE):
    data = load_tfds_movielens("movielens/100k-ratings")
  data.validate()
  assert data.name == "movielens-100k"
  assert len(data.interactions) == 50
  assert 0 < len(data.users) <= 50 and 0 < len(data.catalog) <= 50
  assert sorted(data.users.features) == ["age_group", "gender", "occupation", "zip3"]
  assert set(data.users.features["gender"]) <= {"M", "F"}
  genres = data.catalog.features["genres"]
  assert all(isinstance(g, str) for g in genres.vocabulary)
  assert genres.num_rows == len(data.catalog)
  assert data.catalog.metadata["year"].dtype == np.int32
  assert all(isinstance(t, str) for t in data.catalog.metadata["title"])
  assert data.default_condition_feature == "genres"


def test_config_without_demographics_has_no_user_features():
  with tfds.testing.mock_data(num_examples=20, policy=tfds.testing.MockPolicy.USE_CODE):
    data = load_tfds_movielens("movielens/latest-small-ratings")
  assert data.name == "movielens-latest-small"
  assert data.users.features == {}
  assert len(data.interactions) == 20


def test_tables_rebuilt_from_denormalized_ratings():
  with tfds.testing.mock_data(as_dataset_fn=_as_dataset):
    data = load_tfds_movielens("movielens/100k-ratings")
  assert list(data.users.user_id) == ["2", "7", "13"]
  assert list(data.catalog.item_id) == ["1", "101", "267", "1300"]
  # Display titles as MovieLens's files give them: the year appended when known.
  assert list(data.catalog.metadata["title"]) == ["Toy Story (1995)", "Heavy Metal (1981)",
                                                  "unknown", "1-900 (1994)"]
  assert list(data.catalog.metadata["year"]) == [1995, 1981, 0, 1994]
  # TFDS's "Children" and "Unknown" are spelt as in MovieLens.
  assert data.catalog.features["genres"].to_lists() == [
      ["Animation", "Children's", "Comedy"], ["Action", "Animation", "Horror", "Sci-Fi"],
      ["unknown"], ["Romance"]]
  users = data.users.features
  assert list(users["age_group"]) == ["50-55", "56+", "45-49"]  # From raw_user_age.
  assert list(users["gender"]) == ["F", "M", "M"]
  assert list(users["occupation"]) == ["other", "administrator", "educator"]
  assert list(users["zip3"]) == ["940", "913", "292"]
  inter = data.interactions
  assert list(inter.user_index) == [1, 1, 2, 0, 2, 0]
  assert list(inter.item_index) == [0, 1, 0, 2, 3, 1]
  assert list(inter.rating) == [4.0, 3.0, 5.0, 1.0, 3.0, 2.0]
  assert inter.timestamp[0] == 891350900 and inter.timestamp.dtype == np.int64


def test_download_failure_becomes_data_unavailable(monkeypatch):
  def no_network(*args, **kwargs):
    try:
      raise requests.exceptions.ConnectionError("Max retries exceeded with url\nmore")
    except requests.exceptions.ConnectionError as e:
      raise tfds.download.DownloadError("Failed to get url ml-100k.zip") from e

  monkeypatch.setattr(tfds_movielens.tfds, "load", no_network)
  with pytest.raises(DataUnavailableError) as info:
    load_tfds_movielens("movielens/100k-ratings")
  message = str(info.value)
  assert "\n" not in message
  assert "movielens/100k-ratings" in message and "load_movielens_100k" in message


def test_other_errors_pass_through(monkeypatch):
  def broken(*args, **kwargs):
    raise KeyError("not a download problem")

  monkeypatch.setattr(tfds_movielens.tfds, "load", broken)
  with pytest.raises(KeyError):
    load_tfds_movielens("movielens/100k-ratings")


def test_rejects_non_ratings_configs():
  with pytest.raises(ConfigError, match="-ratings"):
    load_tfds_movielens("movielens/100k-movies")
