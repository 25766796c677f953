"""A request's input read into sentences to tag, and the tagged ``Document`` it makes.

The server tags the sentences of many requests in one batch (``batching``), so reading a
request's input is apart from tagging it: ``Parsed`` holds what was read, sentence by
sentence (a segmented sentence for raw text, a CoNLL-U block, or nothing for pre-split
tokens) and each sentence's words. It is read with the readers that ``lstm-tag predict``
and ``lstm_tagger.load`` use (the segmenter's ``segmented``, ``predict.read_input``), and
``document`` builds the same ``Document`` the pipeline builds, so every output is
``predict``'s bytes.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from lstm_tagger.corpus.rawtext import Segmented
from lstm_tagger.errors import DataError
from lstm_tagger.segmenter.decoder import segmented
from lstm_tagger.tagging.document import Document
from lstm_tagger.tagging.pipeline import Pipeline
from lstm_tagger.tagging.predict import Tagged, read_input


@dataclass
class Parsed:
    """A request's sentences: ``kind`` (``text``, ``tokens`` or ``conllu``), what was read for
    each sentence, and its words; ``text`` is the raw text given, for ``text``."""

    kind: str
    sources: list[Any]
    words: list[list[str]]
    text: str | None = None


def from_text(pipeline: Pipeline, text: str, lock: threading.Lock) -> Parsed:
    """Raw text segmented into sentences and tokens, as ``pipeline(text)`` does. ``lock``: the
    segmenter keeps a cache of characters that one thread at a time may change."""
    segmenter = pipeline.checkpoint.segmenter if pipeline.checkpoint is not None else None
    with lock:
        sentences = list(segmented(segmenter, [text]))
    return from_segmented(text, sentences)


def from_segmented(text: str, sentences: list[Segmented]) -> Parsed:
    """Raw ``text`` and the sentences it was segmented into (by the batcher, for short text)."""
    return Parsed("text", sentences, [sentence.words for sentence in sentences], text)


def from_tokens(sentences: Iterable[Sequence[str]]) -> Parsed:
    """Pre-split sentences (lists of words), as ``pipeline.tag_tokens`` reads them."""
    words = [list(sentence) for sentence in sentences]
    return Parsed("tokens", [None] * len(words), words)


def from_lines(text: str, name: str, kind: str) -> Parsed:
    """``text`` read as ``predict --input-format kind`` reads a file (``tokens``: a sentence per line;
    ``conllu``); a malformed line is a ``DataError`` naming ``name`` and the line."""
    lines = (line.encode("utf-8") for line in io.StringIO(text))  # as Pipeline.tag_conllu reads a str
    pairs = list(read_input(lines, name, kind))
    return Parsed(kind, [source for _, source in pairs], [words for words, _ in pairs])


def from_vertical(text: str, name: str) -> Parsed:
    """One token per line, a blank line after each sentence (UDPipe's ``vertical`` input)."""
    sentences: list[list[str]] = []
    current: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        form = line.strip()
        if any(char.isspace() for char in form):
            raise DataError(f"{name}:{number}: a vertical line holds one token, without spaces: {form[:60]!r}")
        if form:
            current.append(form)
        elif current:
            sentences.append(current)
            current = []
    return from_tokens(sentences + [current] if current else sentences)


def document(pipeline: Pipeline, parsed: Parsed, tagged: Sequence[Tagged]) -> Document:
    """The ``Document`` of ``parsed``'s sentences and their tags: what the pipeline returns for the same input."""
    if len(tagged) != len(parsed.words):
        raise ValueError(f"{len(tagged)} tagged sentences for {len(parsed.words)} read")
    return Document.build(parsed.kind, zip(parsed.sources, tagged), pipeline.vocabs, parsed.text)


def vertical(doc: Document) -> str:
    """UDPipe's ``vertical`` output: a word per line, a blank line after each sentence."""
    return "".join("".join(f"{word.form}\n" for word in sentence.words) + "\n" for sentence in doc.sentences)


def horizontal(doc: Document) -> str:
    """UDPipe's ``horizontal`` output: a sentence per line, its words separated by spaces."""
    return "".join(" ".join(word.form for word in sentence.words) + "\n" for sentence in doc.sentences)
