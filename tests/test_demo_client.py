"""tfcr.client: request bodies, decoding the servable's outputs, readable tables."""

import numpy as np
import pytest

from tfcr import client
from tfcr.data.schema import Catalog, MultiValued


def test_requests_pick_the_signature_and_pad_exclusions():
  plain = [client.Query("196", "Comedy", 5, "strict")]
  assert client.signature_for(plain) == "serving_default"
  assert client.request_rows(plain) == [
      {"user_id": "196", "condition": "Comedy", "k": 5, "filter": "strict"}]
  mixed = [client.Query("1", exclude=("a", "b")), client.Query("2")]
  assert client.signature_for(mixed) == "serving_exclusions"
  assert client.request_columns(mixed)["exclude"] == [["a", "b"], ["", ""]]
  with pytest.raises(ValueError, match="filter"):
    client.Query("1", filter="loose")


def test_outputs_become_results_without_padding():
  queries = [client.Query("1", "x", k=2), client.Query("2", k=3)]
  outputs = {"item_ids": np.array([[b"a", b"b", b""], [b"c", b"", b""]], dtype=object),
             "scores": np.array([[0.9, 0.5, -np.inf], [0.7, -np.inf, -np.inf]]),
             "condition_match": np.array([[True, False, False], [False, False, False]]),
             "num_scanned": np.array([4, 1])}
  first, second = client.results_from_outputs(queries, outputs)
  assert first.item_ids == ["a", "b"] and second.item_ids == ["c"]
  assert first.items[0] == client.Recommendation(1, "a", 0.9, True)
  assert first.match_rate == 0.5 and first.num_scanned == 4


def test_format_results_shows_titles_attributes_match_and_seen():
  genres = {"genres": MultiValued.from_lists([["Animation", "Comedy"], ["Action"]])}
  catalog = Catalog(item_id=np.array(["1", "2"], dtype=object), features=genres,
                    metadata={"title": np.array(["Toy Story (1995)", "GoldenEye (1995)"],
                                                dtype=object),
                              "year": np.array([1995, 1995], np.int32)})
  items = client.item_info_from_catalog(catalog, "genres")
  assert items["1"] == client.ItemInfo("Toy Story (1995)", ("Animation", "Comedy"))
  assert items["2"] == client.ItemInfo("GoldenEye (1995)", ("Action",))  # title as it is
  # Without title metadata (or with an empty title) an item shows its id.
  untitled = client.item_info_from_catalog(
      Catalog(item_id=np.array(["1", "2"], dtype=object), features=genres,
              metadata={"title": np.array(["", "GoldenEye (1995)"], dtype=object)}),
      "genres")
  assert untitled["1"] == client.ItemInfo("1", ("Animation", "Comedy"))
  assert client.item_info_from_catalog(
      Catalog(item_id=np.array(["7"], dtype=object)), "genres") == {
          "7": client.ItemInfo("7", ())}
  results = client.Results(client.Query("7", "Comedy", 2, "none"),
                           [client.Recommendation(1, "1", 0.8123, True),
                            client.Recommendation(2, "2", 0.5, False)], num_scanned=2)
  text = client.format_results(results, items, seen=["2"], attribute_name="genres")
  lines = text.splitlines()
  assert lines[0] == ('user 7, condition "Comedy", filter none: 2 items, '
                      '2 candidates scanned')
  assert lines[1].split() == ["#", "title", "genres", "score", "match", "seen"]
  assert "Toy Story (1995) [1]" in lines[2] and "Animation|Comedy" in lines[2]
  assert lines[2].split()[-2:] == ["0.812", "✓"]
  assert lines[3].split()[-3:] == ["0.500", "✗", "✓"]
  assert lines[-1].strip() == "50% of these have Comedy"
  unconditional = client.Results(client.Query("7"), results.items, 2)
  assert client.format_results(unconditional).splitlines()[2].split()[-1] == "-"
  frame = client.results_frame(results, items)
  assert list(frame["title"]) == ["Toy Story (1995)", "GoldenEye (1995)"]


def test_top_values():
  assert client.top_values(["b", "a", "b", "c", "a", "b"], n=2) == [("b", 3), ("a", 2)]
