"""Where a servable export's memory goes: resident memory (RSS) per stage of one export.

    python benchmarks/export_memory.py --size=1000000 --index=scann

The export is bench_servable's scale-mode export (its synthetic catalog, `Servable(...)`,
then `tfcr.export.exporter.save_version`, as `tfcr-export` saves). A thread samples the
process's RSS every 20 ms; stages are marked by wrapping the functions the export calls
(the id tables, the index, ScaNN's build / tuning / serialization, the condition filter,
and inside `tf.saved_model.save` the meta graph, the checkpoint and the SavedModel proto).
Per stage it prints the RSS at its end and the most seen during it, then the process's
peak and the SavedModel's files. Results: docs/benchmarks.md ("Catalog scale").
"""

import argparse
import functools
import gc
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_servable as bench  # noqa: E402  (sets up tfcr and TensorFlow)
from tfcr.export.exporter import save_version  # noqa: E402
from tfcr.utils.resources import current_rss_bytes, folder_bytes, peak_rss_bytes  # noqa: E402


class StageTracer:
  """Samples RSS in a thread; `mark(name)` ends the current stage and starts `name`."""

  def __init__(self, every_seconds: float = 0.02):
    self.stage, self.peaks = "start", {}
    self._every = every_seconds
    threading.Thread(target=self._sample, daemon=True).start()

  def _sample(self):
    while True:
      stage = self.stage
      self.peaks[stage] = max(self.peaks.get(stage, 0), current_rss_bytes())
      time.sleep(self._every)

  def mark(self, name: str) -> None:
    time.sleep(2 * self._every)  # let the sampler see the stage's end
    gib = 2 ** 30
    print(f"[{time.strftime('%H:%M:%S')}] {self.stage:<24} end {current_rss_bytes() / gib:6.2f}"
          f" GiB, stage max {self.peaks.get(self.stage, 0) / gib:6.2f}, process peak "
          f"{peak_rss_bytes() / gib:6.2f}", flush=True)
    self.stage = name


def wrap(owner, name: str, label: str, mark) -> None:
  function = getattr(owner, name)

  @functools.wraps(function)
  def wrapped(*args, **kwargs):
    mark(label)
    result = function(*args, **kwargs)
    mark("after " + label)
    return result

  setattr(owner, name, wrapped)


def install(mark) -> None:
  import tfcr.export.servable as servable  # pylint: disable=import-outside-toplevel
  import tfcr.index.scann as scann_index  # pylint: disable=import-outside-toplevel
  from scann.scann_ops.py import scann_builder, scann_ops  # pylint: disable=import-outside-toplevel
  from tensorflow.python.checkpoint import checkpoint  # pylint: disable=import-outside-toplevel
  from tensorflow.python.saved_model import save  # pylint: disable=import-outside-toplevel
  for owner, name, label in [
      (servable, "_string_table", "id table"), (servable, "sample_queries", "tuning queries"),
      (servable, "make_index", "index"), (servable, "ConditionFilter", "condition filter"),
      (scann_builder.ScannBuilder, "build", "ScaNN build"),
      (scann_index.ScannIndex, "_tune", "leaf tuning"),
      (scann_ops.ScannSearcher, "serialize_to_module", "ScaNN serialize"),
      (save, "_build_meta_graph", "save: meta graph"),
      (checkpoint.TrackableSaver, "save", "save: checkpoint")]:
    wrap(owner, name, label, mark)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--size", type=int, default=1_000_000)
  parser.add_argument("--index", default="scann", choices=["scann", "brute_force"])
  parser.add_argument("--out", default=None, help="export dir (default: a temporary one)")
  args = parser.parse_args(argv)
  import tempfile  # pylint: disable=import-outside-toplevel
  out = args.out or tempfile.mkdtemp(prefix="tfcr-export-memory-")
  tracer = StageTracer()
  catalog = bench.Catalog(args.size, 1000, 0.75, 0)
  tower = bench.query_tower(catalog, 0)
  gc.collect()
  tracer.mark("Servable()")
  install(tracer.mark)
  servable = bench.Servable(tower, True, catalog.vocabularies, catalog.embeddings,
                            index=args.index, max_k=bench.MAX_K)
  tracer.mark("drop the catalog's array")
  catalog.embeddings = None  # as the exporter does once the servable is built
  gc.collect()
  tracer.mark("save_version")
  target = save_version(servable, catalog.vocabularies, out, 1)
  tracer.mark("done")
  print(f"Machine: {bench.machine_line()}; load average {os.getloadavg()}.")
  print(f"Peak RSS {peak_rss_bytes() / 2 ** 30:.2f} GiB; SavedModel "
        f"{folder_bytes(target) / 2 ** 20:,.0f} MiB:")
  for root, _, files in os.walk(target):
    for name in sorted(files):
      path = os.path.join(root, name)
      print(f"  {os.path.getsize(path) / 2 ** 20:10.1f} MiB  {os.path.relpath(path, target)}")
  if not args.out:
    import shutil  # pylint: disable=import-outside-toplevel
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
  main()
