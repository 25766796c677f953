"""Raw text as ``predict`` reads it: bounded lines, a closed standard input, a closed output,
and memory that does not grow with the length of the sentences (issue 31, causes 1 to 3)."""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
from typer.testing import CliRunner

from lstm_tagger import limits
from lstm_tagger.checkpoint import load_checkpoint
from lstm_tagger.rundir import BEST
from lstm_tagger.cli import app
from lstm_tagger.corpus.rawtext import Segmented
from lstm_tagger.errors import DataError
from lstm_tagger.files import bounded_blocks
from lstm_tagger.segmenter import forked
from lstm_tagger.segmenter.windows import text_windows
from lstm_tagger.tagging import rawtag
from lstm_tagger.tagging.predict import chunks

from conftest import ROOT, assert_one_line_error

runner = CliRunner()


@pytest.fixture(scope="module")
def seg_run(trained_run) -> Path:
    """The tiny model with a (tiny, barely trained) segmenter: raw text is ``predict``'s default input."""
    return trained_run("tiny", "train.epochs=1", "tokenizer.mode=on", "tokenizer.epochs=1", "tokenizer.hidden_dim=8", "tokenizer.num_layers=1")


LIMIT = f"line longer than the limit of {limits.MAX_LINE_BYTES:,} bytes"


# --- the reader: whole lines, each within the limit ----------------------------------------


def test_blocks_are_whole_lines_and_keep_every_byte():
    data = b"one\ntwo\r\nthree\rfour\r\n\r\nfive"
    for size in (1, 2, 3, 5, 64):
        blocks = list(bounded_blocks(io.BytesIO(data), "x", DataError, limit=10, size=size))
        assert b"".join(blocks) == data
        assert all(block.endswith((b"\n", b"\r")) for block in blocks[:-1]) and blocks[-1] == b"five"


@pytest.mark.parametrize("size", [1, 2, 3, 4, 64])
def test_a_line_over_the_limit_is_named_by_its_number(size):
    ok = b"ab\r\ncd\r\n" + b"x" * 10 + b"\n"  # lines 1-3; line 3 has exactly the limit
    assert b"".join(bounded_blocks(io.BytesIO(ok), "x", DataError, limit=10, size=size)) == ok
    with pytest.raises(DataError, match=r"^f:4: line longer than the limit of 10 bytes$"):
        list(bounded_blocks(io.BytesIO(ok + b"y" * 11), "f", DataError, limit=10, size=size))
    with pytest.raises(DataError, match=r"^f:2: line longer"):  # a CR ends a line too (classic Mac OS text)
        list(bounded_blocks(io.BytesIO(b"a\r" + b"y" * 11 + b"\r"), "f", DataError, limit=10, size=size))


def test_a_long_line_is_refused_before_any_of_it_is_passed_on():
    stream = io.BytesIO(b"The dog.\n" + b"\0" * (limits.MAX_LINE_BYTES + 1))
    pieces = rawtag.read_text_chunks(stream, "zeros")
    assert next(pieces) == "The dog.\n"
    with pytest.raises(DataError, match=rf"^zeros:2: {LIMIT}$"):
        next(pieces)
    assert stream.tell() <= 9 + limits.MAX_LINE_BYTES + (1 << 16)  # read no further than the limit


def test_a_line_of_the_limit_comes_in_pieces_with_its_bom_dropped():
    line = "\ufeff" + "é" * ((limits.MAX_LINE_BYTES - 3) // 2) + "\n"
    pieces = list(rawtag.read_text_chunks(io.BytesIO(line.encode("utf-8")), "x"))
    assert "".join(pieces) == line[1:] and max(map(len, pieces)) == rawtag.CHUNK_CHARS


def test_line_breaks_before_a_letter_are_read_in_one_pass():
    """A backtracking regular expression took minutes over 64,000 line breaks followed by a letter."""
    windows = list(text_windows(["\n" * 70_000 + "x", "\n \n\n" * 20_000 + "y"], 256, 48))
    assert [(w.core, w.first, w.last) for w in windows] == [("x", True, True), ("y", True, True)]


# --- the command line: /dev/zero, a sparse file, a long line on stdin --------------------------


def test_raw_text_without_a_line_break_stops_at_the_line_limit(seg_run, tmp_path):
    sparse = tmp_path / "z.txt"
    with open(sparse, "wb") as handle:
        handle.truncate(limits.MAX_LINE_BYTES + 1)  # NULs, and no line break
    for path in (str(sparse), "/dev/zero"):
        result = runner.invoke(app, ["predict", "-m", str(seg_run), "--file", path])
        assert_one_line_error(result, f"{path}:1: {LIMIT}")
        assert result.stdout == ""
    long_line = b"word" * (limits.MAX_LINE_BYTES // 4 + 1)
    result = runner.invoke(
        app, ["predict", "-m", str(seg_run), "--file", "-"], input=b"The dog\n\nate\n" + long_line
    )
    assert_one_line_error(result, f"<stdin>:4: {LIMIT}")


def test_a_line_of_the_limit_is_tagged(tiny_run, tmp_path):
    path = tmp_path / "long.txt"
    path.write_bytes(b"a" * limits.MAX_LINE_BYTES + b"\n")  # one token, cut at 1,000 characters
    result = runner.invoke(app, ["predict", "-m", str(tiny_run), "--input-format", "text", "--file", str(path)])
    assert result.exit_code == 0, result.output
    words = [item.rsplit("/", 1)[0] for line in result.stdout.splitlines() for item in line.split()]
    assert "".join(words) == "a" * limits.MAX_LINE_BYTES and max(map(len, words)) == 1000


# --- a closed standard input, a closed output ------------------------------------------------


def lstm_tag(*args: str, stdin_closed: bool = False, stdout_closed_by_reader: bool = False) -> subprocess.CompletedProcess:
    """``python -m lstm_tagger ARGS`` in a child process, with its standard input closed (``<&-``)
    or its standard output a pipe whose reader has gone (``| head`` that has ended)."""
    read_end, write_end = os.pipe()
    if stdout_closed_by_reader:
        os.close(read_end)
    try:
        return subprocess.run(
            [sys.executable, "-m", "lstm_tagger", *args], cwd=ROOT, stdout=write_end if stdout_closed_by_reader else subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, timeout=600, preexec_fn=(lambda: os.close(0)) if stdin_closed else None,
        )
    finally:
        os.close(write_end)
        if not stdout_closed_by_reader:
            os.close(read_end)


def test_a_closed_standard_input_is_one_line(seg_run):
    closed = ["lstm-tag: error: <stdin>: standard input is closed: nothing to read"]
    for args in ([], ["--file", "-"], ["--input-format", "tokens", "--file", "-"]):  # raw text is read in the child
        done = lstm_tag("predict", "-m", str(seg_run), *args, stdin_closed=True)
        assert (done.returncode, done.stderr.splitlines(), done.stdout) == (2, closed, ""), args
    done = lstm_tag("init", stdin_closed=True)
    assert done.returncode == 2
    assert done.stderr.splitlines() == ["lstm-tag: error: give --train FILE and --dev FILE (or run lstm-tag init on a terminal to be asked)"]


def test_a_reader_that_has_gone_ends_every_command_quietly(seg_run):
    for args in (["predict", "The dog ate. It was late."], ["eval"], ["eval", "--json"], ["info"]):
        model = ["-m", str(seg_run)] if args[0] != "info" else [str(seg_run)]
        done = lstm_tag(args[0], *model, *args[1:], stdout_closed_by_reader=True)
        assert (done.returncode, done.stderr) == (0, ""), args


def test_closing_the_tagged_text_stops_the_segmenter(seg_run, monkeypatch):
    """``predict | head``: the child that segments stops when the output does, not at the end of the input."""
    stopped = []

    def endless(segmenter, text_chunks) -> Iterator[Segmented]:
        try:
            while True:
                yield Segmented(["The", "dog"], [True, True], {}, False)
        finally:
            stopped.append(True)

    monkeypatch.setattr(rawtag, "segmented_beside", endless)
    pairs = rawtag.tag_text(load_checkpoint(seg_run / BEST), [""])
    assert next(pairs)[1].words == ["The", "dog"]
    pairs.close()
    assert stopped == [True]


# --- memory: bounded by words, not sentences ----------------------------------------------------


def test_a_chunk_to_tag_ends_at_its_words_limit():
    long = [["a"] * 1000] * 100
    assert [len(chunk) for chunk in chunks(long, 2048, max_words=2500)] == [3] * 33 + [1]
    assert [len(chunk) for chunk in chunks(long, 2048)] == [17] * 5 + [15]  # MAX_CHUNK_WORDS: 16,384
    assert [len(chunk) for chunk in chunks([["a"]] * 5000, 2048)] == [2048, 2048, 904]


def test_the_child_sends_messages_of_a_few_thousand_tokens(monkeypatch):
    monkeypatch.setattr(forked, "segmented", lambda segmenter, text: iter([Segmented(["a"] * 1000, [True] * 1000, {}, False)] * 10))
    monkeypatch.setattr(forked.torch, "set_num_threads", lambda count: None)  # the child's setting, not this process's
    pipe = io.BytesIO()
    forked._child(None, [], pipe)
    pipe.seek(0)
    messages = []
    while (item := pickle.load(pipe)) != "end":
        messages.append(len(item))
    assert messages == [5, 5, 0]  # 5 x 1,000 tokens >= BATCH_TOKENS (4,096): not all 10 in one message
