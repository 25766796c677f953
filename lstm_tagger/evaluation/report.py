"""The tag-score report: Markdown and JSON files, and the same tables on the terminal.

A report is a plain dict::

    {"title": str,
     "results": {"dev": scores, "test": scores, ...},   # scores from evaluate.evaluate: the first
                                                         # column's, "columns" (each one's), "all_tags"
     "tag_scores": [matrix, ...],                        # optional, from evaluate.tag_score_matrix
     "training": {...}}                                  # optional summary of the run
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from lstm_tagger.files import atomic_write_text, make_dir
from lstm_tagger.rundir import LEARNING_CURVES, REPORT_JSON, REPORT_MD, confusion_plot


def percent(value: float | None, count: int = 1) -> str:
    """A fraction as a percentage; ``n/a`` when it was measured over nothing, ``-`` when unknown (None)."""
    if value is None:
        return "-"
    return f"{100 * value:.2f}" if count else "n/a"


def figure(value: Any) -> str:
    """A count with thousands separators (``25,094``); anything else as it is."""
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def columns_of(scores: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each tag column's scores (``{"": scores}`` for scores made before several columns)."""
    return scores.get("columns") or {"": scores}


FEATS_NAME = "FEATS (whole string)"
"""The ``feats`` column's own accuracy: a word counts when its whole FEATS string is right.
The official CoNLL 2018 figure, which compares only the universal features, is UFeats."""


def column_name(column: str) -> str:
    """How a tag column's accuracy is named: ``UPOS``, ``XPOS``, ``FEATS (whole string)``."""
    return FEATS_NAME if column == "feats" else column.upper()


def _summary_header(scores: dict[str, Any]) -> list[str]:
    columns = columns_of(scores)
    if len(columns) == 1:
        return ["measure", f"{FEATS_NAME} %" if "feats" in columns else "accuracy %", "tokens"]
    return ["measure", *(f"{column_name(column)} %" for column in columns), "tokens"]


def _summary_rows(scores: dict[str, Any]) -> list[tuple[str, ...]]:
    """Accuracy, macro-F1, sentence, known and OOV accuracy: one value column per tag column; then
    UFeats (in the FEATS column) and every tag right."""
    names = list(columns_of(scores))
    columns = list(columns_of(scores).values())
    first = columns[0]
    rows = [
        ("token accuracy", *(percent(c["accuracy"]) for c in columns), figure(first["tokens"])),
        ("macro-F1 (mean over tags)", *(percent(c["macro_f1"], len(c["per_tag"])) for c in columns),
         " / ".join(f"{len(c['per_tag'])}" for c in columns) + " tags"),
        ("sentence accuracy", *(percent(c["sentence_accuracy"]) for c in columns), figure(first["sentences"])),
        ("known words", *(percent(c["known_accuracy"], c["known_tokens"]) for c in columns), figure(first["known_tokens"])),
        ("unknown (OOV) words", *(percent(c["oov_accuracy"], c["oov_tokens"]) for c in columns), figure(first["oov_tokens"])),
    ]
    if "ufeats" in scores:
        cells = [percent(scores["ufeats"]["accuracy"]) if name == "feats" else "" for name in names]
        rows.append(("UFeats (CoNLL 2018)", *cells, figure(scores["ufeats"]["tokens"])))
    if "all_tags" in scores:
        all_tags = scores["all_tags"]
        rows.append(("all tags right", *([percent(all_tags["accuracy"])] + [""] * (len(columns) - 1)), figure(all_tags["tokens"])))
    return rows


def _tag_rows(scores: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    return [
        (tag, percent(s["precision"]), percent(s["recall"]), percent(s["f1"]), figure(s["support"]))
        for tag, s in scores["per_tag"].items()
    ]


def _titled(title: str, column: str) -> str:
    return f"{title} ({column.upper()})" if column else title


def _md_table(header: list[str], rows: list[tuple[str, ...]] | list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def to_markdown(report: dict[str, Any]) -> str:
    """The whole report as Markdown."""
    parts = [f"# {report['title']}"]
    training = report.get("training")
    if training:
        parts.append(_md_table(["", ""], [(k, figure(v)) for k, v in training.items()]))
    for what, file in (report.get("plots") or {}).items():
        parts.append(f"![{what}]({file})")
    for name, scores in report["results"].items():
        parts.append(f"## {name}: {scores.get('data', '')}".rstrip(": "))
        parts.append(_md_table(_summary_header(scores), _summary_rows(scores)))
        for column, column_scores in columns_of(scores).items():
            parts.append(f"### {_titled('Per tag', column)}")
            parts.append(_md_table(["tag", "precision %", "recall %", "F1 %", "support"], _tag_rows(column_scores)))
            if column_scores["confusions"]:
                parts.append(f"### {_titled('Most frequent confusions', column)}")
                rows = [(c["gold"], c["predicted"], str(c["count"])) for c in column_scores["confusions"]]
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
    from lstm_tagger.evaluation import plots  # matplotlib is imported only when plots are drawn

    title = report["title"]
    written = {}
    if history:
        plots.plot_learning_curves(history, directory / LEARNING_CURVES, f"{title}: learning curves")
        written["learning curves"] = LEARNING_CURVES
    for name, scores in report["results"].items():
        for column, column_scores in columns_of(scores).items():
            matrix = column_scores["confusion_matrix"]
            which = f"{name}-{column}" if len(columns_of(scores)) > 1 else name
            file = confusion_plot(which)
            what = f"confusion on {name}" + (f" ({column.upper()})" if which != name else "")
            plots.plot_confusion_matrix(matrix["labels"], matrix["counts"], directory / file, f"{title}: {what}")
            written[what] = file
    return written


def write_report(directory: Path, report: dict[str, Any], history: list[dict[str, Any]] | None = None) -> None:
    """Write ``report.md``, ``report.json`` and the plots into ``directory`` (created if needed)."""
    make_dir(directory)
    report = {**report, "plots": write_plots(directory, report, history)}
    atomic_write_text(directory / REPORT_JSON, json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    atomic_write_text(directory / REPORT_MD, to_markdown(report))


def print_scores(console: Console, name: str, scores: dict[str, Any]) -> None:
    """The summary and per-tag tables of one evaluation (one per tag column), on the terminal."""
    console.print(f"{name}: {scores.get('data', '')}".rstrip(": "), highlight=False, soft_wrap=True)
    summary = Table()
    for column in _summary_header(scores):
        summary.add_column(column, justify="left" if column == "measure" else "right")
    for row in _summary_rows(scores):
        summary.add_row(*row)
    console.print(summary)
    for column, column_scores in columns_of(scores).items():
        per_tag = Table(title=_titled("per tag", column), title_justify="left")
        for heading in ("tag", "precision %", "recall %", "F1 %", "support"):
            per_tag.add_column(heading, justify="left" if heading == "tag" else "right")
        for row in _tag_rows(column_scores):
            per_tag.add_row(*row)
        console.print(per_tag)
        if column_scores["confusions"]:
            top = ", ".join(f"{c['gold']}->{c['predicted']} {c['count']}" for c in column_scores["confusions"][:5])
            which = f"{column.upper()} " if column else ""
            console.print(f"most frequent {which}confusions (gold->predicted): {top}", highlight=False)


def column_accuracies(scores: dict[str, Any]) -> dict[str, float]:
    """``{"upos": 0.95, "xpos": 0.94, "feats": 0.93, "ufeats": 0.94, "all_tags": 0.92}``: with
    several columns each one's accuracy and ``all_tags``; ``ufeats`` whenever FEATS is learnt."""
    columns = columns_of(scores)
    ufeats = {"ufeats": scores["ufeats"]["accuracy"]} if "ufeats" in scores else {}
    if len(columns) == 1:
        return ufeats
    accuracies = {c: s["accuracy"] for c, s in columns.items()}
    return {**accuracies, **ufeats, "all_tags": scores["all_tags"]["accuracy"]}


ACCURACY_NAMES = {"feats": FEATS_NAME, "ufeats": "UFeats", "all_tags": "all tags"}


def accuracies_text(scores: dict[str, Any]) -> str:
    """``column_accuracies`` in a line: ``UPOS 95.00, XPOS 94.00, FEATS (whole string) 93.00,
    UFeats 94.00, all tags 92.00`` (empty for one column without FEATS)."""
    return ", ".join(
        f"{ACCURACY_NAMES.get(c, c.upper())} {100 * a:.2f}" for c, a in column_accuracies(scores).items()
    )
