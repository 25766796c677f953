"""``lstm-tag eval``: score a model on a gold corpus, from gold tokens or from raw text.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from lstm_tagger.checkpoint import find_checkpoint
from lstm_tagger.errors import UserError
from lstm_tagger.evaluation.evaluate import evaluate_model
from lstm_tagger.evaluation.raw import evaluate_raw, raw_scores_table
from lstm_tagger.evaluation.report import print_scores
from lstm_tagger.threads import parse_threads, set_threads
from lstm_tagger.cli.common import (
    CELL_HELP, CorpusFormat, DEVICE_HELP, ServeCell, THREADS_HELP, _Console, user_errors, app,
)



@app.command(
    "eval",
    epilog=(
        "Examples:\n\n"
        "  lstm-tag eval --model runs/demo-20261122-101500\n\n"
        "  lstm-tag eval --data data/demo/dev.conllu --json\n\n"
        "  lstm-tag eval --model runs/welsh-tsv --data cy_ccg-ud-test.conllu --format conllu\n\n"
        "  lstm-tag eval --model runs/ewt/model-best.safetensors --output runs/ewt/test-report\n\n"
        "  lstm-tag eval --raw --json   (from the test set's raw text: segmenter + tagger, CoNLL 2018 metrics)"
    ),
)
def eval_cli(
    model: Optional[Path] = typer.Option(
        None, "--model", "-m", help="Checkpoint file or run directory \\[default: best model of the newest run in runs/]."
    ),
    data: Optional[Path] = typer.Option(
        None, "--data", "-d", help="Gold corpus to score on \\[default: the test set of the model's training config]."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Also write report.md and report.json here."),
    format: Optional[CorpusFormat] = typer.Option(
        None, "--format", help="How --data is written \\[default: as the model's training data]."
    ),
    cell: Optional[ServeCell] = typer.Option(None, "--cell", help=CELL_HELP),
    threads: str = typer.Option("auto", "--threads", metavar="auto|N", help=THREADS_HELP),
    device: str = typer.Option("cpu", "--device", help=DEVICE_HELP),
    force: bool = typer.Option(False, "--force", help="Replace a report already in --output."),
    raw: bool = typer.Option(
        False, "--raw", help="Score from raw text: rebuild it from the gold # text and # newpar/# newdoc, segment, "
        "tag, and give the CoNLL 2018 metrics (Tokens, Sentences, Words, tag F1; under \"raw\" with --json).",
    ),
) -> None:
    """Score a trained model on a gold corpus: accuracy, OOV accuracy, per-tag P/R/F1, confusions."""
    with user_errors():
        set_threads(parse_threads(threads))
        if raw and output is not None:
            raise UserError("--output writes the gold-token report: give --raw or --output, not both")
        path = find_checkpoint(model)
        if model is None:
            print(f"lstm-tag: using {path}", file=sys.stderr)
        if raw:
            if format == CorpusFormat.tsv:
                raise UserError("--raw rebuilds the raw text from the gold CoNLL-U's # text lines: --format tsv has none")
            result = evaluate_raw(path, data, cell=cell.value if cell else None, device=device)
            print(json.dumps(result, ensure_ascii=False) if as_json else raw_scores_table(result))
            return
        result = evaluate_model(
            path, data, output, cell=cell.value if cell else None, format=format.value if format else None,
            device=device, force=force,
        )
    if as_json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print_scores(_Console(), result["split"], result)
