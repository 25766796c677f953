"""The measurements ``lstm-tag bench`` makes, one function each: training and whole-process
tagging in subprocesses (wall time and peak RSS from ``os.wait4``), and single-sentence latency
in this process. ``bench.py`` runs them in turn and puts the results together.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence


from lstm_tagger.checkpoint import Checkpoint
from lstm_tagger.errors import UserError, one_line
from lstm_tagger.tagging.predict import tag
from lstm_tagger.corpus.rawtext import paragraph_texts, paragraphs, read_treebank
from lstm_tagger.rundir import METRICS

SMALL_BATCH_SHARE = 50
"""Batch size 1 tags N / 50 tokens (but at least ``SMALL_BATCH_MIN_TOKENS``, and never more than N)."""
SMALL_BATCH_MIN_TOKENS = 10_000
LATENCY_SENTENCES = 500
LATENCY_WARMUP = 20

Say = Callable[[str], None]


# --- subprocesses -------------------------------------------------------------------------


@dataclass
class ProcessRun:
    """A finished child process: exit code, wall time and peak resident memory."""

    returncode: int
    wall_seconds: float
    peak_rss_kib: int
    stderr_tail: str


def _lstm_tag(*args: str) -> list[str]:
    """The command line of ``lstm-tag ARGS`` run by this Python (so the same installation)."""
    return [sys.executable, "-m", "lstm_tagger", *args]


_LAUNCHER = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[2:])
while True:
    try:
        _, status, usage = os.wait4(child.pid, 0)
        break
    except KeyboardInterrupt:
        pass
os.write(int(sys.argv[1]), str(usage.ru_maxrss).encode("ascii"))
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""
"""A small Python between this process and the measured one, which waits for it with ``os.wait4``
and writes its ``ru_maxrss`` to the file descriptor ``argv[1]``. Linux counts into a process's peak
RSS the memory of the process it was forked from, until its ``exec``: measured from this process
directly (torch loaded, 240 MiB), ``python -c pass`` peaked at 240 MiB. Through the launcher the
floor is the launcher's own ~10 MiB."""


def run_measured(args: Sequence[str], stdout: Path, stderr: Path, env: Mapping[str, str] | None = None) -> ProcessRun:
    """Run ``args`` with stdout and stderr into files (and ``env`` as its whole environment, if given);
    time it and read its peak RSS (``ru_maxrss`` from ``os.wait4``: the largest of the process and
    the children it waited for) through ``_LAUNCHER``.
    The launcher and the child have their own process group, killed together on Ctrl-C."""
    read, write = os.pipe()
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        started = time.perf_counter()
        try:
            process = subprocess.Popen([sys.executable, "-I", "-S", "-c", _LAUNCHER, str(write), *args], stdin=subprocess.DEVNULL,
                                       stdout=out, stderr=err, pass_fds=(write,), start_new_session=True, env=env)
        finally:
            os.close(write)
        try:
            process.wait()
        except BaseException:  # Ctrl-C: do not leave the child running
            _kill_group(process)
            raise
        wall = time.perf_counter() - started
    with os.fdopen(read, "rb") as pipe:
        written = pipe.read().decode("ascii", errors="replace")
    lines = [line for line in stderr.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    peak = int(written) if written.isdigit() else 0
    peak = peak // 1024 if sys.platform == "darwin" else peak  # macOS: bytes
    return ProcessRun(process.returncode, wall, peak, lines[-1] if lines else "")


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def _check(run: ProcessRun, what: str) -> None:
    if run.returncode != 0:
        detail = run.stderr_tail.removeprefix("lstm-tag: error: ") or "no message"
        raise UserError(f"{what} failed with exit code {run.returncode}: {detail}")


def _mib(kib: int) -> float:
    return round(kib / 1024, 1)


# --- 1. training ---------------------------------------------------------------------------


@contextmanager
def busy_neighbour(enabled: bool) -> Iterator[None]:
    """With ``enabled``, one busy process (a Python loop on one core) runs beside the block."""
    if not enabled:
        yield
        return
    process = subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL)
    try:
        yield
    finally:
        process.kill()
        process.wait()


def measure_training(config_path: Path, overrides: Sequence[str], epochs: int, run_dir: Path, work: Path) -> dict[str, Any]:
    """Train ``epochs`` epochs in a subprocess into ``run_dir``; steady-state tokens/s, peak RSS, wall time."""
    args = ["train", str(config_path), "--output", str(run_dir), "--no-progress", "--quiet"]
    for override in [*overrides, f"train.epochs={epochs}"]:  # last wins: --epochs decides
        args += ["--set", override]
    run = run_measured(_lstm_tag(*args), work / "train.out", work / "train.err")
    _check(run, "training")
    try:
        records = [json.loads(line) for line in (run_dir / METRICS).read_text(encoding="utf-8").splitlines() if line]
    except (OSError, ValueError) as exc:
        raise UserError(f"{run_dir / 'metrics.jsonl'}: cannot read the training metrics: {one_line(exc)}") from None
    speeds = [float(r["train_tokens_per_second"]) for r in records]
    steady = speeds[1:] or speeds
    return {
        "epochs": len(records),
        "tokens_per_second": statistics.median(steady),
        "tokens_per_second_by_epoch": speeds,
        "wall_seconds": round(run.wall_seconds, 3),
        "peak_rss_mib": _mib(run.peak_rss_kib),
    }


# --- 2. tagging in a subprocess ------------------------------------------------------------


def cycled(pieces: Sequence[tuple[str, int]], tokens: int, nothing: str) -> Iterator[tuple[str, int]]:
    """(text, tokens) pieces with tokens, cycled until they hold at least ``tokens`` tokens (the
    last piece is whole); no such piece is the ``UserError`` ``nothing``."""
    usable = [(text, count) for text, count in pieces if count > 0 and text.strip()]
    if not usable:
        raise UserError(nothing)
    produced = 0
    while produced < tokens:
        for text, count in usable:
            yield text, count
            produced += count
            if produced >= tokens:
                return


def cycled_lines(sentences: Sequence[Sequence[str]], tokens: int) -> Iterator[str]:
    """Whitespace-joined sentences, cycled until at least ``tokens`` tokens (the last sentence is whole).

    A word holding whitespace would become several tokens for ``predict``: count with ``split``.
    """
    lines = [" ".join(words) for words in sentences]
    for line, _ in cycled([(line, len(line.split())) for line in lines], tokens, "the tagging corpus has no tokens"):
        yield line


def write_token_file(path: Path, sentences: Sequence[Sequence[str]], tokens: int) -> tuple[int, int]:
    """Write ``predict``'s input (one sentence a line) with at least ``tokens`` tokens -> (sentences, tokens)."""
    count = total = 0
    with open(path, "w", encoding="utf-8") as handle:
        for line in cycled_lines(sentences, tokens):
            handle.write(line + "\n")
            count += 1
            total += len(line.split())
    return count, total


def measure_tagging(
    model: Path, sentences: Sequence[Sequence[str]], tokens: int, batch_size: int, work: Path, threads: str = "auto"
) -> dict[str, Any]:
    """``lstm-tag predict --model M --file F --batch-size B`` on ~``tokens`` tokens: whole-process tokens/s and peak RSS."""
    source = work / f"tag-{tokens}.txt"
    count, total = write_token_file(source, sentences, tokens)
    output = work / f"tag-{tokens}-bs{batch_size}.out"
    args = ["predict", "--model", str(model), "--file", str(source), "--input-format", "tokens", "--batch-size", str(batch_size),
            "--threads", threads]
    run = run_measured(_lstm_tag(*args), output, work / "predict.err")
    _check(run, "tagging")
    with open(output, "rb") as handle:
        written = sum(1 for _ in handle)
    if written != count:
        raise UserError(f"tagging wrote {written} lines for {count} sentences")
    source.unlink()
    output.unlink()
    return {
        "batch_size": batch_size,
        "sentences": count,
        "tokens": total,
        "tokens_per_second": total / run.wall_seconds,
        "wall_seconds": round(run.wall_seconds, 3),
        "peak_rss_mib": _mib(run.peak_rss_kib),
    }


def write_text_file(path: Path, paragraphs: Sequence[tuple[str, int]], tokens: int) -> tuple[int, int]:
    """Write raw text, (text, gold words) paragraphs separated by a blank line and cycled until
    at least ``tokens`` gold words -> (paragraphs, gold words) written."""
    count = total = 0
    with open(path, "w", encoding="utf-8") as handle:
        for text, words in cycled(paragraphs, tokens, "the tagging corpus has no raw text"):
            handle.write(("\n" if count else "") + text + "\n")
            count += 1
            total += words
    return count, total


def measure_raw_tagging(model: Path, corpus_path: str, tokens: int, work: Path, threads: str = "auto") -> dict[str, Any]:
    """``lstm-tag predict --input-format text`` on the raw text of the CoNLL-U ``corpus_path`` (each
    paragraph's sentences' ``# text``, see ``rawtext.raw_text``) cycled to ~``tokens`` gold words:
    segmenter and tagger, whole process; tokens/s counts the gold words of the text."""
    treebank = read_treebank(corpus_path)
    texts = paragraph_texts(treebank)
    words = [sum(len(s.words) for s in group) for group in paragraphs(treebank)]
    source = work / f"text-{tokens}.txt"
    count, total = write_text_file(source, list(zip(texts, words)), tokens)
    output = work / f"text-{tokens}.out"
    args = ["predict", "--model", str(model), "--file", str(source), "--input-format", "text", "--format", "text",
            "--threads", threads]
    run = run_measured(_lstm_tag(*args), output, work / "predict-text.err")
    _check(run, "raw-text tagging")
    with open(output, "rb") as handle:
        sentences = found = 0
        for line in handle:
            sentences += 1
            found += len(line.split())
    source.unlink()
    output.unlink()
    return {
        "paragraphs": count,
        "tokens": total,
        "sentences_found": sentences,
        "words_found": found,
        "tokens_per_second": total / run.wall_seconds,
        "wall_seconds": round(run.wall_seconds, 3),
        "peak_rss_mib": _mib(run.peak_rss_kib),
    }


def small_batch_tokens(tokens: int) -> int:
    """Tokens to tag at batch size 1: N / 50, but at least 10,000 (and at most N)."""
    return max(tokens // SMALL_BATCH_SHARE, min(tokens, SMALL_BATCH_MIN_TOKENS))


# --- 3. latency ----------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], percent: int) -> float:
    """The nearest-rank ``percent``-th percentile of an ascending list (NaN for an empty one); the
    rank is counted in integers, so 99 of 100 values is the 99th, not the 100th."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * percent // 100))
    return sorted_values[rank - 1]


def measure_latency(
    checkpoint: Checkpoint, sentences: Sequence[Sequence[str]], count: int = LATENCY_SENTENCES, warmup: int = LATENCY_WARMUP
) -> dict[str, Any]:
    """Tag ``count`` sentences (cycled) one at a time with ``tag``, after ``warmup`` untimed ones.

    Each time covers what a caller waits for: encoding, the forward pass and decoding.
    """
    pool = [list(words) for words in sentences if words]
    if not pool:
        raise UserError("the tagging corpus has no sentences")
    chosen = [pool[i % len(pool)] for i in range(count)]
    for words in chosen[:warmup]:
        tag(checkpoint, [words], batch_size=1)
    times = []
    for words in chosen:
        started = time.perf_counter()
        tag(checkpoint, [words], batch_size=1)
        times.append(time.perf_counter() - started)
    times.sort()
    return {
        "sentences": count,
        "distinct_sentences": min(count, len(pool)),
        "mean_tokens": round(sum(len(w) for w in chosen) / count, 2),
        "warmup": warmup,
        "median_ms": round(1000 * statistics.median(times), 4),
        "p95_ms": round(1000 * percentile(times, 95), 4),
        "max_ms": round(1000 * times[-1], 4),
    }
