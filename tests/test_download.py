"""Treebank downloads against a local HTTP server on 127.0.0.1 only: never any outside address."""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import socket
import threading
from pathlib import Path

import pytest

from lstm_tagger import download
from lstm_tagger.download import DownloadError, download_treebank, treebank_files
from lstm_tagger.errors import UserError

from conftest import assert_one_line_error

ROOT = Path(__file__).resolve().parents[1]
EWT_SUMS = Path(os.environ.get("LSTM_TAG_EWT", ROOT.parent / "shared" / "data" / "ud_english_ewt")) / "SHA256SUMS"
NAME = "ud_test_tiny"
FILES = [f"xx_tiny-ud-{split}.conllu" for split in ("train", "dev", "test")]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _conllu(split: str) -> bytes:
    return f"# sent_id = {split}-1\n1\tHello\t_\tINTJ\t_\t_\t_\t_\t_\t_\n2\t{split}\t_\tNOUN\t_\t_\t_\t_\t_\t_\n\n".encode()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    requested: list[str]

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.requested.append(self.path)
        super().do_GET()


@pytest.fixture
def server(tmp_path: Path):
    """(served folder, base URL, list of requested paths) for a loopback server on a free port."""
    served = tmp_path / "served"
    served.mkdir()
    requested: list[str] = []
    handler = type("Handler", (_Quiet,), {"requested": requested})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(served)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield served, f"http://127.0.0.1:{httpd.server_address[1]}/", requested
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
def tiny(server, monkeypatch):
    """Serve three small files and register them, with their true checksums, as treebank NAME."""
    served, url, requested = server
    contents = {file: _conllu(file.split("-")[-1].split(".")[0]) for file in FILES}
    for file, data in contents.items():
        (served / file).write_bytes(data)
    entry = {"repo": "UD_Test-Tiny", "tag": "r0", "prefix": "xx_tiny-ud",
             "sha256": {file: _sha(data) for file, data in contents.items()}}
    monkeypatch.setitem(download.KNOWN, NAME, entry)
    return served, url, requested, contents


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in FILES)


@pytest.mark.parametrize("progress", [False, True])
def test_download_writes_identical_bytes_and_no_temp_files(tiny, tmp_path, progress, capsys):
    _, url, _, contents = tiny
    folder = download_treebank(NAME, dest_root=tmp_path / "data", base_url=url, progress=progress)
    assert folder == tmp_path / "data" / NAME
    for file, data in contents.items():
        assert (folder / file).read_bytes() == data
    assert _leftovers(folder) == []
    if progress:
        assert "xx_tiny-ud-train.conllu" in capsys.readouterr().err


def test_files_with_the_right_checksum_are_skipped(tiny, tmp_path):
    served, url, requested, contents = tiny
    download_treebank(NAME, dest_root=tmp_path, base_url=url, progress=False)
    assert len(requested) == 3
    (tmp_path / NAME / FILES[1]).write_bytes(b"damaged locally\n")
    download_treebank(NAME, dest_root=tmp_path, base_url=url, progress=False)
    assert requested[3:] == [f"/{FILES[1]}"]
    assert (tmp_path / NAME / FILES[1]).read_bytes() == contents[FILES[1]]


def test_corrupt_download_is_rejected_and_nothing_is_written(tiny, tmp_path):
    served, url, _, contents = tiny
    (served / FILES[0]).write_bytes(b"not what the checksum says\n")
    with pytest.raises(DownloadError, match="SHA-256 mismatch") as info:
        download_treebank(NAME, dest_root=tmp_path, base_url=url, progress=False)
    assert FILES[0] in str(info.value) and "nothing was written" in str(info.value)
    folder = tmp_path / NAME
    assert not (folder / FILES[0]).exists()
    assert _leftovers(folder) == []


def test_corrupt_download_leaves_an_earlier_good_copy_untouched(tiny, tmp_path):
    served, url, _, contents = tiny
    folder = tmp_path / NAME
    folder.mkdir()
    (folder / FILES[0]).write_bytes(b"an older copy\n")  # not the right checksum: re-fetched
    (served / FILES[0]).write_bytes(b"corrupted on the wire\n")
    with pytest.raises(DownloadError, match="SHA-256 mismatch"):
        download_treebank(NAME, dest_root=tmp_path, base_url=url, progress=False)
    assert (folder / FILES[0]).read_bytes() == b"an older copy\n"
    assert _leftovers(folder) == []


def test_http_404_names_the_url(tiny, tmp_path):
    served, url, _, _ = tiny
    (served / FILES[2]).unlink()
    with pytest.raises(DownloadError) as info:
        download_treebank(NAME, dest_root=tmp_path, base_url=url, progress=False)
    assert str(info.value) == f"{url}{FILES[2]}: HTTP 404 File not found"
    assert not (tmp_path / NAME / FILES[2]).exists()
    assert _leftovers(tmp_path / NAME) == []


def test_connection_refused_says_it_cannot_reach_the_server(tiny, tmp_path):
    with socket.socket() as sock:  # bound but not listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        with pytest.raises(DownloadError) as info:
            download_treebank(NAME, dest_root=tmp_path, base_url=url, progress=False, timeout=5)
    message = str(info.value)
    assert message.startswith(f"cannot reach {url}/{FILES[0]}: ")
    assert "refused" in message.lower() and "\n" not in message


def test_a_silent_server_times_out_with_one_line(tiny, tmp_path):
    with socket.socket() as sock:  # listening, never answering
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        with pytest.raises(DownloadError, match="timed out") as info:
            download_treebank(NAME, dest_root=tmp_path, base_url=url, progress=False, timeout=0.3)
    assert str(info.value).startswith(f"cannot reach {url}/{FILES[0]}: ")
    assert _leftovers(tmp_path / NAME) == []


@pytest.mark.parametrize("name", ["UD_French-GSD", "english", "../etc", ""])
def test_unknown_treebank_names_are_a_clear_user_error(name, tmp_path):
    with pytest.raises(DownloadError, match="ud_english_ewt") as info:
        download_treebank(name, dest_root=tmp_path)
    assert isinstance(info.value, UserError)
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


EWT = {
    "en_ewt-ud-train.conllu": "3fb78e2b55482c8ee00caa653af436c88c9e5bc9a73ce26e4ae3ddc79d2b7e7b",
    "en_ewt-ud-dev.conllu": "531a54ff90d6ab12201c5a50c3e78e6ddac4de69abc4bce5d275d3cd29efe2b6",
    "en_ewt-ud-test.conllu": "e266e515a0a7547657ed3d90d9ba46487d6bd251f27ad4269d4e8a427c8555cd",
}


@pytest.mark.parametrize("name", ["ud_english_ewt", "UD_English-EWT"])
def test_treebank_files_for_english_ewt(name):
    base, files, sums = treebank_files(name)
    assert base == "https://raw.githubusercontent.com/UniversalDependencies/UD_English-EWT/r2.15"
    assert files == ["en_ewt-ud-train.conllu", "en_ewt-ud-dev.conllu", "en_ewt-ud-test.conllu"]
    assert sums == EWT


@pytest.mark.skipif(not EWT_SUMS.is_file(), reason=f"{EWT_SUMS} not present")
def test_ewt_checksums_match_the_shared_sha256sums():
    listed = dict(reversed(line.split()) for line in EWT_SUMS.read_text().splitlines() if line.strip())
    assert treebank_files("ud_english_ewt")[2] == listed


def test_cli_download_and_a_corrupt_one(tiny, tmp_path):
    from typer.testing import CliRunner

    from lstm_tagger.cli import app

    _, url, _, contents = tiny
    runner = CliRunner()
    result = runner.invoke(app, ["download", NAME, "--dest", str(tmp_path / "data"), "--base-url", url])
    assert result.exit_code == 0 and f"are in {tmp_path / 'data' / NAME}" in result.stdout
    for file, data in contents.items():
        assert (tmp_path / "data" / NAME / file).read_bytes() == data
    (tmp_path / "served" / FILES[0]).write_bytes(b"corrupted\n")
    (tmp_path / "data" / NAME / FILES[0]).unlink()
    bad = runner.invoke(app, ["download", NAME, "--dest", str(tmp_path / "data"), "--base-url", url])
    assert_one_line_error(bad, "SHA-256 mismatch")
    assert not (tmp_path / "data" / NAME / FILES[0]).exists()
