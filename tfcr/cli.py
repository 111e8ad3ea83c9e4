"""Shared start-up of tfcr's absl binaries (the flags themselves live in the binaries)."""

import sys
from typing import Callable, Optional

from absl import app
from absl import flags
from absl import logging


def run_binary(main: Callable, module_name: str,
               flags_parser: Optional[Callable] = None) -> None:
  """`app.run(main)` for a binary whose flags are key flags of `module_name` (defined
  there, or adopted from a shared flags module).

  Under a console script (`tfcr-train`, ...) the main module is the generated wrapper,
  so absl's --help would list none of the binary's flags: make them key flags of the
  wrapper too.
  """
  for flag in flags.FLAGS.get_key_flags_for_module(module_name):
    flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
  if flags_parser is None:
    app.run(main)
  else:
    app.run(main, flags_parser=flags_parser)


def reject_positional_arguments(argv) -> None:
  """A binary takes flags only: stray words are a usage error (exit 1 with usage)."""
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")


def quiet_logging_unless_asked() -> None:
  """absl INFO lines (TFDS, checkpoint sharding, tracing) drown a binary's own output:
  WARNING and above, unless --verbosity was given."""
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
