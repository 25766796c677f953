"""CoNLL-U as it stands: one reader that keeps every original line, and the writers that fill in tags.

``read_blocks`` cuts a file (any iterable of byte lines, so a file of any size streams)
into ``Block``s: the lines of one sentence up to and including the blank line after it,
each line kept exactly as read (line end, CRLF and a BOM included). It is the one place
that splits CoNLL-U lines, checks their IDs and names a bad line ``file:line``: training,
``eval``, ``predict --input-format conllu`` and the segmenter's view of a treebank
(``rawtext.read_treebank``: tokens, ranges, ``# text``) all read through it. ``Block.filled``
writes a block back with only the model's columns replaced, so comments, multiword-token
ranges, empty nodes, blank lines and every other column come back byte for byte.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Sequence

from lstm_tagger.errors import DataError
from lstm_tagger.files import read_bytes

COLUMNS = {"upos": 3, "xpos": 4, "feats": 5}
"""The tag columns a model can learn -> their field index in a CoNLL-U word line."""

MISC = 9
BOM = "\ufeff"
_WORD_ID = re.compile(r"[1-9][0-9]*")
_SKIPPED_ID = re.compile(r"[1-9][0-9]*-[1-9][0-9]*|(?:0|[1-9][0-9]*)\.[1-9][0-9]*")
"""A multiword-token range (``3-4``) or an empty node (``8.1``): lines the tagger skips."""


def decode_lines(raw_lines: Iterable[bytes], name: str | Path, keep_ends: bool = False) -> Iterator[tuple[int, str]]:
    """``(line_number, text)`` of UTF-8 byte lines; a BOM on line 1 is dropped unless ``keep_ends``.

    Without ``keep_ends`` the line end (``\\n``, ``\\r\\n``) is stripped. A line that is not
    UTF-8 raises ``DataError`` naming ``name`` and the line.
    """
    for number, raw in enumerate(raw_lines, start=1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf") and not keep_ends:
            raw = raw[3:]
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"{name}:{number}: not UTF-8 (byte {exc.start + 1} of the line)") from None
        yield number, line if keep_ends else line.rstrip("\r\n")


@dataclass
class Block:
    """One sentence of a CoNLL-U file as read, or only non-word lines (blank lines, comments at the end).

    ``lines``: every original line, line ends kept; ``words``: the index in ``lines`` of each
    word line (multiword ranges and empty nodes are not words); ``fields``: the ten fields of
    each word line; ``numbers``: the file line number of each word line; ``ranges``: each
    multiword-token range as (its index in ``lines``, its ten fields); ``comments``: the text of
    each comment line (``# text = ...``), without its line end (or a BOM).
    """

    lines: list[str]
    words: list[int]
    fields: list[list[str]]
    numbers: list[int]
    ranges: list[tuple[int, list[str]]] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)

    @property
    def forms(self) -> list[str]:
        return [fields[1] for fields in self.fields]

    def column(self, name: str) -> list[str]:
        """The values of column ``name`` (a key of ``COLUMNS``) for each word."""
        index = COLUMNS[name]
        return [fields[index] for fields in self.fields]

    def filled(self, columns: Mapping[str, Sequence[str]], misc: Sequence[str] | None = None) -> str:
        """The block's text with each column of ``columns`` (one value per word) replaced and,
        with ``misc``, each item added to the word's MISC; every other byte as read."""
        lines = list(self.lines)
        for k, (index, fields) in enumerate(zip(self.words, self.fields)):
            new = list(fields)
            for name, values in columns.items():
                new[COLUMNS[name]] = values[k]
            if misc is not None:
                new[MISC] = misc[k] if new[MISC] == "_" else f"{new[MISC]}|{misc[k]}"
            line = lines[index]
            body = line.rstrip("\r\n")
            lines[index] = (BOM if line.startswith(BOM) else "") + "\t".join(new) + line[len(body):]
        return "".join(lines)


def _line_fields(line: str, number: int, name: str | Path, check_ranges: bool) -> list[str]:
    """The ten fields of a word, range or empty-node line; ``DataError`` if malformed.

    With ``check_ranges`` a range must also have a FORM and not end before it starts.
    """
    fields = line.split("\t")
    if len(fields) != 10:
        raise DataError(f"{name}:{number}: expected 10 tab-separated columns, found {len(fields)}")
    token_id = fields[0]
    if _SKIPPED_ID.fullmatch(token_id):
        if check_ranges and "-" in token_id:
            if not fields[1]:
                raise DataError(f"{name}:{number}: empty FORM")
            first, _, last = token_id.partition("-")
            if int(first) > int(last):
                raise DataError(f"{name}:{number}: bad multiword token range {token_id!r}")
        return fields
    if not _WORD_ID.fullmatch(token_id):
        raise DataError(f"{name}:{number}: ID {token_id!r} is not a number (1, 2, ...), range (3-4) or empty node (8.1)")
    if not fields[1]:
        raise DataError(f"{name}:{number}: empty FORM")
    return fields


def read_blocks(
    raw_lines: Iterable[bytes],
    name: str | Path,
    on_word: Callable[[list[str], int], None] | None = None,
    check_ranges: bool = False,
) -> Iterator[Block]:
    """CoNLL-U byte lines (line ends kept, as iterating a binary file gives them) -> blocks, streaming.

    A block ends after a blank (or whitespace-only) line; a blank line that follows another
    is a block of its own, with no words. A malformed line raises ``DataError`` naming
    ``name`` and the line. ``on_word(fields, line_number)`` sees each word line as it is
    read (before a later line of its block can fail). ``check_ranges``: a multiword-token
    range must also have a FORM and not end before it starts (a reader of surface tokens,
    the segmenter, needs both; the tagger skips ranges).
    """
    block = Block([], [], [], [])
    for number, line in decode_lines(raw_lines, name, keep_ends=True):
        text = line.rstrip("\r\n")
        if number == 1:
            text = text.removeprefix(BOM)
        block.lines.append(line)
        if not text.strip():
            yield block
            block = Block([], [], [], [])
            continue
        if text.startswith("#"):
            block.comments.append(text)
            continue
        fields = _line_fields(text, number, name, check_ranges)
        if "-" in fields[0]:
            block.ranges.append((len(block.lines) - 1, fields))
        elif "." not in fields[0]:  # an empty node is neither a word nor a token
            if on_word is not None:
                on_word(fields, number)
            block.words.append(len(block.lines) - 1)
            block.fields.append(fields)
            block.numbers.append(number)
    if block.lines:
        yield block


def read_file(
    path: str | Path, on_word: Callable[[list[str], int], None] | None = None, check_ranges: bool = False
) -> Iterator[Block]:
    """The blocks of the CoNLL-U corpus file ``path`` (see ``read_blocks``). The file is read
    here (a regular file, else one ``DataError`` line: ``PATH: is a directory, expected a
    corpus file``); its lines are parsed as the iterator is consumed."""
    path = Path(path)
    return read_blocks(io.BytesIO(read_bytes(path, DataError, "corpus file")), path, on_word, check_ranges)


def fresh_block(words: Sequence[str], columns: Mapping[str, Sequence[str]], sent_id: int, misc: Sequence[str] | None = None) -> str:
    """A new CoNLL-U sentence for ``words``: ``# sent_id``, ``# text``, one word line each with
    ``columns`` filled in, ``_`` in every other column; ends with its blank line."""
    lines = [f"# sent_id = {sent_id}", f"# text = {' '.join(words)}"]
    for k, word in enumerate(words):
        fields = [str(k + 1), word] + ["_"] * 8
        for name, values in columns.items():
            fields[COLUMNS[name]] = values[k]
        if misc is not None:
            fields[MISC] = misc[k]
        lines.append("\t".join(fields))
    return "\n".join(lines) + "\n\n"
