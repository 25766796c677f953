"""What was trained: the runs under ``runs/`` and what one checkpoint holds."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from .checkpoint import BEST, find_checkpoint, load_checkpoint
from .config import parse_yaml
from .errors import UserError
from .flops import parameter_count
from .report import column_accuracies, percent


def _json_lines(path: Path) -> list[dict[str, Any]]:
    try:
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, ValueError):
        return []


def _test_scores(run: Path) -> dict[str, Any] | None:
    try:
        report = json.loads((run / "report.json").read_text(encoding="utf-8"))
        return report["results"]["test"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def list_runs(runs_dir: str | Path = "runs") -> list[dict[str, Any]]:
    """One record per run directory under ``runs_dir`` (those with a ``config.yaml``), oldest first.

    Each has ``name``, ``date`` (of the last write), ``train`` (the training file),
    ``cell``, ``epochs`` (finished), ``best_dev_accuracy`` and ``test_accuracy`` (fractions, the
    first tag column's, or ``None`` while unknown, e.g. for a run still in its first epoch),
    ``test_columns``: with several tag columns, each one's test accuracy and ``all_tags``, and
    ``damaged``: ``None``, or why the run's files could not be read (the other fields are then ``?`` or ``None``).
    """
    records = []
    for run in sorted(Path(runs_dir).glob("*/config.yaml")):
        try:
            records.append(_record(run.parent))
        except (OSError, ValueError, KeyError, TypeError, AttributeError, UserError) as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            records.append(
                {"name": run.parent.name, "path": str(run.parent), "date": "?", "train": "?", "cell": "?", "epochs": None,
                 "best_dev_accuracy": None, "test_accuracy": None, "test_columns": {}, "has_model": False, "damaged": reason}
            )
    return sorted(records, key=lambda r: r["date"])


def _record(run: Path) -> dict[str, Any]:
    """``list_runs``'s record of one run directory; any damage raises."""
    history = _json_lines(run / "metrics.jsonl")
    try:
        config = parse_yaml((run / "config.yaml").read_text(encoding="utf-8"), str(run / "config.yaml")) or {}
    except (OSError, ValueError):
        config = {}
    newest = max((p.stat().st_mtime for p in run.iterdir() if p.is_file()), default=run.stat().st_mtime)
    test = _test_scores(run)
    return {
        "name": run.name,
        "path": str(run),
        "date": datetime.fromtimestamp(newest).strftime("%Y-%m-%d %H:%M"),
        "train": Path(str(config.get("data", {}).get("train", "?"))).name,
        "cell": str(config.get("model", {}).get("cell", "lstm")),
        "epochs": len(history),
        "best_dev_accuracy": max((float(r["dev_accuracy"]) for r in history), default=None),
        "test_accuracy": test.get("accuracy") if isinstance(test, dict) else None,
        "test_columns": column_accuracies(test) if isinstance(test, dict) else {},
        "has_model": (run / BEST).is_file(),
        "damaged": None,
    }


def checkpoint_info(model: str | Path | None = None, runs_dir: str | Path = "runs") -> dict[str, Any]:
    """What ``lstm-tag info`` shows: hyper-parameters, vocabulary and tag-set sizes, data, metrics."""
    path = find_checkpoint(model, runs_dir)
    checkpoint = load_checkpoint(path)
    config = checkpoint.config.to_dict()
    return {
        "path": str(path),
        "model": config["model"],
        "parameters": parameter_count(checkpoint.model),
        "words": len(checkpoint.words),
        "tags": checkpoint.tags.itos,
        "columns": {column: vocab.itos for column, vocab in checkpoint.vocabs.items()},
        "data": config["data"],
        "train": config["train"],
        "metrics": checkpoint.metrics,
    }


def runs_table(records: list[dict[str, Any]], runs_dir: str | Path) -> Table:
    """``list_runs``'s records as the terminal table of ``lstm-tag runs``."""
    table = Table(title=f"runs in {runs_dir}/", title_justify="left")
    for column in ("name", "date", "train", "cell", "epochs", "best dev %", "test %"):
        table.add_column(column, justify="right" if column in ("epochs", "best dev %", "test %") else "left")
    for r in records:
        if r["damaged"]:
            table.add_row(escape(r["name"]), "?", escape(f"damaged: {r['damaged']}"), "?", "-", "-", "-")
            continue
        test = percent(r["test_accuracy"]) + "".join(f" {c} {percent(a)}" for c, a in list(r["test_columns"].items())[1:])
        table.add_row(r["name"], r["date"], r["train"], r["cell"], str(r["epochs"]), percent(r["best_dev_accuracy"]), test)
    return table


def info_table(info: dict[str, Any]) -> Table:
    """``checkpoint_info``'s record as the terminal table of ``lstm-tag info``."""
    table = Table(title=info["path"], title_justify="left", show_header=False)
    table.add_column("key")
    table.add_column("value")
    for section in ("model", "train"):
        for key, value in info[section].items():
            table.add_row(f"{section}.{key}", str(value))
    table.add_row("parameters", f"{info['parameters']:,}")
    table.add_row("vocabulary", f"{info['words']:,} words (with <pad>, <unk>)")
    for column, tags in info["columns"].items():
        table.add_row(f"tag set {column}", f"{len(tags)} tags: {' '.join(tags)}")
    for key in ("train", "dev", "test"):
        table.add_row(f"data.{key}", str(info["data"][key]))
    for key, value in info["metrics"].items():
        table.add_row(key, str(value))
    return table
