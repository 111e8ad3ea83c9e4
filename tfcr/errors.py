"""The errors tfcr raises for a user's mistakes, apart from its own bugs.

Every message is one line that names the problem and the valid values, in the library's
terms (argument and field names, which the binaries' flags share), so that a binary can
print it as is: `tfcr.cli` turns any `TfcrError` into one line on stderr and exit code 2.
"""


class TfcrError(Exception):
  """Base of the errors a caller can fix (bad settings, unusable data)."""


class ConfigError(TfcrError, ValueError):
  """A setting is out of range, unknown, or at odds with another one or with the data."""


class DataError(TfcrError, ValueError):
  """The data cannot be trained on as given (a missing column, nothing left after
  filtering, an empty test split...)."""


class DataUnavailableError(TfcrError, RuntimeError):
  """A data set's files could not be had (no network, missing files...)."""
