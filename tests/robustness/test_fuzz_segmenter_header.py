"""A property-based fuzzer of the segmenter's part of a checkpoint header (issue 31): random values
for every field (the character table, the multiword lexicon's forms, words and suffixes, the dev
scores, the tokenizer's sizes, the segmenter's tensor entries) and random bytes in place of the
whole header, each loaded through ``load_checkpoint``. The contract for every example: a clean load,
or one ``CheckpointError`` line naming the file; never another exception; and the process's peak
memory stays under a bound. A segmenter that loads gives only words that are words (non-empty,
without whitespace or control characters) on text that uses its lexicon.

140 examples in all, a few seconds: each loads a checkpoint of 70 KB (the old code failed within them
with an IndexError of an empty multiword entry).
"""

from __future__ import annotations

import json
import resource
import tempfile
from pathlib import Path
from typing import Any, Callable

import pytest

pytest.importorskip("hypothesis")

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from lstm_tagger import load_checkpoint  # noqa: E402
from lstm_tagger.rundir import BEST  # noqa: E402
from lstm_tagger.errors import CheckpointError  # noqa: E402
from lstm_tagger.segmenter.header import word_problem  # noqa: E402
from lstm_tagger.segmenter.decoder import segment  # noqa: E402

from conftest import rewrite_header  # noqa: E402
from fuzzing import assert_one_line, fuzz  # noqa: E402

MEMORY_BOUND_KIB = 500_000
"""Peak memory may grow by less than 500 MB over the module (a crafted header took 1.8 GB)."""
TEXT = "Don't stop. The dog can't\n\nDOG  dog's a\u00e9b x\u200dy. I'm"
"""Segmented after each clean load: lexicon forms, suffixes, capitals, paragraphs."""

NASTY = st.sampled_from(["", " ", "\n", "\t", "\r", "\x00", "\x85", "\u2028", "\u200d", "\ufeff", "\ud800", "\U0001F468", "#", "_", "-"])
WORD = st.one_of(
    st.text(alphabet=st.sampled_from("dogn'st\u00e9\u00df\u0130"), min_size=1, max_size=6),
    st.text(alphabet=st.characters(), max_size=4),
    st.builds(lambda a, b, c: a + b + c, st.text(alphabet="dog", max_size=2), NASTY, st.text(alphabet="dog", max_size=2)),
    st.builds(lambda n: "d" * n, st.sampled_from([999, 1000, 1001])),
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=6),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=8,
)
SPECIALS = ["<pad>", "<unk>", " "]
CHARS = st.one_of(
    st.builds(lambda rest: SPECIALS + rest, st.lists(st.characters(), max_size=4)),
    st.lists(WORD, max_size=5),
    JSON,
)
ENTRIES = st.one_of(st.dictionaries(WORD, st.lists(WORD, max_size=4) | JSON, max_size=3), JSON)
SCORES = st.one_of(st.dictionaries(st.sampled_from(["best_epoch", "dev_tokens_f1", "Dev", "a\nb", ""]) | st.text(max_size=3),
                                   st.integers(-(2**70), 2**70) | st.floats() | JSON, max_size=3), JSON)
SIZES = st.one_of(st.integers(-2, 70), st.integers(2**8, 2**12), st.integers(2**31, 2**70), JSON)
SHAPES = st.one_of(st.lists(st.integers(-1, 2**40), max_size=3), JSON)
DTYPES = st.sampled_from(["F32", "F16", "BF16", "F64", "I64", "U8", "BOOL", "C64", "F8_E4M3", "X", ""]) | JSON


@st.composite
def header_change(draw) -> Callable[[dict[str, Any]], None]:
    """Random values for some fields of the segmenter's header (the others as trained), or random
    text or bytes in place of it."""
    fields = draw(st.sets(st.sampled_from(
        ["chars", "entries", "usual", "suffixes", "lexicon", "scores", "extra", "drop", "size", "shape", "dtype", "raw", "bytes"]
    ), min_size=1, max_size=3))
    values = {
        "chars": draw(CHARS), "entries": draw(ENTRIES), "usual": draw(st.lists(WORD, max_size=3) | JSON),
        "suffixes": draw(st.lists(WORD, max_size=3) | JSON), "lexicon": draw(JSON), "scores": draw(SCORES),
        "drop": draw(st.sampled_from(["chars", "lexicon", "scores"])), "raw": draw(st.text(max_size=40)),
        "bytes": draw(st.binary(max_size=40)).decode("latin-1"),
        "size": (draw(st.sampled_from(["num_layers", "hidden_dim", "char_dim", "cell", "dropout"])), draw(SIZES)),
        "shape": (draw(st.integers(0, 50)), draw(SHAPES)), "dtype": (draw(st.integers(0, 50)), draw(DTYPES)),
    }

    def change(header: dict[str, Any]) -> None:
        meta = header["__metadata__"]
        stored = json.loads(meta["segmenter"])
        lexicon = stored["lexicon"]
        for name in sorted(fields):
            if name in ("chars", "scores"):
                stored[name] = values[name]
            elif name in ("entries", "usual", "suffixes"):
                lexicon[name] = values[name]
            elif name == "lexicon":
                stored["lexicon"] = values["lexicon"]
            elif name == "extra":
                stored["extra"] = 1
            elif name == "drop":
                stored.pop(values["drop"], None)
            elif name == "size":
                config = json.loads(meta["config"])
                config["tokenizer"][values["size"][0]] = values["size"][1]
                meta["config"] = json.dumps(config)
            elif name in ("shape", "dtype"):
                tensors = sorted(key for key in header if key.startswith("segmenter."))
                position, value = values[name]
                header[tensors[position % len(tensors)]][name] = value
        meta["segmenter"] = json.dumps(stored)
        for name in ("raw", "bytes"):
            if name in fields:
                meta["segmenter"] = values[name]

    return change


@pytest.fixture(scope="module")
def memory_baseline() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def check_loaded(path: Path) -> None:
    """``path`` loads, and its segmenter's words on ``TEXT`` are words; or one ``CheckpointError`` line naming it."""
    try:
        checkpoint = load_checkpoint(path)
    except CheckpointError as exc:
        assert_one_line(str(exc))
        assert str(exc).startswith(f"{path}: "), str(exc)
        return
    if checkpoint.segmenter is None:
        return
    for sentence in segment(checkpoint.segmenter, [TEXT]):
        for token in sentence.tokens:
            for form in [token.form, *(word.form for word in token.words)]:
                assert word_problem(form) is None, (form, word_problem(form))


@fuzz(100)
@given(change=header_change())
def test_a_random_segmenter_header_loads_or_is_one_checkpoint_error(segmenter_run, memory_baseline, change):
    with tempfile.TemporaryDirectory(prefix="lstm-fuzz-") as folder:
        check_loaded(rewrite_header(segmenter_run / BEST, Path(folder) / "fuzzed.safetensors", change))
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - memory_baseline < MEMORY_BOUND_KIB


@fuzz(40)
@given(data=st.binary(max_size=200), keep=st.integers(0, 400))
def test_random_bytes_in_place_of_the_header_are_one_checkpoint_error(segmenter_run, memory_baseline, data, keep):
    """The file's first ``keep`` bytes, then random ones (a header cut or overwritten anywhere)."""
    with tempfile.TemporaryDirectory(prefix="lstm-fuzz-") as folder:
        path = Path(folder) / "fuzzed.safetensors"
        original = (segmenter_run / BEST).read_bytes()
        path.write_bytes(original[:keep] + data + original[keep + len(data) :])
        check_loaded(path)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - memory_baseline < MEMORY_BOUND_KIB
