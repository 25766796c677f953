"""The few exception types the command line turns into one clean line and exit code 2.

Anything else that escapes is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A mistake in what the user gave us: the message is the whole story, no traceback."""


class ConfigError(UserError):
    """A config file or a ``--set`` override is unreadable, unknown or out of range."""


class DataError(UserError):
    """A corpus file is missing, not UTF-8 or malformed; the message names file and line."""


class CheckpointError(UserError):
    """A checkpoint is missing, corrupt, foreign, or from a newer format."""
