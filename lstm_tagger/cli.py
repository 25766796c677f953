"""The ``lstm-tag`` command line: thin adapters over the library functions.

Each command parses its options, calls one function of the package, prints, and turns a
``UserError`` into one line on stderr and exit code 2.
"""

from __future__ import annotations

import io
import errno
import json
import os
import sys
import tempfile
import traceback
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Iterator, List, Optional

import typer
from rich.console import Console
from typer.core import TyperGroup

from lstm_tagger import __version__
from lstm_tagger.benchmark.bench import (
    DEFAULT_EPOCHS, DEFAULT_TOKENS, LATENCY_SENTENCES, bench, default_bench_output, print_bench,
)
from lstm_tagger.checkpoint import find_checkpoint
from lstm_tagger.config import load_config
from lstm_tagger.training.distributed import RankStopped
from lstm_tagger.corpus.download import DEFAULT_RELEASE, download_treebank
from lstm_tagger.errors import UserError
from lstm_tagger.files import check_output
from lstm_tagger.evaluation.evaluate import evaluate_model
from lstm_tagger.tagging.export import FORMATS, export_model
from lstm_tagger.benchmark.frontier import frontier, frontier_table
from lstm_tagger.tagging.predict import DEFAULT_BATCH_SIZE
from lstm_tagger.tagging.rawtag import FALLBACK_NOTE, evaluate_raw, raw_scores_table
from lstm_tagger.evaluation.report import print_scores
from lstm_tagger.limits import MAX_REQUEST_BYTES
from lstm_tagger.runs import checkpoint_info, info_table, list_runs, runs_table
from lstm_tagger.training.starter import write_starter_config
from lstm_tagger.threads import parse_threads, set_threads
from lstm_tagger.training.loop import default_output_dir, train
from lstm_tagger.tagging.pipeline import Pipeline, load


class _Group(TyperGroup):
    """Typer's command group, but every flag's --help line shows it as a flag: this Typer
    writes ``--scores <bool>`` for options that take no value, ``--help`` among them."""

    def get_params(self, ctx: typer.Context) -> list:
        return _as_flags(super().get_params(ctx))

    def get_command(self, ctx: typer.Context, name: str):
        command = super().get_command(ctx, name)
        if command is not None:
            _as_flags([*command.params, command.get_help_option(ctx)])
        return command

    def invoke(self, ctx: typer.Context):
        """Run the command; when the reader of standard output goes away (``lstm-tag eval | head``),
        stop quietly with exit code 0, as ``predict`` always did (click would exit 1)."""
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            _discard_stdout()
            raise typer.Exit(0) from None


def _as_flags(params: list) -> list:
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""  # the value column stays empty
    return params


app = typer.Typer(
    cls=_Group,
    name="lstm-tag",
    help="Train, use and evaluate (Bi)LSTM part-of-speech taggers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    rich_markup_mode="rich",
)


def _error(message: str) -> None:
    print(f"lstm-tag: error: {message}", file=sys.stderr)


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn a known error into one line on stderr and exit code 2."""
    try:
        yield
    except UserError as exc:
        if not isinstance(exc, RankStopped):  # a distributed run's rank > 0: rank 0 reports the error
            for line in exc.for_cli().splitlines() or [""]:  # a config error has one line per problem
                _error(line)
        raise typer.Exit(2) from None


class _Console(Console):
    """Rich's console for a command's output: when the reader of a pipe goes away, the command
    ends as with any other output (``_Group.invoke``: exit code 0), not with rich's exit code 1."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))


def _wide_console() -> Console:
    """The terminal, or when piped a console 140 wide: one row per table line rather than wrapped cells."""
    console = _Console()
    return console if console.is_terminal else _Console(width=140)


def _version(value: bool) -> None:
    if value:
        print(f"lstm-tag {__version__}")
        raise typer.Exit()


_options = {"debug": False}
"""Global options that ``run`` reads after the command: ``--debug``."""


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show the traceback of an internal error (a bug) instead of one line."),
) -> None:
    """Train, use and evaluate (Bi)LSTM part-of-speech taggers."""
    _options["debug"] = debug


def _stdout_failure() -> OSError | None:
    """The error that writing standard output's pending bytes gives (full disk, closed pipe), if any."""
    try:
        sys.stdout.flush()
    except OSError as exc:
        return exc
    return None


_STREAM_ERRORS = (errno.ENOSPC, errno.EPIPE, errno.EIO, errno.EBADF)


def _discard_stdout() -> None:
    """Standard output goes to /dev/null from here on, so that the interpreter's last flush stays quiet."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _stdout_lost(exc: OSError) -> None:
    """One line for an unwritable standard output, exit code 2; or, when its reader went away
    (a broken pipe: ``| head``), nothing and exit code 0."""
    _discard_stdout()
    if exc.errno == errno.EPIPE:
        raise SystemExit(0)
    _error(f"cannot write to standard output: {exc.strerror or exc}")
    raise SystemExit(2)


def _internal_error(exc: BaseException) -> None:
    """The last line of defence: one line, the traceback saved to a file, exit code 1."""
    text = "".join(traceback.format_exception(exc))
    try:
        fd, saved = tempfile.mkstemp(prefix="lstm-tag-traceback-", suffix=".txt")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        where = f"traceback saved to {saved}"
    except OSError:
        where = "the traceback could not be saved; rerun with --debug to see it"
    summary = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
    print(f"lstm-tag: internal error: {summary} ({where}). This is a bug: please report it with that traceback.", file=sys.stderr)
    raise SystemExit(1)


def run(args: list[str] | None = None) -> None:
    """The ``lstm-tag`` program: ``app`` behind a last line of defence.

    A user's error is one line and exit code 2 (``_user_errors``); an unwritable standard output
    one line and exit code 2; anything else is a bug: one line naming the saved traceback and exit
    code 1, or the traceback itself with ``--debug``.
    """
    try:
        os.fstat(1)
    except OSError:
        _error("standard output is closed (redirect it, e.g. >/dev/null, to discard it)")
        raise SystemExit(2) from None
    try:
        app(args=args, prog_name="lstm-tag")
    except SystemExit:
        failure = _stdout_failure()
        if failure is not None:
            _stdout_lost(failure)
        raise
    except Exception as exc:  # noqa: BLE001 -- the point of this function
        if isinstance(exc, OSError) and exc.errno in _STREAM_ERRORS and exc.filename is None:
            _stdout_lost(exc)  # our file writes name their file (atomic_writer): a nameless one is a stream
        if _options["debug"]:
            raise
        _internal_error(exc)


def _threads_text(threads: str | None) -> str | None:
    """``--threads`` as ``auto`` or a count, read by ``parse_threads`` (``AUTO``, ``' 4'``), for a
    config override or a child command; None stays None (not given)."""
    if threads is None:
        return None
    count = parse_threads(threads)
    return "auto" if count is None else str(count)


TRAIN_THREADS_HELP = "Same as --set train.threads=...: auto (measure and choose while training) or a fixed count."
THREADS_HELP = "Threads torch uses inside one operation: a count, or auto (one per core)."
PREDICT_THREADS_HELP = "Chunks of sentences tagged at once on the CPU, each by one thread: a count, or auto (one per core)."


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
    with _user_errors():
        if resume and output is None:
            raise UserError("--resume needs --output DIR, the run directory to continue")
        threads = _threads_text(threads)
        resolved = load_config(config, [*(overrides or []), *([f"train.threads={threads}"] if threads is not None else [])])
        result = train(
            resolved, output or default_output_dir(config), force=force, resume=resume, progress=progress,
            console=None if quiet else Console(), config_file=config,
        )
    if result.interrupted:
        raise typer.Exit(130)


class ServeCell(str, Enum):
    lstm = "lstm"
    gru = "gru"
    hand_lstm = "hand_lstm"
    hand_gru = "hand_gru"


CELL_HELP = "Serve the weights with another cell of the same family, e.g. a hand_lstm model with PyTorch's lstm kernel."


DEVICE_HELP = "Run the model on cpu, cuda, cuda:N or auto (CUDA when torch finds it)."


class InputFormat(str, Enum):
    text = "text"
    tokens = "tokens"
    conllu = "conllu"


class OutputFormat(str, Enum):
    text = "text"
    conllu = "conllu"
    json = "json"


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
    with _user_errors():
        parse_threads(threads)  # a bad count is named as --threads, before any loading
        if text is not None and file is not None:
            raise UserError("give either TEXT or --file FILE (--file - reads stdin)")
        if text is None and file is None:
            if _interactive():
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
    with _user_errors():
        written = export_model(model, format, output, force=force)
    print(f"exported {model} to {written} ({format})")


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
    with _user_errors():
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


@app.command(
    "download",
    epilog=(
        "Examples:\n\n  lstm-tag download UD_French-GSD\n\n  lstm-tag download ud_english_ewt\n\n"
        "  lstm-tag download UD_Welsh-CCG --release r2.14 --dest corpora"
    ),
)
def download_cli(
    name: str = typer.Argument(..., help="Treebank, named as its repository: UD_<Language>-<Treebank> (or ud_english_ewt)."),
    release: str = typer.Option(DEFAULT_RELEASE, "--release", help="Release tag of the treebank's repository."),
    dest: Path = typer.Option(Path("data"), "--dest", help="Folder that gets the treebank's folder (ud_<language>_<treebank>)."),
    base_url: Optional[str] = typer.Option(
        None, "--base-url", help="A server that stands in for https://api.github.com (a mirror, or a test server)."
    ),
    progress: Optional[bool] = typer.Option(
        None, "--progress/--no-progress", help="Show a progress bar \\[default: only on a terminal]."
    ),
) -> None:
    """Download a Universal Dependencies treebank's train/dev/test CoNLL-U files from its repository, checksum-checked."""
    with _user_errors():
        done = download_treebank(name, dest, release=release, base_url=base_url, progress=progress)
    kept = len(done.files) - len(done.fetched)
    print(
        f"{done.repository} {done.release}: {', '.join(done.files)} in {done.folder}"
        + (f" ({kept} already there)" if kept else "")
    )
    checked = "the repository's git SHA-1" + (" and the SHA-256 sums shipped with lstm-tag" if done.sha256_shipped else "")
    print(f"checked against {checked}; SHA-256 sums recorded in {done.folder / 'SHA256SUMS'}")


def _interactive() -> bool:
    """Whether standard input is a terminal (not a pipe, a file, or closed: ``<&-`` leaves no ``sys.stdin``)."""
    return sys.stdin is not None and not sys.stdin.closed and sys.stdin.isatty()


class CorpusFormat(str, Enum):
    conllu = "conllu"
    tsv = "tsv"


class TagColumn(str, Enum):
    upos = "upos"
    xpos = "xpos"
    feats = "feats"


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
    with _user_errors():
        if train_file is None or dev_file is None:
            if not _interactive():
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
    print(f"wrote {output}; train with: lstm-tag train {output}")


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
    _wide_console().print(runs_table(records, runs_dir))


@app.command(
    "info",
    epilog="Examples:\n\n  lstm-tag info runs/demo-20261122-101500\n\n  lstm-tag info runs/ewt/model-best.safetensors --json",
)
def info_cli(
    model: Optional[Path] = typer.Argument(None, help="Checkpoint file or run directory \\[default: the newest run's best model]."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (tokenizer: null for a model without a segmenter)."),
) -> None:
    """Show what a checkpoint holds: recipe, data (files, format, tag columns), hyper-parameters, vocabulary and tag sets, metrics, and whether it has a raw-text segmenter (its settings and dev scores)."""
    with _user_errors():
        info = checkpoint_info(model)
    if as_json:
        print(json.dumps(info))
        return
    _wide_console().print(info_table(info))


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
    with _user_errors():
        threads = _threads_text(threads)
        destination = output or default_bench_output(config)
        check_output(destination, force)
        result = bench(
            config, overrides or [], tokens, epochs, model, destination,
            scale_check=scale_check, run_dir=run_dir, small_batch=small_batch, latency_sentences=latency_sentences,
            threads=threads, contended=contended,
        )
    print_bench(_wide_console(), result)
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
    with _user_errors():
        result = frontier(bench_files, output, force=force)
    if result["note"]:
        print(f"lstm-tag: {result['note']}", file=sys.stderr)
    if as_json:
        print(json.dumps(result))
        return
    _wide_console().print(frontier_table(result))
    print(f"frontier written to {output}")


@app.command(
    "serve",
    epilog=(
        "Examples:\n\n"
        "  lstm-tag serve --model runs/demo   (then open http://127.0.0.1:8080/)\n\n"
        "  lstm-tag serve --model en=runs/ewt --model vi=runs/vtb --port 8001\n\n"
        "  curl -F data=\"Don't stop.\" -F tokenizer= -F tagger= http://127.0.0.1:8080/process   (UDPipe's API)\n\n"
        "  curl -H 'Content-Type: application/json' -d '{\"text\": \"The dog barks.\", \"format\": \"conllu\"}' http://127.0.0.1:8080/tag"
    ),
)
def serve_cli(
    model: Optional[List[str]] = typer.Option(
        None, "--model", "-m", metavar="[NAME=]PATH",
        help="A run directory or checkpoint to serve, as NAME (default: the run's name); repeatable, the first is the default "
        "\\[default: best model of the newest run in runs/].",
    ),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to listen on: 0.0.0.0 lets other machines in (no authentication: your choice)."
    ),
    port: int = typer.Option(8080, "--port", min=0, max=65535, help="TCP port (0: any free port, shown in the log)."),
    threads: str = typer.Option("auto", "--threads", metavar="auto|N", help=PREDICT_THREADS_HELP),
    max_body: int = typer.Option(MAX_REQUEST_BYTES, "--max-body", metavar="BYTES", min=1, help="Largest request body; larger gets 413."),
    device: str = typer.Option("cpu", "--device", help=DEVICE_HELP),
) -> None:
    """Serve models over HTTP: a JSON API, UDPipe's REST API and a web page, until Ctrl-C or SIGTERM."""
    with _user_errors():
        from lstm_tagger.serve.server import serve  # FastAPI and uvicorn: the serve extra, imported when used

        serve(model or [], host=host, port=port, threads=threads, max_body=max_body, device=device)


if __name__ == "__main__":  # pragma: no cover
    run()
