"""Corpus readers (CoNLL-U and word<TAB>tag) -> ``Sentence``, and length-bucketed batches.

Readers are strict: a malformed line stops with ``file:line: what is wrong``, so that a
typo in a corpus is found at once rather than silently skipped.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import torch
from torch.nn.utils.rnn import pad_sequence

from .errors import DataError
from .files import read_bytes

TAG_PAD = -100
"""Tag id at padded positions: ``nn.NLLLoss(ignore_index=TAG_PAD)`` skips them."""

_CONLLU_COLUMNS = {"upos": 3, "xpos": 4}
_WORD_ID = re.compile(r"[1-9][0-9]*")
_SKIPPED_ID = re.compile(r"[1-9][0-9]*-[1-9][0-9]*|(?:0|[1-9][0-9]*)\.[1-9][0-9]*")
"""A multiword-token range (``3-4``) or an empty node (``8.1``): lines the tagger skips."""


@dataclass(frozen=True)
class Sentence:
    """One sentence: its word forms and their gold tags (same length)."""

    words: tuple[str, ...]
    tags: tuple[str, ...]


def decode_lines(raw_lines: Iterable[bytes], name: str | Path) -> Iterator[tuple[int, str]]:
    """``(line_number, text)`` of UTF-8 byte lines, without line ends; a BOM on line 1 is dropped.

    A line that is not UTF-8 raises ``DataError`` naming ``name`` and the line.
    """
    for number, raw in enumerate(raw_lines, start=1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"{name}:{number}: not UTF-8 (byte {exc.start + 1} of the line)") from None
        yield number, line.rstrip("\r\n")


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` of a UTF-8 corpus file (see ``decode_lines``)."""
    return decode_lines(read_bytes(path, DataError, "corpus file").split(b"\n"), path)


def _read_sentences(path: Path, parse: Callable[[int, str], tuple[str, str] | None]) -> list[Sentence]:
    """Blank-line separated blocks of ``path`` -> sentences; ``parse(line_number, line)``
    turns a non-blank line into ``(word, tag)``, or ``None`` for a line to skip."""
    sentences: list[Sentence] = []
    words: list[str] = []
    tags: list[str] = []
    for number, line in _lines(path):
        if not line.strip():
            if words:
                sentences.append(Sentence(tuple(words), tuple(tags)))
                words, tags = [], []
            continue
        token = parse(number, line)
        if token is not None:
            words.append(token[0])
            tags.append(token[1])
    if words:
        sentences.append(Sentence(tuple(words), tuple(tags)))
    return sentences


def read_conllu(path: str | Path, tag_column: str = "upos") -> list[Sentence]:
    """Read FORM and the UPOS or XPOS column of a CoNLL-U file.

    Comments, multiword-token ranges (``3-4``) and empty nodes (``8.1``) are skipped.
    """
    path = Path(path)
    column = _CONLLU_COLUMNS[tag_column]

    def parse(number: int, line: str) -> tuple[str, str] | None:
        if line.startswith("#"):
            return None
        fields = line.split("\t")
        if len(fields) != 10:
            raise DataError(f"{path}:{number}: expected 10 tab-separated columns, found {len(fields)}")
        token_id = fields[0]
        if _SKIPPED_ID.fullmatch(token_id):
            return None
        if not _WORD_ID.fullmatch(token_id):
            raise DataError(f"{path}:{number}: ID {token_id!r} is not a number (1, 2, ...), range (3-4) or empty node (8.1)")
        form, tag = fields[1], fields[column]
        if not form:
            raise DataError(f"{path}:{number}: empty FORM")
        if tag in ("", "_"):
            raise DataError(f"{path}:{number}: missing {tag_column.upper()} tag for {form!r}")
        return form, tag

    return _read_sentences(path, parse)


def read_tsv(path: str | Path) -> list[Sentence]:
    """Read ``word<TAB>tag`` lines, one token per line, a blank line between sentences."""
    path = Path(path)

    def parse(number: int, line: str) -> tuple[str, str]:
        fields = line.split("\t")
        if len(fields) != 2:
            raise DataError(f"{path}:{number}: expected 2 tab-separated columns (word, tag), found {len(fields)}")
        form, tag = fields[0], fields[1].strip()
        if not form.strip():
            raise DataError(f"{path}:{number}: empty word")
        if not tag:
            raise DataError(f"{path}:{number}: missing tag for {form!r}")
        return form, tag

    return _read_sentences(path, parse)


def read_corpus(path: str | Path, format: str = "conllu", tag_column: str = "upos") -> list[Sentence]:
    """Read a corpus in ``format`` (``conllu`` or ``tsv``)."""
    if format == "conllu":
        return read_conllu(path, tag_column)
    if format == "tsv":
        return read_tsv(path)
    raise ValueError(f"unknown corpus format {format!r}")


@dataclass
class Batch:
    """A padded minibatch.

    words:   (B, T) int64 word ids, ``<pad>`` beyond each length
    tags:    (B, T) int64 tag ids, ``TAG_PAD`` beyond each length
    lengths: (B,)   int64 on the CPU
    """

    words: torch.Tensor
    tags: torch.Tensor
    lengths: torch.Tensor

    @property
    def num_tokens(self) -> int:
        return int(self.lengths.sum())


def collate(word_ids: Sequence[torch.Tensor], tag_ids: Sequence[torch.Tensor], pad: int) -> Batch:
    """Pad one batch of 1-D id tensors."""
    return Batch(
        words=pad_sequence(list(word_ids), batch_first=True, padding_value=pad),
        tags=pad_sequence(list(tag_ids), batch_first=True, padding_value=TAG_PAD),
        lengths=torch.tensor([len(w) for w in word_ids], dtype=torch.long),
    )


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
