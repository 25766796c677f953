"""The few exception types the command line turns into one clean line and exit code 2.

Anything else that escapes is a bug and keeps its traceback.
"""


def one_line(exc: BaseException) -> str:
    """Another library's exception as one line for our messages: its text with every run of
    whitespace (line breaks too: a damaged file's bytes can hold them) made one space, or its type."""
    return " ".join(str(exc).split()) or type(exc).__name__


def joined(lines: list[str], most: int) -> str:
    """One message of many problems, a line each: the first ``most`` lines, then ``... and N more``
    (a config with ten thousand unknown keys gives 21 lines, not ten thousand)."""
    if len(lines) <= most:
        return "\n".join(lines)
    return "\n".join([*lines[:most], f"... and {len(lines) - most:,} more"])


class UserError(Exception):
    """A mistake in what the user gave us: the message is the whole story, no traceback.

    The message names Python arguments (``force=True``); ``options`` maps each to the
    command-line option that says the same (``--force``), which ``for_cli`` shows instead.
    """

    def __init__(self, message: str, options: dict[str, str] | None = None):
        super().__init__(message)
        self.options = options or {}

    def for_cli(self) -> str:
        """The message as the command line shows it: options in place of Python arguments."""
        text = str(self)
        for argument, option in self.options.items():
            text = text.replace(argument, option)
        return text


class ConfigError(UserError):
    """A config file or a ``--set`` override is unreadable, unknown or out of range."""


class DataError(UserError):
    """A corpus file is missing, not UTF-8 or malformed; the message names file and line."""


class CheckpointError(UserError):
    """A checkpoint is missing, corrupt, foreign, or from a newer format."""
