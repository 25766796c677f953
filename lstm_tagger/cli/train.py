"""``lstm-tag train`` and ``lstm-tag init``: train from a config, and write a config for the user's own corpus.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from lstm_tagger.configfile import load_config
from lstm_tagger.errors import UserError
from lstm_tagger.training.starter import SMALL_CORPUS_WORDS, write_starter_config
from lstm_tagger.training.loop import train
from lstm_tagger.rundir import default_output_dir
from lstm_tagger.cli.common import (
    CorpusFormat, TRAIN_THREADS_HELP, TagColumn, interactive, threads_text, user_errors, app,
)



@app.command(
    "train",
    epilog=(
        "Examples:\n\n"
        "  lstm-tag train configs/demo.yaml\n\n"
        "  lstm-tag train configs/ud_ewt.yaml --set train.epochs=5 --set model.hidden_dim=256 --output runs/ewt-small\n\n"
        "  lstm-tag train configs/ud_ewt.yaml --output runs/ewt-small --resume"
    ),
)
def train_cli(
    config: Path = typer.Argument(..., help="YAML config file (see configs/ and docs/config.md)."),
    overrides: Optional[List[str]] = typer.Option(
        None, "--set", metavar="KEY=VALUE", help="Override a config key, e.g. --set train.epochs=3 (repeatable)."
    ),
    output: Optional[Path] = typer.Option(
        None, "--output", "-o", help="Run directory \\[default: runs/<config name>-<timestamp>]."
    ),
    force: bool = typer.Option(False, "--force", help="Train into an existing non-empty output directory."),
    resume: bool = typer.Option(
        False, "--resume", help="Continue the run in --output from its last checkpoint, exactly as if never stopped."
    ),
    progress: Optional[bool] = typer.Option(
        None, "--progress/--no-progress", help="Show a progress bar \\[default: only on a terminal]."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but errors (train.log still records the run)."),
    threads: Optional[str] = typer.Option(None, "--threads", metavar="auto|N", help=TRAIN_THREADS_HELP),
) -> None:
    """Train a tagger from a YAML config; writes checkpoints and a report into a run directory."""
    with user_errors():
        if resume and output is None:
            raise UserError("--resume needs --output DIR, the run directory to continue")
        threads = threads_text(threads)
        resolved = load_config(config, [*(overrides or []), *([f"train.threads={threads}"] if threads is not None else [])])
        result = train(
            resolved, output or default_output_dir(config), force=force, resume=resume, progress=progress,
            console=None if quiet else Console(), config_file=config,
        )
    if result.interrupted:
        raise typer.Exit(130)


@app.command(
    "init",
    epilog=(
        "Examples:\n\n"
        "  lstm-tag init --train my/train.conllu --dev my/dev.conllu --test my/test.conllu --output configs/my.yaml\n\n"
        "  lstm-tag init   (asks for the files on a terminal)"
    ),
)
def init_cli(
    train_file: Optional[Path] = typer.Option(None, "--train", help="Training corpus (asked for when missing, on a terminal)."),
    dev_file: Optional[Path] = typer.Option(None, "--dev", help="Dev corpus (asked for when missing, on a terminal)."),
    test_file: Optional[Path] = typer.Option(None, "--test", help="Test corpus (optional)."),
    format: Optional[CorpusFormat] = typer.Option(None, "--format", help="Corpus format \\[default: found in the training file]."),
    tag_column: Optional[TagColumn] = typer.Option(
        None, "--tag-column",
        help="Learn only this CoNLL-U tag column \\[default: upos and xpos when every word has one, and feats when some word has features].",
    ),
    output: Path = typer.Option(Path("configs/my-tagger.yaml"), "--output", "-o", help="Where to write the config."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Write the best recipe (configs/ud_ewt.yaml) for your own corpus files, after reading them as lstm-tag train would; warn of what training would meet (tokens with spaces, dev/test tags training never has, no # text)."""
    with user_errors():
        if train_file is None or dev_file is None:
            if not interactive():
                raise UserError("give --train FILE and --dev FILE (or run lstm-tag init on a terminal to be asked)")
            train_file = train_file or Path(typer.prompt("training file"))
            dev_file = dev_file or Path(typer.prompt("dev file"))
            if test_file is None:
                answer = typer.prompt("test file (empty for none)", default="", show_default=False)
                test_file = Path(answer) if answer.strip() else None
        starter = write_starter_config(
            output, train_file, dev_file, test_file, format.value if format else None, tag_column.value if tag_column else None, force
        )
    for warning in starter.warnings:
        print(f"lstm-tag: warning: {warning}", file=sys.stderr)
    read = ", ".join(f"{split} {count:,}" for split, count in starter.sentences.items())
    learnt = ", ".join(column.upper() for column in starter.config.data.columns)
    found = f"{starter.format}, tags from {learnt}" if starter.format == "conllu" else "tsv"
    if starter.format == "conllu":
        found += f" (columns with a tag on every word: {', '.join(c.upper() for c in starter.columns) or 'none'})"
    print(f"read {found}; sentences: {read}")
    if starter.train_words < SMALL_CORPUS_WORDS:
        model = starter.config.model
        print(f"a small training file ({starter.train_words:,} words): model.hidden_dim {model.hidden_dim} and "
              f"model.dropout {model.dropout}, not the recipe's (its comments say why)")
    print(f"wrote {output}; train with: lstm-tag train {output}")
