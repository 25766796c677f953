"""The shared pieces of the command line: the Typer app, the last line of defence (``run``), and
the options and helpers several commands use.

A user's error is one line on stderr and exit code 2; an unwritable standard output one line and
exit code 2; anything else is a bug: one line naming the saved traceback, exit code 1.
"""

from __future__ import annotations

import errno
import os
import sys
import tempfile
import traceback
from contextlib import contextmanager
from enum import Enum
from typing import Iterator

import typer
from rich.console import Console
from typer.core import TyperGroup

from lstm_tagger import __version__
from lstm_tagger.training.distributed import RankStopped
from lstm_tagger.errors import UserError
from lstm_tagger.threads import parse_threads


class _Group(TyperGroup):
    """Typer's command group, but every flag's --help line shows it as a flag: this Typer
    writes ``--scores <bool>`` for options that take no value, ``--help`` among them."""

    def get_params(self, ctx: typer.Context) -> list:
        return _as_flags(super().get_params(ctx))

    def get_command(self, ctx: typer.Context, name: str):
        command = super().get_command(ctx, name)
        if command is not None:
            _as_flags([*command.params, command.get_help_option(ctx)])
        return command

    def invoke(self, ctx: typer.Context):
        """Run the command; when the reader of standard output goes away (``lstm-tag eval | head``),
        stop quietly with exit code 0, as ``predict`` always did (click would exit 1)."""
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            _discard_stdout()
            raise typer.Exit(0) from None


def _as_flags(params: list) -> list:
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""  # the value column stays empty
    return params


app = typer.Typer(
    cls=_Group,
    name="lstm-tag",
    help="Train, use and evaluate (Bi)LSTM part-of-speech taggers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    rich_markup_mode="rich",
)


def _error(message: str) -> None:
    print(f"lstm-tag: error: {message}", file=sys.stderr)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn a known error into one line on stderr and exit code 2."""
    try:
        yield
    except UserError as exc:
        if not isinstance(exc, RankStopped):  # a distributed run's rank > 0: rank 0 reports the error
            for line in exc.for_cli().splitlines() or [""]:  # a config error has one line per problem
                _error(line)
        raise typer.Exit(2) from None


class _Console(Console):
    """Rich's console for a command's output: when the reader of a pipe goes away, the command
    ends as with any other output (``_Group.invoke``: exit code 0), not with rich's exit code 1."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))


def wide_console() -> Console:
    """The terminal, or when piped a console 140 wide: one row per table line rather than wrapped cells."""
    console = _Console()
    return console if console.is_terminal else _Console(width=140)


def _version(value: bool) -> None:
    if value:
        print(f"lstm-tag {__version__}")
        raise typer.Exit()


_options = {"debug": False}
"""Global options that ``run`` reads after the command: ``--debug``."""


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show the traceback of an internal error (a bug) instead of one line."),
) -> None:
    """Train, use and evaluate (Bi)LSTM part-of-speech taggers."""
    _options["debug"] = debug


def _stdout_failure() -> OSError | None:
    """The error that writing standard output's pending bytes gives (full disk, closed pipe), if any."""
    try:
        sys.stdout.flush()
    except OSError as exc:
        return exc
    return None


_STREAM_ERRORS = (errno.ENOSPC, errno.EPIPE, errno.EIO, errno.EBADF)


def _discard_stdout() -> None:
    """Standard output goes to /dev/null from here on, so that the interpreter's last flush stays quiet."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _stdout_lost(exc: OSError) -> None:
    """One line for an unwritable standard output, exit code 2; or, when its reader went away
    (a broken pipe: ``| head``), nothing and exit code 0."""
    _discard_stdout()
    if exc.errno == errno.EPIPE:
        raise SystemExit(0)
    _error(f"cannot write to standard output: {exc.strerror or exc}")
    raise SystemExit(2)


def _internal_error(exc: BaseException) -> None:
    """The last line of defence: one line, the traceback saved to a file, exit code 1."""
    text = "".join(traceback.format_exception(exc))
    try:
        fd, saved = tempfile.mkstemp(prefix="lstm-tag-traceback-", suffix=".txt")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        where = f"traceback saved to {saved}"
    except OSError:
        where = "the traceback could not be saved; rerun with --debug to see it"
    summary = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
    print(f"lstm-tag: internal error: {summary} ({where}). This is a bug: please report it with that traceback.", file=sys.stderr)
    raise SystemExit(1)


def run(args: list[str] | None = None) -> None:
    """The ``lstm-tag`` program: ``app`` behind a last line of defence.

    A user's error is one line and exit code 2 (``user_errors``); an unwritable standard output
    one line and exit code 2; anything else is a bug: one line naming the saved traceback and exit
    code 1, or the traceback itself with ``--debug``.
    """
    try:
        os.fstat(1)
    except OSError:
        _error("standard output is closed (redirect it, e.g. >/dev/null, to discard it)")
        raise SystemExit(2) from None
    try:
        app(args=args, prog_name="lstm-tag")
    except SystemExit:
        failure = _stdout_failure()
        if failure is not None:
            _stdout_lost(failure)
        raise
    except Exception as exc:  # noqa: BLE001 -- the point of this function
        if isinstance(exc, OSError) and exc.errno in _STREAM_ERRORS and exc.filename is None:
            _stdout_lost(exc)  # our file writes name their file (atomic_writer): a nameless one is a stream
        if _options["debug"]:
            raise
        _internal_error(exc)


def threads_text(threads: str | None) -> str | None:
    """``--threads`` as ``auto`` or a count, read by ``parse_threads`` (``AUTO``, ``' 4'``), for a
    config override or a child command; None stays None (not given)."""
    if threads is None:
        return None
    count = parse_threads(threads)
    return "auto" if count is None else str(count)


TRAIN_THREADS_HELP = "Same as --set train.threads=...: auto (measure and choose while training) or a fixed count."
THREADS_HELP = "Threads torch uses inside one operation: a count, or auto (one per core)."
PREDICT_THREADS_HELP = "Chunks of sentences tagged at once on the CPU, each by one thread: a count, or auto (one per core)."


class ServeCell(str, Enum):
    lstm = "lstm"
    gru = "gru"
    hand_lstm = "hand_lstm"
    hand_gru = "hand_gru"


CELL_HELP = "Serve the weights with another cell of the same family, e.g. a hand_lstm model with PyTorch's lstm kernel."


DEVICE_HELP = "Run the model on cpu, cuda, cuda:N or auto (CUDA when torch finds it)."


class InputFormat(str, Enum):
    text = "text"
    tokens = "tokens"
    conllu = "conllu"


class OutputFormat(str, Enum):
    text = "text"
    conllu = "conllu"
    json = "json"


def interactive() -> bool:
    """Whether standard input is a terminal (not a pipe, a file, or closed: ``<&-`` leaves no ``sys.stdin``)."""
    return sys.stdin is not None and not sys.stdin.closed and sys.stdin.isatty()


class CorpusFormat(str, Enum):
    conllu = "conllu"
    tsv = "tsv"


class TagColumn(str, Enum):
    upos = "upos"
    xpos = "xpos"
    feats = "feats"
