"""Every config error is one line naming the file and the dotted key, with exit code 2."""

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from lstm_tagger.cli import app
from lstm_tagger.configfile import load_config
from lstm_tagger.errors import ConfigError

from conftest import ROOT, assert_one_line_error, tiny_config

runner = CliRunner()


def run_train(config: Path, *extra: str):
    return runner.invoke(app, ["train", str(config), "--output", str(config.parent / "out"), *extra])


def edit(path: Path, section: str, key: str, value) -> Path:
    data = yaml.safe_load(path.read_text())
    data.setdefault(section, {})[key] = value
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    "section, key, value, message",
    [
        ("model", "hidden_dim", 0, "model.hidden_dim: must be > 0, got 0"),
        ("model", "hidden_dim", "big", "model.hidden_dim: input should be a valid integer, got 'big'"),
        ("model", "hiden_dim", 3, "model.hiden_dim: unknown key"),
        ("model", "cell", "rnn", "model.cell: must be one of 'lstm', 'gru', 'hand_lstm' or 'hand_gru', got 'rnn'"),
        ("model", "dropout", 1.5, "model.dropout: must be < 1.0, got 1.5"),
        ("model", "bidirectional", "yes", "model.bidirectional: input should be a valid boolean, got 'yes'"),
        ("train", "lr", -1, "train.lr: must be > 0.0, got -1"),
        ("train", "device", "tpu", "train.device: must be one of 'cpu', 'cuda' or 'auto', got 'tpu'"),
        ("data", "format", "xml", "data.format: must be one of 'conllu' or 'tsv', got 'xml'"),
        ("data", "unk_shapes", 1, "data.unk_shapes: input should be a valid boolean, got 1"),
        ("train", "word_dropout", -0.5, "train.word_dropout: must be >= 0.0, got -0.5"),
        ("train", "patience", 2.5, "train.patience: input should be a valid integer, got 2.5"),
        ("data", "train", "missing.conllu", "data.train: file not found:"),
        ("extra", "x", 1, "extra: unknown key"),
        ("data", "columns", ["upos", "lemma"], "data.columns.1: must be one of 'upos', 'xpos' or 'feats', got 'lemma'"),
        ("data", "columns", [], "data.columns: must name at least one column (upos, xpos, feats), got []"),
        ("data", "columns", ["upos", "upos"], "data.columns: names a column twice, got ['upos', 'upos']"),
        ("data", "tag_column", "xpos", "data.tag_column: replaced by data.columns, a list of upos, xpos, feats (write columns: [xpos])"),
        ("model", "output_per_column", {"xpos": "crf"}, "model.output_per_column.xpos: xpos is not in data.columns ['upos']"),
        ("model", "output_per_column", {"upos": "hmm"}, "model.output_per_column.upos: must be one of 'softmax' or 'crf', got 'hmm'"),
        ("train", "column_weights", {"upos": 0}, "train.column_weights.upos: must be > 0.0, got 0"),
        ("train", "column_weights", {"feats": 1.0}, "train.column_weights.feats: feats is not in data.columns ['upos']"),
    ],
)
def test_bad_config_value(tmp_path, section, key, value, message):
    config = edit(tiny_config(tmp_path), section, key, value)
    result = run_train(config)
    assert_one_line_error(result, f"{config}: {message}")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.hidden_dim=-3", "model.hidden_dim: must be > 0, got -3"),
        ("model.nope=1", "model.nope: unknown key"),
        ("train.epochs=many", "train.epochs: input should be a valid integer, got 'many'"),
        ("model.hidden_dim.x=1", "model.hidden_dim: is not a section"),
        ("novalue", "--set novalue: expected KEY=VALUE"),
    ],
)
def test_bad_override(tmp_path, override, message):
    result = run_train(tiny_config(tmp_path), "--set", override)
    assert_one_line_error(result, message)


def test_missing_required_key_and_bad_yaml(tmp_path):
    config = tiny_config(tmp_path)
    data = yaml.safe_load(config.read_text())
    del data["data"]["dev"]
    config.write_text(yaml.safe_dump(data))
    result = run_train(config)
    assert_one_line_error(result, f"{config}: data.dev: missing required key")
    config.write_text("data: [unclosed\n")
    result = run_train(config)
    assert_one_line_error(result, f"{config}:", "invalid YAML")
    result = run_train(tmp_path / "absent.yaml")
    assert_one_line_error(result, "absent.yaml: config file not found")


def test_overrides_apply_and_paths_resolve_against_config_folder(tmp_path, monkeypatch):
    config_path = tiny_config(tmp_path)
    monkeypatch.chdir("/")
    config = load_config(config_path, ["model.hidden_dim=7", "train.lr=2.5e-1", "model.bidirectional=false"])
    assert (config.model.hidden_dim, config.train.lr, config.model.bidirectional) == (7, 0.25, False)
    config_path.write_text(config_path.read_text().replace("lr: 0.5", "lr: 5e-1"))
    assert load_config(config_path).train.lr == 0.5  # 5e-1 is a float, not YAML 1.1's string
    assert Path(config.data.train) == tmp_path / "tiny.conllu"


def test_empty_training_set_is_a_clean_error(tmp_path):
    config = tiny_config(tmp_path)
    (tmp_path / "tiny.conllu").write_text("# only a comment\n")
    result = run_train(config)
    assert_one_line_error(result, "the training set has no sentences")


def test_malformed_corpus_line_through_cli(tmp_path):
    config = tiny_config(tmp_path)
    corpus = tmp_path / "tiny.conllu"
    corpus.write_text(corpus.read_text().replace("\tdog\t_\tNOUN\t", "\tdog\tNOUN\t"))
    result = run_train(config)
    assert_one_line_error(result, f"{corpus}:4: expected 10 tab-separated columns, found 9")


def test_config_error_type_names_source():
    with pytest.raises(ConfigError, match="^x.yaml: expected a mapping"):
        from lstm_tagger.configfile import check_config

        check_config([1, 2], "x.yaml", Path("."))


def test_every_config_key_documents_itself():
    from lstm_tagger.config import Config

    for name, section in Config.model_fields.items():
        undocumented = [key for key, field in section.annotation.model_fields.items() if not field.description]
        assert undocumented == [], f"{name}: keys without Field(description=...)"


def test_the_config_reference_page_is_the_schema():
    from lstm_tagger.config import config_reference

    page = ROOT / "docs" / "config.md"
    assert page.read_text(encoding="utf-8") == config_reference(), (
        "docs/config.md differs from the schema: run `python -m lstm_tagger.config > docs/config.md`"
    )


def test_ten_thousand_problems_show_the_first_twenty_and_a_count(tmp_path):
    path = tiny_config(tmp_path)
    raw = yaml.safe_load(path.read_text())
    raw["model"].update({f"k{i:05d}": 1 for i in range(10_000)})
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).splitlines() == [f"{path}: model.k{i:05d}: unknown key" for i in range(20)] + ["... and 9,980 more"]
    result = runner.invoke(app, ["train", str(path)])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [f"lstm-tag: error: {line}" for line in str(caught.value).splitlines()]


def test_twenty_problems_are_all_shown():
    from lstm_tagger.errors import joined

    lines = [f"problem {i}" for i in range(21)]
    assert joined(lines[:20], 20) == "\n".join(lines[:20])
    assert joined(lines, 20) == "\n".join(lines[:20]) + "\n... and 1 more"
