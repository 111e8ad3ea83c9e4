"""What machine a measurement ran on: for benchmark tables and the comparison report.

Benchmarks print ratios measured side by side, but the numbers still depend on the
machine, so every result names it the same way.
"""

import os
import platform
import time
from typing import Dict, Optional


def cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str:
  """The CPU's model name ("Intel(R) Xeon(R) ..."), or platform.processor()."""
  try:
    with open(cpuinfo) as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or "unknown CPU"


def usable_cpus() -> int:
  """CPUs this process may run on (what `nproc` prints), else os.cpu_count()."""
  try:
    return len(os.sched_getaffinity(0))
  except (AttributeError, OSError):
    return os.cpu_count() or 1


def memory_gib() -> Optional[float]:
  try:
    return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
  except (ValueError, OSError, AttributeError):
    return None


def machine_description() -> Dict[str, object]:
  """{"cpu", "cpu_count", "memory_gib", "platform", "python", "tensorflow", "gpus",
  "load_average", "date"}; imports TensorFlow."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return {"cpu": cpu_model(), "cpu_count": usable_cpus(), "memory_gib": memory_gib(),
          "platform": platform.platform(), "python": platform.python_version(),
          "tensorflow": tf.__version__,
          "gpus": len(tf.config.list_physical_devices("GPU")),
          "load_average": round(os.getloadavg()[0], 2),
          "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def machine_line(description: Optional[Dict[str, object]] = None) -> str:
  """One line for a benchmark table: "2 CPUs (Intel ...), 24 GiB, Python 3.11.7, ..."."""
  d = description or machine_description()
  return (f"{d['cpu_count']} CPUs ({d['cpu']}), {d['memory_gib']} GiB, {d['gpus']} GPUs; "
          f"Python {d['python']}, TensorFlow {d['tensorflow']}; load average at start "
          f"{d['load_average']}; {d['date']}")
