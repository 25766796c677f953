"""The user's side: file permissions, predict from a pipe, init, eval's split names and
options, config errors, flags in --help, and the report's figures."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lstm_tagger.rundir import BEST
from lstm_tagger.cli import app

from conftest import CLASSIC, ROOT, tiny_config, write_conllu

runner = CliRunner()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A tiny model that knows its two sentences, with a dev file (the same sentences) apart from its test file."""
    folder = tmp_path_factory.mktemp("tiny-run")
    config = tiny_config(folder)
    write_conllu(folder / "dev.conllu", CLASSIC)
    result = runner.invoke(app, ["train", str(config), "--output", str(folder / "run"), "--set", "data.dev=dev.conllu"])
    assert result.exit_code == 0, result.output
    return folder / "run"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask():
    """Set the process umask for one test and put the old one back."""
    old = os.umask(0o022)
    try:
        yield os.umask
    finally:
        os.umask(old)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_written_files_have_the_modes_the_umask_allows(tmp_path, umask, mask, mode):
    umask(mask)
    config = tiny_config(tmp_path, train={"epochs": 1})
    run = tmp_path / "run"
    assert runner.invoke(app, ["train", str(config), "--output", str(run)]).exit_code == 0
    for name in (BEST, "model-last.safetensors", "config.yaml", "metrics.jsonl", "report.md", "report.json",
                 "confusion-dev.png", "learning-curves.png"):
        assert _mode(run / name) == mode, name
    out = tmp_path / "init" / "my.yaml"
    corpus = tmp_path / "tiny.conllu"
    assert runner.invoke(app, ["init", "--train", str(corpus), "--dev", str(corpus), "--output", str(out)]).exit_code == 0
    assert _mode(out) == mode
    assert runner.invoke(app, ["eval", "-m", str(run), "--output", str(tmp_path / "ev")]).exit_code == 0
    assert _mode(tmp_path / "ev" / "report.json") == mode


# --------------------------------------------------------------------------------------
# predict reads a pipe


def test_predict_reads_stdin_when_given_no_text(tiny_run):
    text = "The dog ate the apple\nEverybody read that book\n"
    piped = runner.invoke(app, ["predict", "-m", str(tiny_run)], input=text)
    dashed = runner.invoke(app, ["predict", "-m", str(tiny_run), "--file", "-"], input=text)
    assert piped.exit_code == 0, piped.output
    assert piped.stdout == dashed.stdout and len(piped.stdout.splitlines()) == 2
    assert piped.stdout.splitlines()[0] == "The/DET dog/NOUN ate/VERB the/DET apple/NOUN"


def test_predict_reads_a_pipe_in_a_subprocess(tiny_run):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "lstm_tagger", "predict", "-m", str(tiny_run)],
        input="Everybody read that book\n", capture_output=True, text=True, env=env, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Everybody/PRON read/VERB that/DET book/NOUN\n"


def test_predict_on_a_terminal_without_text_prints_the_usage_hint(tiny_run, monkeypatch):
    monkeypatch.setattr("lstm_tagger.cli.predict.interactive", lambda: True)
    result = runner.invoke(app, ["predict", "-m", str(tiny_run)])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == (
        "lstm-tag: error: nothing to tag: give TEXT, --file FILE, or pipe text in (lstm-tag predict < file.txt)\n"
    )
    both = runner.invoke(app, ["predict", "-m", str(tiny_run), "dog", "--file", "-"])
    assert both.exit_code == 2 and "give either TEXT or --file FILE" in both.stderr


# --------------------------------------------------------------------------------------
# eval: the split it scored, --format, --device


def test_eval_names_the_split_by_its_file(tiny_run, tmp_path):
    folder = tiny_run.parent
    cases = {"dev": folder / "dev.conllu", "test": folder / "tiny.conllu", "other.conllu": tmp_path / "other.conllu"}
    write_conllu(cases["other.conllu"], CLASSIC[1:])
    for split, data in cases.items():
        out = tmp_path / f"report-{split}"
        result = runner.invoke(app, ["eval", "-m", str(tiny_run), "--data", str(data), "--json", "--output", str(out)])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["split"] == split
        assert list(json.loads((out / "report.json").read_text())["results"]) == [split]
        assert f"## {split}: {data}" in (out / "report.md").read_text()
        assert sorted(p.name for p in out.glob("*.png")) == [f"confusion-{split}.png"]
    table = runner.invoke(app, ["eval", "-m", str(tiny_run), "--data", str(cases["dev"])])
    assert table.stdout.startswith(f"dev: {cases['dev']}\n")
    default = runner.invoke(app, ["eval", "-m", str(tiny_run), "--json"])
    assert json.loads(default.stdout)["split"] == "test"


def test_eval_format_scores_a_tsv_model_on_conllu(tmp_path):
    tsv = tmp_path / "tiny.tsv"
    tsv.write_text("".join("".join(f"{w}\t{t}\n" for w, t in zip(words, tags)) + "\n" for words, tags in CLASSIC))
    config = tiny_config(tmp_path, data={"train": "tiny.tsv", "dev": "tiny.tsv", "test": None, "format": "tsv"})
    assert runner.invoke(app, ["train", str(config), "--output", str(tmp_path / "run")]).exit_code == 0
    conllu = write_conllu(tmp_path / "gold.conllu", CLASSIC)
    wrong = runner.invoke(app, ["eval", "-m", str(tmp_path / "run"), "--data", str(conllu)])
    assert wrong.exit_code == 2 and "expected 2 tab-separated columns" in wrong.stderr
    right = runner.invoke(app, ["eval", "-m", str(tmp_path / "run"), "--data", str(conllu), "--format", "conllu", "--json"])
    assert right.exit_code == 0, right.output
    scores = json.loads(right.stdout)
    assert scores["tokens"] == 9 and scores["accuracy"] == 1.0 and scores["split"] == "gold.conllu"


def test_device_option_of_eval_and_predict(tiny_run):
    import torch

    on_cpu = runner.invoke(app, ["predict", "-m", str(tiny_run), "The dog", "--device", "cpu"])
    auto = runner.invoke(app, ["predict", "-m", str(tiny_run), "The dog", "--device", "auto"])
    assert on_cpu.exit_code == 0 and on_cpu.stdout == auto.stdout == "The/DET dog/NOUN\n"
    scored = runner.invoke(app, ["eval", "-m", str(tiny_run), "--device", "auto", "--json"])
    assert scored.exit_code == 0 and json.loads(scored.stdout)["accuracy"] == 1.0
    bad = runner.invoke(app, ["eval", "-m", str(tiny_run), "--device", "tpu"])
    assert bad.exit_code == 2 and bad.stderr == "lstm-tag: error: --device tpu: expected cpu, cuda, cuda:N or auto\n"
    if not torch.cuda.is_available():
        cuda = runner.invoke(app, ["predict", "-m", str(tiny_run), "dog", "--device", "cuda"])
        assert cuda.exit_code == 2
        assert cuda.stderr == "lstm-tag: error: --device cuda: torch finds no CUDA device (use cpu or auto)\n"


def test_eval_raw_takes_device_and_refuses_a_tsv_gold_file(tiny_run):
    on_cpu = runner.invoke(app, ["eval", "-m", str(tiny_run), "--raw", "--json"])
    auto = runner.invoke(app, ["eval", "-m", str(tiny_run), "--raw", "--json", "--device", "auto"])
    assert on_cpu.exit_code == 0, on_cpu.output
    assert on_cpu.stdout == auto.stdout and {"Tokens", "Sentences", "Words"} <= set(json.loads(on_cpu.stdout)["raw"])
    tsv = runner.invoke(app, ["eval", "-m", str(tiny_run), "--raw", "--format", "tsv"])
    assert tsv.exit_code == 2
    assert tsv.stderr == "lstm-tag: error: --raw rebuilds the raw text from the gold CoNLL-U's # text lines: --format tsv has none\n"


# --------------------------------------------------------------------------------------
# config errors: all of them, one line each; a --set error names the --set


def test_every_problem_of_a_config_in_one_run(tmp_path):
    import yaml

    config = tiny_config(tmp_path)
    raw = yaml.safe_load(config.read_text())
    raw["model"].update(hidden_dim=0, cell="rnn", hiden=3)
    raw["train"]["lr"] = -1
    raw["data"]["dev"] = "missing.conllu"
    config.write_text(yaml.safe_dump(raw))
    result = runner.invoke(app, ["train", str(config), "--output", str(tmp_path / "out")])
    assert result.exit_code == 2 and not (tmp_path / "out").exists()
    assert sorted(result.stderr.splitlines()) == sorted([
        f"lstm-tag: error: {config}: model.hidden_dim: must be > 0, got 0",
        f"lstm-tag: error: {config}: model.cell: must be one of 'lstm', 'gru', 'hand_lstm' or 'hand_gru', got 'rnn'",
        f"lstm-tag: error: {config}: model.hiden: unknown key",
        f"lstm-tag: error: {config}: train.lr: must be > 0.0, got -1",
        f"lstm-tag: error: {config}: data.dev: file not found: {tmp_path / 'missing.conllu'}",
    ])


def test_a_set_error_names_the_set_text_not_the_file(tmp_path):
    config = tiny_config(tmp_path)
    args = ["train", str(config), "--output", str(tmp_path / "out"),
            "--set", "model.hidden_dim=-3", "--set", "train.epochs=2", "--set", "model.nope=1",
            "--set", "data.test=gone.conllu", "--set", "train.lr.x=1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert sorted(result.stderr.splitlines()) == sorted([
        "lstm-tag: error: --set model.hidden_dim=-3: model.hidden_dim: must be > 0, got -3",
        "lstm-tag: error: --set model.nope=1: model.nope: unknown key",
        f"lstm-tag: error: --set data.test=gone.conllu: data.test: file not found: {tmp_path / 'gone.conllu'}",
        "lstm-tag: error: --set train.lr.x=1: train.lr: is not a section",
    ])
    section = runner.invoke(app, ["train", str(config), "--set", "data={}"])
    assert section.stderr.splitlines() == [
        "lstm-tag: error: --set data={}: data.train: missing required key",
        "lstm-tag: error: --set data={}: data.dev: missing required key",
    ]
    mixed = runner.invoke(app, ["train", str(config), "--set", "model.cell=rnn", "--set", "train.lr=-1", "--set", "train.lr=0.5"])
    assert mixed.stderr == (
        "lstm-tag: error: --set model.cell=rnn: model.cell: must be one of 'lstm', 'gru', 'hand_lstm' or 'hand_gru', got 'rnn'\n"
    )


# --------------------------------------------------------------------------------------
# the report: thousands separators, macro-F1, matrices only when asked (or few tags); flags in --help


def test_report_figures_have_thousands_separators_and_macro_f1():
    from lstm_tagger.evaluation.metrics import score
    from lstm_tagger.evaluation.report import to_markdown

    gold = [["A", "B", "B"]] * 400 + [["C"]] * 1000
    pred = [["A", "A", "B"]] * 400 + [["C"]] * 1000
    scores = score(gold, pred, [[True] * len(s) for s in gold])
    assert scores["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    text = to_markdown({"title": "t", "training": {"parameters": 3634580, "epochs run": 24},
                        "results": {"test": {"data": "x", **scores}}})
    assert "| token accuracy | 81.82 | 2,200 |" in text
    assert "| macro-F1 (mean over tags) | 77.78 | 3 tags |" in text
    assert "| sentence accuracy | 71.43 | 1,400 |" in text
    assert "| parameters | 3,634,580 |" in text and "| epochs run | 24 |" in text
    assert "| C | 100.00 | 100.00 | 100.00 | 1,000 |" in text


def _matrix_stages(run: Path) -> list[str]:
    return [m["stage"] for m in json.loads((run / "report.json").read_text())["tag_scores"]]


def test_tag_score_matrices_follow_train_report_matrices(tmp_path):
    config = tiny_config(tmp_path, train={"epochs": 1})
    assert runner.invoke(app, ["train", str(config), "--output", str(tmp_path / "few")]).exit_code == 0
    assert _matrix_stages(tmp_path / "few") == ["before training"] * 2 + ["after training"] * 2  # 4 tags: on
    assert "## Tag scores of example sentences" in (tmp_path / "few" / "report.md").read_text()
    off = runner.invoke(app, ["train", str(config), "--output", str(tmp_path / "off"), "--set", "train.report_matrices=false"])
    assert off.exit_code == 0 and _matrix_stages(tmp_path / "off") == []
    assert "Tag scores" not in (tmp_path / "off" / "report.md").read_text()

    many = [([f"w{i}" for i in range(21)], [f"T{i}" for i in range(21)])]  # 21 tags: off by default
    (tmp_path / "many").mkdir()
    config = tiny_config(tmp_path / "many", sentences=many, train={"epochs": 1})
    assert runner.invoke(app, ["train", str(config), "--output", str(tmp_path / "many" / "run")]).exit_code == 0
    assert _matrix_stages(tmp_path / "many" / "run") == []
    forced = runner.invoke(app, ["train", str(config), "--output", str(tmp_path / "many" / "on"), "--set", "train.report_matrices=true"])
    assert forced.exit_code == 0 and _matrix_stages(tmp_path / "many" / "on") == ["before training", "after training"]


def test_help_shows_flags_as_flags():
    commands = ["train", "predict", "eval", "download", "init", "runs", "info", "bench", "frontier", "export"]
    for command in [[], *([c] for c in commands)]:
        result = runner.invoke(app, [*command, "--help"], terminal_width=200)
        assert result.exit_code == 0 and "--help" in result.stdout, command
        assert "<bool>" not in result.stdout, command
    predict = runner.invoke(app, ["predict", "--help"], terminal_width=200).stdout
    assert re.search(r"--scores\s+Add tag probabilities", predict), predict


# --------------------------------------------------------------------------------------
# init: the shipped recipe, the format and tag column found in the files, train's refusals


def _write_conllu_columns(path: Path, sentences, upos: bool = True, xpos: bool = True) -> Path:
    """CLASSIC-like sentences with UPOS and/or XPOS (``_`` where absent)."""
    lines = []
    for n, (words, tags) in enumerate(sentences, start=1):
        lines.append(f"# sent_id = {n}")
        for i, (word, tag) in enumerate(zip(words, tags), start=1):
            lines.append(f"{i}\t{word}\t_\t{tag if upos else '_'}\t{'X' + tag if xpos else '_'}\t_\t_\t_\t_\t_")
        lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _recipe_sections(config) -> dict:
    data = config.data.model_dump()
    model = {k: v for k, v in config.model.model_dump().items() if k != "output_per_column"}  # init keeps the learnt columns' entries only
    return {"model": model, "train": config.train.model_dump(),
            "data": {k: v for k, v in data.items() if k not in ("train", "dev", "test", "format", "columns")}}


@pytest.mark.parametrize("kind", ["conllu", "tsv"])
def test_init_then_train_with_no_other_edit(tmp_path, kind):
    from lstm_tagger.configfile import load_config
    from lstm_tagger.training.starter import RECIPE

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    files = {}
    for split in ("train", "dev", "test"):
        if kind == "conllu":
            files[split] = _write_conllu_columns(corpus / f"{split}.conllu", CLASSIC)
        else:
            files[split] = corpus / f"{split}.tsv"
            files[split].write_text("".join("".join(f"{w}\t{t}\n" for w, t in zip(ws, ts)) + "\n" for ws, ts in CLASSIC))
    out = tmp_path / "configs" / "mine.yaml"
    result = runner.invoke(app, ["init", "--train", str(files["train"]), "--dev", str(files["dev"]),
                                 "--test", str(files["test"]), "--output", str(out)])
    assert result.exit_code == 0, result.output
    found = "conllu, tags from UPOS, XPOS (columns with a tag on every word: UPOS, XPOS)" if kind == "conllu" else "tsv"
    small = "a small training file (9 words): model.hidden_dim 128 and model.dropout 0.5, not the recipe's (its comments say why)\n"
    assert result.stdout == f"read {found}; sentences: train 2, dev 2, test 2\n{small}wrote {out}; train with: lstm-tag train {out}\n"
    written = load_config(out)
    assert written.data.format == kind and written.data.columns == (["upos", "xpos"] if kind == "conllu" else ["upos"])
    assert written.data.test == str(files["test"].resolve())
    small_model = ["model.hidden_dim=128", "model.dropout=0.5"]  # a 9-word training file: init's small-corpus model
    assert _recipe_sections(written) == _recipe_sections(load_config(RECIPE, [f"data.{s}={files[s]}" for s in files] + small_model))
    assert written.model.char_encoder == "lstm" and written.model.output == "crf" and written.model.output_per_column == {}
    assert "# each word's characters through a BiLSTM" in out.read_text()  # the recipe's comments come along
    trained = runner.invoke(app, ["train", str(out), "--output", str(tmp_path / "run"), "--set", "train.epochs=1"])
    assert trained.exit_code == 0, trained.output


def test_init_finds_the_column_with_tags_and_refuses_what_train_refuses(tmp_path):
    xpos_only = _write_conllu_columns(tmp_path / "x.conllu", CLASSIC, upos=False)
    out = tmp_path / "x.yaml"
    found = runner.invoke(app, ["init", "--train", str(xpos_only), "--dev", str(xpos_only), "--output", str(out)])
    assert found.exit_code == 0 and "tags from XPOS (columns with a tag on every word: XPOS)" in found.stdout
    assert "columns: [xpos]" in out.read_text()

    config = tiny_config(tmp_path, data={"train": "x.conllu", "dev": "x.conllu", "test": None})
    by_train = runner.invoke(app, ["train", str(config), "--output", str(tmp_path / "run")])
    assert by_train.exit_code == 2
    forced = runner.invoke(app, ["init", "--train", str(xpos_only), "--dev", str(xpos_only), "--tag-column", "upos",
                                 "--output", str(tmp_path / "upos.yaml")])
    assert forced.exit_code == 2 and not (tmp_path / "upos.yaml").exists()
    assert forced.stderr == by_train.stderr.rstrip("\n") + " (the XPOS column has a tag on every word: --tag-column xpos)\n"
    assert by_train.stderr == (f"lstm-tag: error: {xpos_only}:2: missing UPOS tag for 'The' "
                               "(every word's UPOS is _, nothing to learn: remove upos from data.columns)\n")

    tsv = tmp_path / "t.tsv"
    tsv.write_text("The\tDET\ndog\tNOUN\n\n")
    as_conllu = runner.invoke(app, ["init", "--train", str(tsv), "--dev", str(tsv), "--format", "conllu",
                                    "--output", str(tmp_path / "t.yaml")])
    assert as_conllu.exit_code == 2 and not (tmp_path / "t.yaml").exists()
    assert as_conllu.stderr == f"lstm-tag: error: {tsv}:1: expected 10 tab-separated columns, found 2\n"

    bad_dev = tmp_path / "bad.tsv"
    bad_dev.write_text("The\tDET\ndog\n\n")
    refused = runner.invoke(app, ["init", "--train", str(tsv), "--dev", str(bad_dev), "--output", str(tmp_path / "b.yaml")])
    assert refused.exit_code == 2 and not (tmp_path / "b.yaml").exists()
    assert refused.stderr == f"lstm-tag: error: {bad_dev}:2: expected 2 tab-separated columns (word, tag), found 1\n"

    odd = tmp_path / "odd.txt"
    odd.write_text("The dog barks\n")
    unknown = runner.invoke(app, ["init", "--train", str(odd), "--dev", str(odd), "--output", str(tmp_path / "o.yaml")])
    assert unknown.exit_code == 2 and unknown.stderr == (
        f"lstm-tag: error: {odd}:1: cannot tell the format: 1 tab-separated columns (CoNLL-U has 10, TSV 2); give --format\n"
    )
