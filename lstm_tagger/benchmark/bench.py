"""``bench(config_path, ...)``: how fast, how big and how hungry a tagger is on this machine.

Six measurements, each printed as a progress line on stderr while it runs:

1. training speed: ``lstm-tag train`` in a subprocess for a few epochs; the median of
   ``train_tokens_per_second`` (``metrics.jsonl``) over the epochs after the first (the first
   warms up caches and allocators; with one epoch, that one), the process's peak RSS and
   wall time;
2. whole-process tagging speed: ``lstm-tag predict --file`` in a subprocess over the test
   sentences (dev without a test set) cycled to N tokens, at ``predict``'s default batch
   size and at batch size 1; start-up and loading are part of the time, so this is what a
   user of the command sees. ``scale_check`` also tags 5N tokens and compares peak RSS:
   a ratio near 1 means memory does not grow with the input. A model with a segmenter also
   tags the corpus's raw text (``# text``, paragraphs), cycled to N gold tokens, with
   ``predict --input-format text``: segmenter and tagger, whole process;
3. single-sentence latency in this process: ``tag`` on one sentence at a time, after a
   warm-up; median and 95th percentile;
4. parameters and floating-point operations per token of the inference forward pass
   (``flops.flops_per_token``);
5. this machine's float32 matrix-multiply rate (``flops.matmul_rate``) and the fraction of it
   that training and tagging achieve;
6. the machine: CPU model, cores, threads, load, torch and Python versions, date
   (``flops.machine_info``).

The result also names the recipe (the config file's stem) and, when the tagged model is a
run's best checkpoint whose report has test scores, its test UPOS accuracy
(``model.test_upos``; see ``runs.upos_on_test``): ``lstm-tag frontier`` plots the two.

This module is the harness (subprocesses, timing, the table); what is counted and what
the machine is lives in ``flops.py``.

Peak RSS of a subprocess is its ``ru_maxrss`` from ``os.wait4`` (KiB on Linux). Other
processes on the machine slow every figure down; ``machine.load_average`` records the
load before and after.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
from rich.console import Console
from rich.table import Table

from lstm_tagger.checkpoint import Checkpoint, find_checkpoint, load_checkpoint
from lstm_tagger.config import load_config
from lstm_tagger.corpus.reader import read_corpus
from lstm_tagger.errors import UserError, one_line
from lstm_tagger.files import atomic_write_text, check_writable, make_dir
from lstm_tagger.benchmark.flops import flops_per_token, load_average, machine_info, matmul_rate, model_shape
from lstm_tagger.model.tagger import parameter_count
from lstm_tagger.tagging.predict import DEFAULT_BATCH_SIZE, tag
from lstm_tagger.corpus.rawtext import paragraph_texts, paragraphs, read_treebank
from lstm_tagger.evaluation.report import percent
from lstm_tagger.runs import upos_on_test

DEFAULT_TOKENS = 1_000_000
DEFAULT_EPOCHS = 2
SMALL_BATCH_SHARE = 50
"""Batch size 1 tags N / 50 tokens (but at least ``SMALL_BATCH_MIN_TOKENS``, and never more than N)."""
SMALL_BATCH_MIN_TOKENS = 10_000
SCALE_FACTOR = 5
LATENCY_SENTENCES = 500
LATENCY_WARMUP = 20
FLOP_SENTENCES = 8 * DEFAULT_BATCH_SIZE
"""Sentences tagged under the FLOP counter: one chunk of ``predict``'s reader."""
BACKWARD_FACTOR = 3
"""Training FLOPs per token ~= 3 x the forward pass: the backward pass costs about two forwards
(one product for the gradient of the inputs, one for the gradient of the weights)."""
SQUARE = 1024

Say = Callable[[str], None]


def _stderr(line: str) -> None:
    print(f"bench: {line}", file=sys.stderr, flush=True)


def default_bench_output(config_path: str | Path, runs_dir: str | Path = "runs") -> Path:
    """``runs/bench-<config name>.json``."""
    return Path(runs_dir) / f"bench-{Path(config_path).stem}.json"


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


def run_measured(args: Sequence[str], stdout: Path, stderr: Path) -> ProcessRun:
    """Run ``args`` with stdout and stderr into files; time it and read its rusage with ``os.wait4``."""
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        started = time.perf_counter()
        process = subprocess.Popen(list(args), stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        try:
            _, status, usage = os.wait4(process.pid, 0)
        except BaseException:  # Ctrl-C: do not leave the child running
            process.kill()
            process.wait()
            raise
        wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4: tell Popen
    lines = [line for line in stderr.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    peak = usage.ru_maxrss // 1024 if sys.platform == "darwin" else usage.ru_maxrss  # macOS: bytes
    return ProcessRun(process.returncode, wall, int(peak), lines[-1] if lines else "")


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
        records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines() if line]
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


def _percentile(sorted_values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    return sorted_values[max(0, math.ceil(share * len(sorted_values)) - 1)]


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
        "p95_ms": round(1000 * _percentile(times, 0.95), 4),
        "max_ms": round(1000 * times[-1], 4),
    }


# --- the whole benchmark -------------------------------------------------------------------


def _fraction(flops: float, per_second: float | None, factor: int, rate_gflops: float) -> float | None:
    return None if per_second is None else flops * per_second * factor / (rate_gflops * 1e9)


def bench(
    config_path: str | Path,
    overrides: Sequence[str] = (),
    tokens: int = DEFAULT_TOKENS,
    epochs: int = DEFAULT_EPOCHS,
    model: str | Path | None = None,
    output: str | Path | None = None,
    *,
    scale_check: bool = False,
    run_dir: str | Path | None = None,
    small_batch: int | None = None,
    latency_sentences: int = LATENCY_SENTENCES,
    threads: str | None = None,
    contended: bool = False,
    say: Say = _stderr,
) -> dict[str, Any]:
    """Benchmark the tagger of ``config_path`` (with ``--set`` ``overrides``) on this machine.

    Trains ``epochs`` epochs in a subprocess (into ``run_dir``, kept, or a temporary folder)
    unless ``model`` (a checkpoint or run directory) is given, then tags ``tokens`` tokens of
    the config's test set (dev without one), and ``small_batch`` tokens (default
    ``small_batch_tokens(tokens)``) at batch size 1. Returns the results as a JSON-ready
    dict and, with ``output``, writes them there atomically. ``say`` gets one progress line
    per stage. ``threads`` (``auto`` or a count) goes to the training run as ``train.threads``
    and to the tagging runs as ``--threads``; ``contended`` runs a busy process beside every
    measurement (see ``busy_neighbour``).
    """
    with busy_neighbour(contended):
        result = _bench(
            Path(config_path), list(overrides) + ([f"train.threads={threads}"] if threads is not None else []),
            tokens, epochs, model, output, scale_check, run_dir, small_batch, latency_sentences, threads or "auto", say,
        )
    result["contended"] = contended
    if output is not None:
        atomic_write_text(Path(output), json.dumps(result, indent=2) + "\n")
    return result


def _bench(
    config_path: Path, overrides: list[str], tokens: int, epochs: int, model: str | Path | None, output: str | Path | None,
    scale_check: bool, run_dir: str | Path | None, small_batch: int | None, latency_sentences: int, threads: str, say: Say,
) -> dict[str, Any]:
    """The measurements of ``bench``, in order."""
    if tokens < 1 or epochs < 1 or latency_sentences < 1:
        raise UserError("tokens, epochs and latency sentences must be at least 1")
    config = load_config(config_path, overrides)  # a bad config fails here, in one line
    given = find_checkpoint(model) if model is not None else None
    if output is not None:  # the results are written at the end: make sure they can be, before the work
        check_writable(make_dir(Path(output).parent))
    corpus_path = config.data.test or config.data.dev
    sentences = [s.words for s in read_corpus(corpus_path, config.data.format, config.data.columns)]
    load_before = load_average()
    result: dict[str, Any] = {
        "config": str(config_path),
        "recipe": config_path.stem,
        "overrides": list(overrides),
        "corpus": {"train": config.data.train, "tagging": corpus_path},
        "machine": machine_info(),
    }
    with tempfile.TemporaryDirectory(prefix="lstm-tag-bench-") as tmp:
        work = Path(tmp)
        if given is None:
            target = Path(run_dir) if run_dir is not None else work / "run"
            say(f"training {epochs} epoch{'s' * (epochs > 1)} of {config_path} in a subprocess")
            result["train"] = measure_training(config_path, overrides, epochs, target, work)
            say(f"training: {result['train']['tokens_per_second']:,.0f} tok/s (steady state)")
            checkpoint_path = find_checkpoint(target)
        else:
            result["train"] = None
            checkpoint_path = given
        result["model"] = {
            "path": str(checkpoint_path), "trained_here": given is None, "kept": given is not None or run_dir is not None,
            **upos_on_test(checkpoint_path),
        }

        checkpoint = load_checkpoint(checkpoint_path)
        result["tagging"] = _tagging(
            checkpoint_path, sentences, corpus_path, tokens, small_batch, scale_check, threads, work, say,
            checkpoint.segmenter is not None,
        )
        say(f"latency of {latency_sentences} single sentences (in process)")
        result["latency"] = measure_latency(checkpoint, sentences, latency_sentences)
        say("parameters and FLOPs per token (FlopCounterMode)")
        flops = flops_per_token(checkpoint, sentences[:FLOP_SENTENCES])
        result["model"].update({"parameters": parameter_count(checkpoint.model), **flops})

    say(f"float32 matrix-multiply rate on {torch.get_num_threads()} thread(s)")
    result.update(_achieved(result, model_shape(checkpoint.model, sentences)))
    result["machine"]["load_average"] = {"before": load_before, "after": load_average()}
    return result


def _tagging(
    checkpoint_path: Path, sentences: Sequence[Sequence[str]], corpus_path: str, tokens: int, small_batch: int | None,
    scale_check: bool, threads: str, work: Path, say: Say, has_segmenter: bool,
) -> dict[str, Any]:
    """Whole-process tagging at the default batch size and at batch size 1 (and the memory scale
    check); raw text too when the model has a segmenter and the corpus is CoNLL-U."""
    tagging: dict[str, Any] = {}
    say(f"tagging {tokens:,} tokens of {corpus_path} at batch size {DEFAULT_BATCH_SIZE} (lstm-tag predict)")
    tagging["default_batch"] = measure_tagging(checkpoint_path, sentences, tokens, DEFAULT_BATCH_SIZE, work, threads)
    small = small_batch or small_batch_tokens(tokens)
    say(f"tagging {small:,} tokens at batch size 1 (lstm-tag predict)")
    tagging["batch_1"] = measure_tagging(checkpoint_path, sentences, small, 1, work, threads)
    tagging["scale_check"] = None
    if scale_check:
        say(f"tagging {SCALE_FACTOR * tokens:,} tokens at batch size {DEFAULT_BATCH_SIZE} for the memory scale check")
        big = measure_tagging(checkpoint_path, sentences, SCALE_FACTOR * tokens, DEFAULT_BATCH_SIZE, work, threads)
        tagging["scale_check"] = {**big, "factor": SCALE_FACTOR, "rss_ratio": big["peak_rss_mib"] / tagging["default_batch"]["peak_rss_mib"]}
    tagging["raw_text"] = tagging["raw_text_scale_check"] = None
    if has_segmenter and corpus_path.endswith(".conllu"):
        say(f"tagging the raw text of {corpus_path} cycled to {tokens:,} tokens (lstm-tag predict --input-format text)")
        tagging["raw_text"] = measure_raw_tagging(checkpoint_path, corpus_path, tokens, work, threads)
        if scale_check:
            say(f"tagging {SCALE_FACTOR * tokens:,} tokens of raw text for the memory scale check")
            big = measure_raw_tagging(checkpoint_path, corpus_path, SCALE_FACTOR * tokens, work, threads)
            ratio = big["peak_rss_mib"] / tagging["raw_text"]["peak_rss_mib"]
            tagging["raw_text_scale_check"] = {**big, "factor": SCALE_FACTOR, "rss_ratio": ratio}
    return tagging


def _achieved(result: dict[str, Any], shape: tuple[int, int, int]) -> dict[str, Any]:
    """The matmul rates (square and of the model's shape) and the share of them that training and tagging reach."""
    square = matmul_rate(SQUARE, SQUARE, SQUARE)
    shaped = matmul_rate(*shape)
    per_token = result["model"]["flops_per_token"]
    train_speed = result["train"]["tokens_per_second"] if result["train"] else None
    tag_speed = result["tagging"]["default_batch"]["tokens_per_second"]
    return {
        "matmul": {"threads": torch.get_num_threads(), "square": square, "model_shape": shaped},
        "achieved": {
            "backward_factor": BACKWARD_FACTOR,
            "train_fraction_of_square": _fraction(per_token, train_speed, BACKWARD_FACTOR, square["gflops"]),
            "tag_fraction_of_square": _fraction(per_token, tag_speed, 1, square["gflops"]),
            "train_fraction_of_model_shape": _fraction(per_token, train_speed, BACKWARD_FACTOR, shaped["gflops"]),
            "tag_fraction_of_model_shape": _fraction(per_token, tag_speed, 1, shaped["gflops"]),
        },
    }


def _epochs_note(epochs: int) -> str:
    return {1: "one epoch", 2: "epoch 2"}.get(epochs, f"median of epochs 2-{epochs}")


def print_bench(console: Console, result: dict[str, Any]) -> None:
    """The benchmark as one table: measure, value, detail."""
    table = Table(title=f"bench {result['config']}", title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("detail")
    train_, tagging, latency, model, mm = result["train"], result["tagging"], result["latency"], result["model"], result["matmul"]
    if train_:
        table.add_row("training tok/s", f"{train_['tokens_per_second']:,.0f}", _epochs_note(train_["epochs"]))
        table.add_row("training peak RSS", f"{train_['peak_rss_mib']:,.1f} MiB", f"{train_['wall_seconds']:.1f} s wall, whole process")
    for key in ("default_batch", "batch_1"):
        run = tagging[key]
        table.add_row(
            f"tagging tok/s, batch {run['batch_size']}", f"{run['tokens_per_second']:,.0f}",
            f"{run['tokens']:,} tokens, {run['wall_seconds']:.1f} s, peak RSS {run['peak_rss_mib']:,.1f} MiB",
        )
    if tagging["scale_check"]:
        scale = tagging["scale_check"]
        table.add_row(f"peak RSS x{scale['factor']} tokens", f"{scale['rss_ratio']:.2f}x", f"{scale['peak_rss_mib']:,.1f} MiB at {scale['tokens']:,} tokens")
    raw = tagging.get("raw_text")
    if raw:
        table.add_row(
            "raw text tok/s", f"{raw['tokens_per_second']:,.0f}",
            f"{raw['tokens']:,} gold tokens, {raw['wall_seconds']:.1f} s, peak RSS {raw['peak_rss_mib']:,.1f} MiB; segmenter + tagger",
        )
    if tagging.get("raw_text_scale_check"):
        scale = tagging["raw_text_scale_check"]
        table.add_row(f"raw text peak RSS x{scale['factor']}", f"{scale['rss_ratio']:.2f}x", f"{scale['peak_rss_mib']:,.1f} MiB at {scale['tokens']:,} tokens")
    table.add_row("latency, one sentence", f"{latency['median_ms']:.2f} ms", f"p95 {latency['p95_ms']:.2f} ms over {latency['sentences']} sentences")
    table.add_row("parameters", f"{model['parameters']:,}", model["path"])
    known = model["test_upos"] is not None
    table.add_row("test UPOS", f"{percent(model['test_upos'])} %" if known else "-",
                  model["test_data"] if known else "no test scores in this checkpoint's run (report.json)")
    added = ", ".join(model["added_analytically"]) or "none"
    table.add_row("FLOPs per token", f"{model['flops_per_token']:,.0f}", f"forward; analytic for: {added}")
    table.add_row("matmul GFLOP/s", f"{mm['square']['gflops']:,.1f}", f"{SQUARE}^3 float32, {mm['threads']} thread(s)")
    table.add_row("matmul GFLOP/s, model shape", f"{mm['model_shape']['gflops']:,.1f}", "x".join(map(str, mm["model_shape"]["shape"])))
    achieved = result["achieved"]
    if achieved["train_fraction_of_square"] is not None:
        table.add_row("training share of matmul rate", f"{100 * achieved['train_fraction_of_square']:.2f} %", f"{BACKWARD_FACTOR}x forward FLOPs")
    table.add_row("tagging share of matmul rate", f"{100 * achieved['tag_fraction_of_square']:.2f} %", f"whole process, batch {DEFAULT_BATCH_SIZE}")
    machine = result["machine"]
    table.add_row("machine", machine["cpu"], f"{machine['cores']} cores, torch {machine['torch']}, Python {machine['python']}, {machine['date']}")
    console.print(table)
