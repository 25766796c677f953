"""Raw text cut into windows for the segmenter: a stream of text (any chunking) cut into
paragraphs at blank lines, and each paragraph into overlapping windows of bounded size, so
that a paragraph of any length is read in constant memory.

A window's labelled piece never ends inside a grapheme cluster that fits in it (``graphemes``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Iterator

from lstm_tagger.segmenter.graphemes import _JOINER, glued


@dataclass(frozen=True)
class Window:
    """A piece of one paragraph: ``text[start:end]`` is labelled, the rest is context.

    ``first`` / ``last``: the labelled piece begins / ends its paragraph.
    """

    text: str
    start: int
    end: int
    first: bool
    last: bool

    @property
    def core(self) -> str:
        return self.text[self.start : self.end]


_BREAK = re.compile(r"\n[^\S\n]*\n")
"""A blank line (possibly holding spaces or tabs) between two paragraphs."""


def _open_break(text: str) -> int:
    """Where the line ends (and spaces) at the end of ``text`` start, from the first line end
    (``len(text)`` if none): a blank line may follow. A scan, not a regular expression: the
    backtracking one this replaces took 8 minutes on 64,000 line breaks followed by a letter."""
    found = text.find("\n", len(text.rstrip()))
    return len(text) if found < 0 else found


_MAX_HELD = 4096


def _last_start(text: str) -> int:
    """The last position after ``text``'s first character where a token may start (not inside a
    grapheme cluster, see ``glued``), at most ``len(text) - 1``; that one when there is none: a
    cluster longer than a window is cut, which ends no token (the assembler carries a token over
    window edges, and ``glued`` sees the cluster go on)."""
    cut = len(text) - 1
    if not _JOINER.search(text, cut - 1):  # no cluster spans two characters without a joiner
        return cut
    for i in reversed(glued(text)):
        if i != cut - 1:
            break
        cut -= 1
    return cut or len(text) - 1


class _Splitter:
    """Cuts a stream of text into ``Window``s: paragraphs at blank lines, each paragraph into
    labelled pieces of ``size`` characters (fewer where the ``size``-th is inside a grapheme
    cluster) with ``context`` characters on either side."""

    def __init__(self, size: int, context: int):
        self.size, self.context = size, context
        self.left = ""  # up to ``context`` characters before ``rest``, already labelled
        self.rest = ""  # the paragraph's text not yet labelled
        self.first = True

    def _pieces(self) -> Iterator[Window]:
        while len(self.rest) > self.size + self.context:
            cut = _last_start(self.rest[: self.size + 1])
            core, right = self.rest[:cut], self.rest[cut : cut + self.context]
            yield Window(self.left + core + right, len(self.left), len(self.left) + len(core), self.first, False)
            self.left = (self.left + core)[-self.context :] if self.context else ""
            self.rest = self.rest[cut:]
            self.first = False

    def end_paragraph(self) -> Iterator[Window]:
        if self.rest.strip():
            yield Window(self.left + self.rest, len(self.left), len(self.left) + len(self.rest), self.first, True)
        elif not self.first:  # the paragraph's text ended with the last window: close it
            yield Window(self.left, len(self.left), len(self.left), False, True)
        self.left, self.rest, self.first = "", "", True

    def feed(self, text: str) -> Iterator[Window]:
        parts = _BREAK.split(text)
        for i, part in enumerate(parts):
            if i > 0:
                yield from self.end_paragraph()
            if not self.rest and self.first:
                part = part.lstrip()
            self.rest += part
            yield from self._pieces()


def _normalized(chunks: Iterable[str]) -> Iterator[str]:
    """Chunks with ``\\r\\n`` and ``\\r`` made ``\\n`` (a ``\\r`` at a chunk's end waits for the next)."""
    held = ""
    for chunk in chunks:
        chunk = held + chunk
        held = ""
        if chunk.endswith("\r"):
            chunk, held = chunk[:-1], "\r"
        yield chunk.replace("\r\n", "\n").replace("\r", "\n")
    if held:
        yield "\n"


def text_windows(chunks: Iterable[str], size: int, context: int) -> Iterator[Window]:
    """Raw text (any chunking) -> windows of at most ``size + 2 * context`` characters.

    Paragraphs are separated by blank lines; every paragraph's last window has ``last``.
    Memory is bounded by the chunk size plus one window, whatever the paragraph length.
    """
    splitter = _Splitter(size, context)
    pending = ""
    for chunk in _normalized(chunks):
        text = pending + chunk
        held = _open_break(text)
        if len(text) - held > _MAX_HELD:
            held = len(text)  # a line of nothing but spaces: no blank line to wait for
        pending = text[held:]
        yield from splitter.feed(text[:held])
    yield from splitter.feed(pending)
    yield from splitter.end_paragraph()
