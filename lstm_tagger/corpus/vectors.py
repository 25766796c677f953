"""Pretrained word vectors in the text format of word2vec, GloVe and fastText (``.vec``).

One vector per line: a word, then its D numbers, separated by single spaces.

- Line 1 is a header if it is two whole numbers ``N D`` (word2vec, fastText); the file
  must then hold N vectors of D numbers. Without one (GloVe) the first vector line sets D.
- That first vector line must be one word and D numbers. On later lines the last D
  fields are the numbers and the fields before them, joined by spaces, are the word
  (GloVe 840B has "is name@domain.com"): a line with too few numbers is an error, one
  with too many is read as a word with a space.
- ``\n`` or ``\r\n`` line ends, trailing spaces (fastText writes one), blank lines and a
  UTF-8 BOM are ignored; a gzip file (``*.gz``, told by its magic bytes) is decompressed
  as it is read.

A malformed line stops the reading with ``file:line: what is wrong``.
"""

from __future__ import annotations

import gzip
import math
import re
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np
import torch

from lstm_tagger.corpus.reader import decode_lines
from lstm_tagger.errors import DataError, one_line
from lstm_tagger.files import open_binary

_HEADER = re.compile(r"(\d+)\s+(\d+)", re.ASCII)


@dataclass
class Vectors:
    """``words[i]`` (unique, in file order) has the vector ``matrix[i]``; matrix is (N, D) float32."""

    words: list[str]
    matrix: torch.Tensor

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])


@contextmanager
def open_maybe_gzip(path: Path) -> Iterator[BinaryIO]:
    """``path`` opened for binary reading, through gzip if it starts with the gzip magic bytes."""
    handle = open_binary(path, DataError, "vectors file")
    with handle:
        compressed = handle.read(2) == b"\x1f\x8b"
        handle.seek(0)
        yield gzip.GzipFile(fileobj=handle, mode="rb") if compressed else handle  # type: ignore[misc]


def raw_lines(handle: BinaryIO, path: Path) -> Iterator[bytes]:
    """The byte lines of ``handle``; a read error (say truncated gzip data) names the line."""
    number = 0
    try:
        for number, raw in enumerate(handle, start=1):
            yield raw
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}:{number + 1}: cannot read: {one_line(exc)}") from None


def _quote(text: str, limit: int = 20) -> str:
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."


def _parse(numbers: list[str], path: Path, number: int) -> np.ndarray:
    """(D,) float32 of the number fields of line ``number``; every value must be a finite number."""
    try:
        with np.errstate(over="ignore"):
            row = np.array(numbers, dtype=np.float32)
    except ValueError:
        for i, text in enumerate(numbers, start=1):
            try:
                float(text)
            except ValueError:
                raise DataError(f"{path}:{number}: value {i} {_quote(text)} is not a number") from None
        raise
    if not np.isfinite(row).all():
        i = int(np.flatnonzero(~np.isfinite(row))[0])
        what = "is too large for float32" if math.isfinite(float(numbers[i])) else "is not finite (nan or inf)"
        raise DataError(f"{path}:{number}: value {i + 1} {_quote(numbers[i])} {what}")
    return row


def read_vectors(path: str | Path, dim: int | None = None, max_words: int | None = None) -> Vectors:
    """Read a word-vector text file (see the module docstring for the format).

    ``dim`` (the model's embedding_dim), if given, must equal the file's dimension.
    ``max_words`` keeps the first ``max_words`` distinct words (files are sorted by
    frequency) and stops reading there. A word seen again later is skipped.
    """
    path = Path(path)
    if max_words is not None and max_words < 1:
        raise ValueError(f"max_words must be at least 1, got {max_words}")
    vectors: dict[str, np.ndarray] = {}  # in file order
    announced: int | None = None  # N of the header
    width: int | None = None  # D
    count = 0  # vector lines read, duplicates included

    with open_maybe_gzip(path) as handle:
        for number, line in decode_lines(raw_lines(handle, path), path):
            line = line.rstrip(" ")
            if not line:
                continue
            if number == 1 and (header := _HEADER.fullmatch(line)):
                announced, width = int(header[1]), int(header[2])
                if width < 1:
                    raise DataError(f"{path}:1: the header announces vectors of {width} dimensions")
                continue
            fields = line.split(" ")
            found = len(fields) - 1
            count += 1
            if width is None:
                width = found
                if width < 1:
                    raise DataError(f"{path}:{number}: no values after the word {_quote(fields[0])}")
            elif count == 1 and found != width:  # width came from the header
                raise DataError(f"{path}:{number}: {found} values but the header announces {width} dimensions")
            if count == 1 and dim is not None and width != dim:
                where = 1 if announced is not None else number
                raise DataError(f"{path}:{where}: the vectors have {width} dimensions but model.embedding_dim is {dim}")
            if found < width:
                raise DataError(f"{path}:{number}: expected {width} values after the word, found {found}")
            if announced is not None and count > announced:
                raise DataError(f"{path}:{number}: vector {count}, but the header (line 1) announces {announced}")
            word = " ".join(fields[:-width])
            if not word:
                raise DataError(f"{path}:{number}: empty word")
            row = _parse(fields[-width:], path, number)
            vectors.setdefault(word, row)
            if len(vectors) == max_words:
                break
        else:
            if announced is not None and count != announced:
                raise DataError(f"{path}:1: the header announces {announced} vectors but the file has {count}")
    if not vectors:
        raise DataError(f"{path}: no vectors in the file")
    return Vectors(list(vectors), torch.from_numpy(np.stack(list(vectors.values()))))


def matches(vectors: Vectors, words: list[str]) -> tuple[list[int], list[int]]:
    """(rows of ``words``, rows of ``vectors``) of each word from position 1 on (never ``<pad>``)
    that the file has: the exact word if it is there, else its lower-cased form."""
    index = {word: i for i, word in enumerate(vectors.words)}
    targets: list[int] = []
    sources: list[int] = []
    for target, word in enumerate(words[1:], start=1):
        source = index.get(word)
        if source is None:
            source = index.get(word.lower())
        if source is not None:
            targets.append(target)
            sources.append(source)
    return targets, sources


@torch.no_grad()
def align(vectors: Vectors, words: list[str], weight: torch.Tensor) -> int:
    """Copy into ``weight`` (V, D), whose row i belongs to ``words[i]``, the vector of each word
    in ``vectors``: the exact word if the file has it, else its lower-cased form.

    Other rows stay as they are, and row 0 (``<pad>``) is never touched. Returns the number
    of rows filled.
    """
    if weight.dim() != 2 or weight.shape[0] != len(words) or weight.shape[1] != vectors.dim:
        shape = tuple(weight.shape)
        raise ValueError(f"weight of shape {shape} does not fit {len(words)} words x {vectors.dim} dimensions")
    targets, sources = matches(vectors, words)
    if targets:
        chosen = vectors.matrix[torch.tensor(sources)].to(weight)
        weight[torch.tensor(targets, device=weight.device)] = chosen
    return len(targets)
