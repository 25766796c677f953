"""``lstm-tag runs`` and ``lstm-tag info``: what was trained, and what one checkpoint holds.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from lstm_tagger.runs import checkpoint_info, info_table, list_runs, runs_table
from lstm_tagger.cli.common import user_errors, wide_console, app



@app.command(
    "runs",
    epilog="Examples:\n\n  lstm-tag runs\n\n  lstm-tag runs --runs-dir experiments --json",
)
def runs_cli(
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Folder that holds the run directories."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list instead of a table."),
) -> None:
    """List the runs under runs/, one line each: name, training corpus, recipe (tag columns, characters, the columns with a CRF, cell), epochs, best dev and test accuracy; --json adds the date, the corpus's full path and every column's test accuracy."""
    records = list_runs(runs_dir)
    if as_json:
        print(json.dumps(records))
        return
    if not records:
        print(f"no runs under {runs_dir}/", file=sys.stderr)
        return
    wide_console().print(runs_table(records, runs_dir))


@app.command(
    "info",
    epilog="Examples:\n\n  lstm-tag info runs/demo-20261122-101500\n\n  lstm-tag info runs/ewt/model-best.safetensors --json",
)
def info_cli(
    model: Optional[Path] = typer.Argument(None, help="Checkpoint file or run directory \\[default: the newest run's best model]."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (tokenizer: null for a model without a segmenter)."),
) -> None:
    """Show what a checkpoint holds: recipe, data (files, format, tag columns), hyper-parameters, vocabulary and tag sets, metrics, and whether it has a raw-text segmenter (its settings and dev scores)."""
    with user_errors():
        info = checkpoint_info(model)
    if as_json:
        print(json.dumps(info))
        return
    wide_console().print(info_table(info))
