"""lstm-tag frontier: reading bench JSON files (crafted here: the test checks our reading, not a
measurement), the plot file, the outside systems, and bad input in one line."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
from typer.testing import CliRunner

from lstm_tagger.evaluation import plots
from lstm_tagger.cli import app
from lstm_tagger.benchmark.frontier import EWT_TEST, OUTSIDE

from conftest import assert_one_line_error

runner = CliRunner()
PNG = b"\x89PNG\r\n\x1a\n"


def bench_file(path: Path, recipe: str, test_upos: float | None, tokens_per_second: float, test_data: str = f"/data/{EWT_TEST}",
               overrides: list[str] | None = None) -> Path:
    """A bench JSON file with the fields frontier reads (and a few it does not)."""
    result = {
        "config": f"configs/{recipe}.yaml", "recipe": recipe, "overrides": overrides or [],
        "machine": {"cpu": "Some CPU", "cores": 2, "date": "2026-12-01T10:00:00+00:00"},
        "train": None,
        "model": {"path": f"runs/{recipe}/model-best.safetensors", "test_upos": test_upos, "test_data": test_data, "parameters": 1000},
        "tagging": {"default_batch": {"batch_size": 256, "tokens": 1_000_003, "tokens_per_second": tokens_per_second}},
    }
    path.write_text(json.dumps(result), encoding="utf-8")
    return path


def test_frontier_plots_each_recipe_and_the_other_systems(tmp_path):
    fast = bench_file(tmp_path / "fast.json", "ud_ewt_fast", 0.9415, 152_034.5, overrides=["model.hidden_dim=32", "train.threads=1"])
    best = bench_file(tmp_path / "best.json", "ud_ewt", 0.9547, 29_401.25)
    output = tmp_path / "frontier.png"
    result = runner.invoke(app, ["frontier", str(fast), str(best), "--output", str(output), "--json"])
    assert result.exit_code == 0, result.output
    assert output.read_bytes().startswith(PNG) and result.stderr == ""
    shown = json.loads(result.stdout)
    assert shown["output"] == str(output) and shown["note"] is None
    ours = shown["points"][:2]
    assert [(p["label"], p["system"], p["test_upos"], p["tokens_per_second"], p["source"]) for p in ours] == [
        ("ud_ewt_fast (model.hidden_dim=32)", "lstm-tag", 0.9415, 152_034.5, str(fast)),  # bench's own --threads is no recipe
        ("ud_ewt", "lstm-tag", 0.9547, 29_401.25, str(best)),
    ]
    assert ours[0]["speed"] == "whole process: lstm-tag predict --file, batch 256, 1,000,003 tokens"
    assert ours[0]["test_data"] == f"/data/{EWT_TEST}" and ours[0]["machine"] == "Some CPU, 2 cores, 2026-12-01T10:00:00+00:00"
    assert shown["points"][2:] == [asdict(system) for system in OUTSIDE]
    assert {p["label"]: p["test_upos"] for p in shown["points"][2:]} == {"spaCy en_core_web_sm 3.8": 0.9141, "UDPipe 1, trained on EWT": 0.9501}

    table = runner.invoke(app, ["frontier", str(fast), str(best), "--output", str(output), "--force"])
    assert table.exit_code == 0 and "152,034" in table.stdout and "94.15" in table.stdout and "91.41" in table.stdout
    assert f"frontier written to {output}" in table.stdout


def test_a_bench_file_without_test_accuracy_is_one_line(tmp_path):
    good = bench_file(tmp_path / "good.json", "ud_ewt", 0.95, 30_000.0)
    unscored = bench_file(tmp_path / "unscored.json", "ud_ewt_word", None, 90_000.0)
    result = runner.invoke(app, ["frontier", str(good), str(unscored), "--output", str(tmp_path / "f.png")])
    assert_one_line_error(result, f"{unscored}: no test UPOS accuracy", "--model RUN")
    assert not (tmp_path / "f.png").exists()
    old = json.loads(unscored.read_text())
    del old["model"]["test_upos"]  # a bench file from before the field
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert_one_line_error(runner.invoke(app, ["frontier", str(tmp_path / "old.json"), "-o", str(tmp_path / "f.png")]),
                          f"{tmp_path / 'old.json'}: no test UPOS accuracy")


@pytest.mark.parametrize("text, message", [
    ("{not json", "not JSON: Expecting property name enclosed in double quotes (line 1)"),
    ("[1, 2]", "not an lstm-tag bench file (expected a JSON object)"),
    ('{"model": {"test_upos": 0.9}}', "not an lstm-tag bench file (no model, or no tagging.default_batch.tokens_per_second)"),
    ('{"model": {"test_upos": 1.5}, "tagging": {"default_batch": {"tokens_per_second": 10}}}', "model.test_upos must be a fraction in [0, 1], got 1.5"),
])
def test_bad_bench_files_are_one_line(tmp_path, text, message):
    (tmp_path / "b.json").write_text(text)
    result = runner.invoke(app, ["frontier", str(tmp_path / "b.json"), "--output", str(tmp_path / "f.png")])
    assert_one_line_error(result, f"{tmp_path / 'b.json'}: {message}")


def test_frontier_refuses_to_replace_a_file_and_a_missing_one(tmp_path):
    bench = bench_file(tmp_path / "b.json", "ud_ewt", 0.95, 30_000.0)
    (tmp_path / "f.png").write_bytes(b"mine")
    assert_one_line_error(runner.invoke(app, ["frontier", str(bench), "-o", str(tmp_path / "f.png")]), "exists already (use --force")
    assert (tmp_path / "f.png").read_bytes() == b"mine"
    missing = runner.invoke(app, ["frontier", str(tmp_path / "none.json"), "-o", str(tmp_path / "g.png")])
    assert_one_line_error(missing, f"{tmp_path / 'none.json'}: bench JSON file not found")


def test_other_systems_stay_out_unless_every_recipe_was_scored_on_ewt_test(tmp_path):
    ewt = bench_file(tmp_path / "ewt.json", "ud_ewt", 0.95, 30_000.0)
    french = bench_file(tmp_path / "fr.json", "fr_gsd", 0.97, 40_000.0, test_data="/data/fr_gsd-ud-test.conllu")
    result = runner.invoke(app, ["frontier", str(ewt), str(french), "--output", str(tmp_path / "f.png"), "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert [p["label"] for p in shown["points"]] == ["ud_ewt", "fr_gsd"]
    assert shown["note"].startswith(f"the other systems' figures are for UD English EWT test ({EWT_TEST}): left out, as {french}")
    assert result.stderr == f"lstm-tag: {shown['note']}\n"


def test_the_plot_labels_every_point_on_a_log_speed_axis(tmp_path):
    points = [
        {"label": "ud_ewt", "system": "lstm-tag", "test_upos": 0.9547, "tokens_per_second": 29_400.0},
        *(asdict(system) for system in OUTSIDE),
    ]
    figure = plots._frontier(points, "frontier $x$")
    try:
        ax = figure.axes[0]
        assert ax.get_xscale() == "log" and ax.get_title() == "frontier $x$"
        assert [t.get_text() for t in ax.texts] == ["ud_ewt (95.47)", "spaCy en_core_web_sm 3.8 (91.41)", "UDPipe 1, trained on EWT (95.01)"]
        assert [t.get_text() for t in ax.get_legend().get_texts()] == [style["label"] for style in plots.FRONTIER_STYLES.values()]
    finally:
        plt.close(figure)
    assert plots.plot_frontier(points, tmp_path / "f.png", "t").read_bytes().startswith(PNG)
    with pytest.raises(ValueError, match="no points"):
        plots.plot_frontier([], tmp_path / "g.png", "t")
