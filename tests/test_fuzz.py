"""Property-based fuzz tests of every user input: corpus files, config files and
``--set`` overrides, and ``lstm-tag predict`` input.

The contract: an input is either parsed, or rejected with a one-line ``UserError``
(``ConfigError``, ``DataError``, ``CheckpointError``) that names the file (and the line,
for data files). Anything else -- another exception type, a traceback, a message over
several lines -- is a bug.

The first fuzzing found PyYAML errors other than ``YAMLError``, unusable data paths and
line breaks in keys escaping as tracebacks or multi-line messages; each now has a test of
its own below, with inputs that always trigger it.

Hypothesis examples are built in ``tempfile`` directories (function-scoped fixtures are not
reset between examples) and the example database is off (hypothesis still keeps its small,
self-gitignored ``.hypothesis/`` cache in the working directory).
"""

from __future__ import annotations

import contextlib
import json
import re
import tempfile
import traceback
from pathlib import Path
from typing import Callable, Iterator, Sequence

import pytest
import torch
import yaml

pytest.importorskip("hypothesis")  # in the ``test`` extra; skip where someone runs without it

from hypothesis import HealthCheck, Phase, example, given, reject, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from lstm_tagger import load_config, train  # noqa: E402
from lstm_tagger.checkpoint import BEST  # noqa: E402
from lstm_tagger.cli import app  # noqa: E402
from lstm_tagger.config import Config  # noqa: E402
from lstm_tagger.data import Sentence, read_conllu, read_tsv  # noqa: E402
from lstm_tagger.errors import ConfigError, DataError  # noqa: E402

from conftest import CLASSIC, tiny_config  # noqa: E402

BOM = b"\xef\xbb\xbf"
runner = CliRunner()


def fuzz(max_examples: int, shrink: bool = True) -> settings:
    return settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
        # The pinned-bug tests fail on every example: shrinking those would only cost time.
        phases=list(Phase) if shrink else [Phase.explicit, Phase.generate],
    )


@contextlib.contextmanager
def scratch_file(data: bytes, name: str) -> Iterator[Path]:
    """``data`` written to ``name`` in a fresh temporary directory (one per example)."""
    with tempfile.TemporaryDirectory(prefix="lstm-fuzz-") as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        yield path


def assert_one_line(message: str) -> None:
    assert message and "\n" not in message and "\r" not in message, f"not a single line: {message!r}"


# --------------------------------------------------------------------------------------
# 1. Corpus readers


def _read_conllu_upos(path: Path) -> list[Sentence]:
    return read_conllu(path, "upos")


def _read_conllu_xpos(path: Path) -> list[Sentence]:
    return read_conllu(path, "xpos")


READERS = {"conllu-upos": _read_conllu_upos, "conllu-xpos": _read_conllu_xpos, "tsv": read_tsv}


def corpus_outcome(reader: Callable[[Path], list[Sentence]], path: Path, data: bytes) -> list[Sentence] | int:
    """Read ``path`` (holding ``data``): the sentences, or the line number of the ``DataError``.

    Checks the contract on the way: valid sentences, or a one-line ``path:LINE: ...`` error
    with LINE a line of the file. Any other exception propagates and fails the test.
    """
    number_of_lines = len(data.split(b"\n"))
    try:
        sentences = reader(path)
    except DataError as exc:
        message = str(exc)
        assert_one_line(message)
        assert message.startswith(f"{path}:"), message
        match = re.match(r"(\d+): \S", message[len(f"{path}:") :])
        assert match, f"no line number: {message!r}"
        line = int(match.group(1))
        assert 1 <= line <= number_of_lines, message
        return line
    assert isinstance(sentences, list)
    for sentence in sentences:
        assert isinstance(sentence, Sentence)
        assert len(sentence.words) == len(sentence.tags) > 0
        for word, tag in zip(sentence.words, sentence.tags):
            assert isinstance(word, str) and word and "\t" not in word and "\n" not in word
            assert isinstance(tag, str) and tag and "\t" not in tag and "\n" not in tag
    return sentences


FRAGMENTS = [
    b"\t", b"\t", b"\t", b"\n", b"\n", b"\r\n", b"\r", b"\x00", BOM, b"#", b" ", b"_", b"1", b"2", b"17",
    b"1-2", b"3.1", b"-", b".", b"x", b"dog", b"NOUN", "\u00e9".encode(), "\u65e5\u672c".encode(), b"\xff",
    b"\xc3", b"\xe2\x82", b"\x80", "\u2028".encode(), "\x85".encode(), b"\x0b", b"\x0c", b"\x1c", "\ufeff".encode(),
]
FIELD = st.lists(st.sampled_from(FRAGMENTS[9:]), max_size=3).map(b"".join)
LINE_EOL = st.sampled_from([b"\n", b"\r\n"])


@st.composite
def line_structured_bytes(draw) -> bytes:
    """Lines of 0-12 tab-separated fields: often 2 or 10 columns, so parsing gets deep."""
    lines = draw(
        st.lists(
            st.one_of(
                st.lists(FIELD, min_size=10, max_size=10),
                st.lists(FIELD, min_size=2, max_size=2),
                st.lists(FIELD, max_size=12),
                st.just([b""]),
                st.just([b"# comment"]),
            ).map(b"\t".join),
            max_size=12,
        )
    )
    data = draw(LINE_EOL).join(lines)
    return (BOM if draw(st.booleans()) else b"") + data


SPECIAL_FILES = [
    b"",
    BOM,
    b"\n\n\n",
    b"\r\n",
    b"# only\n# comments\n#\n",
    BOM + b"# only comments\r\n",
    b"\x00" * 10,
    b"\x00\t\x00\n",
    b"a" * 100_000,
    b"1\t" + b"w" * 100_000 + b"\t_\tNOUN\t_\t_\t_\t_\t_\t_\n",
    b"w" * 100_000 + b"\tNOUN\n",
    ("\t" * 9 + "\n").encode(),
    b"\t\n",
    b"\t",
    b"\xff\xfe1\x00",  # UTF-16
    b"1\tw\t_\tNOUN\t_\t_\t_\t_\t_\t_\n\xc3\n",
]

messy_bytes = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(lambda s: s.encode("utf-8")),
    st.lists(st.sampled_from(FRAGMENTS), max_size=80).map(b"".join),
    line_structured_bytes(),
    st.sampled_from(SPECIAL_FILES),
)


@pytest.mark.parametrize("reader_name", list(READERS))
@fuzz(200)
@given(data=messy_bytes)
@example(data=b"")
@example(data=b"a" * 100_000)
@example(data=BOM + b"# c\r\n1\tw\t_\tN\tX\t_\t_\t_\t_\t_\r\n")
def test_reader_parses_or_names_the_first_bad_line(reader_name, data):
    reader = READERS[reader_name]
    lines = data.split(b"\n")
    with scratch_file(data, "corpus.txt") as path:
        outcome = corpus_outcome(reader, path, data)
        if isinstance(outcome, int):
            # The error is on the first bad line: the lines before it are fine, and the
            # file cut just after it fails at that same line.
            before = b"\n".join(lines[: outcome - 1])
            path.write_bytes(before)
            assert isinstance(corpus_outcome(reader, path, before), list), "error not at the first bad line"
            upto = b"\n".join(lines[:outcome])
            path.write_bytes(upto)
            assert corpus_outcome(reader, path, upto) == outcome


# Round trip: random valid sentences written as CoNLL-U and TSV read back unchanged.

WORD = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\t\n"), min_size=1, max_size=8).filter(
    lambda w: w.strip() != "" and not w.startswith(("#", "\ufeff"))
)
TAG = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\t\n\r"), min_size=1, max_size=6).filter(
    lambda t: t == t.strip() and t != "" and t != "_"
)
SENTENCE = st.lists(st.tuples(WORD, TAG), min_size=1, max_size=6).map(
    lambda pairs: Sentence(tuple(w for w, _ in pairs), tuple(t for _, t in pairs))
)
CORPUS = st.lists(SENTENCE, max_size=5)


def conllu_lines(sentences: Sequence[Sentence], tag_column: str = "upos", comments: bool = True) -> list[str]:
    lines = []
    for n, sentence in enumerate(sentences, start=1):
        if comments:
            lines += [f"# sent_id = {n}", f"# text = {' '.join(sentence.words)}"]
        for i, (word, tag) in enumerate(zip(sentence.words, sentence.tags), start=1):
            upos, xpos = (tag, "_") if tag_column == "upos" else ("_", tag)
            lines.append(f"{i}\t{word}\t_\t{upos}\t{xpos}\t_\t_\t_\t_\t_")
        lines.append("")
    return lines


def tsv_lines(sentences: Sequence[Sentence]) -> list[str]:
    lines = []
    for sentence in sentences:
        lines += [f"{word}\t{tag}" for word, tag in zip(sentence.words, sentence.tags)]
        lines.append("")
    return lines


def encode(lines: Sequence[str], crlf: bool, bom: bool) -> bytes:
    return (BOM if bom else b"") + ("\r\n" if crlf else "\n").join(lines).encode("utf-8")


@fuzz(120)
@given(
    sentences=CORPUS,
    tag_column=st.sampled_from(["upos", "xpos"]),
    comments=st.booleans(),
    crlf=st.booleans(),
    bom=st.booleans(),
)
def test_valid_files_round_trip(sentences, tag_column, comments, crlf, bom):
    conllu = encode(conllu_lines(sentences, tag_column, comments), crlf, bom)
    with scratch_file(conllu, "rt.conllu") as path:
        assert read_conllu(path, tag_column) == sentences
    tsv = encode(tsv_lines(sentences), crlf, bom)
    with scratch_file(tsv, "rt.tsv") as path:
        assert read_tsv(path) == sentences


# Mutations of valid files: the result is exactly predictable from the mutations.

NOT_AN_ID = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\t\n\r-.\ufeff"), max_size=5).filter(
    lambda s: not s.isdigit() and not s.startswith("#")
)
CONLLU_MUTATIONS = ["drop_tab", "add_tab", "empty_form", "underscore_tag", "empty_tag", "bad_id", "range_id", "decimal_id", "comment"]


@st.composite
def mutated_conllu(draw):
    """(file bytes, tag column, expected sentences or expected error line)."""
    sentences = draw(st.lists(SENTENCE, min_size=1, max_size=4))
    tag_column = draw(st.sampled_from(["upos", "xpos"]))
    column = 3 if tag_column == "upos" else 4
    lines = conllu_lines(sentences, tag_column, comments=draw(st.booleans()))
    tokens = [i for i, line in enumerate(lines) if line and not line.startswith("#")]
    keep = [[True] * len(s.words) for s in sentences]
    where = {}  # line index -> (sentence, token)
    s = t = 0
    for i, line in enumerate(lines):
        if not line:
            s, t = s + 1, 0
        elif not line.startswith("#"):
            where[i] = (s, t)
            t += 1
    chosen = draw(st.lists(st.sampled_from(tokens), min_size=1, max_size=3, unique=True))
    bad_lines = []
    for i in chosen:
        kind = draw(st.sampled_from(CONLLU_MUTATIONS))
        fields = lines[i].split("\t")
        if kind == "drop_tab":
            k = draw(st.integers(1, 9))
            fields[k - 1 : k + 1] = [fields[k - 1] + fields[k]]
        elif kind == "add_tab":
            k = draw(st.integers(0, 9))
            cut = draw(st.integers(0, len(fields[k])))
            fields[k : k + 1] = [fields[k][:cut], fields[k][cut:]]
        elif kind == "empty_form":
            fields[1] = ""
        elif kind == "underscore_tag":
            fields[column] = "_"
        elif kind == "empty_tag":
            fields[column] = ""
        elif kind == "bad_id":
            fields[0] = draw(NOT_AN_ID)
        elif kind == "range_id":
            fields[0] = f"{draw(st.integers(0, 99))}-{draw(st.integers(0, 99))}"
        elif kind == "decimal_id":
            fields[0] = f"{draw(st.integers(0, 99))}.{draw(st.integers(0, 99))}"
        elif kind == "comment":
            fields[0] = "#" + fields[0]
        lines[i] = "\t".join(fields)
        if kind in ("range_id", "decimal_id", "comment"):
            sentence, token = where[i]
            keep[sentence][token] = False
        else:
            bad_lines.append(i + 1)
    data = encode(lines, draw(st.booleans()), draw(st.booleans()))
    if bad_lines:
        return data, tag_column, min(bad_lines)
    expected = []
    for sentence, kept in zip(sentences, keep):
        pairs = [(w, tg) for w, tg, k in zip(sentence.words, sentence.tags, kept) if k]
        if pairs:
            expected.append(Sentence(tuple(w for w, _ in pairs), tuple(tg for _, tg in pairs)))
    return data, tag_column, expected


@fuzz(200)
@given(case=mutated_conllu())
def test_mutated_conllu_is_rejected_at_the_mutated_line_or_read_exactly(case):
    data, tag_column, expected = case
    with scratch_file(data, "mut.conllu") as path:
        assert corpus_outcome(lambda p: read_conllu(p, tag_column), path, data) == expected


TSV_MUTATIONS = ["drop_tab", "add_tab", "empty_word", "blank_tag", "underscore_tag", "padded_tag"]


@st.composite
def mutated_tsv(draw):
    sentences = draw(st.lists(SENTENCE, min_size=1, max_size=4))
    lines = tsv_lines(sentences)
    where = {}
    s = t = 0
    for i, line in enumerate(lines):
        if not line:
            s, t = s + 1, 0
        else:
            where[i] = (s, t)
            t += 1
    tags = [list(sentence.tags) for sentence in sentences]
    chosen = draw(st.lists(st.sampled_from(sorted(where)), min_size=1, max_size=3, unique=True))
    bad_lines = []
    for i in chosen:
        kind = draw(st.sampled_from(TSV_MUTATIONS))
        word, tag = lines[i].split("\t")
        sentence, token = where[i]
        if kind == "drop_tab":
            lines[i] = word + tag
        elif kind == "add_tab":
            line = lines[i]
            cut = draw(st.integers(0, len(line)))
            lines[i] = line[:cut] + "\t" + line[cut:]
        elif kind == "empty_word":
            lines[i] = "\t" + tag
        elif kind == "blank_tag":
            lines[i] = word + "\t" + draw(st.sampled_from(["", " ", "  ", "\u3000"]))
        elif kind == "underscore_tag":
            lines[i] = word + "\t_"
            tags[sentence][token] = "_"
        elif kind == "padded_tag":
            lines[i] = f"{word}\t {tag} "
        if kind in ("drop_tab", "add_tab", "empty_word", "blank_tag"):
            bad_lines.append(i + 1)
    data = encode(lines, draw(st.booleans()), draw(st.booleans()))
    if bad_lines:
        return data, min(bad_lines)
    return data, [Sentence(s.words, tuple(tg)) for s, tg in zip(sentences, tags)]


@fuzz(200)
@given(case=mutated_tsv())
def test_mutated_tsv_is_rejected_at_the_mutated_line_or_read_exactly(case):
    data, expected = case
    with scratch_file(data, "mut.tsv") as path:
        assert corpus_outcome(read_tsv, path, data) == expected


# --------------------------------------------------------------------------------------
# 2. Config files and --set overrides


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
    "data": ["train", "dev", "test", "format", "tag_column", "min_word_freq", "unk_shapes", "lowercase_fallback"],
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
    """What ``--set KEY=raw`` is documented to set: the YAML scalar, or the raw text if it is not YAML."""
    if not raw.strip():
        return None
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


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


# --------------------------------------------------------------------------------------
# 3. lstm-tag predict input


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Iterator[Path]:
    """One tiny model, trained once for the whole module.

    Torch runs single-threaded meanwhile: with 2 intra-op threads on a busy 2-core machine,
    every time step of a long sentence waits for a descheduled thread (one 3000-word line
    took 47 s instead of 0.01 s).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        folder = tmp_path_factory.mktemp("fuzz-model")
        result = train(load_config(tiny_config(folder, train={"epochs": 2})), folder / "run", progress=False)
        yield result.output_dir / BEST
    finally:
        torch.set_num_threads(threads)


TAGS = {tag for _, tags in CLASSIC for tag in tags}


def expected_input_lines(data: bytes) -> tuple[list[str], int | None]:
    """The lines the CLI sees (binary iteration: lines end at b"\\n"), decoded; and the
    number of the first line that is not UTF-8, if any."""
    raw_lines = data.split(b"\n")
    if raw_lines[-1] == b"":
        raw_lines.pop()
    lines = []
    for number, raw in enumerate(raw_lines, start=1):
        if number == 1 and raw.startswith(BOM):
            raw = raw[3:]
        try:
            lines.append(raw.decode("utf-8").rstrip("\r\n"))
        except UnicodeDecodeError:
            return lines, number
    return lines, None


def check_output(format: str, lines: list[str], stdout: str) -> None:
    if format == "conllu":
        blocks = stdout.split("\n\n")
        assert blocks[-1] == "", stdout[-200:]
        blocks = blocks[:-1]
        assert len(blocks) == len(lines)
        for line, block in zip(lines, blocks):
            head, *tokens = block.split("\n")
            assert head == f"# text = {' '.join(line.split())}"
            assert [t.split("\t")[1] for t in tokens] == line.split()
            assert all(t.split("\t")[3] in TAGS for t in tokens)
        return
    out = stdout.split("\n")
    assert out[-1] == "", stdout[-200:]
    out = out[:-1]
    assert len(out) == len(lines), (len(out), len(lines))
    for line, got in zip(lines, out):
        if format == "json":
            record = json.loads(got)
            words, tags = record["words"], record["tags"]
            if "scores" in record:
                assert len(record["scores"]) == len(words)
        else:
            pairs = [token.rsplit("/", 1) for token in got.split(" ")] if got else []
            words = [p[0] for p in pairs]
            tags = [p[1].split(":")[0] for p in pairs]
        assert words == line.split()
        assert len(tags) == len(words) and set(tags) <= TAGS


PREDICT_FRAGMENTS = [
    b"The", b"dog", b"ate", b"apple", b"Xylophone", b" ", b" ", b"\n", b"\n", b"\r\n", b"\r", b"\x00", BOM, b"\t",
    b"/", b"NOUN", b"\xff", b"\xc3", b"\xe2\x82", b"\x80", "\u00e9".encode(), "\u2028".encode(), "\x85".encode(),
    "\u3000".encode(), "\ufeff".encode(), b"\x0b", b"\x0c", b"\x1c", b"#", b"{", b'"',
]
LONG_INPUTS = [
    b"x" * 100_000,
    b"x" * 100_000 + b"\n" + b"The dog\n",
    b"The dog " * 1500,
    b"x" * 50_000 + b" " + b"y" * 50_000 + b"\r\n",
    b" " * 100_000 + b"\n",
    b"\n" * 3000,
    BOM + b"The dog\r\n" * 2500,
    b"\xff" + b"a" * 100_000,
]
stdin_bytes = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=150).map(lambda s: s.encode("utf-8")),
    st.lists(st.sampled_from(PREDICT_FRAGMENTS), max_size=50).map(b"".join),
    st.sampled_from(LONG_INPUTS),
    st.text(st.sampled_from(" \t\r\n\x0b\x0c\x1c\x85\xa0\u2028\u3000\ufeff"), max_size=40).map(lambda s: s.encode("utf-8")),
)


@fuzz(200)
@given(
    data=stdin_bytes,
    format=st.sampled_from(["text", "json", "conllu"]),
    scores=st.booleans(),
    batch_size=st.sampled_from([1, 2, 3, 256]),
)
@example(data=b"", format="text", scores=False, batch_size=256)
@example(data=b" \t \r\n\n   \n", format="text", scores=False, batch_size=256)
@example(data=BOM, format="text", scores=False, batch_size=256)
@example(data=BOM + b"The dog\r\nate\r\n", format="json", scores=True, batch_size=256)
@example(data=b"The\x00dog\n", format="conllu", scores=True, batch_size=256)
@example(data=b"The dog\n\xff\n", format="text", scores=False, batch_size=256)
@example(data=b"x" * 100_000, format="text", scores=True, batch_size=256)
def test_predict_stdin_tags_every_line_or_names_the_bad_line(tiny_model, data, format, scores, batch_size):
    """Lines in order (also across batches of --batch-size and chunks of 8 batches)."""
    args = ["predict", "--model", str(tiny_model), "--file", "-", "--format", format, "--batch-size", str(batch_size)]
    args += ["--scores"] if scores else []
    result = runner.invoke(app, args, input=data)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError("".join(traceback.format_exception(*result.exc_info)))
    assert "Traceback" not in result.stderr
    lines, bad = expected_input_lines(data)
    if bad is None:
        assert result.exit_code == 0, result.stderr
        assert result.stderr == ""
        check_output(format, lines, result.stdout)
    else:
        assert result.exit_code == 2, (result.exit_code, result.stderr)
        assert result.stderr.endswith("\n") and result.stderr.count("\n") == 1, result.stderr
        assert result.stderr.startswith(f"lstm-tag: error: <stdin>:{bad}: not UTF-8"), result.stderr
