"""Atomic file writes: a reader never sees a half-written file, even after kill -9."""

from __future__ import annotations

import os
import sys
import re
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator

from lstm_tagger.errors import UserError
from lstm_tagger.limits import MAX_LINE_BYTES


@contextmanager
def atomic_writer(path: str | Path, error: type[UserError] = UserError) -> Iterator[BinaryIO]:
    """A binary file handle whose contents replace ``path`` only if the block ends without error.

    The data go to a temporary file beside ``path``, which is fsynced and renamed over
    ``path``; on any exception (or a write that fails: disk full, no permission, raised as
    ``error``) the temporary file is removed and an earlier ``path`` stays untouched. The file
    gets the permissions the umask allows (0644 under umask 022), as ``open`` would give it.
    """
    path = Path(path)
    refuse_non_regular(path, error)
    tmp_name = None
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=TMP_SUFFIX, dir=path.parent)
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes it 0600
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
        tmp_name = None
        _fsync_dir(path.parent)
    except OSError as exc:
        raise error(f"{path}: cannot write: {exc.strerror or exc}") from None
    finally:
        if tmp_name is not None:
            try:
                os.unlink(tmp_name)
            except OSError:
                pass


def _umask() -> int:
    """The process's umask (reading it means setting it: set it straight back)."""
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def make_dir(folder: str | Path, error: type[UserError] = UserError, what: str = "") -> Path:
    """Create ``folder`` and its parents unless it exists, or raise ``error`` with one line:
    ``FOLDER: cannot create[ what]: reason``. Returns ``folder`` as a Path."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise error(f"{folder}: cannot create{' ' + what if what else ''}: {exc.strerror or exc}") from None
    return folder


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically (see ``atomic_writer``)."""
    with atomic_writer(path) as handle:
        handle.write(data)


def read_bytes(path: Path, error: type[UserError], what: str, limit: int | None = None) -> bytes:
    """The bytes of ``path``, or ``error`` with one line: ``PATH: <what> not found`` and the like.

    Without ``limit``, ``path`` must be a regular file (a device or a pipe could be endless);
    with it, any readable file of at most ``limit`` bytes.
    """
    with open_binary(path, error, what, streams=limit is not None) as handle:
        try:
            data = handle.read() if limit is None else handle.read(limit + 1)
        except OSError as exc:
            raise error(f"{path}: cannot read: {exc.strerror}") from None
    if limit is not None and len(data) > limit:
        raise error(f"{path}: {what} is larger than the limit of {limit:,} bytes")
    return data


def bounded_lines(handle: BinaryIO, name: str, error: type[UserError], limit: int = MAX_LINE_BYTES) -> Iterator[bytes]:
    """The lines of a stream (stdin, a pipe, ``/dev/zero``), each at most ``limit`` bytes: a longer
    one is an ``error`` naming ``name`` and the line, read no further than the limit."""
    number = 0
    while True:
        line = handle.readline(limit + 1)
        if not line:
            return
        number += 1
        if len(line) > limit and not (len(line) == limit + 1 and line.endswith(b"\n")):
            raise _too_long(name, number, limit, error)
        yield line


def _too_long(name: str, number: int, limit: int, error: type[UserError]) -> UserError:
    return error(f"{name}:{number}: line longer than the limit of {limit:,} bytes")


def _line_ends(data: bytes) -> int:
    """How many lines end in ``data``: at LF, CR, or CR LF (one)."""
    return data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")


def bounded_blocks(
    handle: BinaryIO, name: str, error: type[UserError], limit: int = MAX_LINE_BYTES, size: int = 1 << 16
) -> Iterator[bytes]:
    """A stream in blocks of whole lines (ended by LF, CR or CR LF; the last by the stream's end),
    each line at most ``limit`` bytes: ``bounded_lines`` for raw text, read ``size`` bytes at a time.

    A line's start is held back until its end arrives, so a longer line (``/dev/zero``, a huge
    file without a line break) is an ``error`` naming ``name`` and the line as soon as
    ``limit + 1`` bytes of it are read, before anything downstream spends time on it.
    """
    size = max(1, min(size, limit))  # so that only a block's first line can be too long
    held = b""  # the start of a line whose end has not come yet
    ended = 0  # lines ended before ``held``
    after_cr = False  # the last block yielded ended with CR: an LF next ends no other line
    read = getattr(handle, "read1", handle.read)  # what has come, up to ``size``: a pipe's lines flow as typed
    while block := read(size):
        end = max(block.rfind(b"\n"), block.rfind(b"\r")) + 1
        first = min(i for i in (block.find(b"\n"), block.find(b"\r"), len(block)) if i >= 0)
        if len(held) + first > limit:
            raise _too_long(name, ended + 1, limit, error)
        if end:
            lines, held = held + block[:end], block[end:]
            ended += _line_ends(lines) - (after_cr and lines.startswith(b"\n"))
            after_cr = lines.endswith(b"\r")
            yield lines
        else:
            held += block
    if held:
        yield held


def file_kind(mode: int) -> str:
    """What ``os.stat`` found, in words: ``a directory``, ``a character device``, ``a pipe (FIFO)``..."""
    for test, kind in (
        (stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return kind
    return "a regular file" if stat.S_ISREG(mode) else "not a regular file"


def open_binary(path: Path, error: type[UserError], what: str, streams: bool = False) -> BinaryIO:
    """``path`` opened for binary reading, or ``error`` with one line: ``PATH: <what> not found``,
    ``PATH: is a directory, expected a <what>`` and the like. Only a regular file is opened,
    unless ``streams`` (the caller reads with a bound): a pipe is refused before it can block."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror}") from None
    if stat.S_ISDIR(mode) or not (stat.S_ISREG(mode) or streams):
        raise error(f"{path}: is {file_kind(mode)}, expected a {what}")
    try:
        return open(path, "rb")
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror}") from None


def refuse_non_regular(path: Path, error: type[UserError] = UserError) -> None:
    """An ``error`` if ``path`` exists and is not a regular file: an output never replaces a
    directory, a device or a pipe with a regular file."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if not stat.S_ISREG(mode):
        raise error(f"{path}: is {file_kind(mode)}; refusing to replace it with a file")


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether ``a`` and ``b`` are one file, after links (symbolic or hard); never when either is missing."""
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return False


def check_writable(folder: Path, error: type[UserError] = UserError) -> None:
    """An ``error`` unless a file can be created in ``folder`` (tried, then removed): checked before
    long work whose result goes there. A permission test would not do: root passes every one, and
    a read-only file system none."""
    try:
        fd, name = tempfile.mkstemp(prefix=".lstm-tag-probe.", suffix=TMP_SUFFIX, dir=folder)
    except OSError as exc:
        raise error(f"{folder}: cannot write: {exc.strerror or exc}") from None
    os.close(fd)
    os.unlink(name)


def check_output(path: Path, force: bool, error: type[UserError] = UserError) -> None:
    """Refuse to write ``path`` if it exists (unless ``force``) or is not a regular file (always)."""
    refuse_non_regular(path, error)
    if path.exists() and not force:
        raise error(f"{path}: exists already (use force=True to replace it)", {"force=True": "--force"})


TMP_SUFFIX = ".tmp"
_TMP_NAME = re.compile(r"^\..+\.(\d+)\.[a-z0-9_]+" + re.escape(TMP_SUFFIX) + "$")
"""``atomic_writer``'s temporary files: ``.<name>.<pid>.<random>.tmp``."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):  # exists but not ours to signal, or not a pid: keep the file
        return True
    return True


def remove_stale_temporaries(directory: Path) -> list[Path]:
    """Remove the temporary files that interrupted atomic writes left in ``directory``
    (those whose writer's pid is no longer running); returns what was removed."""
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        found = _TMP_NAME.match(name)
        if found is None or _alive(int(found.group(1))):
            continue
        try:
            os.unlink(directory / name)
            removed.append(directory / name)
        except OSError:
            pass
    return removed


def atomic_write_text(path: str | Path, text: str) -> None:
    """``atomic_write_bytes`` for UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def open_input(file: str, error: type[UserError]) -> Iterator[tuple[BinaryIO, str]]:
    """``file`` opened for binary reading (``-``: stdin) and the name its messages use.

    A closed standard input (``<&-``: Python then has no ``sys.stdin``) is an ``error``."""
    if file == "-":
        if sys.stdin is None or sys.stdin.closed:
            raise error("<stdin>: standard input is closed: nothing to read")
        yield sys.stdin.buffer, "<stdin>"
        return
    try:
        handle = open(file, "rb")
    except FileNotFoundError:
        raise error(f"{file}: file not found") from None
    except OSError as exc:
        raise error(f"{file}: cannot read: {exc.strerror}") from None
    with handle:
        yield handle, file
