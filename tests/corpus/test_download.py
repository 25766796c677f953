"""Treebank downloads against a loopback HTTP server (127.0.0.1 only, never any outside address)
that imitates GitHub: the contents API's file list of a repository at a tag, and the files."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import socket
import threading
import urllib.parse
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lstm_tagger.cli import app
from lstm_tagger.corpus.download import SHIPPED_SHA256, DownloadError, download_treebank, folder_name, repository_name
from lstm_tagger.errors import UserError

from conftest import assert_one_line_error

ROOT = Path(__file__).resolve().parents[2]
EWT_SUMS = Path(os.environ.get("LSTM_TAG_EWT", ROOT.parent / "shared" / "data" / "ud_english_ewt")) / "SHA256SUMS"
REPO = "UD_Test-Tiny"
# Names that cannot be derived from the repository's name: they must come from its file list.
SPLIT_FILES = ["qq_odd-ud-train-a.conllu", "qq_odd-ud-train-b.conllu", "qq_odd-ud-dev.conllu", "qq_odd-ud-test.conllu"]
OTHER_FILES = ["README.md", "LICENSE.txt", "stats.xml", "qq_odd-ud-test.txt"]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _flipped(data: bytes) -> bytes:
    """``data`` with one byte changed: the same size, so only a checksum tells."""
    return data[:20] + bytes([data[20] ^ 1]) + data[21:]


def _conllu(name: str) -> bytes:
    return f"# sent_id = {name}\n1\tHello\t_\tINTJ\t_\t_\t_\t_\t_\t_\n2\t{name}\t_\tNOUN\t_\t_\t_\t_\t_\t_\n\n".encode()


class FakeGitHub:
    """What the loopback server serves: ``repos[(repository, tag)] = {file: bytes}`` listed as
    GitHub's contents API lists them; ``served`` overrides the bytes a file's URL sends (a corrupt
    transfer), ``requested`` records every path asked for."""

    def __init__(self) -> None:
        self.repos: dict[tuple[str, str], dict[str, bytes]] = {}
        self.served: dict[str, bytes] = {}
        self.requested: list[str] = []
        self.url = ""

    def listing(self, repo: str, tag: str) -> list[dict]:
        entries = [{"name": "not-to-release", "path": "not-to-release", "type": "dir", "sha": "0" * 40, "size": 0,
                    "download_url": None}]
        for name, data in self.repos[(repo, tag)].items():
            entries.append({"name": name, "path": name, "type": "file", "sha": _git_sha1(data), "size": len(data),
                            "download_url": f"{self.url}/raw/{repo}/{tag}/{name}"})
        return entries


def _handler(fake: FakeGitHub):
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            fake.requested.append(self.path)
            url = urllib.parse.urlsplit(self.path)
            parts = url.path.strip("/").split("/")
            if parts[:2] == ["repos", "UniversalDependencies"] and len(parts) == 4 and parts[3] == "contents":
                key = (parts[2], urllib.parse.parse_qs(url.query).get("ref", ["master"])[0])
                if key in fake.repos:
                    return self._send(200, json.dumps(fake.listing(*key)).encode())
            elif parts[0] == "raw" and len(parts) == 4 and (parts[1], parts[2]) in fake.repos:
                files = fake.repos[(parts[1], parts[2])]
                if parts[3] in files:
                    return self._send(200, fake.served.get(parts[3], files[parts[3]]))
            self._send(404, b'{"message": "Not Found"}')

    return Handler


@pytest.fixture
def github():
    """A ``FakeGitHub`` served on 127.0.0.1 at a free port, holding UD_Test-Tiny at r2.15."""
    fake = FakeGitHub()
    fake.repos[(REPO, "r2.15")] = {name: _conllu(name) for name in SPLIT_FILES + OTHER_FILES}
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    fake.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in SPLIT_FILES + ["SHA256SUMS"])


@pytest.mark.parametrize("progress", [False, True])
def test_any_treebank_its_files_found_in_the_repository(github, tmp_path, progress, capsys):
    done = download_treebank(REPO, dest_root=tmp_path / "data", base_url=github.url, progress=progress)
    folder = tmp_path / "data" / "ud_test_tiny"
    assert done.folder == folder and done.repository == REPO and done.release == "r2.15"
    assert done.files == done.fetched == SPLIT_FILES  # train parts first, then dev, then test; nothing else
    for name in SPLIT_FILES:
        assert (folder / name).read_bytes() == _conllu(name)
    assert _leftovers(folder) == []
    sums = (folder / "SHA256SUMS").read_text()
    assert sums == "".join(f"{_sha256(_conllu(name))}  {name}\n" for name in SPLIT_FILES)
    assert github.requested[0] == "/repos/UniversalDependencies/UD_Test-Tiny/contents?ref=r2.15"
    if progress:
        assert "qq_odd-ud-dev.conllu" in capsys.readouterr().err


def test_the_release_is_the_tag_asked_for(github, tmp_path):
    github.repos[(REPO, "r2.14")] = {"qq_odd-ud-test.conllu": b"# older\n"}
    done = download_treebank(REPO, dest_root=tmp_path, release="r2.14", base_url=github.url, progress=False)
    assert done.files == ["qq_odd-ud-test.conllu"]
    assert (done.folder / "qq_odd-ud-test.conllu").read_bytes() == b"# older\n"
    with pytest.raises(DownloadError) as info:
        download_treebank(REPO, dest_root=tmp_path, release="r9.9", base_url=github.url, progress=False)
    url = f"{github.url}/repos/UniversalDependencies/{REPO}/contents?ref=r9.9"
    assert str(info.value) == f"{url}: HTTP 404 Not Found: no treebank repository {REPO} with a release r9.9"


def test_files_with_the_listed_checksum_are_not_fetched_again(github, tmp_path):
    download_treebank(REPO, dest_root=tmp_path, base_url=github.url, progress=False)
    folder = tmp_path / "ud_test_tiny"
    (folder / SPLIT_FILES[2]).write_bytes(b"damaged locally\n")
    github.requested.clear()
    done = download_treebank(REPO, dest_root=tmp_path, base_url=github.url, progress=False)
    assert github.requested[1:] == [f"/raw/{REPO}/r2.15/{SPLIT_FILES[2]}"] and done.fetched == [SPLIT_FILES[2]]
    assert (folder / SPLIT_FILES[2]).read_bytes() == _conllu(SPLIT_FILES[2])


def test_a_corrupt_file_is_rejected_and_nothing_is_written(github, tmp_path):
    github.served[SPLIT_FILES[0]] = _flipped(_conllu(SPLIT_FILES[0]))
    with pytest.raises(DownloadError) as info:
        download_treebank(REPO, dest_root=tmp_path, base_url=github.url, progress=False)
    message = str(info.value)
    assert message.startswith(f"{SPLIT_FILES[0]}: git SHA-1 mismatch (the repository lists {_git_sha1(_conllu(SPLIT_FILES[0]))}")
    assert message.endswith("the download is corrupt, nothing was written")
    folder = tmp_path / "ud_test_tiny"
    assert list(folder.iterdir()) == []  # no file, no temporary file, no sums


def test_a_corrupt_file_leaves_an_earlier_copy_untouched_and_a_short_one_is_refused(github, tmp_path):
    folder = tmp_path / "ud_test_tiny"
    folder.mkdir()
    (folder / SPLIT_FILES[0]).write_bytes(b"an older copy\n")
    github.served[SPLIT_FILES[0]] = b"cut"
    with pytest.raises(DownloadError, match="got 3 bytes, the repository lists"):
        download_treebank(REPO, dest_root=tmp_path, base_url=github.url, progress=False)
    assert (folder / SPLIT_FILES[0]).read_bytes() == b"an older copy\n"
    assert _leftovers(folder) == []


def test_the_shipped_sha256_of_ewt_is_checked_too(github, tmp_path):
    """A file list that agrees with its files, but not with the EWT r2.15 sums we ship: refused."""
    github.repos[("UD_English-EWT", "r2.15")] = {name: b"not EWT\n" for name in SHIPPED_SHA256[("UD_English-EWT", "r2.15")]}
    with pytest.raises(DownloadError) as info:
        download_treebank("ud_english_ewt", dest_root=tmp_path, base_url=github.url, progress=False)
    assert str(info.value).startswith("en_ewt-ud-train.conllu: SHA-256 mismatch (expected 3fb78e2b")
    assert list((tmp_path / "ud_english_ewt").iterdir()) == []


def test_connection_refused_is_one_line_naming_the_file_list(tmp_path):
    with socket.socket() as sock:  # bound but not listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        with pytest.raises(DownloadError) as info:
            download_treebank("UD_French-GSD", dest_root=tmp_path, base_url=url, progress=False, timeout=5)
        cli = CliRunner().invoke(app, ["download", "UD_French-GSD", "--dest", str(tmp_path), "--base-url", url])
    message = str(info.value)
    assert message.startswith(f"cannot reach {url}/repos/UniversalDependencies/UD_French-GSD/contents?ref=r2.15: ")
    assert "refused" in message.lower() and message.endswith("(are you offline?)") and "\n" not in message
    assert cli.exit_code == 2 and cli.stderr == f"lstm-tag: error: {message}\n"
    assert list(tmp_path.iterdir()) == []


def test_a_silent_server_times_out_with_one_line(tmp_path):
    with socket.socket() as sock:  # listening, never answering
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        with pytest.raises(DownloadError, match="timed out") as info:
            download_treebank(REPO, dest_root=tmp_path, base_url=url, progress=False, timeout=0.3)
    assert str(info.value).startswith(f"cannot reach {url}/repos/")


@pytest.mark.parametrize("name", ["english", "../etc", "", "UD_French", "UD_French-GSD/../x", "ud_french_gsd"])
def test_malformed_treebank_names_are_a_clear_user_error(name, tmp_path):
    with pytest.raises(DownloadError, match="UD_<Language>-<Treebank>") as info:
        download_treebank(name, dest_root=tmp_path)
    assert isinstance(info.value, UserError) and "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "name, repository, folder",
    [("UD_French-GSD", "UD_French-GSD", "ud_french_gsd"), ("ud_english_ewt", "UD_English-EWT", "ud_english_ewt"),
     ("UD_English-EWT", "UD_English-EWT", "ud_english_ewt"),
     ("UD_Old_Church_Slavonic-PROIEL", "UD_Old_Church_Slavonic-PROIEL", "ud_old_church_slavonic_proiel")],
)
def test_names_and_folders(name, repository, folder):
    assert repository_name(name) == repository and folder_name(repository) == folder


@pytest.mark.skipif(not EWT_SUMS.is_file(), reason=f"{EWT_SUMS} not present")
def test_ewt_checksums_match_the_shared_sha256sums():
    listed = dict(reversed(line.split()) for line in EWT_SUMS.read_text().splitlines() if line.strip())
    assert SHIPPED_SHA256[("UD_English-EWT", "r2.15")] == listed


def test_cli_download_then_again_with_a_corrupt_file(github, tmp_path):
    runner = CliRunner()
    args = ["download", REPO, "--dest", str(tmp_path / "data"), "--base-url", github.url]
    result = runner.invoke(app, args)
    folder = tmp_path / "data" / "ud_test_tiny"
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"{REPO} r2.15: {', '.join(SPLIT_FILES)} in {folder}\n"
        f"checked against the repository's git SHA-1; SHA-256 sums recorded in {folder / 'SHA256SUMS'}\n"
    )
    (folder / SPLIT_FILES[3]).unlink()
    github.served[SPLIT_FILES[3]] = _flipped(_conllu(SPLIT_FILES[3]))
    bad = runner.invoke(app, args)
    assert_one_line_error(bad, "git SHA-1 mismatch")
    assert not (folder / SPLIT_FILES[3]).exists()
    del github.served[SPLIT_FILES[3]]
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "(3 already there)" in again.stdout


def _served_file_list(tmp_path: Path, text: str) -> tuple[str, str]:
    """A ``--base-url file://...`` whose file list for UD_French-GSD r2.15 is ``text``; (base URL, list URL)."""
    folder = tmp_path / "api" / "repos" / "UniversalDependencies" / "UD_French-GSD"
    folder.mkdir(parents=True)
    (folder / "contents?ref=r2.15").write_text(text)
    base = f"file://{tmp_path / 'api'}"
    return base, f"{base}/repos/UniversalDependencies/UD_French-GSD/contents?ref=r2.15"


@pytest.mark.parametrize("text, why", [
    ("[" * 100_000 + "]" * 100_000, "nested too deep"),
    ("[" + " " * (1 << 20) + "]", "larger than the limit of 1,048,576 bytes"),
])
def test_a_hostile_file_list_is_not_a_repository_file_list(tmp_path, text, why):
    base, url = _served_file_list(tmp_path, text)
    result = CliRunner().invoke(app, ["download", "UD_French-GSD", "--dest", str(tmp_path / "data"), "--base-url", base])
    assert result.exit_code == 2 and result.stderr == f"lstm-tag: error: {url}: not a repository file list ({why})\n"
    assert not (tmp_path / "data").exists()
