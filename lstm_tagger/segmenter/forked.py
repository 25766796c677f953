"""Segmenting raw text in a forked child process, beside the tagger.

In one process the segmenter and the tagger each need a core, but they share Python's lock:
on 1M tokens of EWT text with ``configs/ud_ewt_fast.yaml``, segmenting in a thread of the
tagging process overlapped with tagging hardly at all (README "Speed"). A child forked
after the model is loaded starts at once, with the segmenter and the input (a file not yet
opened, a string, standard input) inherited, and sends its sentences (``rawtext.Segmented``:
a few lists each, cheap to pickle) through a pipe in messages of a few thousand tokens
(``BATCH_TOKENS``), and the pipe's buffer bounds what is in flight, so memory stays flat. An
error in the child (the input is not UTF-8) is raised again in the parent; when the parent
stops early (an error, a closed output, Ctrl-C) the child is stopped.

Where ``os.fork`` is missing, or other threads run in this process (a fork copies only the
calling thread, so a lock one of them holds would stay locked in the child), the segmenter
runs in the calling thread instead: the same sentences, more slowly.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import threading
import traceback
from typing import Any, Iterable, Iterator

import torch

from lstm_tagger.errors import UserError
from lstm_tagger.corpus.rawtext import Segmented
from lstm_tagger.segmenter.decoder import segmented
from lstm_tagger.segmenter.network import Segmenter

BATCH = 256
"""Sentences per message through the pipe, or fewer: see ``BATCH_TOKENS``."""
BATCH_TOKENS = 4096
"""A message ends once its sentences hold this many tokens: 256 sentences of 1,000 tokens
(the segmenter's longest) would keep the tagger waiting for a quarter of a million tokens,
and a ``predict | head`` for as long before its first line."""
_END = "end"


def can_fork() -> bool:
    """Whether ``segmented_beside`` forks: ``os.fork`` exists and no other thread runs here."""
    return hasattr(os, "fork") and threading.active_count() == 1


def _child(segmenter: Segmenter | None, chunks: Iterable[str], pipe: Any) -> None:
    """Segment ``chunks`` and pickle the sentences into ``pipe`` in lists of ``BATCH`` sentences
    (or ``BATCH_TOKENS`` tokens), then ``_END``; a ``UserError`` (or a bug's traceback as a
    ``RuntimeError``) instead of ``_END``."""
    torch.set_num_threads(1)
    batch: list[Segmented] = []
    tokens = 0
    try:
        for sentence in segmented(segmenter, chunks):
            batch.append(sentence)
            tokens += len(sentence.forms)
            if len(batch) >= BATCH or tokens >= BATCH_TOKENS:
                pickle.dump(batch, pipe, pickle.HIGHEST_PROTOCOL)
                batch, tokens = [], 0
        pickle.dump(batch, pipe, pickle.HIGHEST_PROTOCOL)
        pickle.dump(_END, pipe)
    except UserError as exc:
        pickle.dump(exc, pipe)
    except Exception:  # a bug: its traceback goes to the parent, which shows it
        pickle.dump(RuntimeError(f"segmenting failed in the child process:\n{traceback.format_exc()}"), pipe)
    pipe.flush()


def segmented_beside(segmenter: Segmenter | None, chunks: Iterable[str]) -> Iterator[Segmented]:
    """``decoder.segmented(segmenter, chunks)``, computed in a forked child process when
    ``can_fork()`` (else in this thread). ``chunks`` must not be read by anyone else."""
    if not can_fork():
        yield from segmented(segmenter, chunks)
        return
    read_end, write_end = os.pipe()
    sys.stdout.flush()  # the child must not write a second copy of what is buffered
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: segment, then leave without running the parent's cleanup
        os.close(read_end)
        code = 0
        try:
            with os.fdopen(write_end, "wb") as pipe:
                _child(segmenter, chunks, pipe)
        except (BrokenPipeError, KeyboardInterrupt):  # the parent is gone, or Ctrl-C stops both
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    reaped = False
    try:
        with os.fdopen(read_end, "rb") as pipe:
            while True:
                try:
                    item = pickle.load(pipe)
                except (EOFError, pickle.UnpicklingError):
                    reaped = True
                    raise RuntimeError(f"the segmenting child process ended early ({_wait(pid)})") from None
                if isinstance(item, BaseException):
                    raise item
                if item == _END:
                    reaped = True
                    _wait(pid)
                    return
                yield from item
    finally:
        if not reaped:  # stopped early: so is the child
            os.kill(pid, signal.SIGTERM)
            _wait(pid)


def _wait(pid: int) -> str:
    """Wait for the child to end; how it ended."""
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"
