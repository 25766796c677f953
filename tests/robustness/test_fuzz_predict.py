"""Fuzz tests of ``lstm-tag predict`` input: one output line per input line, or one error line
naming the first line that is not UTF-8 (see ``fuzzing.py``)."""

from __future__ import annotations

import json
import traceback
from pathlib import Path
from typing import Iterator

import pytest
import torch

pytest.importorskip("hypothesis")  # in the ``test`` extra; skip where someone runs without it

from hypothesis import example, given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from lstm_tagger.rundir import BEST  # noqa: E402
from lstm_tagger.cli import app  # noqa: E402

from conftest import CLASSIC, assert_one_line_error  # noqa: E402
from fuzzing import BOM, fuzz  # noqa: E402

runner = CliRunner()


@pytest.fixture(scope="module")
def tiny_model(trained_run) -> Iterator[Path]:
    """One tiny model, trained once for the session.

    Torch runs single-threaded meanwhile: with 2 intra-op threads on a busy 2-core machine,
    every time step of a long sentence waits for a descheduled thread (one 3000-word line
    took 47 s instead of 0.01 s).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield trained_run("tiny", "train.epochs=2") / BEST
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
        lines = [line for line in lines if line.split()]  # a blank line is no sentence
        assert len(blocks) == len(lines)
        for number, (line, block) in enumerate(zip(lines, blocks), start=1):
            sent_id, head, *tokens = block.split("\n")
            assert sent_id == f"# sent_id = {number}"
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
            words, tags = record["words"], record["upos"]
            if "scores" in record:
                assert len(record["scores"]["upos"]) == len(words)
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
        assert_one_line_error(result, f"lstm-tag: error: <stdin>:{bad}: not UTF-8")
