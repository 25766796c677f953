"""Download Universal Dependencies treebanks from their official GitHub repositories.

Standard library only (``urllib``); Rich draws the progress bar. Every file is streamed
into a temporary file beside its final name, hashed on the way, checked against the
SHA-256 of the release, and only then renamed into place: nothing half-written or
corrupt ever carries the final name.

Only the treebanks in ``KNOWN`` are supported. Their file names differ per treebank
(``en_ewt-ud``, ``fr_gsd-ud``, ``zh_gsdsimp-ud`` ...), so they cannot be derived from a
``UD_<Language>-<Treebank>`` name offline; adding one is one entry below, with the
checksums of the pinned release.
"""

from __future__ import annotations

import hashlib
import http.client
import re
import sys
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from .errors import UserError
from .files import atomic_writer, make_dir

RAW_ROOT = "https://raw.githubusercontent.com/UniversalDependencies"
SPLITS = ("train", "dev", "test")
CHUNK = 1 << 16

KNOWN: dict[str, dict] = {
    "ud_english_ewt": {
        "repo": "UD_English-EWT",
        "tag": "r2.15",
        "prefix": "en_ewt-ud",
        "sha256": {
            "en_ewt-ud-train.conllu": "3fb78e2b55482c8ee00caa653af436c88c9e5bc9a73ce26e4ae3ddc79d2b7e7b",
            "en_ewt-ud-dev.conllu": "531a54ff90d6ab12201c5a50c3e78e6ddac4de69abc4bce5d275d3cd29efe2b6",
            "en_ewt-ud-test.conllu": "e266e515a0a7547657ed3d90d9ba46487d6bd251f27ad4269d4e8a427c8555cd",
        },
    },
}

_UD_NAME = re.compile(r"^UD_[A-Za-z_]+-[A-Za-z0-9]+$")


class DownloadError(UserError):
    """A treebank name is unknown, the server cannot be reached, or a file arrived corrupt."""


def _resolve(name: str) -> str:
    """The ``KNOWN`` key for ``name``: ``ud_english_ewt`` or its repository name ``UD_English-EWT``."""
    key = name.strip().lower().replace("-", "_")
    if key in KNOWN:
        return key
    known = ", ".join(f"{k} ({v['repo']})" for k, v in sorted(KNOWN.items()))
    if _UD_NAME.match(name.strip()):
        raise DownloadError(
            f"{name}: not a known treebank; its file names cannot be derived offline. Known: {known}"
        )
    raise DownloadError(f"{name}: not a treebank name. Known: {known}")


def treebank_files(name: str) -> tuple[str, list[str], dict[str, str]]:
    """``name`` -> (base URL, file names, known SHA-256 per file (may be empty)).

    Accepts a ``KNOWN`` key (``ud_english_ewt``) or its repository name (``UD_English-EWT``),
    in any case; anything else raises ``DownloadError`` listing the known names.
    """
    entry = KNOWN[_resolve(name)]
    base = f"{RAW_ROOT}/{entry['repo']}/{entry['tag']}"
    files = [f"{entry['prefix']}-{split}.conllu" for split in SPLITS]
    return base, files, dict(entry.get("sha256", {}))


def download_treebank(
    name: str,
    dest_root: Path = Path("data"),
    base_url: str | None = None,
    progress: bool | None = None,
    timeout: float = 30.0,
) -> Path:
    """Download train/dev/test ``.conllu`` into ``dest_root/<key>/`` and return that folder.

    ``<key>`` is the ``KNOWN`` key, lower-cased (``data/ud_english_ewt``). ``base_url``
    replaces the URL root (files come from ``{base_url}/{file}``). Files already present
    with the right SHA-256 are skipped. ``progress`` shows a Rich bar on stderr; by default
    only when stderr is a terminal. Any failure raises ``DownloadError`` with one line and
    leaves earlier files untouched.
    """
    key = _resolve(name)
    root, files, sums = treebank_files(key)
    if base_url is not None:
        root = base_url.rstrip("/")
    if progress is None:
        progress = sys.stderr.isatty()
    folder = Path(dest_root) / key
    make_dir(folder, DownloadError)
    for file in files:
        target = folder / file
        expected = sums.get(file)
        if expected and target.is_file() and _sha256_of(target) == expected:
            continue
        _fetch(f"{root}/{file}", target, expected, progress, timeout)
    return folder


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, BaseException):
        reason = getattr(reason, "strerror", None) or str(reason) or type(reason).__name__
    return str(reason)


def _fetch(url: str, target: Path, expected: str | None, progress: bool, timeout: float) -> None:
    """Stream ``url`` into a temporary file beside ``target``, verify it, rename it into place."""
    try:
        response = urllib.request.urlopen(url, timeout=timeout)
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise DownloadError(f"cannot reach {url}: {_reason(exc)} (are you offline?)") from None
    except (TimeoutError, OSError, http.client.HTTPException) as exc:
        raise DownloadError(f"cannot reach {url}: {_reason(exc) or 'timed out'} (are you offline?)") from None
    with response, atomic_writer(target, DownloadError) as handle:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        digest = hashlib.sha256()
        received = 0
        with _bar(progress, target.name, total) as advance:
            while True:
                try:
                    chunk = response.read(CHUNK)
                except (TimeoutError, OSError, http.client.HTTPException) as exc:
                    raise DownloadError(
                        f"{url}: download interrupted: {_reason(exc) or 'timed out'}; nothing was written"
                    ) from None
                if not chunk:
                    break
                handle.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                advance(len(chunk))
        if total is not None and received != total:
            raise DownloadError(f"{url}: download incomplete ({received} of {total} bytes); nothing was written")
        got = digest.hexdigest()
        if expected and got != expected:
            raise DownloadError(
                f"{target.name}: SHA-256 mismatch (expected {expected}, got {got}); "
                "the download is corrupt, nothing was written"
            )


@contextmanager
def _bar(show: bool, label: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``: a Rich byte bar with transfer speed on stderr, or a no-op."""
    if not show:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.update(task, advance=n)
