"""What was trained: the runs under ``runs/`` and what one checkpoint holds."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from lstm_tagger.checkpoint import find_checkpoint, load_checkpoint
from lstm_tagger.rundir import BEST
from lstm_tagger.config import DataConfig, ModelConfig
from lstm_tagger.configfile import parse_yaml
from lstm_tagger.errors import UserError, one_line
from lstm_tagger.model.tagger import parameter_count
from lstm_tagger.evaluation.report import column_accuracies, percent
from lstm_tagger.rundir import CONFIG, METRICS, REPORT_JSON


def _json_lines(path: Path) -> list[dict[str, Any]]:
    try:
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, ValueError):
        return []


def _test_scores(run: Path) -> dict[str, Any] | None:
    try:
        report = json.loads((run / REPORT_JSON).read_text(encoding="utf-8"))
        return report["results"]["test"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def recipe(config: dict[str, Any]) -> dict[str, Any]:
    """What tells one model apart from another trained on the same data, from a config's mapping
    (missing keys take the config's defaults): ``columns`` (the tag columns learnt, e.g.
    ``["upos", "xpos", "feats"]``), ``chars`` (``none``, ``cnn`` or ``lstm``), ``output`` (each
    column's output layer, ``{"upos": "crf", "feats": "softmax"}``) and ``cell``."""
    data, model = config.get("data") or {}, config.get("model") or {}
    columns = data.get("columns", DataConfig.model_fields["columns"].default)
    if not isinstance(columns, list):
        raise TypeError(f"data.columns is not a list: {columns!r}")
    output = model.get("output", ModelConfig.model_fields["output"].default)
    per_column = model.get("output_per_column") or {}
    return {
        "columns": columns,
        "chars": str(model.get("char_encoder", ModelConfig.model_fields["char_encoder"].default)),
        "output": {column: str(per_column.get(column, output)) for column in columns},
        "cell": str(model.get("cell", ModelConfig.model_fields["cell"].default)),
    }


def upos_on_test(checkpoint: str | Path) -> dict[str, Any]:
    """The test UPOS accuracy of a run's best checkpoint, from the run's ``report.json`` (its
    test scores are the best checkpoint's): ``{"test_upos": fraction, "test_data": the test
    file}``, both ``None`` for a checkpoint that is not a run's ``model-best``, a run without a
    test set, or a model that learns no UPOS (the checkpoint itself holds only dev figures)."""
    checkpoint = Path(checkpoint)
    test = _test_scores(checkpoint.parent) if checkpoint.name == BEST else None
    upos = (test.get("columns") or {}).get("upos") if isinstance(test, dict) else None
    accuracy = upos.get("accuracy") if isinstance(upos, dict) else None
    if not isinstance(accuracy, (int, float)) or isinstance(accuracy, bool):
        return {"test_upos": None, "test_data": None}
    return {"test_upos": float(accuracy), "test_data": str(test.get("data")) if test.get("data") is not None else None}


def list_runs(runs_dir: str | Path = "runs") -> list[dict[str, Any]]:
    """One record per run directory under ``runs_dir`` (those with a ``config.yaml``), oldest first.

    Each has ``name``, ``date`` (of the last write), ``train`` (the training file's path as the
    run's config gives it: absolute for a run of ``lstm-tag train``), ``format`` (``conllu`` or
    ``tsv``), ``recipe`` (see ``recipe``), ``epochs`` (finished), ``best_dev_accuracy`` and
    ``test_accuracy`` (fractions, the first tag column's, or ``None`` while unknown, e.g. for a run
    still in its first epoch), ``test_columns``: with several tag columns, each one's test accuracy
    and ``all_tags``, and ``damaged``: ``None``, or why the run's files could not be read (the other
    fields are then ``?`` or ``None``).
    """
    records = []
    for run in sorted(Path(runs_dir).glob("*/config.yaml")):
        try:
            records.append(_record(run.parent))
        except (OSError, ValueError, KeyError, TypeError, AttributeError, UserError) as exc:
            reason = one_line(exc)
            records.append(
                {"name": run.parent.name, "path": str(run.parent), "date": "?", "train": "?", "format": "?", "recipe": None, "epochs": None,
                 "best_dev_accuracy": None, "test_accuracy": None, "test_columns": {}, "has_model": False, "damaged": reason}
            )
    return sorted(records, key=lambda r: r["date"])


def _record(run: Path) -> dict[str, Any]:
    """``list_runs``'s record of one run directory; any damage raises."""
    history = _json_lines(run / METRICS)
    try:
        config = parse_yaml((run / CONFIG).read_text(encoding="utf-8"), str(run / CONFIG)) or {}
    except (OSError, ValueError):
        config = {}
    newest = max((p.stat().st_mtime for p in run.iterdir() if p.is_file()), default=run.stat().st_mtime)
    test = _test_scores(run)
    return {
        "name": run.name,
        "path": str(run),
        "date": datetime.fromtimestamp(newest).strftime("%Y-%m-%d %H:%M"),
        "train": str(config.get("data", {}).get("train", "?")),
        "format": str(config.get("data", {}).get("format", DataConfig.model_fields["format"].default)),
        "recipe": recipe(config),
        "epochs": len(history),
        "best_dev_accuracy": max((float(r["dev_accuracy"]) for r in history), default=None),
        "test_accuracy": test.get("accuracy") if isinstance(test, dict) else None,
        "test_columns": column_accuracies(test) if isinstance(test, dict) else {},
        "has_model": (run / BEST).is_file(),
        "damaged": None,
    }


def checkpoint_info(model: str | Path | None = None, runs_dir: str | Path = "runs") -> dict[str, Any]:
    """What ``lstm-tag info`` shows: the recipe (see ``recipe``), hyper-parameters, vocabulary and
    tag-set sizes, the data section of the config (files, format, columns, ...), metrics, and
    ``tokenizer``: None without a raw-text segmenter, else ``{"settings": the config's tokenizer
    section, "scores": what its training recorded (dev_tokens_f1, dev_sentences_f1, dev_words_f1
    in percent, best_epoch, ...), "sentence_bias": the one chosen on dev}``."""
    path = find_checkpoint(model, runs_dir)
    checkpoint = load_checkpoint(path)
    config = checkpoint.config.to_dict()
    return {
        "path": str(path),
        "recipe": recipe(config),
        "model": config["model"],
        "parameters": parameter_count(checkpoint.model),
        "words": len(checkpoint.words),
        "tags": checkpoint.tags.itos,
        "columns": {column: vocab.itos for column, vocab in checkpoint.vocabs.items()},
        "data": config["data"],
        "train": config["train"],
        "metrics": checkpoint.metrics,
        "tokenizer": None if checkpoint.segmenter is None else {
            "settings": config["tokenizer"], "scores": dict(checkpoint.segmenter.scores),
            "sentence_bias": checkpoint.segmenter.sentence_bias,
        },
    }


CORPUS_SUFFIXES = (".conllu", ".tsv")
"""File name endings that ``runs`` leaves out of a corpus's name: they say only the format."""


def corpus_names(paths: list[str]) -> dict[str, str]:
    """Each training file as ``lstm-tag runs`` names it: its file name without ``.conllu`` or
    ``.tsv`` (a UD treebank's names the treebank: ``en_ewt-ud-train``), after as many of its
    folders as it takes to tell it from every other path given (``demo/train``, ``other/train``),
    so that two corpora never look the same however alike their names."""
    stems = Counter(Path(p).with_suffix("") for p in set(paths) if Path(p).suffix in CORPUS_SUFFIXES)

    def parts(path: Path) -> tuple[str, ...]:  # train.tsv beside train.conllu keeps its ending
        short = path.suffix in CORPUS_SUFFIXES and stems[path.with_suffix("")] == 1
        return (*path.parts[:-1], path.stem if short else path.name)

    distinct = {parts(Path(p)) for p in paths}
    shown = {}
    for path in distinct:
        need = 1
        while need < len(path) and any(o[-need:] == path[-need:] for o in distinct if o != path):
            need += 1
        shown[path] = str(Path(*path[-need:]))
    return {p: shown[parts(Path(p))] for p in paths}


def output_cell(output: dict[str, str]) -> str:
    """A recipe's ``output`` in a few words: ``crf``, or ``crf (feats softmax)`` when columns differ."""
    layers = list(output.values())
    most = max(layers, key=layers.count) if layers else "?"
    others = ", ".join(f"{column} {layer}" for column, layer in output.items() if layer != most)
    return most + (f" ({others})" if others else "")


def crf_cell(output: dict[str, str]) -> str:
    """Which tag columns of a recipe have a CRF (the others a softmax), for the ``runs`` table:
    ``all``, ``none``, or the columns as the tags are written (``upos+xpos``)."""
    crf = [column for column, layer in output.items() if layer == "crf"]
    return "all" if crf and len(crf) == len(output) else "+".join(crf) or "none"


def recipe_text(recipe_: dict[str, Any]) -> str:
    """A recipe on one line: ``upos+xpos+feats, chars lstm, output crf (feats softmax), cell lstm``."""
    return f"{'+'.join(recipe_['columns'])}, chars {recipe_['chars']}, output {output_cell(recipe_['output'])}, cell {recipe_['cell']}"


def _whole(text: str) -> Text:
    """A cell a user may copy (a run's name, a path): plain text, never markup, that folds over
    lines when the terminal is too narrow, even in a ``no_wrap`` column, rather than being cut."""
    return Text(text, no_wrap=False, overflow="fold")


def runs_table(records: list[dict[str, Any]], runs_dir: str | Path) -> Table:
    """``list_runs``'s records as the terminal table of ``lstm-tag runs``: one line per run within
    100 columns for the run names ``lstm-tag train`` gives (``ud_ewt_tutorial-20261123-091000``)
    and UD corpora; the corpus by ``corpus_names``, the recipe as tag columns (``upos+xpos``), characters, the columns with a
    CRF (``crf_cell``) and cell, and the first tag column's dev and test accuracy (``--json``
    has the date, the full path and every column's test accuracy)."""
    table = Table(title=f"runs in {runs_dir}/", title_justify="left", box=None,
                  caption="ep: epochs; dev (best), test: accuracy % of the first tag column", caption_justify="left",
                  padding=(0, 1, 0, 0), pad_edge=False)  # one space between columns
    numbers = ("ep", "dev", "test")
    for column in ("name", "corpus", "tags", "chars", "crf", "cell", *numbers):
        # the name and the corpus keep their width while the others give way on a narrow terminal;
        # their cells are ``_whole`` Text, which folds rather than cuts
        whole = column in ("name", "corpus")
        table.add_column(column, justify="right" if column in numbers else "left", no_wrap=whole, overflow="fold")
    names = corpus_names([r["train"] for r in records if not r["damaged"]])
    for r in records:
        if r["damaged"]:
            table.add_row(_whole(r["name"]), _whole(f"damaged: {r['damaged']}"), *"????", "-", "-", "-")
            continue
        recipe_ = r["recipe"]
        table.add_row(
            _whole(r["name"]), _whole(names[r["train"]]), "+".join(recipe_["columns"]), recipe_["chars"],
            crf_cell(recipe_["output"]), recipe_["cell"], str(r["epochs"]), percent(r["best_dev_accuracy"]),
            percent(r["test_accuracy"]),
        )
    return table


SEGMENTER_SCORES = {"dev_tokens_f1": "Tokens", "dev_sentences_f1": "Sentences", "dev_words_f1": "Words"}
"""The segmenter's dev F1 scores (CoNLL 2018, in percent) that ``info`` names first."""
SEGMENTER_TRAINING = {"best_epoch": "best epoch {}", "updates": "{:,} updates", "train_seconds": "trained in {} s",
                      "peak_rss_mb": "peak RSS {} MB"}
"""What the segmenter's training recorded, as ``info`` says it (another key: its name and value)."""


def segmenter_text(tokenizer: dict[str, Any] | None) -> str:
    """``info``'s line on the raw-text segmenter: ``none (...)``, or its dev F1 scores and the
    rest of what its training recorded (``best epoch 29, 3,720 updates, trained in 412.3 s, peak RSS 525 MB``)."""
    if tokenizer is None:
        return "none: the model tags tokens (predict --input-format tokens or conllu), not raw text"
    scores = tokenizer["scores"]
    named = [f"{name} {scores[key]}" for key, name in SEGMENTER_SCORES.items() if key in scores]
    rest = [SEGMENTER_TRAINING.get(key, key.replace("_", " ") + " {}").format(value)
            for key, value in scores.items() if key not in SEGMENTER_SCORES]
    if tokenizer.get("sentence_bias"):
        rest.append(f"sentence-end bias {tokenizer['sentence_bias']:+g}")
    return ", ".join([*(["dev F1 " + ", ".join(named)] if named else []), *rest]) or "trained (no scores recorded)"


def info_table(info: dict[str, Any]) -> Table:
    """``checkpoint_info``'s record as the terminal table of ``lstm-tag info``."""
    table = Table(title=_whole(info["path"]), title_justify="left", show_header=False)
    table.add_column("key", overflow="fold")
    table.add_column("value", overflow="fold")  # a long path folds over lines, never cut with "…"
    table.add_row("recipe", _whole(recipe_text(info["recipe"])))
    for section in ("data", "model", "train"):
        for key, value in info[section].items():
            table.add_row(f"{section}.{key}", _whole(str(value)))
    table.add_row("segmenter", _whole(segmenter_text(info.get("tokenizer"))))
    for key, value in (info.get("tokenizer") or {}).get("settings", {}).items():
        table.add_row(f"tokenizer.{key}", _whole(str(value)))
    table.add_row("parameters", f"{info['parameters']:,}")
    table.add_row("vocabulary", f"{info['words']:,} words (with <pad>, <unk>)")
    for column, tags in info["columns"].items():
        table.add_row(f"tag set {column}", _whole(f"{len(tags)} tags: {' '.join(tags)}"))
    for key, value in info["metrics"].items():
        table.add_row(_whole(str(key)), _whole(str(value)))
    return table
