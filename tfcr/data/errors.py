"""Errors raised by tfcr's data sources."""


class DataUnavailableError(RuntimeError):
  """A data set's files could not be had (no network, missing files...).

  The message is one line saying what failed and how to fix it, so that a command-line
  tool can print it as is instead of a traceback.
  """
