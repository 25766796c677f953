"""Corpus readers (CoNLL-U and word<TAB>tag) -> ``Sentence``, and length-bucketed batches.

Readers are strict: a malformed line stops with ``file:line: what is wrong``, so that a
typo in a corpus is found at once rather than silently skipped.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import torch
from torch.nn.utils.rnn import pad_sequence

from lstm_tagger.corpus.conllu import COLUMNS, decode_lines, read_file
from lstm_tagger.errors import DataError
from lstm_tagger.files import read_bytes

TAG_PAD = -100
"""Tag id at padded positions: ``nn.NLLLoss(ignore_index=TAG_PAD)`` skips them."""

NO_VALUE_ALLOWED = {"feats"}
"""Columns where ``_`` is a value (no features), not a missing tag."""


@dataclass(frozen=True)
class Sentence:
    """One sentence: its word forms and, for each tag column (``upos``, ``xpos``, ``feats``,
    in the order of ``data.columns``), their gold tags (same length as the words)."""

    words: tuple[str, ...]
    columns: dict[str, tuple[str, ...]]

    @property
    def tags(self) -> tuple[str, ...]:
        """The first column's tags."""
        return next(iter(self.columns.values()))


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` of a UTF-8 corpus file (see ``decode_lines``)."""
    return decode_lines(read_bytes(path, DataError, "corpus file").split(b"\n"), path)


def read_conllu(path: str | Path, columns: Sequence[str] = ("upos",)) -> list[Sentence]:
    """Read FORM and the tag ``columns`` (any of upos, xpos, feats) of a CoNLL-U file.

    Comments, multiword-token ranges (``3-4``) and empty nodes (``8.1``) are skipped. A
    missing tag (``_``, except in FEATS where it means no features) stops with the file and
    line; a column that is ``_`` on every word gets one line saying it cannot be learned.
    """
    path = Path(path)
    missing: dict[str, tuple[int, str]] = {}  # column -> (line, error) of its first missing tag
    present: set[str] = set()

    def check(fields: list[str], number: int) -> None:
        for column in columns:
            tag = fields[COLUMNS[column]]
            if tag == "" or (tag == "_" and column not in NO_VALUE_ALLOWED):
                missing.setdefault(column, (number, f"{path}:{number}: missing {column.upper()} tag for {fields[1]!r}"))
            else:
                present.add(column)

    blocks = read_file(path, check)
    try:
        sentences = [
            Sentence(tuple(block.forms), {column: tuple(block.column(column)) for column in columns})
            for block in blocks
            if block.words
        ]
    except DataError:
        if missing:  # a missing tag came first in the file
            raise DataError(min(missing.values())[1]) from None
        raise
    for column in columns:
        if column in missing and column not in present:
            raise DataError(
                f"{missing[column][1]} (every word's {column.upper()} is _, nothing to learn: remove {column} from data.columns)"
            )
    if missing:
        raise DataError(min(missing.values())[1])
    return sentences


def read_tsv(path: str | Path, column: str = "upos") -> list[Sentence]:
    """Read ``word<TAB>tag`` lines, one token per line, a blank line between sentences; the tag is ``column``'s."""
    path = Path(path)
    sentences: list[Sentence] = []
    words: list[str] = []
    tags: list[str] = []
    for number, line in _lines(path):
        if not line.strip():
            if words:
                sentences.append(Sentence(tuple(words), {column: tuple(tags)}))
                words, tags = [], []
            continue
        fields = line.split("\t")
        if len(fields) != 2:
            raise DataError(f"{path}:{number}: expected 2 tab-separated columns (word, tag), found {len(fields)}")
        form, tag = fields[0], fields[1].strip()
        if not form.strip():
            raise DataError(f"{path}:{number}: empty word")
        if not tag:
            raise DataError(f"{path}:{number}: missing tag for {form!r}")
        words.append(form)
        tags.append(tag)
    if words:
        sentences.append(Sentence(tuple(words), {column: tuple(tags)}))
    return sentences


def read_corpus(path: str | Path, format: str = "conllu", columns: Sequence[str] = ("upos",)) -> list[Sentence]:
    """Read a corpus in ``format`` (``conllu``, or ``tsv`` with its one tag column named ``columns[0]``)."""
    if format == "conllu":
        return read_conllu(path, columns)
    if format == "tsv":
        return read_tsv(path, columns[0])
    raise ValueError(f"unknown corpus format {format!r}")


@dataclass
class Batch:
    """A padded minibatch.

    words:   (B, T) int64 word ids, ``<pad>`` beyond each length
    tags:    (B, T, C) int64 tag ids of the C tag columns (or (B, T) for 1-D tag ids),
             ``TAG_PAD`` beyond each length
    lengths: (B,)   int64 on the CPU
    """

    words: torch.Tensor
    tags: torch.Tensor
    lengths: torch.Tensor

    @property
    def num_tokens(self) -> int:
        return int(self.lengths.sum())


def collate(word_ids: Sequence[torch.Tensor], tag_ids: Sequence[torch.Tensor], pad: int) -> Batch:
    """Pad one batch: word ids (T,) and tag ids (T, C) (or (T,)) per sentence."""
    return Batch(
        words=pad_sequence(list(word_ids), batch_first=True, padding_value=pad),
        tags=pad_sequence(list(tag_ids), batch_first=True, padding_value=TAG_PAD),
        lengths=torch.tensor([len(w) for w in word_ids], dtype=torch.long),
    )


def padded_rows(flat: torch.Tensor, starts: torch.Tensor, lengths: torch.Tensor, pad: int) -> torch.Tensor:
    """flat (N, ...) rows of consecutive sequences (ids, or (N, K) vectors), starts (B,) and
    lengths (B,) of B of them -> (B, T, ...) their rows, ``pad`` beyond each length (T the longest)."""
    steps = torch.arange(int(lengths.max()) if len(lengths) else 0)
    positions = (starts[:, None] + steps).clamp_(max=max(len(flat) - 1, 0))  # (B, T)
    beyond = (steps >= lengths[:, None]).view(len(lengths), len(steps), *[1] * (flat.dim() - 1))
    return flat[positions].masked_fill_(beyond, pad)


def bucket_order(lengths: Sequence[int], batch_size: int, rng: random.Random | None) -> list[list[int]]:
    """Group sentence indices into batches of similar length.

    With ``rng``: shuffle, sort by length inside pools of 50 batches, cut into batches
    and shuffle the batches, so each epoch differs but padding stays small. Without:
    sort everything by length (deterministic order, for evaluation).
    """
    order = list(range(len(lengths)))
    if rng is None:
        order.sort(key=lambda i: lengths[i])
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(order)
    pool = batch_size * 50
    batches: list[list[int]] = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda i: lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches
