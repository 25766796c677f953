"""The command line end to end, in-process: train the demo config, predict, eval."""

import json
import re
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lstm_tagger.rundir import BEST, LAST
from lstm_tagger.cli import app

from conftest import ROOT, assert_one_line_error

runner = CliRunner()


def test_train_writes_the_run_directory(demo_run):
    for name in ("config.yaml", BEST, LAST, "metrics.jsonl", "report.md", "report.json", "train.log"):
        assert (demo_run / name).is_file(), name
    for name in ("learning-curves.png", "confusion-dev.png", "confusion-test.png"):
        assert (demo_run / name).read_bytes().startswith(b"\x89PNG"), name
        assert f"]({name})" in (demo_run / "report.md").read_text()
    lines = (demo_run / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 8 and json.loads(lines[-1])["epoch"] == 8
    report = json.loads((demo_run / "report.json").read_text())
    assert set(report["results"]) == {"dev", "test"}
    stages = [m["stage"] for m in report["tag_scores"]]
    assert stages == ["before training"] * 2 + ["after training"] * 2
    assert report["tag_scores"][0]["words"] == ["The", "dog", "ate", "the", "apple"]
    assert "| tag | precision % | recall % | F1 % | support |" in (demo_run / "report.md").read_text()


def test_refuses_non_empty_output_unless_force(demo_run, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    args = ["train", str(ROOT / "configs" / "demo.yaml"), "--output", str(out), "--set", "train.epochs=1"]
    result = runner.invoke(app, args)
    assert_one_line_error(result, "output directory is not empty (use --force")
    assert (out / "keep.txt").read_text() == "mine" and not (out / BEST).exists()
    assert runner.invoke(app, [*args, "--force"]).exit_code == 0
    assert (out / BEST).is_file()


def test_predict_text_default_format(demo_run):
    result = runner.invoke(app, ["predict", "--model", str(demo_run), "The dog ate the apple"])
    assert result.exit_code == 0, result.output
    tokens = result.stdout.strip().split(" ")
    assert [t.split("/")[0] for t in tokens] == ["The", "dog", "ate", "the", "apple"]
    assert all(t.split("/")[1] in {"DET", "NOUN", "VERB", "PRON", "ADJ", "PROPN"} for t in tokens)


def test_predict_file_stdin_formats_and_scores(demo_run, tmp_path):
    text = "The dog ate the apple\n\nEverybody read that book\n"
    path = tmp_path / "in.txt"
    path.write_text(text)
    tokens = ["--input-format", "tokens"]  # one sentence per line (the demo model has a segmenter)
    from_file = runner.invoke(app, ["predict", "-m", str(demo_run), "--file", str(path), *tokens])
    from_stdin = runner.invoke(app, ["predict", "-m", str(demo_run), "--file", "-", *tokens], input=text)
    assert from_file.exit_code == 0 and from_file.stdout == from_stdin.stdout
    assert from_file.stdout.splitlines()[1] == ""  # an empty line stays an empty line
    as_json = runner.invoke(app, ["predict", "-m", str(demo_run), "--file", str(path), "--format", "json", "--scores", *tokens])
    records = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert records[0]["words"] == ["The", "dog", "ate", "the", "apple"] and records[1]["upos"] == []
    assert abs(sum(records[0]["scores"]["upos"][0].values()) - 1) < 1e-2
    assert max(records[0]["scores"]["upos"][1], key=records[0]["scores"]["upos"][1].get) == records[0]["upos"][1]
    conllu = runner.invoke(app, ["predict", "-m", str(demo_run), "Everybody read", "--format", "conllu", *tokens])
    assert conllu.stdout.splitlines()[:3] == ["# sent_id = 1", "# text = Everybody read", conllu.stdout.splitlines()[2]]
    assert conllu.stdout.splitlines()[2].startswith("1\tEverybody\t_\t")
    scored = runner.invoke(app, ["predict", "-m", str(demo_run), "dog", "--scores"])
    word, rest = scored.stdout.strip().split("/")
    assert word == "dog" and 0 < float(rest.split(":")[1]) <= 1


def test_predict_unknown_words_and_empty_input(demo_run):
    result = runner.invoke(app, ["predict", "-m", str(demo_run), "Xylophones quibble zealously"])
    assert result.exit_code == 0 and len(result.stdout.split()) == 3
    empty = runner.invoke(app, ["predict", "-m", str(demo_run), ""])
    assert empty.exit_code == 0 and empty.stdout == ""
    empty_stdin = runner.invoke(app, ["predict", "-m", str(demo_run), "--file", "-"], input="")
    assert empty_stdin.exit_code == 0 and empty_stdin.stdout == ""


def test_predict_defaults_to_newest_run(demo_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copytree(demo_run, tmp_path / "runs" / "only")
    result = runner.invoke(app, ["predict", "The dog"])
    assert result.exit_code == 0
    assert f"using {Path('runs') / 'only' / BEST}" in result.stderr
    (tmp_path / "runs" / "only" / BEST).unlink()
    result = runner.invoke(app, ["predict", "The dog"])
    assert_one_line_error(result, "no trained model under runs/", "pass --model PATH")


def test_eval_json_and_report(demo_run, tmp_path):
    result = runner.invoke(app, ["eval", "--model", str(demo_run / BEST), "--json", "--output", str(tmp_path / "rep")])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)
    assert {"accuracy", "tokens", "oov_accuracy", "per_tag"} <= set(scores)
    assert scores["data"].endswith("test.conllu") and 0 <= scores["accuracy"] <= 1
    assert scores["tokens"] == sum(t["support"] for t in scores["per_tag"].values())
    assert (tmp_path / "rep" / "report.md").is_file()
    assert (tmp_path / "rep" / "confusion-test.png").read_bytes().startswith(b"\x89PNG")
    assert json.loads((tmp_path / "rep" / "report.json").read_text())["results"]["test"]["tokens"] == scores["tokens"]
    dev = runner.invoke(app, ["eval", "-m", str(demo_run), "--data", str(ROOT / "data" / "demo" / "dev.conllu")])
    assert dev.exit_code == 0 and "token accuracy" in dev.stdout


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "not an lstm-tag checkpoint"),
        (os.urandom(4096), "not an lstm-tag checkpoint"),
    ],
)
def test_corrupt_checkpoint_is_one_line(tmp_path, content, message):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(content)
    result = runner.invoke(app, ["predict", "--model", str(bad), "hello"])
    assert_one_line_error(result, message)


def test_truncated_checkpoint(demo_run, tmp_path):
    data = (demo_run / BEST).read_bytes()
    bad = tmp_path / "cut.safetensors"
    bad.write_bytes(data[: len(data) // 2])
    result = runner.invoke(app, ["eval", "--model", str(bad)])
    assert_one_line_error(result, "cut.safetensors")


def test_help_has_examples():
    for command in ("train", "predict", "eval", "download", "init", "runs", "info", "frontier"):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0 and "Examples" in result.stdout, command


def test_python_dash_m(tmp_path):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "lstm_tagger", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "train" in result.stdout and "predict" in result.stdout


def test_predict_and_eval_with_another_cell_of_the_family(demo_run):
    text = "Everybody read that book"
    fast = runner.invoke(app, ["predict", "-m", str(demo_run), text, "--scores"])
    hand = runner.invoke(app, ["predict", "-m", str(demo_run), text, "--scores", "--cell", "hand_lstm"])
    assert hand.exit_code == 0 and hand.stdout == fast.stdout
    scores = json.loads(runner.invoke(app, ["eval", "-m", str(demo_run), "--json", "--cell", "hand_lstm"]).stdout)
    assert scores["accuracy"] == json.loads(runner.invoke(app, ["eval", "-m", str(demo_run), "--json"]).stdout)["accuracy"]
    wrong = runner.invoke(app, ["predict", "-m", str(demo_run), text, "--cell", "gru"])
    assert_one_line_error(wrong, "the model's cell is lstm; only a cell of the same family can serve it, not gru")


@pytest.mark.parametrize("cell", ["lstm", "gru", "hand_lstm", "hand_gru"])
def test_every_cell_end_to_end(cell, tmp_path):
    from conftest import tiny_config

    config = tiny_config(tmp_path, model={"cell": cell}, train={"epochs": 3})
    assert runner.invoke(app, ["train", str(config), "--output", str(tmp_path / "run")]).exit_code == 0
    tagged = runner.invoke(app, ["predict", "-m", str(tmp_path / "run"), "The dog ate the apple"])
    assert tagged.exit_code == 0 and len(tagged.stdout.split()) == 5
    scores = json.loads(runner.invoke(app, ["eval", "-m", str(tmp_path / "run"), "--json"]).stdout)
    assert scores["tokens"] == 9
    from lstm_tagger import load_checkpoint

    assert load_checkpoint(tmp_path / "run" / BEST).config.model.cell == cell


def test_info_and_export_help_show_their_choices_and_defaults():
    info = runner.invoke(app, ["info", "--help"], env={"COLUMNS": "200"}).stdout
    assert "[default: the newest run's best model]" in info  # not eaten as rich markup
    export = runner.invoke(app, ["export", "--help"], env={"COLUMNS": "200"}).stdout
    assert re.search(r"--format\s+torchscript\|onnx\s+What to write: torchscript or onnx\.", export), export
    init = runner.invoke(app, ["init", "--help"], env={"COLUMNS": "200"}).stdout
    assert "[default: upos and xpos when every word has one, and feats when some word has features]" in init
