"""Distillation (``train.teacher``): the tag probabilities that earlier runs give the training sentences.

Each teacher (a run directory or a checkpoint file) tags the training sentences once, before
the first epoch, in eval mode; its per-token tag probabilities (a CRF head's marginals) are
moved onto the student's tag ids by tag name and averaged over the teachers (each first
softened to p^(1/T), T = ``train.distill_temperature``). The student's
loss for each column the teachers have is then (1 - w) * its loss on the gold tags + w * the
cross-entropy against these probabilities (``model.Head.loss``), w = ``train.distill_weight``.
A student trained so learns what the teachers (an ensemble, say) know about ambiguous tokens,
beyond the one gold tag.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from itertools import accumulate
from typing import Callable, Mapping, Sequence

import torch

from lstm_tagger.checkpoint import Checkpoint, find_checkpoint, load_checkpoint
from lstm_tagger.corpus.reader import padded_rows
from lstm_tagger.errors import CheckpointError, ConfigError
from lstm_tagger.tagging.predict import run_columns
from lstm_tagger.corpus.vocab import Vocab

CHUNK = 2_000
"""Sentences tagged per call: bounds the float32 probabilities held at once while tagging."""


@dataclass
class SoftTargets:
    """The teachers' averaged tag probabilities of every training token, per student column."""

    flat: dict[str, torch.Tensor]
    """column -> (N, K) float16: row n is the n-th token of the training set (sentences in order)."""
    starts: torch.Tensor
    """(S,) int64: each sentence's first row."""
    lengths: torch.Tensor
    """(S,) int64: each sentence's number of tokens."""

    def batch(self, index: Sequence[int], columns: Sequence[str]) -> list[torch.Tensor | None]:
        """The sentences ``index`` (a batch, in its order) -> per column in ``columns`` (B, T, K)
        float32 probabilities, zeros beyond each length; None for a column no teacher has."""
        index = torch.as_tensor(index, dtype=torch.long)
        starts, lengths = self.starts[index], self.lengths[index]
        return [padded_rows(self.flat[c], starts, lengths, 0).float() if c in self.flat else None for c in columns]


def _mapping(theirs: Vocab, ours: Vocab) -> torch.Tensor:
    """(K_theirs, K_ours) 0/1: a teacher's tag id -> the student's id of the same tag name (a
    row of zeros for a tag the student does not know)."""
    matrix = torch.zeros(len(theirs), len(ours))
    for i, name in enumerate(theirs.itos):
        if name in ours:
            matrix[i, ours.index(name)] = 1.0
    return matrix


def _teacher(value: str, columns: Sequence[str]) -> Checkpoint:
    """The checkpoint of ``value`` (a run directory or a file), which must tag one of ``columns``
    at least; anything wrong is a ``ConfigError`` naming ``train.teacher``."""
    try:
        teacher = load_checkpoint(find_checkpoint(value))
    except CheckpointError as error:
        raise ConfigError(f"train.teacher: {error}") from None
    if not any(c in teacher.vocabs for c in columns):
        raise ConfigError(
            f"train.teacher: {value} tags {', '.join(teacher.vocabs)}, none of the columns trained here ({', '.join(columns)})"
        )
    return teacher


def check_teachers(teachers: Sequence[str], columns: Sequence[str]) -> None:
    """Fail early, before a run directory is written, on a teacher that cannot teach ``columns``."""
    for value in teachers:
        _teacher(value, columns)


def teacher_targets(
    teachers: Sequence[str], sentences: Sequence[Sequence[str]], vocabs: Mapping[str, Vocab],
    temperature: float = 1.0, done: Callable[[int, str, float], None] | None = None,
) -> SoftTargets:
    """Tag ``sentences`` (the training set's words) with each run or checkpoint of ``teachers``
    and average their probabilities, per column of ``vocabs`` (the student's tag vocabularies)
    that the teachers have (``check_teachers``: each has one at least), each teacher's softened
    to p^(1/``temperature``) and renormalised first. ``done(k, teacher, seconds)`` is called
    after the k-th teacher (from 1), to show progress.
    """
    lengths = [len(words) for words in sentences]
    total = sum(lengths)
    sums = {column: torch.zeros(total, len(vocab)) for column, vocab in vocabs.items()}
    taught: set[str] = set()
    for k, value in enumerate(teachers, start=1):
        started = time.perf_counter()
        teacher = _teacher(value, list(vocabs))
        shared = [c for c in vocabs if c in teacher.vocabs]
        maps = {c: _mapping(teacher.vocabs[c], vocabs[c]) for c in shared}
        row = 0
        for first in range(0, len(sentences), CHUNK):
            results = run_columns(teacher, sentences[first : first + CHUNK], scores=True)
            n = sum(lengths[first : first + CHUNK])
            for c in shared:
                logp = torch.cat([result[c][1] for result in results])  # (n, K_teacher)
                sums[c][row : row + n] += torch.softmax(logp / temperature, dim=1) @ maps[c]
            row += n
        taught.update(shared)
        if done is not None:
            done(k, value, time.perf_counter() - started)
    flat = {}
    for column in (c for c in vocabs if c in taught):  # the mean over the teachers, rows summing to 1
        probs = sums.pop(column)
        flat[column] = (probs / probs.sum(dim=1, keepdim=True).clamp_min(1e-12)).to(torch.float16)
    starts = torch.tensor(list(accumulate(lengths, initial=0))[:-1], dtype=torch.long)
    return SoftTargets(flat, starts, torch.tensor(lengths, dtype=torch.long))


def agreement(targets: SoftTargets, column: str, gold: torch.Tensor) -> float:
    """The share of tokens whose most probable teacher tag is the gold one; gold (N,) tag ids."""
    return (targets.flat[column].argmax(dim=1) == gold).float().mean().item()
