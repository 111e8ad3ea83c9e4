"""What a process has used: its peak resident memory, a folder's size on disk."""

import os
import resource


def peak_rss_bytes() -> int:
  """The most resident memory this process has held so far (Linux: ru_maxrss in KiB)."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def current_rss_bytes() -> int:
  """The resident memory this process holds now."""
  with open("/proc/self/statm") as f:
    return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def folder_bytes(path: str) -> int:
  """The total size of the files under `path`."""
  return sum(os.path.getsize(os.path.join(root, name))
             for root, _, names in os.walk(path) for name in names)
