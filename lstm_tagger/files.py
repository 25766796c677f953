"""Atomic file writes: a reader never sees a half-written file, even after kill -9."""

from __future__ import annotations

import fcntl
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator

from .errors import UserError


@contextmanager
def atomic_writer(path: str | Path, error: type[UserError] = UserError) -> Iterator[BinaryIO]:
    """A binary file handle whose contents replace ``path`` only if the block ends without error.

    The data go to a temporary file beside ``path``, which is fsynced and renamed over
    ``path``; on any exception (or a write that fails: disk full, no permission, raised as
    ``error``) the temporary file is removed and an earlier ``path`` stays untouched. The file
    gets the permissions the umask allows (0644 under umask 022), as ``open`` would give it.
    """
    path = Path(path)
    tmp_name = None
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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


def read_bytes(path: Path, error: type[UserError], what: str) -> bytes:
    """The bytes of ``path``, or ``error`` with one line: ``PATH: <what> not found`` and the like."""
    with open_binary(path, error, what) as handle:
        try:
            return handle.read()
        except OSError as exc:
            raise error(f"{path}: cannot read: {exc.strerror}") from None


def open_binary(path: Path, error: type[UserError], what: str) -> BinaryIO:
    """``path`` opened for binary reading, or ``error`` with one line: ``PATH: <what> not found`` and the like."""
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise error(f"{path}: is a directory, expected a {what}") from None
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror}") from None


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
def run_lock(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``directory/.lock`` for one trainer at a time.

    The lock is an ``flock``: the kernel releases it when its process ends in any way,
    kill -9 included, so a lock left by a dead trainer is simply taken over.
    """
    path = directory / ".lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise UserError(f"{path}: cannot create the run lock: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise UserError(f"{directory}: another lstm-tag train (pid {holder}) is using this run directory") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)
