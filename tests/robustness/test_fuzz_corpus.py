"""Fuzz tests of the corpus readers: random and mutated CoNLL-U and TSV files are read exactly,
or rejected with one ``file:line:`` error naming the first bad line (see ``fuzzing.py``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Sequence

import pytest

pytest.importorskip("hypothesis")  # in the ``test`` extra; skip where someone runs without it

from hypothesis import example, given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from lstm_tagger.corpus.reader import Sentence, read_conllu, read_tsv  # noqa: E402
from lstm_tagger.errors import DataError  # noqa: E402

from fuzzing import BOM, assert_one_line, fuzz, scratch_file  # noqa: E402


def _read_conllu_upos(path: Path) -> list[Sentence]:
    return read_conllu(path, ["upos"])


def _read_conllu_xpos(path: Path) -> list[Sentence]:
    return read_conllu(path, ["xpos"])


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
    lambda pairs: Sentence(tuple(w for w, _ in pairs), {"upos": tuple(t for _, t in pairs)})
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
        assert [(s.words, s.tags) for s in read_conllu(path, [tag_column])] == [(s.words, s.tags) for s in sentences]
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
            fields[0] = f"{draw(st.integers(1, 99))}-{draw(st.integers(1, 99))}"  # UD ranges start at 1
        elif kind == "decimal_id":
            fields[0] = f"{draw(st.integers(0, 99))}.{draw(st.integers(1, 99))}"  # and empty nodes are N.1 on
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
            expected.append(Sentence(tuple(w for w, _ in pairs), {"upos": tuple(tg for _, tg in pairs)}))
    return data, tag_column, expected


@fuzz(200)
@given(case=mutated_conllu())
def test_mutated_conllu_is_rejected_at_the_mutated_line_or_read_exactly(case):
    data, tag_column, expected = case
    with scratch_file(data, "mut.conllu") as path:
        read = lambda p: [Sentence(s.words, {"upos": s.tags}) for s in read_conllu(p, [tag_column])]  # noqa: E731
        assert corpus_outcome(read, path, data) == expected


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
    return data, [Sentence(s.words, {"upos": tuple(tg)}) for s, tg in zip(sentences, tags)]


@fuzz(200)
@given(case=mutated_tsv())
def test_mutated_tsv_is_rejected_at_the_mutated_line_or_read_exactly(case):
    data, expected = case
    with scratch_file(data, "mut.tsv") as path:
        assert corpus_outcome(read_tsv, path, data) == expected
