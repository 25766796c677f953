"""PNG plots of a run: learning curves from metrics.jsonl and a confusion matrix of tags; and
the frontier of accuracy against speed across recipes (``frontier.py``).

Rendering uses matplotlib's headless "Agg" backend; every PNG is written atomically.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter  # noqa: E402

from lstm_tagger.files import atomic_write_bytes  # noqa: E402

DPI = 120
PLAIN_TEXT = {"text.usetex": False, "text.parse_math": False}
"""Tags and run names are shown as written: a ``$`` in one is not the start of mathematics."""


def _save(fig, path: Path) -> Path:
    """Render ``fig`` to PNG bytes, close it, and write the bytes atomically to ``path``."""
    path = Path(path)
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", pad_inches=0.15)
    finally:
        plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def plot_learning_curves(history: list[dict], path: Path, title: str) -> Path:
    """Plot training loss and dev accuracy per epoch; return ``path``.

    ``history``: per-epoch records of a run's metrics.jsonl, each with at least "epoch",
    "train_loss" and "dev_accuracy" (a fraction in [0, 1]); records without "epoch" are
    skipped. Writes a PNG to ``path`` with two side-by-side panels (loss; dev accuracy in %),
    the best dev epoch marked on both, titled ``title``. Raises ValueError if no epochs.
    """
    records = sorted((r for r in history if "epoch" in r), key=lambda r: r["epoch"])
    if not records:
        raise ValueError("plot_learning_curves: history has no epoch records")
    epochs = [int(r["epoch"]) for r in records]
    loss = [float(r["train_loss"]) for r in records]
    acc = [100.0 * float(r["dev_accuracy"]) for r in records]
    best = max(range(len(acc)), key=lambda i: (acc[i], -i))  # first epoch with the top accuracy

    with plt.rc_context(PLAIN_TEXT):
        return _save(_learning_curves(epochs, loss, acc, best, title), path)


def _learning_curves(epochs: list[int], loss: list[float], acc: list[float], best: int, title: str):
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    ax_loss.plot(epochs, loss, marker="o", markersize=3, color="tab:blue")
    ax_loss.set_ylabel("training loss (mean per token)")
    ax_loss.set_title("Training loss")
    ax_acc.plot(epochs, acc, marker="o", markersize=3, color="tab:green")
    ax_acc.set_ylabel("dev accuracy (%)")
    ax_acc.set_title("Dev accuracy")
    for ax in (ax_loss, ax_acc):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if len(epochs) == 1:  # otherwise the axis spans 0.95..1.05 with fractional ticks
            ax.set_xlim(epochs[0] - 1, epochs[0] + 1)
        ax.grid(True, alpha=0.3)
        ax.axvline(epochs[best], color="tab:red", linestyle="--", linewidth=1, alpha=0.7)
    ax_loss.plot([epochs[best]], [loss[best]], marker="*", markersize=13, color="tab:red", linestyle="none")
    ax_acc.plot([epochs[best]], [acc[best]], marker="*", markersize=13, color="tab:red", linestyle="none",
                label=f"best: epoch {epochs[best]}, {acc[best]:.2f}%")
    ax_acc.legend(loc="lower right")
    fig.suptitle(title)
    return fig


def plot_confusion_matrix(labels: list[str], counts: list[list[int]], path: Path, title: str) -> Path:
    """Plot a row-normalised confusion matrix heatmap; return ``path``.

    ``labels`` and ``counts`` of ``metrics.score``'s ``confusion_matrix`` (a square matrix, gold rows
    by predicted columns). Each gold row is divided by its total (an all-zero row stays
    zero); gold tags (with their token counts) on y, predicted tags on x, a colour bar, and
    the percentage written in every cell of at least 1%. Writes a PNG to ``path``, titled ``title``.
    """
    matrix = np.asarray(counts, dtype=float).reshape(-1, len(labels)) if labels else np.zeros((0, 0))
    if matrix.shape != (len(labels), len(labels)):
        raise ValueError(f"plot_confusion_matrix: counts must be {len(labels)}x{len(labels)}, got {matrix.shape}")
    if len(labels) > MAX_PLOTTED_TAGS:
        labels, matrix = _pool_rare(labels, matrix)
        title = f"{title} ({MAX_PLOTTED_TAGS - 1} most frequent gold tags)"
    totals = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
    with plt.rc_context(PLAIN_TEXT):
        return _save(_confusion(labels, totals, share, title), path)


MAX_PLOTTED_TAGS = 40
"""A confusion matrix of more tags pools the rarer ones into one row and column: the figure's
side grows with the tag count (230 FEATS values would be a 17,000-pixel, 1 GB image)."""
OTHER = "(other)"


def _pool_rare(labels: list[str], matrix: np.ndarray) -> tuple[list[str], np.ndarray]:
    """(n,) labels, (n, n) counts -> the ``MAX_PLOTTED_TAGS - 1`` tags with the most gold tokens
    (in their order) and ``OTHER`` for the rest, with every count kept in its pooled cell."""
    keep = np.sort(np.argsort(-matrix.sum(axis=1), kind="stable")[: MAX_PLOTTED_TAGS - 1])
    group = np.full(len(labels), len(keep))  # each tag's row/column in the pooled matrix
    group[keep] = np.arange(len(keep))
    pooled = np.zeros((len(keep) + 1, len(keep) + 1))
    np.add.at(pooled, (group[:, None], group[None, :]), matrix)
    return [labels[i] for i in keep] + [OTHER], pooled


CELL_INCHES = 0.32
"""A confusion cell's side: room for "100" at 8.5 points. Rendering costs memory with the pixel
count (40 tags at 0.5 inch a cell took 240 MB for a moment, more than the rest of a small run's
training; at 0.32, 115 MB)."""


def _confusion(labels: list[str], totals: np.ndarray, share: np.ndarray, title: str):
    n = len(labels)
    side = max(4.0, CELL_INCHES * n + 2.5)
    fig, ax = plt.subplots(figsize=(side + 1.5, side))
    image = ax.imshow(100 * share, cmap="Blues", vmin=0, vmax=100, aspect="equal")
    colorbar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02)
    colorbar.set_label("% of the gold tag's tokens")
    ax.set_xticks(range(n), labels, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(n), [f"{label} ({int(total):,})" for label, total in zip(labels, totals[:, 0])])
    ax.set_xlabel("predicted tag")
    ax.set_ylabel("gold tag (tokens)")
    ax.tick_params(length=0)
    ax.set_xticks(np.arange(-0.5, n, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, n, 1), minor=True)
    ax.grid(which="minor", color="white", linewidth=0.8)
    ax.tick_params(which="minor", length=0)
    fontsize = 8.5 if n > 12 else 10
    for i in range(n):
        for j in range(n):
            value = 100 * share[i, j]
            if value >= 1:
                text = f"{value:.0f}" if value >= 9.5 else f"{value:.1f}"
                ax.text(j, i, text, ha="center", va="center", fontsize=fontsize,
                        color="white" if value > 55 else "black")
    ax.set_title(title)
    return fig


FRONTIER_STYLES = {
    "lstm-tag": {"marker": "o", "color": "tab:blue", "label": "lstm-tag recipes: whole process (lstm-tag predict --file, start-up included)"},
    "outside": {"marker": "D", "color": "tab:orange", "label": "other systems: in process, loading not counted (same kind of machine)"},
}


def plot_frontier(points: list[dict], path: Path, title: str) -> Path:
    """Plot test UPOS accuracy against tagging speed, one labelled point each; return ``path``.

    ``points``: ``frontier.frontier``'s, each with "label", "system" (``lstm-tag`` or ``outside``),
    "test_upos" (a fraction in [0, 1]) and "tokens_per_second" (> 0). Speed on a log x axis,
    accuracy in % on y; lstm-tag's recipes and the other systems marked apart, with a legend
    that says how each speed was measured. Writes a PNG to ``path``, titled ``title``.
    Raises ValueError if there are no points.
    """
    if not points:
        raise ValueError("plot_frontier: no points")
    with plt.rc_context(PLAIN_TEXT):
        return _save(_frontier(points, title), path)


def _speed_tick(value: float, _position: int) -> str:
    """A tokens/s tick: ``500``, ``20k``, ``1.5M``."""
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


def _frontier(points: list[dict], title: str):
    fig, ax = plt.subplots(figsize=(8.5, 5.2), layout="constrained")
    for system, style in FRONTIER_STYLES.items():
        chosen = [p for p in points if p["system"] == system]
        if not chosen:
            continue
        speeds = [float(p["tokens_per_second"]) for p in chosen]
        accuracies = [100.0 * float(p["test_upos"]) for p in chosen]
        ax.scatter(speeds, accuracies, s=55, zorder=3, **style)
        for point, x, y in zip(chosen, speeds, accuracies):
            ax.annotate(f"{point['label']} ({y:.2f})", (x, y), xytext=(7, 5), textcoords="offset points", fontsize=9)
    ax.set_xscale("log")
    ax.margins(x=0.25, y=0.2)  # room for the labels, on the log axis too
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(_speed_tick))  # 20k, not 2x10^4 (mathematics is off)
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("tagging speed (tokens/s, log scale)")
    ax.set_ylabel("test UPOS accuracy (%)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title(title)
    return fig
