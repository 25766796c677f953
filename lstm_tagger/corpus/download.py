"""Download any Universal Dependencies treebank from its official GitHub repository.

``UD_<Language>-<Treebank>`` names the repository (github.com/UniversalDependencies/...)
and ``--release`` its tag (``r2.15``). The file names are not guessed: they come from the
repository's file list at that tag (GitHub's contents API), which also gives each file's
git blob SHA-1, so every file is checked against what the repository holds. Where we ship
SHA-256 sums for a release (EWT r2.15) the files are checked against them too, and the
SHA-256 of every file is recorded in ``SHA256SUMS`` beside them.

Standard library only (``urllib``); Rich draws the progress bar. Every file is streamed
into a temporary file beside its final name, hashed on the way, checked, and only then
renamed into place: nothing half-written or corrupt ever carries the final name.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from lstm_tagger.errors import UserError
from lstm_tagger.files import atomic_write_text, atomic_writer, make_dir, remove_stale_temporaries
from lstm_tagger.limits import MAX_FILE_LIST_BYTES

API_ROOT = "https://api.github.com"
ORGANISATION = "UniversalDependencies"
DEFAULT_RELEASE = "r2.15"
CHUNK = 1 << 16

SHIPPED_SHA256: dict[tuple[str, str], dict[str, str]] = {
    ("UD_English-EWT", "r2.15"): {
        "en_ewt-ud-train.conllu": "3fb78e2b55482c8ee00caa653af436c88c9e5bc9a73ce26e4ae3ddc79d2b7e7b",
        "en_ewt-ud-dev.conllu": "531a54ff90d6ab12201c5a50c3e78e6ddac4de69abc4bce5d275d3cd29efe2b6",
        "en_ewt-ud-test.conllu": "e266e515a0a7547657ed3d90d9ba46487d6bd251f27ad4269d4e8a427c8555cd",
    },
}
"""SHA-256 sums we ship, per (repository, release): checked besides the repository's own SHA-1."""

ALIASES = {"ud_english_ewt": "UD_English-EWT"}
"""Short names that ``configs/`` use for a folder, accepted as treebank names too."""

_REPOSITORY = re.compile(r"^UD_[A-Za-z]+(?:_[A-Za-z]+)*-[A-Za-z0-9]+$")
_RELEASE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SPLIT_FILE = re.compile(r"^[A-Za-z0-9_]+-ud-(train|dev|test)(?:-[A-Za-z0-9_-]+)?\.conllu$")
"""``fr_gsd-ud-train.conllu``, and the parts of a split some large treebanks have (``cs_pdt-ud-train-c.conllu``)."""


class DownloadError(UserError):
    """A treebank name is malformed, the server cannot be reached, or a file arrived corrupt."""


@dataclass(frozen=True)
class RemoteFile:
    """One file of the repository's list: name, where to fetch it, its size and git blob SHA-1."""

    name: str
    url: str
    size: int
    git_sha1: str


@dataclass
class Downloaded:
    """What ``download_treebank`` did: the folder, the files it holds and which were fetched now."""

    repository: str
    release: str
    folder: Path
    files: list[str]
    fetched: list[str]
    sha256_shipped: bool
    """Whether the files were also checked against SHA-256 sums we ship."""


def repository_name(name: str) -> str:
    """``UD_French-GSD`` (any case) or a short alias (``ud_english_ewt``) -> the repository name."""
    name = name.strip()
    if name.lower() in ALIASES:
        return ALIASES[name.lower()]
    if _REPOSITORY.match(name):
        return name
    raise DownloadError(
        f"{name or repr(name)}: give the treebank as its repository is named, UD_<Language>-<Treebank> "
        "(e.g. UD_French-GSD; the list is at https://universaldependencies.org)"
    )


def folder_name(repository: str) -> str:
    """``UD_English-EWT`` -> ``ud_english_ewt``, the folder under ``data/`` (as ``configs/ud_ewt.yaml`` expects)."""
    return repository.lower().replace("-", "_")


def _open(url: str, timeout: float, accept: str | None = None, explain: dict[int, str] | None = None):
    """``urlopen`` with every way of not reaching the server turned into one ``DownloadError`` line;
    ``explain`` says in words what an HTTP status means for this request."""
    headers = {"User-Agent": "lstm-tag"}
    if accept:
        headers["Accept"] = accept
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        meaning = (explain or {}).get(exc.code)
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}" + (f": {meaning}" if meaning else "")) from None
    except urllib.error.URLError as exc:
        raise DownloadError(f"cannot reach {url}: {_reason(exc)} (are you offline?)") from None
    except (TimeoutError, OSError, http.client.HTTPException) as exc:
        raise DownloadError(f"cannot reach {url}: {_reason(exc) or 'timed out'} (are you offline?)") from None


def list_release(repository: str, release: str, api_root: str = API_ROOT, timeout: float = 30.0) -> list[RemoteFile]:
    """The train/dev/test ``.conllu`` files of ``repository`` at tag ``release``, from GitHub's contents API."""
    if not _RELEASE.match(release):
        raise DownloadError(
            f"release={release!r}: expected a tag such as {DEFAULT_RELEASE}", {f"release={release!r}": f"--release {release!r}"}
        )
    url = f"{api_root.rstrip('/')}/repos/{ORGANISATION}/{repository}/contents?ref={urllib.parse.quote(release)}"
    explain = {
        404: f"no treebank repository {repository} with a release {release}",
        403: "GitHub refused the file list (without a token it allows 60 an hour); try again later",
    }
    try:
        with _open(url, timeout, "application/vnd.github+json", explain) as response:
            data = response.read(MAX_FILE_LIST_BYTES + 1)
        if len(data) > MAX_FILE_LIST_BYTES:
            raise DownloadError(f"{url}: not a repository file list (larger than the limit of {MAX_FILE_LIST_BYTES:,} bytes)")
        listing = json.loads(data.decode("utf-8"))
    except RecursionError:  # json nests as deep as the text says: '[' * 100000
        raise DownloadError(f"{url}: not a repository file list (nested too deep)") from None
    except (ValueError, OSError, http.client.HTTPException) as exc:
        raise DownloadError(f"{url}: not a repository file list ({_reason(exc) or type(exc).__name__})") from None
    try:
        files = [
            RemoteFile(entry["name"], entry["download_url"], int(entry["size"]), entry["sha"])
            for entry in listing
            if entry.get("type") == "file" and _SPLIT_FILE.match(entry.get("name", ""))
        ]
    except (TypeError, KeyError, ValueError, AttributeError):
        raise DownloadError(f"{url}: not a repository file list") from None
    if not files:
        raise DownloadError(f"{repository} {release}: the repository has no *-ud-train/dev/test.conllu files")
    return sorted(files, key=lambda f: (["train", "dev", "test"].index(_SPLIT_FILE.match(f.name).group(1)), f.name))


def _checked_url(url: str) -> str:
    """``--base-url`` without its trailing ``/``, if it is an http(s) or file URL; else a ``DownloadError``."""
    try:
        parts = urllib.parse.urlsplit(url)
        usable = (
            parts.scheme in ("http", "https", "file") and bool(parts.netloc or parts.scheme == "file")
            and url.isprintable() and (parts.port is None or parts.port >= 0)  # .port raises ValueError if not a number
        )
    except ValueError:
        usable = False
    if not usable:
        raise DownloadError(f"--base-url {url!r}: not an http(s) or file URL (e.g. {API_ROOT})")
    return url.rstrip("/")


def download_treebank(
    name: str,
    dest_root: Path = Path("data"),
    release: str = DEFAULT_RELEASE,
    base_url: str | None = None,
    progress: bool | None = None,
    timeout: float = 30.0,
) -> Downloaded:
    """Download a treebank's train/dev/test ``.conllu`` files into ``dest_root/<folder_name>/``.

    ``base_url`` stands in for ``https://api.github.com`` (a server that imitates it: the file
    list comes from ``{base_url}/repos/UniversalDependencies/<repository>/contents?ref=<release>``,
    each file from the download URL the list gives). Files already present with the listed
    git SHA-1 are not fetched again. ``progress`` shows a Rich bar on stderr; by default only
    when stderr is a terminal. Any failure raises ``DownloadError`` with one line and leaves
    earlier files untouched.
    """
    repository = repository_name(name)
    remote = list_release(repository, release, API_ROOT if base_url is None else _checked_url(base_url), timeout)
    shipped = SHIPPED_SHA256.get((repository, release), {})
    if progress is None:
        progress = sys.stderr.isatty()
    folder = Path(dest_root) / folder_name(repository)
    make_dir(folder, DownloadError)
    remove_stale_temporaries(folder)  # of an interrupted download
    sums, fetched = {}, []
    for file in remote:
        target = folder / file.name
        expected = shipped.get(file.name)
        git_sha1, sha256 = _digests(target) if target.is_file() else (None, None)
        if git_sha1 == file.git_sha1 and expected in (None, sha256):
            sums[file.name] = sha256
            continue
        sums[file.name] = _fetch(file, target, expected, progress, timeout)
        fetched.append(file.name)
    atomic_write_text(folder / "SHA256SUMS", "".join(f"{digest}  {file}\n" for file, digest in sums.items()))
    return Downloaded(repository, release, folder, [f.name for f in remote], fetched, bool(shipped))


def _git_sha1_start(size: int) -> Any:
    """A SHA-1 primed with git's blob header: git names a file's contents ``sha1(b"blob <size>\\0" + data)``."""
    return hashlib.sha1(f"blob {size}\0".encode())


def _digests(path: Path) -> tuple[str, str]:
    """(git blob SHA-1, SHA-256) of the file at ``path``."""
    git, sha256 = _git_sha1_start(path.stat().st_size), hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            git.update(chunk)
            sha256.update(chunk)
    return git.hexdigest(), sha256.hexdigest()


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, BaseException):
        reason = getattr(reason, "strerror", None) or str(reason) or type(reason).__name__
    return str(reason)


def _fetch(file: RemoteFile, target: Path, expected: str | None, progress: bool, timeout: float) -> str:
    """Stream ``file`` into a temporary file beside ``target``, check it against the listed size and
    git SHA-1 (and the ``expected`` SHA-256, if any), rename it into place; returns its SHA-256."""
    url = file.url
    with _open(url, timeout) as response, atomic_writer(target, DownloadError) as handle:
        git, sha256 = _git_sha1_start(file.size), hashlib.sha256()
        received = 0
        with _bar(progress, target.name, file.size) as advance:
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
                git.update(chunk)
                sha256.update(chunk)
                received += len(chunk)
                advance(len(chunk))
        if received != file.size:
            raise DownloadError(f"{url}: got {received:,} bytes, the repository lists {file.size:,}; nothing was written")
        if git.hexdigest() != file.git_sha1:
            raise DownloadError(
                f"{file.name}: git SHA-1 mismatch (the repository lists {file.git_sha1}, got {git.hexdigest()}); "
                "the download is corrupt, nothing was written"
            )
        if expected and sha256.hexdigest() != expected:
            raise DownloadError(
                f"{file.name}: SHA-256 mismatch (expected {expected}, got {sha256.hexdigest()}); "
                "the download is corrupt, nothing was written"
            )
    return sha256.hexdigest()


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
