"""The tag-score report: Markdown and JSON files, and the same tables on the terminal.

A report is a plain dict::

    {"title": str,
     "results": {"dev": scores, "test": scores, ...},   # scores from metrics.score
     "tag_scores": [matrix, ...],                        # optional, from evaluate.tag_score_matrix
     "training": {...}}                                  # optional summary of the run
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from .files import atomic_write_text, make_dir


def percent(value: float | None, count: int = 1) -> str:
    """A fraction as a percentage; ``n/a`` when it was measured over nothing, ``-`` when unknown (None)."""
    if value is None:
        return "-"
    return f"{100 * value:.2f}" if count else "n/a"


def _figure(value: Any) -> str:
    """A count with thousands separators (``25,094``); anything else as it is."""
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def _summary_rows(scores: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [
        ("token accuracy", percent(scores["accuracy"]), _figure(scores["tokens"])),
        ("macro-F1 (mean over tags)", percent(scores["macro_f1"], len(scores["per_tag"])), f"{len(scores['per_tag'])} tags"),
        ("sentence accuracy", percent(scores["sentence_accuracy"]), _figure(scores["sentences"])),
        ("known words", percent(scores["known_accuracy"], scores["known_tokens"]), _figure(scores["known_tokens"])),
        ("unknown (OOV) words", percent(scores["oov_accuracy"], scores["oov_tokens"]), _figure(scores["oov_tokens"])),
    ]


def _tag_rows(scores: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    return [
        (tag, percent(s["precision"]), percent(s["recall"]), percent(s["f1"]), _figure(s["support"]))
        for tag, s in scores["per_tag"].items()
    ]


def _md_table(header: list[str], rows: list[tuple[str, ...]] | list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def to_markdown(report: dict[str, Any]) -> str:
    """The whole report as Markdown."""
    parts = [f"# {report['title']}"]
    training = report.get("training")
    if training:
        parts.append(_md_table(["", ""], [(k, _figure(v)) for k, v in training.items()]))
    for what, file in (report.get("plots") or {}).items():
        parts.append(f"![{what}]({file})")
    for name, scores in report["results"].items():
        parts.append(f"## {name}: {scores.get('data', '')}".rstrip(": "))
        parts.append(_md_table(["measure", "accuracy %", "tokens"], _summary_rows(scores)))
        parts.append("### Per tag")
        parts.append(_md_table(["tag", "precision %", "recall %", "F1 %", "support"], _tag_rows(scores)))
        if scores["confusions"]:
            parts.append("### Most frequent confusions")
            rows = [(c["gold"], c["predicted"], str(c["count"])) for c in scores["confusions"]]
            parts.append(_md_table(["gold", "predicted", "count"], rows))
    matrices = report.get("tag_scores") or []
    if matrices:
        parts.append("## Tag scores of example sentences")
        parts.append("Each word's probability for every tag (rows: words, columns: tags), as in the PyTorch tutorial.")
    for matrix in matrices:
        parts.append(f"### {matrix['stage']}: {' '.join(matrix['words'])}")
        rows = []
        for word, probs in zip(matrix["words"], matrix["probs"]):
            best = max(range(len(probs)), key=probs.__getitem__)
            rows.append([word, matrix["tags"][best], *(f"{p:.2f}" for p in probs)])
        parts.append(_md_table(["word", "argmax", *matrix["tags"]], rows))
    return "\n\n".join(parts) + "\n"


def write_plots(directory: Path, report: dict[str, Any], history: list[dict[str, Any]] | None) -> dict[str, str]:
    """PNG plots beside the report: learning curves (with ``history``) and one row-normalised
    confusion matrix per result. Returns ``{what: file name}``."""
    from . import plots  # matplotlib is imported only when plots are drawn

    title = report["title"]
    written = {}
    if history:
        plots.plot_learning_curves(history, directory / "learning-curves.png", f"{title}: learning curves")
        written["learning curves"] = "learning-curves.png"
    for name, scores in report["results"].items():
        matrix = scores["confusion_matrix"]
        file = f"confusion-{name}.png"
        plots.plot_confusion_matrix(matrix["labels"], matrix["counts"], directory / file, f"{title}: confusion on {name}")
        written[f"confusion on {name}"] = file
    return written


def write_report(directory: Path, report: dict[str, Any], history: list[dict[str, Any]] | None = None) -> None:
    """Write ``report.md``, ``report.json`` and the plots into ``directory`` (created if needed)."""
    make_dir(directory)
    report = {**report, "plots": write_plots(directory, report, history)}
    atomic_write_text(directory / "report.json", json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    atomic_write_text(directory / "report.md", to_markdown(report))


def print_scores(console: Console, name: str, scores: dict[str, Any]) -> None:
    """The summary and per-tag tables of one evaluation, on the terminal."""
    console.print(f"{name}: {scores.get('data', '')}".rstrip(": "), highlight=False, soft_wrap=True)
    summary = Table()
    for column in ("measure", "accuracy %", "tokens"):
        summary.add_column(column, justify="left" if column == "measure" else "right")
    for row in _summary_rows(scores):
        summary.add_row(*row)
    console.print(summary)
    per_tag = Table(title="per tag", title_justify="left")
    for column in ("tag", "precision %", "recall %", "F1 %", "support"):
        per_tag.add_column(column, justify="left" if column == "tag" else "right")
    for row in _tag_rows(scores):
        per_tag.add_row(*row)
    console.print(per_tag)
    if scores["confusions"]:
        top = ", ".join(f"{c['gold']}->{c['predicted']} {c['count']}" for c in scores["confusions"][:5])
        console.print(f"most frequent confusions (gold->predicted): {top}", highlight=False)
