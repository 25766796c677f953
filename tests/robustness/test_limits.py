"""Bounded resources and strict readers: every limit of ``limits.py`` ends a hostile input in
one line and exit code 2, before the work (or the memory) it asks for."""

from __future__ import annotations

import json
import os
import re
import resource
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from lstm_tagger import limits, load_config
from lstm_tagger.rundir import BEST, LAST
from lstm_tagger.cli import app
from lstm_tagger.corpus.reader import read_conllu
from lstm_tagger.errors import ConfigError, DataError

from conftest import assert_one_line_error, rewrite_header, tiny_config, write_conllu

runner = CliRunner()


def config_with(tmp_path: Path, text: str) -> Path:
    """``tiny.yaml`` (a valid config over a tiny corpus) with ``text`` appended."""
    path = tiny_config(tmp_path)
    path.write_text(path.read_text() + text, encoding="utf-8")
    return path


def config_error(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "\n" not in message
    return message


# --- YAML: aliases, nesting, duplicates, size --------------------------------------------


def test_alias_of_a_mapping_is_refused_before_it_expands(tmp_path):
    """The "billion laughs": each level nine aliases of the one before. Expanded, it is 9^9 lists."""
    levels = ["l0: &l0 [x, x, x, x, x, x, x, x, x]"]
    levels += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 10)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(levels) + "\n")
    assert config_error(path) == f"{path}:2: alias *l0 stands for a mapping or list: not allowed, write it out"


def test_self_referencing_mapping_is_refused(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text("data: &d\n  train: x\n  again: *d\n")
    assert config_error(path) == f"{path}:3: alias *d stands for a mapping or list: not allowed, write it out"


def test_aliases_of_scalars_work_within_a_budget(tmp_path):
    path = config_with(tmp_path, "")
    text = path.read_text().replace("batch_size: 2", "batch_size: &s 2").replace("epochs: 40", "epochs: *s")
    path.write_text(text)
    assert load_config(path).train.epochs == 2
    many = "".join(f"k{i}: *s\n" for i in range(limits.MAX_YAML_ALIASES + 1))
    path.write_text(text + "extra:\n" + "".join("  " + line for line in many.splitlines(keepends=True)))
    assert f"more than {limits.MAX_YAML_ALIASES} YAML aliases" in config_error(path)


def test_nesting_depth_is_limited(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    assert config_error(path) == f"{path}:1: nested more than {limits.MAX_YAML_DEPTH} levels deep"


def test_duplicate_keys_name_both_lines(tmp_path):
    path = config_with(tmp_path, "")
    path.write_text(path.read_text() + "train:\n  epochs: 2\n")
    first = 1 + next(i for i, line in enumerate(path.read_text().splitlines()) if line == "train:")
    last = len(path.read_text().splitlines())
    assert config_error(path) == f"{path}:{last - 1}: duplicate key train (first at line {first})"
    nested = tmp_path / "nested.yaml"
    nested.write_text("model:\n  hidden_dim: 8\n  hidden_dim: 16\n")
    assert config_error(nested) == f"{nested}:3: duplicate key hidden_dim (first at line 2)"


def test_config_size_and_devices(tmp_path):
    big = config_with(tmp_path, "#" * limits.MAX_CONFIG_BYTES + "\n")
    assert config_error(big) == f"{big}: config file is larger than the limit of {limits.MAX_CONFIG_BYTES:,} bytes"
    zero = Path("/dev/zero")
    assert config_error(zero) == f"{zero}: config file is larger than the limit of {limits.MAX_CONFIG_BYTES:,} bytes"
    assert config_error(tmp_path) == f"{tmp_path}: is a directory, expected a config file"


# --- input files that are not regular files ---------------------------------------------


def test_corpus_and_vectors_that_are_devices_or_pipes_are_refused(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)  # opening it would block: it must be refused before
    for bad, kind in (("/dev/zero", "a character device"), (str(fifo), "a pipe (FIFO)"), (str(tmp_path), "a directory")):
        for section, key in (("data", "train"), ("model", "vectors"), ("model", "clusters")):
            path = tiny_config(tmp_path, **{section: {key: bad}})
            assert config_error(path) == f"{path}: {section}.{key}: {bad} is {kind}, expected a regular file"
        with pytest.raises(DataError, match=re.escape(f"{bad}: is {kind}, expected a corpus file")):
            read_conllu(bad)


def test_predict_from_an_endless_stream_stops_at_the_line_limit(tiny_run):
    result = runner.invoke(app, ["predict", "--model", str(tiny_run), "--file", "/dev/zero"])
    assert_one_line_error(result, f"/dev/zero:1: line longer than the limit of {limits.MAX_LINE_BYTES:,} bytes")
    long_line = ("word " * (limits.MAX_LINE_BYTES // 5 + 1)).encode()
    result = runner.invoke(app, ["predict", "--model", str(tiny_run), "--file", "-"], input=b"The dog\n" + long_line)
    assert_one_line_error(result, "<stdin>:2: line longer than the limit")


def test_model_paths_that_are_devices_or_directories_say_so(tiny_run, tmp_path):
    assert_one_line_error(runner.invoke(app, ["predict", "--model", "/dev/null", "hi"]), "/dev/null: is a character device")
    assert_one_line_error(runner.invoke(app, ["eval", "--model", str(tiny_run), "--data", "/dev/null"]), "is a character device")
    assert_one_line_error(runner.invoke(app, ["eval", "--model", str(tiny_run), "--data", str(tmp_path)]), "is a directory")


# --- seeds and model sizes --------------------------------------------------------------


@pytest.mark.parametrize("seed", [2**64, -1, 10**30])
def test_seed_outside_the_generator_range_is_refused(tmp_path, seed):
    path = tiny_config(tmp_path, train={"seed": seed})
    assert "train.seed: must be" in config_error(path)


def test_seed_at_the_top_of_the_range_trains(tmp_path):
    path = tiny_config(tmp_path, train={"seed": limits.MAX_SEED, "epochs": 1})
    result = runner.invoke(app, ["train", str(path), "--output", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 0, result.stderr


def test_layer_count_is_bounded(tmp_path):
    path = tiny_config(tmp_path, model={"num_layers": 100000})
    assert config_error(path) == f"{path}: model.num_layers: must be <= {limits.MAX_LAYERS}, got 100000"


def test_a_huge_model_is_refused_before_any_tensor_is_allocated(tmp_path):
    """embedding_dim and hidden_dim of 10^6 would need about 200 TB: refused at once, in one line."""
    path = tiny_config(tmp_path, model={"embedding_dim": 10**6, "hidden_dim": 10**6})
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = runner.invoke(app, ["train", str(path), "--output", str(tmp_path / "run")])
    assert_one_line_error(
        result, "the model would have", f"above the limit of {limits.DEFAULT_MAX_PARAMETERS:,} (model.max_parameters)",
        "16,000,035,000,004 parameters (about 178,814.3 GiB to train)",
    )
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 500_000  # KiB: nothing large was allocated


HUGE = 10**20  # above 2^63: torch cannot take it as a size


def _integer_keys() -> list[str]:
    from lstm_tagger.config import Config

    sections = {name: field.annotation for name, field in Config.model_fields.items()}
    return [
        f"{section}.{key}" for section, model in sections.items() for key, field in model.model_fields.items()
        if field.annotation in (int, int | None)
    ]


BOUNDED = {
    **dict.fromkeys(["model.embedding_dim", "model.hidden_dim", "model.char_dim", "model.char_hidden", "model.cluster_dim",
                     "tokenizer.char_dim", "tokenizer.hidden_dim"], limits.MAX_DIMENSION),
    **dict.fromkeys(["model.num_layers", "tokenizer.num_layers"], limits.MAX_LAYERS),
    "train.seed": limits.MAX_SEED,
}
"""The integer keys that size a tensor (or seed torch's generator) and their largest value; the
others (epochs, batch sizes, patience, window, ...) only count in Python and take any size."""


@pytest.mark.parametrize("key", _integer_keys())
def test_a_huge_integer_is_refused_by_its_bound_or_harmless(tmp_path, key):
    path = tiny_config(tmp_path)
    if key in BOUNDED:
        with pytest.raises(ConfigError) as caught:
            load_config(path, [f"{key}={HUGE}"])
        assert str(caught.value) == f"--set {key}={HUGE}: {key}: must be <= {BOUNDED[key]}, got {HUGE}"
        assert load_config(path, [f"{key}={BOUNDED[key]}"]).model_dump()[key.split(".")[0]][key.split(".")[1]] == BOUNDED[key]
    else:
        assert load_config(path, [f"{key}={HUGE}"]).model_dump()[key.split(".")[0]][key.split(".")[1]] == HUGE


def test_a_huge_hidden_size_is_one_line_not_an_overflow(tmp_path):
    path = tiny_config(tmp_path)
    result = runner.invoke(app, ["train", str(path), "--set", f"model.hidden_dim={HUGE}", "--output", str(tmp_path / "run")])
    assert_one_line_error(result, f"--set model.hidden_dim={HUGE}: model.hidden_dim: must be <= {limits.MAX_DIMENSION}, got {HUGE}")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("cell, chars", [("lstm", "lstm"), ("hand_gru", "cnn")])
def test_the_largest_sizes_allowed_get_the_parameter_limit_not_an_overflow(tmp_path, cell, chars):
    sizes = dict.fromkeys(["embedding_dim", "hidden_dim", "char_dim", "char_hidden"], limits.MAX_DIMENSION)
    path = tiny_config(tmp_path, model={**sizes, "num_layers": limits.MAX_LAYERS, "cell": cell, "char_encoder": chars, "output": "crf"})
    result = runner.invoke(app, ["train", str(path), "--output", str(tmp_path / "run")])
    assert_one_line_error(result, "model: the model would have ", f"above the limit of {limits.DEFAULT_MAX_PARAMETERS:,} (model.max_parameters)")


def test_max_parameters_is_configurable(tmp_path):
    path = tiny_config(tmp_path, model={"max_parameters": 1000}, train={"epochs": 1})
    assert_one_line_error(runner.invoke(app, ["train", str(path), "--output", str(tmp_path / "a")]), "above the limit of 1,000")
    result = runner.invoke(app, ["train", str(path), "--output", str(tmp_path / "b"), "--set", "model.max_parameters=100000", "-q"])
    assert result.exit_code == 0, result.stderr


def test_checkpoint_header_asking_for_a_huge_model_is_refused_unallocated(tiny_run, tmp_path):
    def huge(header):
        config = json.loads(header["__metadata__"]["config"])
        config["model"]["hidden_dim"] = 10**7
        header["__metadata__"]["config"] = json.dumps(config)

    path = rewrite_header(tiny_run / BEST, tmp_path / "huge.safetensors", huge)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert_one_line_error(runner.invoke(app, ["info", str(path)]), str(path), "parameters", "above the limit")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 500_000


def test_checkpoint_header_within_the_limit_but_not_matching_its_weights(tiny_run, tmp_path):
    def wider(header):
        config = json.loads(header["__metadata__"]["config"])
        config["model"]["hidden_dim"] = 2000  # 10 M parameters claimed; the file holds a few thousand
        header["__metadata__"]["config"] = json.dumps(config)

    path = rewrite_header(tiny_run / BEST, tmp_path / "wide.safetensors", wider)
    assert_one_line_error(runner.invoke(app, ["info", str(path)]), "weights do not match the hyper-parameters")


# --- CoNLL-U IDs ------------------------------------------------------------------------


@pytest.mark.parametrize("bad_id", ["x-y", ".", "-", "1-", "1.x", "0", "01", "-1", "1-x", "1.", ".1", "2-3-4", "١"])
def test_every_malformed_conllu_id_is_file_and_line(tmp_path, bad_id):
    path = write_conllu(tmp_path / "c.conllu", [(["The", "dog"], ["DET", "NOUN"])])
    lines = path.read_text().splitlines()
    lines[3] = bad_id + lines[3][1:]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as caught:
        read_conllu(path)
    assert str(caught.value) == (
        f"{path}:4: ID {bad_id!r} is not a number (1, 2, ...), range (3-4) or empty node (8.1)"
    )


def test_ranges_and_empty_nodes_are_still_skipped(tmp_path):
    path = tmp_path / "c.conllu"
    rows = [("1-2", "Don't", "_"), ("1", "Do", "AUX"), ("2", "n't", "PART"), ("2.1", "x", "_"), ("3", "go", "VERB")]
    path.write_text("".join(f"{i}\t{w}\t_\t{t}\t_\t_\t_\t_\t_\t_\n" for i, w, t in rows))
    (sentence,) = read_conllu(path)
    assert sentence.words == ("Do", "n't", "go") and sentence.tags == ("AUX", "PART", "VERB")


@pytest.mark.parametrize(
    "damage, kind",
    [({"python_rng": [3, [1, 2], None]}, "ValueError"), ({"epoch": "2"}, "ValidationError"), ({"stale": None}, "ValidationError")],
)
def test_resume_from_a_damaged_training_state_says_so(tiny_run, tmp_path, damage, kind):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.yaml", BEST):
        (run / name).write_bytes((tiny_run / name).read_bytes())

    def edit(header):
        state = json.loads(header["__metadata__"]["train_state"])
        state.update(damage)
        header["__metadata__"]["train_state"] = json.dumps(state)

    rewrite_header(tiny_run / LAST, run / LAST, edit)
    config = yaml.safe_load((tiny_run / "config.yaml").read_text())
    config["train"]["epochs"] = 3
    (tmp_path / "again.yaml").write_text(yaml.safe_dump(config))
    result = runner.invoke(app, ["train", str(tmp_path / "again.yaml"), "--output", str(run), "--resume"])
    assert_one_line_error(result, f"{run / LAST}: the training state to resume from is damaged ({kind})")
