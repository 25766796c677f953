"""Where the time of a training epoch goes:
``python -m lstm_tagger.benchmark.profile CONFIG [--batches N] [--set key=value ...]``.

It trains the config's tagger for one epoch (or its first N batches) with the training loop
itself (``loop.train_epoch``: same batches, same thread chooser) and times the sections that
the model and the loop mark (``sections.py``): the character encoder, the word BiLSTM and the
CRFs' step loops in the forward pass; the backward pass split where the gradients of the word
encoder's output and input become ready; the optimiser step; building each batch; the thread
chooser's own calls; and the Python between batches (the rest of the epoch's wall time). The
timer adds a clock reading per section, a few microseconds a batch, not torch.profiler's
per-operation records (which would slow the CRF's thousands of small operations most).

The thread chooser's probes also cost the batches they run at the slower count: the profile
counts those batches and estimates that excess (their time minus what batches of their size
cost at the count chosen). Only the tagger: the segmenter trains in its own phase or process
(``tokenizer:`` is ignored here), and data loading is timed apart from the epoch.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any, List, Optional, Sequence

import typer

from lstm_tagger import sections as s
from lstm_tagger.errors import UserError
from lstm_tagger.files import atomic_write_text, check_writable, make_dir
from lstm_tagger.threads import ThreadChooser, size_class, thread_chooser


class RecordingChooser:
    """A ``ThreadChooser`` that also records each batch: (tokens, seconds, threads, in a probe)."""

    def __init__(self, chooser: ThreadChooser):
        self.chooser = chooser
        self.batches: list[tuple[int, float, int, bool]] = []
        self._started = 0.0

    def batch_started(self) -> None:
        self.chooser.batch_started()
        self._state = (self.chooser.threads, bool(self.chooser.plan))
        self._started = time.perf_counter()

    def batch_finished(self, tokens: int) -> None:
        self.batches.append((tokens, time.perf_counter() - self._started, *self._state))
        self.chooser.batch_finished(tokens)


def probe_excess(batches: Sequence[tuple[int, float, int, bool]], chosen: int) -> dict[str, Any]:
    """Probe batches run at another count than ``chosen``: how many, their seconds, and their excess
    over the median seconds per token of batches of the same size class at ``chosen`` outside probes."""
    usual: dict[int, list[float]] = {}
    for tokens, seconds, threads, probing in batches:
        if threads == chosen and not probing:
            usual.setdefault(size_class(tokens), []).append(seconds / max(tokens, 1))
    others = [(tokens, seconds) for tokens, seconds, threads, probing in batches if probing and threads != chosen]
    excess = 0.0
    for tokens, seconds in others:
        near = min(usual, key=lambda c: abs(c - size_class(tokens)), default=None)
        excess += seconds - (tokens * statistics.median(usual[near]) if near is not None else seconds)
    return {"batches": len(others), "seconds": sum(seconds for _, seconds in others), "excess_seconds": excess}


def groups(seconds: dict[str, float], epoch: float) -> list[tuple[str, float]]:
    """The epoch's wall seconds shared among the groups the profile reports (they sum to ``epoch``)."""
    get = lambda name: seconds.get(name, 0.0)  # noqa: E731
    inner = get(s.CHARS) + get(s.WORD_ENCODER) + get(s.CRF)
    steps = sum(get(n) for n in (s.BATCH_INPUTS, s.FORWARD, s.BACKWARD, s.OPTIMIZER, s.THREADS))
    return [
        ("character encoder, forward", get(s.CHARS)),
        ("word BiLSTM, forward", get(s.WORD_ENCODER)),
        ("CRFs, forward (the step loop)", get(s.CRF)),
        ("rest of the forward pass (embeddings, output layers, losses)", get(s.FORWARD) - inner),
        ("backward: output layers and CRFs", get(s.BACKWARD_HEADS)),
        ("backward: word BiLSTM", get(s.BACKWARD_WORD_ENCODER)),
        ("backward: character encoder and embeddings", get(s.BACKWARD_REST)),
        ("gradient clipping and optimiser step", get(s.OPTIMIZER)),
        ("building batches (collate, word dropout, characters)", get(s.BATCH_INPUTS)),
        ("thread chooser's own calls", get(s.THREADS)),
        ("Python between batches (the loop, progress)", epoch - steps),
    ]


def profile_epoch(config_path: str | Path, overrides: Sequence[str] = (), batches: int | None = None) -> dict[str, Any]:
    """Train one epoch (the first ``batches`` batches) of the tagger of ``config_path`` and time its
    parts; -> a JSON-ready dict: the groups' seconds and shares of the epoch, and the probes'."""
    from rich.console import Console
    from rich.progress import Progress

    from lstm_tagger.configfile import load_config
    from lstm_tagger.training.distributed import World
    from lstm_tagger.training.loop import resolve_device, train_epoch
    from lstm_tagger.memory import fix_mmap_threshold
    from lstm_tagger.training.session import Outside, RunLog, Splits, build

    if batches is not None and batches < 1:
        raise UserError(f"--batches must be at least 1, got {batches}")
    config = load_config(config_path, list(overrides))
    fix_mmap_threshold()  # as training does
    started = time.perf_counter()
    world, device, log = World.from_env(), resolve_device(config), []
    splits = Splits.read(config)
    session = build(config, Path("."), device, splits, Outside.read(config), world, RunLog(Console(quiet=True), None), None)
    setup = time.perf_counter() - started
    threads = None if config.train.threads == "auto" else config.train.threads
    chooser = thread_chooser(threads, 1, log.append) if device.type == "cpu" else None
    recorder = RecordingChooser(chooser) if chooser is not None else None
    timer = s.SectionTimer()
    with timer.active(), Progress(disable=True) as bar:
        stats = train_epoch(session, world.loss_function(session.model, device), recorder, 1, bar, max_batches=batches)
    return _result(config_path, overrides, stats, timer, setup, recorder, log)


def _result(config_path, overrides, stats, timer: s.SectionTimer, setup: float, recorder, log: list[str]) -> dict[str, Any]:
    import torch

    epoch = stats.train_seconds
    rows = [{"group": name, "seconds": round(sec, 3), "share": sec / epoch} for name, sec in groups(timer.seconds, epoch)]
    probes = probe_excess(recorder.batches, recorder.chooser.chosen) if recorder is not None else None
    return {
        "config": str(config_path),
        "overrides": list(overrides),
        "batches": timer.calls.get(s.BACKWARD, 0),
        "tokens": stats.tokens,
        "epoch_seconds": round(epoch, 3),
        "tokens_per_second": round(stats.tokens / epoch, 1),
        "setup_seconds": round(setup, 3),
        "threads": recorder.chooser.chosen if recorder is not None else torch.get_num_threads(),
        "groups": rows,
        "probes": probes,
        "thread_log": log,
    }


def table(result: dict[str, Any]) -> str:
    """The profile as markdown: a line of totals, the groups' table, a line on the probes."""
    lines = [
        f"{result['config']} {' '.join('--set ' + o for o in result['overrides'])}".rstrip() + f": {result['batches']:,} batches, "
        f"{result['tokens']:,} tokens in {result['epoch_seconds']:.1f} s ({result['tokens_per_second']:,.0f} tokens/s), "
        f"{result['threads']} thread(s) at the end; setup (data, vocabularies, model) {result['setup_seconds']:.1f} s",
        "",
        "| part of the epoch | seconds | share |",
        "| :--- | ---: | ---: |",
    ]
    lines += [f"| {row['group']} | {row['seconds']:.2f} | {100 * row['share']:.1f}% |" for row in result["groups"]]
    lines.append(f"| **epoch** | **{result['epoch_seconds']:.2f}** | **100%** |")
    probes = result["probes"]
    if probes is not None:
        lines += ["", f"Thread probes: {probes['batches']} batches at another count than the one chosen took "
                  f"{probes['seconds']:.2f} s, about {probes['excess_seconds']:.2f} s more than at the chosen count "
                  f"({100 * probes['excess_seconds'] / result['epoch_seconds']:.1f}% of the epoch; counted in the rows above)."]
    return "\n".join(lines)


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def profile_cli(
    config: Path = typer.Argument(..., help="YAML config file: its tagger is trained (its segmenter is not)."),
    batches: Optional[int] = typer.Option(None, "--batches", help="Train only the first N batches \\[default: the whole epoch]."),
    overrides: Optional[List[str]] = typer.Option(None, "--set", metavar="KEY=VALUE", help="Override a config key (repeatable)."),
    output: Optional[Path] = typer.Option(None, "--output", help="Also write the profile as JSON here."),
) -> None:
    """Train one epoch of a config's tagger and print where its time goes."""
    from lstm_tagger.cli.common import user_errors

    with user_errors():
        if output is not None:
            check_writable(make_dir(output.parent))
        result = profile_epoch(config, overrides or [], batches)
        if output is not None:
            atomic_write_text(output, json.dumps(result, indent=2) + "\n")
    print(table(result))


if __name__ == "__main__":
    app(prog_name="python -m lstm_tagger.benchmark.profile")
