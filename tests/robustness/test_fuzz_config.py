"""Fuzz tests of config files and ``--set`` overrides: a config, or one line naming the file and
the dotted key (see ``fuzzing.py``)."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Sequence

import pytest
import yaml

pytest.importorskip("hypothesis")  # in the ``test`` extra; skip where someone runs without it

from hypothesis import example, given, reject  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from lstm_tagger import load_config  # noqa: E402
from lstm_tagger.config import Config  # noqa: E402
from lstm_tagger.errors import ConfigError  # noqa: E402

from conftest import tiny_config  # noqa: E402
from fuzzing import BOM, assert_one_line, fuzz, scratch_file  # noqa: E402


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> Path:
    """A folder with a tiny corpus (read-only for the tests) and a valid config beside it."""
    folder = tmp_path_factory.mktemp("fuzz-config")
    tiny_config(folder)
    return folder


def config_outcome(path: Path, overrides: Sequence[str] = ()) -> Config | str:
    """``load_config``'s result, or its ``ConfigError`` message (checked: one line per problem)."""
    try:
        config = load_config(path, list(overrides))
    except ConfigError as exc:
        message = str(exc)
        for line in message.split("\n"):
            check_config_error_line(line, path, overrides)
        return message
    assert isinstance(config, Config)
    for key in ("train", "dev", "test"):
        value = getattr(config.data, key)
        assert value is None or (Path(value).is_absolute() and Path(value).is_file())
    return config


def check_config_error_line(line: str, path: Path, overrides: Sequence[str]) -> None:
    """One line of a config error names the file (``path: key: ...``, ``path:N: ...``) or a ``--set`` text."""
    assert_one_line(line)
    shown = lambda text: text if text.isprintable() else repr(text)  # noqa: E731  (as messages quote it)
    named = [o for o in overrides if line.startswith(f"--set {shown(o)}: ")]
    assert line.startswith(f"{path}: ") or line.startswith(f"{path}:") and re.match(
        r"\d+: ", line[len(f"{path}:") :]
    ) or named, line
    for override in named:
        key, sep, _ = override.partition("=")
        if "expected KEY=VALUE" in line:
            assert not sep or not key.strip(), f"well-formed override called malformed: {line!r}"


YAML_FRAGMENTS = [
    "data:", "model:", "train:", "\n", "\n", "\n  ", "  ", " ", "train: ", "dev: ", "test: ", "tiny.conllu",
    "epochs: ", "hidden_dim: ", "cell: ", "format: ", "tsv", "lstm", "1", "-1", "0", "1.5", "1e3", ".inf", ".nan",
    "yes", "no", "true", "null", "~", "[", "]", "{", "}", ",", ":", ": ", "- ", "&a ", "*a", "!!str ", "!!int ",
    "!!binary ", "!foo ", "'", '"', "#", "\t", "? ", "|", ">", "%YAML 1.1\n", "---\n", "...\n", "\x00", "\ufeff",
    "\u00e9", "\\", "%", "@", "`", "\r\n", "\x85", "<<: ", "=",
]
yaml_ish = st.one_of(
    st.lists(st.sampled_from(YAML_FRAGMENTS), max_size=40).map("".join),
    st.text(max_size=120),
)


def config_outcome_of(corpus_dir: Path, content: bytes) -> Config | str:
    """``config_outcome`` of ``content`` saved as a config beside the tiny corpus."""
    with tempfile.NamedTemporaryFile(dir=corpus_dir, suffix=".yaml", delete=False) as handle:
        handle.write(content)
    path = Path(handle.name)
    try:
        return config_outcome(path)
    finally:
        path.unlink()


@fuzz(250)
@given(
    content=st.one_of(
        yaml_ish.map(lambda s: s.encode("utf-8")),
        yaml_ish.map(lambda s: BOM + s.encode("utf-8")),
        st.binary(max_size=200),
    )
)
@example(content=b"")
@example(content=b"\x00")
@example(content=b"\xff\xfe")
@example(content=BOM + b"data: {train: tiny.conllu, dev: tiny.conllu}")
@example(content=b"data: {train: tiny.conllu, dev: tiny.conllu}\r\nmodel: {cell: gru}\r\n")
def test_config_file_parses_or_one_line_error(corpus_dir, content):
    config_outcome_of(corpus_dir, content)


SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["lstm", "gru", "hand_gru", "tsv", "xpos", "cpu", "auto", "tiny.conllu", "", "_"]),
    st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00\n\r"), max_size=10).filter(
        lambda s: not s.startswith("~")
    ),
)
YAML_VALUE = st.recursive(SCALAR, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(SCALAR, inner, max_size=3), max_leaves=6)
KNOWN_KEYS = {
    "data": ["train", "dev", "test", "format", "columns", "min_word_freq", "unk_shapes", "lowercase_fallback"],
    "model": ["cell", "embedding_dim", "hidden_dim", "num_layers", "bidirectional", "dropout"],
    "train": ["epochs", "batch_size", "lr", "lr_decay", "momentum", "word_dropout", "weight_decay", "grad_clip",
              "patience", "seed", "device"],
}
DOTTED_KNOWN = [f"{section}.{key}" for section, keys in KNOWN_KEYS.items() for key in keys] + list(KNOWN_KEYS)


@fuzz(200)
@given(
    changes=st.lists(
        st.tuples(st.sampled_from(DOTTED_KNOWN) | st.text(max_size=8).filter(lambda k: not re.search(r"[\r\n]", k)), YAML_VALUE),
        max_size=4,
    )
)
def test_valid_config_with_random_values(corpus_dir, changes):
    raw = yaml.safe_load((corpus_dir / "tiny.yaml").read_text())
    for dotted, value in changes:
        node = raw
        *parents, last = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node[last] = value
    try:
        text = yaml.safe_dump(raw, allow_unicode=True)
    except yaml.YAMLError:
        reject()
    config_outcome_of(corpus_dir, text.encode("utf-8"))


OVERRIDE_KEY = st.one_of(
    st.sampled_from(DOTTED_KNOWN),
    st.sampled_from(DOTTED_KNOWN).map(lambda k: k + ".x"),
    st.lists(st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\n\r=."), max_size=6), min_size=1, max_size=3).map(".".join),
    st.sampled_from(["", " ", ".", "..", "data..train", " model.cell ", "data.train.path"]),
)
OVERRIDE_VALUE = st.one_of(
    st.sampled_from(["1", "-1", "0", "0.5", "1e-3", "true", "false", "null", "~", "", " ", "[1, 2]", "{a: 1}", "'x'",
                     "lstm", "gru", "tsv", "xpos", "cuda", "tiny.conllu", "[", "{", "'", "*a", "&a", "!!int x", ": ",
                     ".nan", ".inf", "0x1f", "0o17", "1_000", "=", "a=b", "#", "%"]),
    st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\n\r\x00"), max_size=12).filter(
        lambda s: not s.lstrip().startswith("~")
    ),
)
OVERRIDE = st.one_of(
    st.tuples(OVERRIDE_KEY, OVERRIDE_VALUE).map(lambda kv: f"{kv[0]}={kv[1]}"),
    st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\n\r\x00"), max_size=12),
)


def yaml_scalar(raw: str):
    """What ``--set KEY=raw`` is documented to set: the YAML scalar (``1e-3`` a float, as the config
    reads it), or the raw text if it is not YAML."""
    if not raw.strip():
        return None
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    if isinstance(value, str) and re.fullmatch(r"[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+", value):
        return float(value.replace("_", ""))
    return value


@fuzz(250)
@given(overrides=st.lists(OVERRIDE, max_size=4))
@example(overrides=["=1"])
@example(overrides=["model.hidden_dim"])
@example(overrides=["data.train.x=1"])
@example(overrides=["model=3", "model.cell=gru"])
@example(overrides=["train.epochs=1", "model.cell=hand_gru", "data.format=tsv"])
def test_set_overrides_parse_or_one_line_error(corpus_dir, overrides):
    outcome = config_outcome(corpus_dir / "tiny.yaml", overrides)
    if isinstance(outcome, Config):
        # Every well-formed override to a known key shows in the result.
        for position, override in enumerate(overrides):
            key = override.partition("=")[0]
            parts = key.strip().split(".")
            if len(parts) == 2 and parts[0] in KNOWN_KEYS and parts[1] in KNOWN_KEYS[parts[0]]:
                later = overrides[position + 1 :]
                if any(o.partition("=")[0].strip() == parts[0] for o in later):
                    continue  # the whole section was set again afterwards
                if parts[0] != "data" or parts[1] not in ("train", "dev", "test"):
                    last = [o for o in overrides if o.partition("=")[0].strip() == key.strip()][-1]
                    value = yaml_scalar(last.partition("=")[2])
                    got = getattr(getattr(outcome, parts[0]), parts[1])
                    assert got == value or (got != got and value != value), (override, got)


# Inputs that once escaped as tracebacks, each class pinned (every example triggers it).

BAD_SCALARS = {
    # PyYAML resolves a plain NNNN-NN-NN as a date and calls datetime.date(): ValueError.
    "impossible-date": st.builds(lambda y, m, d: f"{y:04d}-{m:02d}-{d:02d}", st.integers(1000, 9999), st.integers(13, 99), st.integers(1, 28))
    | st.builds(lambda y, d: f"{y:04d}-02-{d:02d}", st.integers(1000, 9999), st.integers(30, 99)),
    # int() of more than 4300 decimal digits: ValueError (Python >= 3.11 int_max_str_digits).
    "huge-int": st.integers(4301, 6000).map(lambda n: "1" * n),
    # PyYAML's composer recurses once per level: RecursionError from ~500 levels on.
    "deep-nesting": st.integers(1000, 1500).map(lambda n: "[" * n + "]" * n),
    # A plain 0x / 0b int made only of underscores: int("", 16) -> ValueError.
    "underscore-int": st.sampled_from(["0x_", "0b_", "-0x__", "+0b___"]),
    # An explicit tag on a value its constructor cannot take: ValueError, IndexError,
    # KeyError or AttributeError from inside yaml/constructor.py.
    "explicit-tag": st.sampled_from(["!!int x", "!!int ''", "!!float ''", "!!float x", "!!bool maybe", "!!timestamp x"]),
}


@pytest.mark.parametrize("kind", list(BAD_SCALARS))
@pytest.mark.parametrize("where", ["file", "--set"])
@fuzz(5, shrink=False)
@given(data=st.data())
def test_yaml_the_parser_rejects_is_a_config_error(corpus_dir, where, kind, data):
    scalar = data.draw(BAD_SCALARS[kind], label="scalar")
    text = "data: {train: tiny.conllu, dev: tiny.conllu}\n"
    overrides = []
    if where == "--set":
        overrides = [f"train.seed={scalar}"]
    else:
        text += f"train: {{seed: {scalar}}}\n"
    with scratch_file(text.encode(), "c.yaml") as path:
        path.with_name("tiny.conllu").write_bytes((corpus_dir / "tiny.conllu").read_bytes())
        with pytest.raises(ConfigError) as info:
            load_config(path, overrides)
        expected = "--set train.seed=" if where == "--set" else str(path)
        assert str(info.value).startswith(expected) and "\n" not in str(info.value)


BAD_DATA_PATHS = {
    "nul-byte": st.text(max_size=5).map(lambda s: f"a\x00{s}"),  # ValueError: embedded null byte
    "unknown-user": st.text(st.characters(min_codepoint=ord("a"), max_codepoint=ord("z")), min_size=1, max_size=8).map(
        lambda s: f"~nosuchuser{s}/x"
    ),  # RuntimeError: Could not determine home directory
    "name-too-long": st.integers(256, 600).map(lambda n: "x" * n),  # OSError: [Errno 36] File name too long
}


@pytest.mark.parametrize("kind", list(BAD_DATA_PATHS))
@fuzz(5, shrink=False)
@given(data=st.data())
def test_unusable_data_path_is_a_config_error(corpus_dir, kind, data):
    value = data.draw(BAD_DATA_PATHS[kind], label="data.train")
    raw = {"data": {"train": value, "dev": "tiny.conllu"}}
    with tempfile.NamedTemporaryFile(dir=corpus_dir, suffix=".yaml", delete=False) as handle:
        handle.write(yaml.safe_dump(raw).encode())
    path = Path(handle.name)
    try:
        with pytest.raises(ConfigError) as info:
            load_config(path)
        assert str(info.value).startswith(f"{path}: data.train: ")
    finally:
        path.unlink()


@pytest.mark.parametrize("shape", ["--set key", "--set malformed", "--set not-a-section", "yaml key"])
@fuzz(5, shrink=False)
@given(
    left=st.text(st.characters(min_codepoint=ord("a"), max_codepoint=ord("z")), min_size=1, max_size=4),
    right=st.text(st.characters(min_codepoint=ord("a"), max_codepoint=ord("z")), min_size=1, max_size=4),
)
def test_line_break_in_a_key_stays_one_line(corpus_dir, shape, left, right):
    newline_key = f"{left}\n{right}"
    path = corpus_dir / "tiny.yaml"
    overrides: list[str] = []
    if shape == "--set key":
        overrides = [f"model.x{newline_key}=1"]
    elif shape == "--set malformed":
        overrides = [newline_key]
    elif shape == "--set not-a-section":
        overrides = [f"data.train.x={newline_key}"]
    text = path.read_text()
    if shape == "yaml key":
        raw = yaml.safe_load(text)
        raw["model"] = {f"x{newline_key}": 1}
        text = yaml.safe_dump(raw)
    with scratch_file(text.encode(), "c.yaml") as config:
        config.with_name("tiny.conllu").write_bytes((corpus_dir / "tiny.conllu").read_bytes())
        with pytest.raises(ConfigError) as info:
            load_config(config, overrides)
        assert_one_line(str(info.value))
