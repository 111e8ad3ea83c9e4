"""ScaNN's TensorFlow ops, with its SIMD kernels matched to this CPU.

    from tfcr.index.scann_cpu import load_scann_ops
    scann_ops = load_scann_ops()  # instead of `from scann import scann_ops`

ScaNN picks its kernels at run time: AVX-512 or AVX2 when the CPU has them, else SSE4.
The x86 pip wheels (1.4.2 at least) compile its CPU probe without the platform macro it
depends on, so the probe answers "no" for every feature and every search runs the SSE4
kernels, on any CPU (upstream PR google-research#3374 adds the missing macro). ScaNN keeps
its choice in two exported flags (`research_scann::flags_internal::should_use_avx2`,
`...::should_use_avx512`); `load_scann_ops` sets them to what the CPU has, as ScaNN's probe
would, before any index is built or loaded.

Measured on a 1M-item index (benchmarks/bench_servable.py, docs/benchmarks.md): the same
neighbours and distances (to float rounding), and the search itself ~35% faster with
AVX-512 than with SSE4.

Only when the probe is broken: a ScaNN whose probe sees the CPU's SSE4.2 is left alone.
`TFCR_SCANN_SIMD` caps the level: `auto` (default), `avx2`, or `baseline` (ScaNN's own
choice, untouched); never above what the CPU has. AVX512-VNNI and AMX, experimental in
ScaNN, stay off.
"""

import ctypes
import logging
import os
import threading
from typing import Optional

import tensorflow as tf

from tfcr.errors import ConfigError

LEVELS = ("baseline", "avx2", "avx512")
ENV_VAR = "TFCR_SCANN_SIMD"
_FLAGS = {"avx2": "_ZN14research_scann14flags_internal15should_use_avx2E",
          "avx512": "_ZN14research_scann14flags_internal17should_use_avx512E"}
_TEST_CPU_FEATURE = "_ZN14research_scann4port14TestCPUFeatureENS0_10CPUFeatureE"
_SSE4_2 = 6  # research_scann::port::CPUFeature
# What ScaNN's probe asks of the CPU for each level (flags.cc), as /proc/cpuinfo names them.
_REQUIRES = {"avx2": {"avx2", "fma"}, "avx512": {"avx512f", "avx512dq", "avx512bw"}}

_lock = threading.Lock()
_library: Optional[ctypes.CDLL] = None
_applied: Optional[str] = None
_cpu_levels = {}  # cpuinfo path -> level: the file is read once


def cpu_level(cpuinfo: str = "/proc/cpuinfo") -> str:
  """The highest of LEVELS this CPU (and its OS) supports; "baseline" when unknown."""
  if cpuinfo not in _cpu_levels:
    _cpu_levels[cpuinfo] = _read_cpu_level(cpuinfo)
  return _cpu_levels[cpuinfo]


def _read_cpu_level(cpuinfo: str) -> str:
  try:
    with open(cpuinfo) as f:
      flags = next((line.split(":", 1)[1].split() for line in f
                    if line.startswith("flags")), [])
  except OSError:
    return "baseline"
  present = set(flags)
  for level in ("avx512", "avx2"):
    if _REQUIRES[level] <= present and (level != "avx512" or _REQUIRES["avx2"] <= present):
      return level
  return "baseline"


def requested_level() -> str:
  value = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
  if value not in ("auto",) + LEVELS[:2]:
    raise ConfigError(f"{ENV_VAR}={value!r}: expected auto, avx2 or baseline.")
  return value


@tf.autograph.experimental.do_not_convert  # called while tracing the servable: plain Python
def load_scann_ops():
  """`scann.scann_ops` (its TF ops registered), with the SIMD level set once per process."""
  from scann import scann_ops  # pylint: disable=g-import-not-at-top
  global _applied
  with _lock:
    if _applied is None:
      _applied = _match_cpu()
  return scann_ops


def applied_level() -> Optional[str]:
  """The level load_scann_ops set, "baseline" if it left ScaNN's choice, None before."""
  return _applied


def set_level(level: str) -> None:
  """Sets ScaNN's kernels to `level` (capped by the CPU): for benchmarks comparing them
  in one process. Not while another thread searches."""
  load_scann_ops()
  if level not in LEVELS:
    raise ValueError(f"Unknown level {level!r}; expected one of {', '.join(LEVELS)}.")
  library = _scann_library()
  if library is None:
    raise RuntimeError("This ScaNN build does not expose its SIMD flags.")
  _write_flags(library, _cap(level, cpu_level()))


def current_level() -> Optional[str]:
  """The level ScaNN's flags hold now; None if this ScaNN build does not expose them."""
  library = _scann_library()
  if library is None:
    return None
  flag = {name: ctypes.c_bool.in_dll(library, symbol).value for name, symbol in _FLAGS.items()}
  return "avx512" if flag["avx512"] else "avx2" if flag["avx2"] else "baseline"


def _cap(level: str, limit: str) -> str:
  return LEVELS[min(LEVELS.index(level), LEVELS.index(limit))]


def _scann_library() -> Optional[ctypes.CDLL]:
  global _library
  if _library is None:
    import scann  # pylint: disable=g-import-not-at-top
    path = os.path.join(os.path.dirname(scann.__file__), "scann_ops", "cc", "_scann_ops.so")
    try:
      library = ctypes.CDLL(path)  # already loaded by scann_ops: the same handle
      for symbol in list(_FLAGS.values()) + [_TEST_CPU_FEATURE]:
        getattr(library, symbol)
    except (OSError, AttributeError):
      return None
    _library = library
  return _library


def probe_works(library: ctypes.CDLL) -> bool:
  """Whether ScaNN's own CPU probe sees SSE4.2 (false in the broken pip builds)."""
  probe = getattr(library, _TEST_CPU_FEATURE)
  probe.restype, probe.argtypes = ctypes.c_bool, [ctypes.c_int]
  return probe(_SSE4_2)


def _write_flags(library: ctypes.CDLL, level: str) -> None:
  ctypes.c_bool.in_dll(library, _FLAGS["avx2"]).value = level in ("avx2", "avx512")
  ctypes.c_bool.in_dll(library, _FLAGS["avx512"]).value = level == "avx512"


def _match_cpu() -> str:
  """Called once scann_ops is imported (its library mapped)."""
  requested = requested_level()
  if requested == "baseline":
    return "baseline"
  library = _scann_library()
  if library is None:
    logging.info("ScaNN's SIMD flags are not exported by this build; its kernels are "
                 "left as it chose them.")
    return "baseline"
  if probe_works(library):  # ScaNN has already matched the CPU
    return "baseline"
  level = cpu_level()
  if requested != "auto":
    level = _cap(requested, level)
  if level != "baseline":
    _write_flags(library, level)
    logging.info("ScaNN's CPU probe sees no SIMD support (pip build); set its kernels to "
                 "%s, which this CPU has (%s=baseline keeps ScaNN's choice).", level, ENV_VAR)
  return level
