"""Segmenting in a forked child process (``forked.segmented_beside``): the same sentences as
in this thread, errors raised again here, and the child stopped when the reader stops."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Iterator

import pytest

from lstm_tagger.segmenter import forked
from lstm_tagger.errors import DataError
from lstm_tagger.tagging.rawtag import file_chunks
from lstm_tagger.corpus.rawtext import Segmented
from lstm_tagger.segmenter.decoder import segmented

TEXT = "Don't stop. We can't stop now!\n\nA new paragraph, isn't it? Yes " * 200


def fake_segmented(count: int, then=None):
    """A ``segmented`` that yields ``count`` one-word sentences, each naming the process
    that made it, then calls ``then``."""

    def run(segmenter, chunks) -> Iterator[Segmented]:
        for _ in range(count):
            yield Segmented([str(os.getpid())], [True], {}, False)
        if then is not None:
            then()

    return run


def test_the_child_gives_the_sentences_of_this_thread(forking):
    here = list(segmented(None, [TEXT]))
    assert len(here) > forked.BATCH  # more than one message through the pipe
    assert list(forked.segmented_beside(None, [TEXT])) == here


def test_the_sentences_come_from_another_process(forking, monkeypatch):
    monkeypatch.setattr(forked, "segmented", fake_segmented(3))
    pids = {sentence.forms[0] for sentence in forked.segmented_beside(None, [""])}
    assert len(pids) == 1 and pids != {str(os.getpid())}


def test_without_fork_the_sentences_come_from_this_thread(monkeypatch):
    monkeypatch.setattr(forked, "segmented", fake_segmented(3))
    monkeypatch.setattr(forked, "can_fork", lambda: False)
    assert [s.forms for s in forked.segmented_beside(None, [""])] == [[str(os.getpid())]] * 3


def test_an_input_error_in_the_child_is_raised_here(forking, tmp_path: Path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"The dog.\n\xff\n")
    with pytest.raises(DataError, match=r"bad\.txt: not UTF-8 \(byte 10\)"):
        list(forked.segmented_beside(None, file_chunks(str(bad))))


def test_a_bug_in_the_child_comes_back_with_its_traceback(forking, monkeypatch):
    def bug() -> None:
        raise ValueError("a bug")

    monkeypatch.setattr(forked, "segmented", fake_segmented(2, then=bug))
    with pytest.raises(RuntimeError, match=r"(?s)segmenting failed in the child process:.*ValueError: a bug"):
        list(forked.segmented_beside(None, [""]))


def test_a_child_that_dies_is_an_error_not_a_hang(forking, monkeypatch):
    monkeypatch.setattr(forked, "segmented", fake_segmented(2, then=lambda: os.kill(os.getpid(), signal.SIGKILL)))
    with pytest.raises(RuntimeError, match="the segmenting child process ended early \\(killed by signal 9\\)"):
        list(forked.segmented_beside(None, [""]))


def test_stopping_early_stops_and_reaps_the_child(forking, monkeypatch):
    monkeypatch.setattr(forked, "segmented", fake_segmented(10 * forked.BATCH))  # more than the pipe holds
    sentences = forked.segmented_beside(None, [""])
    child = int(next(sentences).forms[0])
    sentences.close()
    with pytest.raises(ProcessLookupError):  # gone, and no zombie left
        os.kill(child, 0)
