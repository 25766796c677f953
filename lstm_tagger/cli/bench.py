"""``lstm-tag bench`` and ``lstm-tag frontier``: how fast and big a tagger is, and accuracy against speed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

from lstm_tagger.benchmark.bench import (
    DEFAULT_EPOCHS, DEFAULT_TOKENS, LATENCY_SENTENCES, bench, default_bench_output, print_bench,
)
from lstm_tagger.files import check_output
from lstm_tagger.benchmark.frontier import frontier, frontier_table
from lstm_tagger.cli.common import threads_text, user_errors, wide_console, app



@app.command(
    "bench",
    epilog=(
        "Examples:\n\n"
        "  lstm-tag bench configs/demo.yaml --tokens 20000\n\n"
        "  lstm-tag bench configs/ud_ewt.yaml --epochs 3 --set model.hidden_dim=256 --output runs/bench-h256.json\n\n"
        "  lstm-tag bench configs/ud_ewt.yaml --model runs/ewt-small --scale-check"
    ),
)
def bench_cli(
    config: Path = typer.Argument(..., help="YAML config: its train set is trained on, its test set (or dev) is tagged."),
    overrides: Optional[List[str]] = typer.Option(
        None, "--set", metavar="KEY=VALUE", help="Override a config key, e.g. --set model.hidden_dim=256 (repeatable)."
    ),
    output: Optional[Path] = typer.Option(
        None, "--output", "-o", help="JSON file for the results \\[default: runs/bench-<config name>.json]."
    ),
    tokens: int = typer.Option(DEFAULT_TOKENS, "--tokens", min=1, help="Tokens to tag at the default batch size (sentences cycled)."),
    epochs: int = typer.Option(DEFAULT_EPOCHS, "--epochs", min=1, help="Epochs to train; the speed is the median after the first."),
    model: Optional[Path] = typer.Option(
        None, "--model", "-m", help="Skip training and tag with this checkpoint file or run directory."
    ),
    scale_check: bool = typer.Option(False, "--scale-check", help="Also tag 5x the tokens and compare peak memory (slow)."),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Train into this directory and keep it \\[default: a temporary one]."),
    small_batch: Optional[int] = typer.Option(
        None, "--small-batch-tokens", min=1, help="Tokens to tag at batch size 1 \\[default: tokens/50, at least 10,000]."
    ),
    latency_sentences: int = typer.Option(LATENCY_SENTENCES, "--latency-sentences", min=1, help="Sentences tagged one at a time for the latency."),
    threads: Optional[str] = typer.Option(
        None, "--threads", metavar="auto|N", help="Threads for the training (train.threads) and tagging runs \\[default: the config's, and auto]."
    ),
    contended: bool = typer.Option(
        False, "--contended", help="Measure with a busy process (a Python loop) running beside, as on a shared machine."
    ),
    force: bool = typer.Option(False, "--force", help="Replace an existing --output file."),
) -> None:
    """Measure training and tagging speed, latency, memory, FLOPs per token and the machine's matmul rate."""
    with user_errors():
        threads = threads_text(threads)
        destination = output or default_bench_output(config)
        check_output(destination, force)
        result = bench(
            config, overrides or [], tokens, epochs, model, destination,
            scale_check=scale_check, run_dir=run_dir, small_batch=small_batch, latency_sentences=latency_sentences,
            threads=threads, contended=contended,
        )
    print_bench(wide_console(), result)
    print(f"bench written to {destination}")


@app.command(
    "frontier",
    epilog=(
        "Examples:\n\n"
        "  lstm-tag bench configs/ud_ewt_fast.yaml --model runs/ewt-fast --output runs/bench-ud_ewt_fast.json\n\n"
        "  lstm-tag frontier runs/bench-ud_ewt_fast.json runs/bench-ud_ewt.json --output frontier.png"
    ),
)
def frontier_cli(
    bench_files: List[Path] = typer.Argument(..., metavar="BENCH_JSON", help="JSON files of lstm-tag bench CONFIG --model RUN (the run must have test scores)."),
    output: Path = typer.Option(..., "--output", "-o", help="PNG file to write."),
    force: bool = typer.Option(False, "--force", help="Replace an existing --output file."),
    as_json: bool = typer.Option(False, "--json", help="Print the points as one JSON object instead of a table."),
) -> None:
    """Plot test UPOS against whole-process tagging speed for each benchmarked recipe, beside spaCy's small English pipeline and UDPipe 1."""
    with user_errors():
        result = frontier(bench_files, output, force=force)
    if result["note"]:
        print(f"lstm-tag: {result['note']}", file=sys.stderr)
    if as_json:
        print(json.dumps(result))
        return
    wide_console().print(frontier_table(result))
    print(f"frontier written to {output}")
