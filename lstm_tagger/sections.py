"""Named sections of a training step, for the profile of an epoch (``benchmark/profile.py``).

Each section is a ``torch.profiler.record_function`` label (so that a torch.profiler trace shows
it) and, while a ``SectionTimer`` is active, the wall seconds spent in it are added up. Neither
costs more than a few microseconds per section when nothing is profiling: a training step has
seven. The names are stated here once; the model and the training loop mark their sections,
and the profile groups them.
"""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING, Iterator

from torch.profiler import record_function

if TYPE_CHECKING:
    import torch

CHARS = "lstm_tagger.chars"
"""The character encoder's forward pass (``Tagger.inputs``)."""
WORD_ENCODER = "lstm_tagger.word_encoder"
"""The word BiLSTM's forward pass (``Tagger.loss``)."""
CRF = "lstm_tagger.crf"
"""A CRF head's negative log-likelihood: its forward algorithm's step loop (``Head.loss``)."""
BATCH_INPUTS = "lstm_tagger.batch_inputs"
"""Building a batch's tensors: collate, word dropout, the characters' ``CharBatch``."""
FORWARD = "lstm_tagger.forward"
"""The whole loss (holds ``CHARS``, ``WORD_ENCODER`` and ``CRF``)."""
BACKWARD = "lstm_tagger.backward"
"""``loss.backward()``: the gradients of every part."""
OPTIMIZER = "lstm_tagger.optimizer"
"""Gradient clipping, the optimiser's step and the weight average."""
THREADS = "lstm_tagger.threads"
"""The thread chooser's own calls between batches (``threads.ThreadChooser``)."""
BACKWARD_HEADS = "lstm_tagger.backward.heads"
"""Within ``BACKWARD``: from its start until the encoder's output has its gradient (the output layers, the CRFs)."""
BACKWARD_WORD_ENCODER = "lstm_tagger.backward.word_encoder"
"""Within ``BACKWARD``: from then until the encoder's input has its gradient (the word BiLSTM)."""
BACKWARD_REST = "lstm_tagger.backward.rest"
"""Within ``BACKWARD``: the rest (the character encoder, the embeddings)."""

_active: list["SectionTimer"] = []


class SectionTimer:
    """While active (``with timer.active():``), the wall seconds and calls of every section."""

    def __init__(self) -> None:
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self.calls: defaultdict[str, int] = defaultdict(int)
        self.marks: list[tuple[float, str]] = []  # (when, section) gradients became ready (``gradient_ready``)

    def _split_backward(self, started: float, ended: float) -> None:
        """Share the backward pass that ran from ``started`` to ``ended`` among the sections whose
        gradients became ready in it: each gets the time since the previous mark, the rest what follows the last."""
        marks = sorted((when, name) for when, name in self.marks if started <= when <= ended)
        previous = started
        for when, name in marks:
            self.seconds[name] += when - previous
            previous = when
        self.seconds[BACKWARD_REST] += ended - previous
        self.marks.clear()

    @contextmanager
    def active(self) -> Iterator["SectionTimer"]:
        _active.append(self)
        try:
            yield self
        finally:
            _active.remove(self)


@contextmanager
def section(name: str) -> Iterator[None]:
    """Mark the block as section ``name`` (a torch.profiler label; timed while a ``SectionTimer`` is active)."""
    if not _active:
        with record_function(name):
            yield
        return
    started = time.perf_counter()
    try:
        with record_function(name):
            yield
    finally:
        ended = time.perf_counter()
        for timer in _active:
            timer.seconds[name] += ended - started
            timer.calls[name] += 1
            if name == BACKWARD:
                timer._split_backward(started, ended)


def gradient_ready(tensor: "torch.Tensor", name: str) -> None:
    """While a ``SectionTimer`` is active: note when ``tensor``'s gradient is ready in the backward
    pass; the time from the previous such moment (or the start) counts as section ``name``.
    Nothing (no hook) otherwise."""
    if _active and tensor.requires_grad:
        tensor.register_hook(partial(_reached, name))


def _reached(name: str, gradient: "torch.Tensor") -> None:
    now = time.perf_counter()
    for timer in _active:
        timer.marks.append((now, name))
