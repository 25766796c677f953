"""``lstm-tag predict`` and ``lstm-tag export``: tag with a loaded model (``tagging.pipeline``), write the network to a file.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Optional

import typer

from lstm_tagger.checkpoint import find_checkpoint
from lstm_tagger.errors import UserError
from lstm_tagger.tagging.export import FORMATS, export_model
from lstm_tagger.tagging.predict import DEFAULT_BATCH_SIZE
from lstm_tagger.tagging.rawtag import FALLBACK_NOTE
from lstm_tagger.threads import parse_threads
from lstm_tagger.tagging.pipeline import Pipeline, load
from lstm_tagger.cli.common import (
    CELL_HELP, DEVICE_HELP, InputFormat, OutputFormat, PREDICT_THREADS_HELP, ServeCell, interactive, user_errors, app,
)



@app.command(
    "predict",
    epilog=(
        "Examples:\n\n"
        '  lstm-tag predict "Don\'t stop. It\'s late"   (raw text: a model with a segmenter splits it)\n\n'
        '  lstm-tag predict "The dog ate the apple" --input-format tokens\n\n'
        "  lstm-tag predict --model runs/demo-20261122-101500 --file sentences.txt --format conllu\n\n"
        '  echo "Everybody read that book" | lstm-tag predict --file - --format json --scores\n\n'
        "  lstm-tag predict --file blanked.conllu --format conllu > tagged.conllu   (CoNLL-U in, CoNLL-U out)\n\n"
        "  lstm-tag predict --onnx tagger.onnx --file sentences.txt   (a file written by lstm-tag export)"
    ),
)
def predict_cli(
    text: Optional[str] = typer.Argument(
        None, help="Text to tag (see --input-format) \\[default: stdin when it is not a terminal]."
    ),
    model: Optional[Path] = typer.Option(
        None, "--model", "-m", help="Checkpoint file or run directory \\[default: best model of the newest run in runs/]."
    ),
    file: Optional[str] = typer.Option(None, "--file", "-f", help="Tag this file instead (see --input-format); - is stdin."),
    input_format: Optional[InputFormat] = typer.Option(
        None, "--input-format",
        help="text: raw text, paragraphs at blank lines, sentences and tokens found by the model's segmenter; "
        "tokens: one sentence per line, whitespace-separated tokens; conllu: tag the word lines of CoNLL-U, "
        "keep every other line and column \\[default: conllu for a .conllu file, else text for a model with a "
        "segmenter, else tokens; --onnx: tokens or conllu].",
    ),
    format: OutputFormat = typer.Option(
        OutputFormat.text, "--format",
        help="Output format: text (dog/NOUN/NN), json (a key per column) or conllu (UPOS, XPOS, FEATS in their columns).",
    ),
    scores: bool = typer.Option(
        False, "--scores", help="Add tag probabilities: the chosen tag's in text, every tag's in json and conllu."
    ),
    batch_size: int = typer.Option(DEFAULT_BATCH_SIZE, "--batch-size", min=1, help="Sentences per batch."),
    cell: Optional[ServeCell] = typer.Option(None, "--cell", help=CELL_HELP),
    onnx: Optional[Path] = typer.Option(
        None, "--onnx", help="Tag with this ONNX file from lstm-tag export instead of a checkpoint (needs onnxruntime)."
    ),
    threads: str = typer.Option("auto", "--threads", metavar="auto|N", help=PREDICT_THREADS_HELP),
    device: str = typer.Option("cpu", "--device", help=DEVICE_HELP),
) -> None:
    """Tag text with a trained model: [bold]The/DET dog/NOUN ate/VERB the/DET apple/NOUN[/bold]."""
    with user_errors():
        parse_threads(threads)  # a bad count is named as --threads, before any loading
        if text is not None and file is not None:
            raise UserError("give either TEXT or --file FILE (--file - reads stdin)")
        if text is None and file is None:
            if interactive():
                raise UserError('nothing to tag: give TEXT, --file FILE, or pipe text in (lstm-tag predict < file.txt)')
            file = "-"
        if onnx is not None:
            if model is not None or cell is not None:
                raise UserError("--onnx takes the place of --model and --cell: give one or the other")
            if device != "cpu":
                raise UserError("--onnx tags on the CPU with ONNX Runtime; --device is for checkpoints")
            if input_format == InputFormat.text:
                raise UserError("--input-format text needs a checkpoint (--model): an ONNX file has no segmenter")
            tagger = Pipeline.from_onnx(onnx, batch_size, threads)
        else:
            path = find_checkpoint(model)
            if model is None:
                print(f"lstm-tag: using {path}", file=sys.stderr)
            tagger = load(path, device, threads, cell.value if cell else None, batch_size)
        source = io.StringIO(text or "") if file is None else file
        kind = tagger.input_format_of(source, input_format.value if input_format else None)
        if kind == "text" and not tagger.has_segmenter:
            print(FALLBACK_NOTE, file=sys.stderr)
        tagger.write(source, sys.stdout, format.value, kind, scores)
        sys.stdout.flush()


@app.command(
    "export",
    epilog=(
        "Examples:\n\n"
        "  lstm-tag export runs/demo-20261122-101500 --format onnx --output demo.onnx\n\n"
        "  lstm-tag predict --onnx demo.onnx \"The dog ate the apple\"\n\n"
        "  lstm-tag export runs/ewt/model-best.safetensors --format torchscript --output ewt.pt"
    ),
)
def export_cli(
    model: Path = typer.Argument(..., help="Checkpoint file or run directory (its best checkpoint)."),
    format: str = typer.Option(..., "--format", metavar="|".join(FORMATS), help=f"What to write: {' or '.join(FORMATS)}."),
    output: Path = typer.Option(..., "--output", "-o", help="File to write; its directory must exist."),
    force: bool = typer.Option(False, "--force", help="Replace an existing --output file."),
) -> None:
    """Export a model's network (ids -> tag scores, any batch size and length) to TorchScript or ONNX,
    with its vocabularies and config inside the file."""
    with user_errors():
        written = export_model(model, format, output, force=force)
    print(f"exported {model} to {written} ({format})")
