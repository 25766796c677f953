"""Fuzz test of the raw-text path (``predict``'s default input): random bytes, with NULs,
invalid UTF-8, CR and CR LF, combining marks and long runs without a line break, read by
``rawtag.read_text_chunks`` and segmented by ``decoder.segmented``, with the rules of Unicode
categories and with an untrained network (whose labels are arbitrary).

Either the one-line ``DataError`` that the first problem in reading order gives (a line over
the limit, or a byte that is not UTF-8), or sentences that hold every character of the text
but whitespace, in order, in bounded tokens and sentences (see ``fuzzing.py``). The reader's
line limit is lowered to 4,096 bytes so that a few kilobytes reach it.
"""

from __future__ import annotations

import io
import re

import pytest
import regex
import torch

pytest.importorskip("hypothesis")  # in the ``test`` extra; skip where someone runs without it

from hypothesis import example, given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from lstm_tagger.config import TokenizerConfig  # noqa: E402
from lstm_tagger.errors import DataError  # noqa: E402
from lstm_tagger.limits import MAX_CLUSTER_CHARS, MAX_SENTENCE_TOKENS, MAX_TOKEN_CHARS  # noqa: E402
from lstm_tagger.segmenter.decoder import segmented  # noqa: E402
from lstm_tagger.segmenter.lexicon import Lexicon  # noqa: E402
from lstm_tagger.segmenter.network import CharTable, Segmenter, SegmenterNet  # noqa: E402
from lstm_tagger.tagging.rawtag import read_text_chunks  # noqa: E402

from fuzzing import BOM, assert_one_line, fuzz  # noqa: E402

LIMIT = 4096
NAME = "fuzz.txt"
RUNS = [b"\0", b"a", b"a ", b" ", b"\t", b"\r", b"\n", b"\r\n", b"\n\n", b".", b"\xff", b"\xe2\x82", "é".encode(),
        "\u0301".encode(), "\u3002".encode(), BOM]


def untrained_segmenter() -> Segmenter:
    torch.manual_seed(0)
    config = TokenizerConfig(char_dim=4, hidden_dim=4, num_layers=1, dropout=0.0)
    table = CharTable(["<pad>", "<unk>", " ", "a", ".", "é", "\0"])
    net = SegmenterNet(config, len(table.itos)).eval()
    return Segmenter(config, net, table, Lexicon({"a.": ["a", "."]}, ["a."], ["."]))


SEGMENTERS = {"rules": None, "untrained network": untrained_segmenter()}

pieces = st.one_of(
    st.binary(max_size=64),
    st.tuples(st.sampled_from(RUNS), st.integers(0, 3 * LIMIT)).map(lambda run: run[0] * (run[1] // len(run[0]))),
)


def expected_error(data: bytes) -> str | None:
    """The reader's error, if any: the first line over ``LIMIT`` bytes (a line ends at LF, CR or
    CR LF), unless a byte that is not UTF-8 comes in an earlier line."""
    try:
        data.decode("utf-8")
        bad = None
    except UnicodeDecodeError as exc:
        bad = exc.start
    start, number = 0, 0
    for number, end in enumerate([m for m in re.finditer(rb"\r\n|\r|\n", data)] + [None], start=1):
        stop = end.start() if end is not None else len(data)
        if bad is not None and bad < start:
            break
        if stop - start > LIMIT:
            return f"{NAME}:{number}: line longer than the limit of {LIMIT:,} bytes"
        if end is None:
            break
        start = end.end()
    return f"{NAME}: not UTF-8 (byte {bad + 1})" if bad is not None else None


def check(data: bytes, segmenter: Segmenter | None) -> None:
    error = expected_error(data)
    try:
        sentences = list(segmented(segmenter, read_text_chunks(io.BytesIO(data), NAME, limit=LIMIT)))
    except DataError as exc:
        assert_one_line(str(exc))
        assert str(exc) == error
        return
    assert error is None
    text = data.decode("utf-8").removeprefix("\ufeff")
    forms = [form for sentence in sentences for form in sentence.forms]
    assert "".join("".join(forms).split()) == "".join(text.split())  # every character but whitespace, in order
    # a token over MAX_TOKEN_CHARS is one grapheme cluster (a letter with its marks), cut at MAX_CLUSTER_CHARS
    long = [form for form in forms if len(form) > MAX_TOKEN_CHARS]
    assert all(0 < len(form) for form in forms)
    assert all(len(form) <= MAX_CLUSTER_CHARS and regex.fullmatch(r"\X", form) for form in long)
    assert all(0 < len(sentence.forms) <= MAX_SENTENCE_TOKENS for sentence in sentences)


@pytest.mark.parametrize("kind", SEGMENTERS)
@fuzz(max_examples=25)
@given(data=st.lists(pieces, max_size=6).map(b"".join))
@example(data=b"\0" * (LIMIT + 1))  # /dev/zero
@example(data=b"ok\r\n" + b"a" * LIMIT + b"\r\n" + b"\xff" + b"a" * (LIMIT + 1))  # the line of exactly the limit passes
@example(data=b"a\r" + b"\r\n" * 3000 + b"\xe2\x82\n" + b"a" * (LIMIT + 1))  # the bad byte comes first
@example(data=BOM + "\u0301".encode() * 2000 + b"\n" * 5000 + b"a")
def test_raw_bytes_are_segmented_or_refused_in_one_line(kind, data):
    check(data, SEGMENTERS[kind])
