"""The load benchmark of ``lstm-tag serve``: concurrent clients on loopback, for a bounded time.

A server is judged by what its clients see: requests a second, tokens a second, and the
latency of each request at the median and the 99th percentile, for the two kinds of request
that users send (one sentence, as a program that tags as it goes; and a document of 1,000
sentences), with the server's memory (its peak resident set, and the resident set after each
phase: it should stay flat). Beside them, ``lstm-tag predict --file``'s whole-process speed on
the same sentences, the figure the server's bulk throughput is compared with.

The server runs as ``lstm-tag serve`` in a child process on 127.0.0.1 and a free port (never
another address), the clients are threads of this process with one keep-alive connection each,
and every phase stops after ``seconds``; the counts of clients, seconds and sentences are bounded.
Run it alone on the machine: ``python -m lstm_tagger.benchmark.serve --model runs/X``.
"""

from __future__ import annotations

import http.client
import json
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from itertools import cycle, islice
from pathlib import Path
from typing import Any, Iterator

from lstm_tagger.checkpoint import find_checkpoint, load_checkpoint
from lstm_tagger.corpus.rawtext import read_treebank
from lstm_tagger.errors import UserError
from lstm_tagger.files import atomic_write_text
from lstm_tagger.benchmark.measure import percentile

MAX_CLIENTS = 64
MAX_SECONDS = 600.0
MAX_BULK_SENTENCES = 10_000
START_SECONDS = 300.0
"""How long the server may take to load its model and start listening."""
SOAK_MIX = 99
"""In the soak, each client sends this many one-sentence requests for each bulk one."""
SOAK_SAMPLE = 10.0
"""Seconds between two samples of the server's resident memory in the soak."""
PHASES = {"one sentence": 1, "bulk": None}
"""Each phase's sentences per request (None: ``bulk_sentences``)."""


def bench_serve(
    model: str | Path | None = None, data: str | Path | None = None, clients: int = 8, seconds: float = 10.0,
    bulk_sentences: int = 1000, threads: str = "auto", predict_sentences: int = 20_000, soak: float = 0.0,
) -> dict[str, Any]:
    """Serve ``model`` and load it with ``clients`` concurrent clients for ``seconds`` per phase;
    ``data``: the CoNLL-U whose sentences' text the clients send (default: the model's test set).
    Returns each phase's figures, the server's memory and ``predict``'s speed (0 sentences: skipped);
    with ``soak`` seconds, a last phase of both kinds of request mixed, the server's RSS sampled."""
    _check(clients, seconds, bulk_sentences)
    if not 0 <= soak <= MAX_SECONDS:
        raise UserError(f"soak={soak:g}: at least 0 and at most {MAX_SECONDS:g}", {f"soak={soak:g}": f"--soak {soak:g}"})
    path = find_checkpoint(model)
    sentences = _sentences(data if data is not None else _test_set(path))
    result: dict[str, Any] = {"model": str(path), "clients": clients, "seconds": seconds, "bulk_sentences": bulk_sentences,
                              "threads": threads, "phases": {}}
    with _server(path, threads) as (pid, port):
        for name, size in PHASES.items():
            requests = _requests(sentences, size or bulk_sentences)
            result["phases"][name] = _phase(port, requests, clients, seconds)
            result["phases"][name]["rss_mib_after"] = _memory(pid, "VmRSS")
        if soak:
            mixed = _requests(sentences, 1)[:SOAK_MIX] + _requests(sentences, bulk_sentences)[:1]
            result["soak"] = _soak(pid, port, mixed, clients, soak)
        result["peak_rss_mib"] = _memory(pid, "VmHWM")
    if predict_sentences:
        result["predict"] = _predict(path, sentences, predict_sentences, threads)
    return result


def _check(clients: int, seconds: float, bulk_sentences: int) -> None:
    if not 1 <= clients <= MAX_CLIENTS:
        raise UserError(f"clients={clients}: between 1 and {MAX_CLIENTS}", {f"clients={clients}": f"--clients {clients}"})
    if not 0 < seconds <= MAX_SECONDS:
        raise UserError(f"seconds={seconds:g}: above 0 and at most {MAX_SECONDS:g}", {f"seconds={seconds:g}": f"--seconds {seconds:g}"})
    if not 1 <= bulk_sentences <= MAX_BULK_SENTENCES:
        raise UserError(f"bulk_sentences={bulk_sentences}: between 1 and {MAX_BULK_SENTENCES:,}",
                        {f"bulk_sentences={bulk_sentences}": f"--bulk-sentences {bulk_sentences}"})


def _test_set(path: Path) -> str:
    config = load_checkpoint(path).config.data
    found = config.test or config.dev
    if found is None:
        raise UserError(f"{path}: its training config names no test or dev set; pass data=FILE", {"data=FILE": "--data FILE"})
    return found


def _sentences(data: str | Path) -> list[tuple[str, int]]:
    """Each sentence's text and its number of words."""
    found = [(s.joined(), sum(len(token.words) for token in s.tokens)) for s in read_treebank(data)]
    if not found:
        raise UserError(f"{data}: no sentences to send")
    return found


def _requests(sentences: list[tuple[str, int]], size: int) -> list[tuple[bytes, int]]:
    """Request bodies of ``size`` sentences each (cycled), with their words; at most 100 distinct ones."""
    stream = cycle(sentences)
    bodies = []
    for _ in range(max(1, min(100, len(sentences) // size))):
        chosen = list(islice(stream, size))
        text = "\n".join(sentence for sentence, _ in chosen)
        bodies.append((json.dumps({"text": text, "format": "conllu"}).encode("utf-8"), sum(words for _, words in chosen)))
    return bodies


@contextmanager
def _server(path: Path, threads: str) -> Iterator[tuple[int, int]]:
    """``lstm-tag serve`` on 127.0.0.1 and a free port: (its pid, its port); stopped with SIGTERM."""
    command = [sys.executable, "-m", "lstm_tagger", "serve", "--model", f"bench={path}", "--host", "127.0.0.1",
               "--port", "0", "--threads", threads]
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        port = _port(process)
        drain = threading.Thread(target=process.stderr.read, daemon=True)  # its log must not fill the pipe
        drain.start()
        yield process.pid, port
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        process.wait(timeout=START_SECONDS)


def _port(process: subprocess.Popen) -> int:
    """The port the server announces, once it accepts requests."""
    deadline, port = time.monotonic() + START_SECONDS, None
    for line in process.stderr:
        found = re.search(r"serving on http://127\.0\.0\.1:(\d+)", line)
        port = int(found.group(1)) if found else port
        if port is not None and "Application startup complete" in line:
            return port
        if time.monotonic() > deadline:
            break
    raise UserError(f"the server did not start (exit code {process.poll()})")


def _phase(port: int, requests: list[tuple[bytes, int]], clients: int, seconds: float) -> dict[str, Any]:
    """``clients`` threads sending ``requests`` in turn for ``seconds``: the figures of what they got."""
    results: list[list[tuple[float, int]]] = [[] for _ in range(clients)]
    errors: list[str] = []
    deadline = time.monotonic() + seconds
    workers = [threading.Thread(target=_client, args=(port, requests[k % len(requests):] + requests[: k % len(requests)],
                                                       deadline, results[k], errors)) for k in range(clients)]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - started
    done = [item for items in results for item in items]
    return _figures(done, elapsed, errors)


def _soak(pid: int, port: int, requests: list[tuple[bytes, int]], clients: int, seconds: float) -> dict[str, Any]:
    """``_phase`` for ``seconds``, the server's resident memory sampled every ``SOAK_SAMPLE`` seconds
    (``rss_mib``: ``[seconds since the start, MiB]`` pairs)."""
    samples: list[tuple[float, float | None]] = []
    stop = threading.Event()
    started = time.monotonic()

    def sample() -> None:
        while not stop.wait(SOAK_SAMPLE):
            samples.append((round(time.monotonic() - started), _memory(pid, "VmRSS")))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        figures = _phase(port, requests, clients, seconds)
    finally:
        stop.set()
        sampler.join()
    return {**figures, "seconds": seconds, "rss_mib": samples}


def _client(port: int, requests: list[tuple[bytes, int]], deadline: float, out: list[tuple[float, int]], errors: list[str]) -> None:
    """Send requests on one keep-alive connection until ``deadline``; each one's latency and words."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=MAX_SECONDS)
    try:
        for body, words in cycle(requests):
            if time.monotonic() >= deadline:
                return
            start = time.perf_counter()
            connection.request("POST", "/tag", body, {"Content-Type": "application/json"})
            answer = connection.getresponse()
            answer.read()
            if answer.status != 200:
                errors.append(f"HTTP {answer.status}")
                return
            out.append((time.perf_counter() - start, words))
    except OSError as exc:
        errors.append(str(exc))
    finally:
        connection.close()


def _figures(done: list[tuple[float, int]], elapsed: float, errors: list[str]) -> dict[str, Any]:
    latencies = sorted(latency for latency, _ in done)
    return {
        "requests": len(done), "errors": len(errors), "first_error": errors[0] if errors else None,
        "requests_per_second": len(done) / elapsed, "tokens_per_second": sum(words for _, words in done) / elapsed,
        "p50_ms": percentile(latencies, 50) * 1000, "p99_ms": percentile(latencies, 99) * 1000,
    }


def _memory(pid: int, field: str) -> float | None:
    """A ``/proc/PID/status`` memory field (VmRSS, VmHWM: the peak) in MiB; None where there is no /proc."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _predict(path: Path, sentences: list[tuple[str, int]], count: int, threads: str) -> dict[str, Any]:
    """``lstm-tag predict --file`` on ``count`` of the sentences (a line each), whole process, start-up included."""
    chosen = list(islice(cycle(sentences), count))
    with tempfile.TemporaryDirectory(prefix="lstm-tag-bench-serve-") as folder:
        text = Path(folder) / "bulk.txt"
        text.write_text("\n".join(sentence for sentence, _ in chosen) + "\n", encoding="utf-8")
        command = [sys.executable, "-m", "lstm_tagger", "predict", "--model", str(path), "--file", str(text),
                   "--format", "conllu", "--threads", threads]
        start = time.perf_counter()
        subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        seconds = time.perf_counter() - start
    return {"sentences": count, "seconds": seconds, "tokens_per_second": sum(words for _, words in chosen) / seconds}


def table(result: dict[str, Any]) -> str:
    """The figures as a few lines of text."""
    lines = [f"{result['model']}: {result['clients']} clients, {result['seconds']:g} s a phase, threads {result['threads']}",
             f"{'request':<14} {'requests':>9} {'req/s':>9} {'tokens/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'RSS MiB':>8} {'errors':>6}"]
    for name, p in result["phases"].items():
        shown = name if name != "bulk" else f"{result['bulk_sentences']:,} sentences"
        rss = "" if p["rss_mib_after"] is None else f"{p['rss_mib_after']:.0f}"
        lines.append(f"{shown:<14} {p['requests']:>9,} {p['requests_per_second']:>9.1f} {p['tokens_per_second']:>10,.0f} "
                     f"{p['p50_ms']:>8.1f} {p['p99_ms']:>8.1f} {rss:>8} {p['errors']:>6}")
    if "soak" in result:
        lines.append(_soak_line(result["soak"]))
    if result.get("peak_rss_mib") is not None:
        lines.append(f"server peak RSS: {result['peak_rss_mib']:.0f} MiB")
    if "predict" in result:
        p = result["predict"]
        lines.append(f"lstm-tag predict --file ({p['sentences']:,} sentences, whole process): {p['tokens_per_second']:,.0f} tokens/s")
    return "\n".join(lines)


def _soak_line(soak: dict[str, Any]) -> str:
    """The soak's requests and the server's RSS at each quarter of it."""
    samples = [(at, mib) for at, mib in soak["rss_mib"] if mib is not None]
    quarters = [samples[min(len(samples) - 1, len(samples) * k // 4)] for k in (1, 2, 3, 4)] if samples else []
    shown = ", ".join(f"{mib:.0f} at {at:.0f} s" for at, mib in quarters) or "not measured"
    return (f"soak ({soak['seconds']:g} s, {SOAK_MIX} one-sentence requests to 1 bulk): {soak['requests']:,} requests, "
            f"{soak['errors']} errors; server RSS MiB: {shown}")


def main(argv: list[str] | None = None) -> None:
    """``python -m lstm_tagger.benchmark.serve``: the benchmark's thin command line."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m lstm_tagger.benchmark.serve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="run directory or checkpoint (default: the newest run in runs/)")
    parser.add_argument("--data", help="CoNLL-U whose sentences are sent (default: the model's test set)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0, help="per phase")
    parser.add_argument("--bulk-sentences", type=int, default=1000)
    parser.add_argument("--threads", default="auto")
    parser.add_argument("--predict-sentences", type=int, default=20_000, help="0: do not time lstm-tag predict")
    parser.add_argument("--soak", type=float, default=0.0, help="seconds of mixed load at the end, RSS sampled (0: none)")
    parser.add_argument("--output", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    try:
        result = bench_serve(args.model, args.data, args.clients, args.seconds, args.bulk_sentences, args.threads,
                             args.predict_sentences, args.soak)
    except UserError as exc:
        print(f"lstm-tag: error: {exc.for_cli()}", file=sys.stderr)
        raise SystemExit(2) from None
    if args.output:
        atomic_write_text(args.output, json.dumps(result, indent=2) + "\n")
    print(table(result))


if __name__ == "__main__":
    main()
