"""Shared start-up of tfcr's absl binaries (the flags themselves live in the binaries).

`run_binary(main, __name__, program="tfcr-train")` runs a binary so that every user
error ends as one line on stderr, "PROGRAM: error: MESSAGE", and exit code 2, with nothing
written: a bad flag value or a stray argument (absl's parse errors), and any
`tfcr.errors.TfcrError` that `main` raises (bad settings, unusable or unavailable data).
"""

import sys
from typing import Callable, Optional

from absl import app
from absl import flags
from absl import logging

from tfcr.errors import ConfigError, TfcrError

USER_ERROR_EXIT = 2


def fail(program: str, message) -> int:
  """Prints "PROGRAM: error: MESSAGE" (first line of it) on stderr; returns exit code 2."""
  lines = str(message).strip().splitlines() or [""]
  print(f"{program}: error: {lines[0]}", file=sys.stderr)
  return USER_ERROR_EXIT


def run_binary(main: Callable, module_name: str, program: Optional[str] = None) -> None:
  """`app.run(main)` for a binary whose flags are key flags of `module_name` (defined
  there, or adopted from a shared flags module).

  With `program`, user errors become one line and exit code 2 (module docstring);
  without, absl's own handling (the model server keeps TF Serving's).

  Under a console script (`tfcr-train`, ...) the main module is the generated wrapper,
  so absl's --help would list none of the binary's flags: make them key flags of the
  wrapper too.
  """
  for flag in flags.FLAGS.get_key_flags_for_module(module_name):
    flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
  if program is None:
    app.run(main)
    return

  def parse(argv):
    try:
      return flags.FLAGS(argv)
    except flags.Error as e:
      sys.exit(fail(program, e))

  def guarded_main(argv):
    try:
      return main(argv)
    except TfcrError as e:
      return fail(program, e)

  app.run(guarded_main, flags_parser=parse)


def reject_positional_arguments(argv) -> None:
  """A binary takes flags only: stray words are a user error."""
  if len(argv) > 1:
    raise ConfigError(f"unexpected arguments: {' '.join(argv[1:])} (flags only; see "
                      f"--helpfull).")


def quiet_logging_unless_asked() -> None:
  """absl INFO lines (TFDS, checkpoint sharding, tracing) drown a binary's own output:
  WARNING and above, unless --verbosity was given."""
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
