"""Plots: confusion counts, PNG output of both plots, edge cases, atomic writes."""

from __future__ import annotations

import random
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pytest

from lstm_tagger.evaluation import plots

UPOS = "NOUN PUNCT VERB PRON PROPN ADP DET ADJ AUX ADV CCONJ PART NUM SCONJ INTJ SYM X".split()


def assert_png(path):
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 10_000
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


@pytest.fixture
def figures(monkeypatch):
    """Figures passed to plt.close, to inspect what was drawn; also checks none stay open."""
    closed = []
    real_close = plt.close

    def spy(fig=None):
        closed.append(fig)
        real_close(fig)

    monkeypatch.setattr(plt, "close", spy)
    yield closed
    assert plt.get_fignums() == []


@pytest.fixture
def strict():
    """Any warning (numpy RuntimeWarning for 0/0, matplotlib layout warnings) fails the test."""
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        yield


def cell_texts(fig):
    return {t.get_text() for t in fig.axes[0].texts}


def test_confusion_matrix_17_upos_random(tmp_path, strict, figures):
    rng = random.Random(0)
    counts = [[rng.randint(0, 50) + (3000 if i == j else 0) for j in range(17)] for i in range(17)]
    path = plots.plot_confusion_matrix(UPOS, counts, tmp_path / "cm.png", "run-x confusion")
    assert path == tmp_path / "cm.png"
    assert_png(path)
    ax = figures[-1].axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == UPOS
    assert ax.get_title() == "run-x confusion"
    assert ax.get_xlabel() and ax.get_ylabel()
    assert len(figures[-1].axes) == 2  # heatmap and colour bar


def test_confusion_matrix_zero_row_and_cell_threshold(tmp_path, strict, figures, monkeypatch):
    shown = []
    real_imshow = plt.Axes.imshow
    monkeypatch.setattr(plt.Axes, "imshow", lambda self, x, *a, **k: (shown.append(np.array(x)), real_imshow(self, x, *a, **k))[1])
    labels = ["A", "B", "C"]
    counts = [[995, 5, 0], [0, 0, 0], [90, 1, 9]]  # B has no gold tokens; A->B is 0.5%, C->B is 1%
    assert_png(plots.plot_confusion_matrix(labels, counts, tmp_path / "zero.png", "zero row"))
    share = shown[-1] / 100
    assert np.isfinite(share).all()
    np.testing.assert_allclose(share.sum(axis=1), [1, 0, 1])
    np.testing.assert_allclose(share[2], [0.9, 0.01, 0.09])
    texts = cell_texts(figures[-1])
    assert {"100", "90", "1.0", "9.0"} == texts  # 99.5% rounds to 100; 0.5% and zeros are not written


def test_learning_curves_realistic(tmp_path, strict, figures):
    history = [{"epoch": e, "train_loss": 1 / e, "dev_accuracy": 0.9 + 0.01 * min(e, 4) - 0.005 * (e == 6)} for e in range(1, 8)]
    history.insert(0, {"event": "start"})  # non-epoch records are skipped
    assert_png(plots.plot_learning_curves(history, tmp_path / "lc.png", "run-y"))
    fig = figures[-1]
    assert fig.get_suptitle() == "run-y"
    loss_ax, acc_ax = fig.axes
    assert loss_ax.get_xlabel() == "epoch" and "loss" in loss_ax.get_ylabel() and "%" in acc_ax.get_ylabel()
    assert list(acc_ax.lines[0].get_ydata()) == pytest.approx([91, 92, 93, 94, 94, 93.5, 94])
    legend = [t.get_text() for t in acc_ax.get_legend().get_texts()]
    assert legend == ["best: epoch 4, 94.00%"]  # the first epoch reaching the top accuracy


def test_learning_curves_one_epoch(tmp_path, strict, figures):
    history = [{"epoch": 1, "train_loss": 0.8, "dev_accuracy": 0.88}]
    assert_png(plots.plot_learning_curves(history, tmp_path / "one.png", "one epoch"))
    for ax in figures[-1].axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
    with pytest.raises(ValueError):
        plots.plot_learning_curves([], tmp_path / "none.png", "empty")
    assert not (tmp_path / "none.png").exists()


def test_writes_are_atomic(tmp_path, monkeypatch, figures):
    writes = []
    real_write = plots.atomic_write_bytes
    monkeypatch.setattr(plots, "atomic_write_bytes", lambda path, data: (writes.append(path), real_write(path, data))[1])
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    plots.plot_confusion_matrix(["A", "B"], [[3, 1], [0, 2]], target, "cm")
    plots.plot_learning_curves([{"epoch": 1, "train_loss": 1.0, "dev_accuracy": 0.5}], tmp_path / "lc.png", "lc")
    assert writes == [target, tmp_path / "lc.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lc.png", "out.png"]
    assert target.read_bytes().startswith(b"\x89PNG")


def test_confusion_matrix_of_many_tags_pools_the_rare_ones(tmp_path, strict, figures, monkeypatch):
    shown = []
    real_imshow = plt.Axes.imshow
    monkeypatch.setattr(plt.Axes, "imshow", lambda self, x, *a, **k: (shown.append(np.array(x)), real_imshow(self, x, *a, **k))[1])
    n = 230  # as many as EWT's FEATS values: unpooled, a figure of about 17,000 pixels a side
    labels = [f"T{i}" for i in range(n)]
    counts = [[0] * n for _ in range(n)]
    for i in range(n):
        counts[i][i] = 10 + i  # the frequent tags are the last ones
    counts[0][229] = 5  # a rare tag predicted as the most frequent one: kept in the pooled row
    path = plots.plot_confusion_matrix(labels, counts, tmp_path / "many.png", "feats")
    assert_png(path)
    ax = figures[-1].axes[0]
    kept = [f"T{i}" for i in range(n - plots.MAX_PLOTTED_TAGS + 1, n)]
    assert [t.get_text() for t in ax.get_xticklabels()] == kept + [plots.OTHER]
    assert ax.get_title() == f"feats ({plots.MAX_PLOTTED_TAGS - 1} most frequent gold tags)"
    share = shown[-1] / 100
    assert share.shape == (plots.MAX_PLOTTED_TAGS, plots.MAX_PLOTTED_TAGS)
    other_gold = sum(10 + i for i in range(n - plots.MAX_PLOTTED_TAGS + 1)) + 5
    assert share[-1, -2] == pytest.approx(5 / other_gold)  # T0 -> T229, pooled
    header = path.read_bytes()[16:24]  # the PNG's IHDR: width, height
    assert max(int.from_bytes(header[:4], "big"), int.from_bytes(header[4:], "big")) < 2000  # memory grows with the pixels
