"""Prometheus text rendering, checked against hand-written expected lines."""

from serving.metrics import Registry


def test_counter_and_histogram_text():
  registry = Registry()
  registry.increment(":tensorflow:serving:request_count", {"model_name": "m", "status": "OK"})
  registry.increment(":tensorflow:serving:request_count", {"model_name": "m", "status": "OK"})
  registry.increment(":tensorflow:serving:request_count",
                     {"model_name": 'we"ird', "status": "NOT_FOUND"})
  for value in (5, 15, 15, 1000):
    registry.observe("lat", {"m": "x"}, value, buckets=(10, 20))
  text = registry.render()
  lines = text.splitlines()
  assert lines[0] == "# TYPE :tensorflow:serving:request_count counter"
  assert ':tensorflow:serving:request_count{model_name="m",status="OK"} 2' in lines
  assert ':tensorflow:serving:request_count{model_name="we\\"ird",status="NOT_FOUND"} 1' \
      in lines
  # Cumulative buckets: <=10: 1, <=20: 3, +Inf: 4; sum 1035.
  assert lines[-6:] == ["# TYPE lat histogram", 'lat_bucket{m="x",le="10"} 1',
                        'lat_bucket{m="x",le="20"} 3', 'lat_bucket{m="x",le="+Inf"} 4',
                        'lat_sum{m="x"} 1035', 'lat_count{m="x"} 4']
  assert text.endswith("\n") and "# HELP" not in text
  assert registry.counter_value(":tensorflow:serving:request_count",
                                {"status": "OK", "model_name": "m"}) == 2
