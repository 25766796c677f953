"""lstm-tag runs and lstm-tag info."""

import json

from typer.testing import CliRunner

from lstm_tagger.cli import app

from conftest import assert_one_line_error, tiny_config

runner = CliRunner()


def test_runs_lists_each_run_and_info_shows_a_checkpoint(tmp_path, monkeypatch):
    config = tiny_config(tmp_path, train={"epochs": 3})
    runs = tmp_path / "runs"
    assert runner.invoke(app, ["train", str(config), "--output", str(runs / "a")]).exit_code == 0
    assert runner.invoke(app, ["train", str(config), "--output", str(runs / "b"), "--set", "model.cell=gru", "--set", "data.test=null"]).exit_code == 0
    (runs / "starting").mkdir()
    (runs / "starting" / "config.yaml").write_text("data: {train: x.conllu}\n")  # a run still in its first epoch

    records = json.loads(runner.invoke(app, ["runs", "--runs-dir", str(runs), "--json"]).stdout)
    by_name = {r["name"]: r for r in records}
    assert set(by_name) == {"a", "b", "starting"}
    a_metrics = [json.loads(line) for line in (runs / "a" / "metrics.jsonl").read_text().splitlines()]
    assert by_name["a"]["epochs"] == 3 and by_name["a"]["best_dev_accuracy"] == max(r["dev_accuracy"] for r in a_metrics)
    report = json.loads((runs / "a" / "report.json").read_text())
    assert by_name["a"]["test_accuracy"] == report["results"]["test"]["accuracy"]
    assert by_name["b"]["cell"] == "gru" and by_name["b"]["test_accuracy"] is None
    assert by_name["starting"]["epochs"] == 0 and by_name["starting"]["best_dev_accuracy"] is None
    table = runner.invoke(app, ["runs", "--runs-dir", str(runs)])
    assert table.exit_code == 0 and "best dev %" in table.stdout and "starting" in table.stdout

    info = json.loads(runner.invoke(app, ["info", str(runs / "b"), "--json"]).stdout)
    assert info["model"]["cell"] == "gru" and info["tags"] == ["DET", "NOUN", "VERB", "PRON"]  # most frequent first
    assert info["words"] == 2 + 9 and info["metrics"]["epoch"] >= 1  # <pad>, <unk> and 9 distinct forms
    assert info["parameters"] > 0 and info["data"]["train"].endswith("tiny.conllu")
    monkeypatch.chdir(tmp_path)
    shown = runner.invoke(app, ["info"])
    assert shown.exit_code == 0 and "model.hidden_dim" in shown.stdout


def test_info_and_runs_on_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    missing = runner.invoke(app, ["info", str(tmp_path / "nope")])
    assert_one_line_error(missing, "nope: checkpoint not found")
    empty = runner.invoke(app, ["runs"])
    assert empty.exit_code == 0 and "no runs under runs/" in empty.stderr
    assert runner.invoke(app, ["runs", "--json"]).stdout.strip() == "[]"


def test_quiet_prints_nothing_and_train_log_keeps_the_epochs(tmp_path):
    config = tiny_config(tmp_path, train={"epochs": 2})
    result = runner.invoke(app, ["train", str(config), "--output", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 0 and result.stdout == "" and result.stderr == ""
    log = (tmp_path / "run" / "train.log").read_text().splitlines()
    assert [line.split()[1:3] for line in log if " epoch " in line] == [["epoch", "1"], ["epoch", "2"]]
    assert log[-1].endswith(f"run written to {tmp_path / 'run'}")
    loud = runner.invoke(app, ["train", str(config), "--output", str(tmp_path / "loud")])
    assert "epoch   2" in loud.stdout and "\x1b[" not in loud.stdout  # not a terminal: no colour codes


def test_init_writes_a_config_that_trains(tmp_path, monkeypatch):
    corpus = tmp_path / "my data #1"
    corpus.mkdir()
    for name in ("train.tsv", "dev.tsv"):
        (corpus / name).write_text("The\tDET\ndog\tNOUN\nbarks\tVERB\n\nA\tDET\ncat\tNOUN\nsleeps\tVERB\n")
    out = tmp_path / "configs" / "mine.yaml"
    args = ["init", "--train", str(corpus / "train.tsv"), "--dev", str(corpus / "dev.tsv"), "--format", "tsv", "--output", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0 and f"wrote {out}" in result.stdout
    assert '"../my data #1/train.tsv"' in out.read_text()  # relative to the config, quoted
    again = runner.invoke(app, args)
    assert_one_line_error(again, "exists already (use --force")
    trained = runner.invoke(app, ["train", str(out), "--output", str(tmp_path / "run"), "--set", "train.epochs=2"])
    assert trained.exit_code == 0, trained.output
    missing = runner.invoke(app, ["init", "--output", str(tmp_path / "x.yaml")])
    assert_one_line_error(missing, "give --train FILE and --dev FILE")
    monkeypatch.setattr("lstm_tagger.cli._interactive", lambda: True)
    asked = runner.invoke(app, ["init", "--format", "tsv", "--output", str(tmp_path / "asked.yaml")],
                          input=f"{corpus / 'train.tsv'}\n{corpus / 'dev.tsv'}\n\n")
    assert asked.exit_code == 0, asked.output
    text = (tmp_path / "asked.yaml").read_text()
    assert '"my data #1/dev.tsv"' in text and "test: null" in text
