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

This module puts the measurements together and prints the table; each measurement (the
subprocesses, timing, peak RSS) is a function of ``measure.py``, and what is counted and what
the machine is lives in ``flops.py``.

Peak RSS of a subprocess is its ``ru_maxrss`` from ``os.wait4`` (KiB on Linux). Other
processes on the machine slow every figure down; ``machine.load_average`` records the
load before and after.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from rich.console import Console
from rich.table import Table

from lstm_tagger.checkpoint import find_checkpoint, load_checkpoint
from lstm_tagger.configfile import load_config
from lstm_tagger.corpus.reader import read_corpus
from lstm_tagger.errors import UserError
from lstm_tagger.files import atomic_write_text, check_writable, make_dir
from lstm_tagger.benchmark.flops import flops_per_token, load_average, machine_info, matmul_rate, model_shape
from lstm_tagger.model.tagger import parameter_count
from lstm_tagger.tagging.predict import DEFAULT_BATCH_SIZE
from lstm_tagger.evaluation.report import percent
from lstm_tagger.runs import upos_on_test
from lstm_tagger.benchmark.measure import (
    LATENCY_SENTENCES, busy_neighbour, measure_latency, measure_raw_tagging, measure_tagging, measure_training,
    small_batch_tokens,
)

DEFAULT_TOKENS = 1_000_000
DEFAULT_EPOCHS = 2
SCALE_FACTOR = 5
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
