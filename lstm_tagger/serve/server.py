"""Running the application with uvicorn: bound to loopback unless told otherwise, within the
limits of ``limits.py``, and stopping cleanly.

The socket is bound here, before uvicorn starts, so that a port in use or a host that is not
this machine's is one line and exit code 2 (``UserError``), and ``--port 0`` (any free port)
can be announced with the port it got. On Ctrl-C or SIGTERM uvicorn stops accepting
connections, finishes the requests in flight (for at most ``DRAIN_SECONDS``), then the
batchers stop and ``serve`` returns: the command exits with code 0.
"""

from __future__ import annotations

import copy
import logging
import signal
import socket
from contextlib import contextmanager
from typing import Iterator, Sequence

from lstm_tagger.errors import UserError
from lstm_tagger.limits import DRAIN_SECONDS, MAX_REQUEST_BYTES, MAX_SERVE_CONNECTIONS, REQUEST_READ_SECONDS

LOOPBACK = "127.0.0.1"
INSTALL_HINT = "lstm-tag serve needs FastAPI and uvicorn: pip install 'lstm-tag[serve]'"
log = logging.getLogger("uvicorn.error")  # uvicorn's own log: its format, on stderr


def serve(
    models: Sequence[str], host: str = LOOPBACK, port: int = 8080, threads: int | str | None = "auto",
    max_body: int = MAX_REQUEST_BYTES, device: str = "cpu", read_seconds: float = REQUEST_READ_SECONDS,
) -> None:
    """Load ``models`` (``--model`` values: ``NAME=PATH`` or ``PATH``) once and serve them on
    ``host:port`` until Ctrl-C or SIGTERM. Logs (uvicorn's) go to stderr; nothing to stdout."""
    try:
        import uvicorn

        from lstm_tagger.serve.app import create_app
    except ImportError as exc:
        raise UserError(f"{INSTALL_HINT} ({exc})") from None
    from lstm_tagger.memory import cap_arenas
    from lstm_tagger.serve.models import load_models

    if max_body < 1:
        raise UserError(f"max_body={max_body}: must be at least 1 byte", {f"max_body={max_body}": f"--max-body {max_body}"})
    cap_arenas()  # before any thread of the server starts
    app = create_app(load_models(models, threads, device), max_body=max_body, read_seconds=read_seconds)
    sock = bind(host, port)
    config = uvicorn.Config(
        app, limit_concurrency=MAX_SERVE_CONNECTIONS, timeout_graceful_shutdown=int(DRAIN_SECONDS),
        server_header=False, log_level="info", log_config=_log_config(uvicorn.config.LOGGING_CONFIG),
    )
    announce(sock, host)
    with _signals_end_quietly():
        uvicorn.Server(config).run(sockets=[sock])
    log.info("lstm-tag: stopped")


def _log_config(default: dict) -> dict:
    """uvicorn's logging, its access lines on stderr too (uvicorn writes them to stdout)."""
    config = copy.deepcopy(default)
    config["handlers"]["access"]["stream"] = "ext://sys.stderr"
    return config


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``port`` 0: any free one), without Nagle's delay; a
    ``UserError`` if it cannot be had. A client that connects as soon as the address is announced
    waits for uvicorn to accept it."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen()  # connections wait in the backlog from now on, not refused until uvicorn starts
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def announce(sock: socket.socket, host: str) -> None:
    """The address to open, and a warning when other machines can reach it."""
    port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    log.info("lstm-tag: serving on http://%s:%d (the web page at /, the API at /tag and /process)", shown, port)
    if host not in (LOOPBACK, "localhost", "::1"):
        log.warning("lstm-tag: --host %s: other machines can reach this server, and it has no authentication", host)


def _ignore(signum: int, frame: object) -> None:
    """After uvicorn has drained, it raises the signal it caught again: by then there is nothing left to stop."""


@contextmanager
def _signals_end_quietly() -> Iterator[None]:
    """While uvicorn runs it handles Ctrl-C and SIGTERM itself, then re-raises the signal to the
    handler it found: make that a no-op, so that a drained server returns instead of dying."""
    previous = {sig: signal.signal(sig, _ignore) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
