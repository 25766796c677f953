"""The real server (``lstm-tag serve`` in a child process, on a free loopback port): it answers
while a slow client sends and after a client vanished, and on SIGTERM it finishes the request in
flight, then exits with code 0."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading

import pytest

import serving  # noqa: F401 -- skips without the serve extra

import httpx  # noqa: E402
from conftest import ROOT  # noqa: E402

STARTUP_SECONDS = 300  # a bound on waiting, never an assertion: the shared machine may be slow


class Server:
    """``python -m lstm_tagger serve`` in a child process, its stderr read line by line."""

    def __init__(self, *args: str, cwd: str):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lstm_tagger", "serve", *args], cwd=cwd, env=env,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.put(line)
        self.lines.put("")

    def wait_for(self, pattern: str) -> re.Match:
        """The first line (from now) that matches ``pattern``; fails if the server exits first."""
        while True:
            line = self.lines.get(timeout=STARTUP_SECONDS)
            self.seen.append(line)
            assert line, f"the server exited before {pattern!r}: {''.join(self.seen)}"
            found = re.search(pattern, line)
            if found:
                return found


def raw_request(port: int, body: bytes) -> socket.socket:
    """A connection that has sent the headers of ``POST /tag`` for ``body`` (and no body yet)."""
    connection = socket.create_connection(("127.0.0.1", port))
    head = f"POST /tag HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    connection.sendall(head.encode("ascii"))
    return connection


def read_answer(connection: socket.socket) -> tuple[int, bytes]:
    data = b""
    while True:
        chunk = connection.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_the_real_server_serves_survives_slow_and_vanished_clients_and_drains_on_sigterm(demo_run, tmp_path):
    server = Server("--model", f"demo={demo_run}", "--port", "0", "--threads", "1", cwd=str(tmp_path))
    try:
        port = int(server.wait_for(r"serving on http://127\.0\.0\.1:(\d+)").group(1))
        server.wait_for("Application startup complete")
        base = f"http://127.0.0.1:{port}"
        answer = httpx.post(f"{base}/process", files={"data": (None, "Don't stop."), "tokenizer": (None, ""), "tagger": (None, "")})
        assert answer.status_code == 200 and answer.json()["model"] == "demo"
        assert "\n1\tDo\t_\t" in answer.json()["result"] and "\n2\tn't\t_\t" in answer.json()["result"]

        body = json.dumps({"text": "The dog ate the apple", "format": "text"}).encode("utf-8")
        slow = raw_request(port, body)
        slow.sendall(body[:10])  # a client that sends slowly: the server goes on serving others
        expected = httpx.post(f"{base}/tag", json={"text": "The dog ate the apple", "format": "text"})
        assert expected.status_code == 200 and expected.text.startswith("The/")

        vanished = raw_request(port, body)
        vanished.sendall(body)
        vanished.close()  # gone before its answer
        assert httpx.get(f"{base}/health").json()["status"] == "ok"

        server.process.send_signal(signal.SIGTERM)
        server.wait_for("Shutting down")
        slow.sendall(body[10:])  # the request in flight is finished before the server exits
        assert read_answer(slow) == (200, expected.content)
        slow.close()
        assert server.process.wait(timeout=STARTUP_SECONDS) == 0
        server.wait_for("lstm-tag: stopped")
        rest = "".join(server.seen) + "".join(iter(server.lines.get, ""))
        assert "Traceback" not in rest and server.process.stdout.read() == ""  # logs on stderr, nothing on stdout
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()


def test_the_default_host_is_loopback():
    from lstm_tagger.cli.serve import serve_cli
    import inspect

    assert inspect.signature(serve_cli).parameters["host"].default.default == "127.0.0.1"


@pytest.mark.parametrize("host, warned", [("127.0.0.1", False), ("0.0.0.0", True)])
def test_listening_beyond_loopback_is_announced_with_a_warning(host, warned, caplog):
    from lstm_tagger.serve.server import announce, bind

    sock = bind(host, 0)
    try:
        with caplog.at_level("INFO", logger="uvicorn.error"):
            announce(sock, host)
    finally:
        sock.close()
    assert f"serving on http://{host}:" in caplog.text
    assert ("other machines can reach this server, and it has no authentication" in caplog.text) == warned


def test_connections_are_accepted_without_nagles_delay():
    """A keep-alive client waited 40 ms for each answer (Nagle's algorithm holding the body
    while the client delayed its acknowledgement of the headers) until TCP_NODELAY was set."""
    from lstm_tagger.serve.server import bind

    sock = bind("127.0.0.1", 0)
    sock.listen()
    try:
        with socket.create_connection(sock.getsockname()):
            accepted, _ = sock.accept()
            with accepted:
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        sock.close()


def test_the_socket_listens_before_uvicorn_starts():
    """The address is announced before uvicorn runs: a client that connects at once must wait, not be refused."""
    from lstm_tagger.serve.server import bind

    sock = bind("127.0.0.1", 0)
    try:
        socket.create_connection(sock.getsockname(), timeout=5).close()
    finally:
        sock.close()
