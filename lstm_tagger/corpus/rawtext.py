"""Treebank sentences and their raw text: the data model that the segmenter, the tagger and
the CoNLL 2018 metrics share.

- ``Word`` / ``Token`` / ``TreebankSentence``: a sentence of surface tokens (multiword tokens
  with their words), its ``# text`` and whether it starts a paragraph or a document.
- ``Segmented``: a sentence as the segmenter finds it, in a few cheap lists.
- ``read_treebank`` / ``block_sentence``: a CoNLL-U file as such sentences, built from the
  blocks of ``conllu.read_file`` (so its lines are split and checked as training's are).
- ``token_spans`` / ``paragraphs`` / ``paragraph_texts`` / ``raw_text``: the raw text of a
  treebank rebuilt from ``# text`` (or FORMs joined by ``SpaceAfter=No``), one paragraph per
  ``# newpar`` / ``# newdoc``.

What only the segmenter needs (character labels, the multiword lexicon, windows of text) is
in ``lstm_tagger/segmenter/``, which reads this module; this module reads nothing of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Sequence

from lstm_tagger.corpus.conllu import MISC, Block, read_file


class Word(NamedTuple):
    """A syntactic word and the columns the CoNLL 2018 metrics read (a named tuple: the
    segmenter makes one per word of the text, and a frozen dataclass costs several times more)."""

    form: str
    upos: str = "_"
    xpos: str = "_"
    feats: str = "_"


@dataclass
class Token:
    """A surface token: one word, or a multiword token (``don't`` -> ``do`` + ``n't``)."""

    form: str
    words: tuple[Word, ...]
    space_after: bool = True
    multiword: bool = False


@dataclass
class TreebankSentence:
    """One sentence of tokens with its ``# text`` (None when absent) and where it starts."""

    tokens: list[Token] = field(default_factory=list)
    text: str | None = None
    new_paragraph: bool = False
    new_document: bool = False

    @property
    def words(self) -> list[str]:
        return [w.form for t in self.tokens for w in t.words]

    def joined(self) -> str:
        """The sentence's text from its tokens, one space where ``SpaceAfter=No`` is absent."""
        parts = []
        for i, token in enumerate(self.tokens):
            parts.append(token.form)
            if token.space_after and i + 1 < len(self.tokens):
                parts.append(" ")
        return "".join(parts)


class Segmented(NamedTuple):
    """A sentence as the segmenter finds it, in the few lists that cost little to build and to
    send to another process: the tokens' forms, whether whitespace follows each, the words of
    each multiword token by token position, and whether it starts a paragraph.
    ``sentence()`` makes the ``TreebankSentence``."""

    forms: list[str]
    spaces: list[bool]
    expanded: dict[int, tuple[str, ...]]
    new_paragraph: bool

    @property
    def words(self) -> list[str]:
        if not self.expanded:
            return self.forms
        return [word for k, form in enumerate(self.forms) for word in self.expanded.get(k, (form,))]

    def sentence(self) -> TreebankSentence:
        tokens = [
            Token(form, tuple(map(Word, self.expanded.get(k, (form,)))), space, k in self.expanded)
            for k, (form, space) in enumerate(zip(self.forms, self.spaces))
        ]
        return TreebankSentence(tokens, None, self.new_paragraph)


def _word(fields: list[str]) -> Word:
    return Word(fields[1], fields[3], fields[4], fields[5])


def block_sentence(block: Block) -> TreebankSentence:
    """One block's tokens (a range opens a multiword token that takes the words up to its
    last ID), its ``# text`` and whether ``# newpar`` / ``# newdoc`` starts it."""
    sentence = TreebankSentence()
    for comment in block.comments:
        key, _, value = comment[1:].partition("=")
        key = key.strip()
        if key == "text":
            sentence.text = value.strip()
        elif key.startswith("newdoc"):
            sentence.new_document = sentence.new_paragraph = True
        elif key.startswith("newpar"):
            sentence.new_paragraph = True
    last: int | None = None  # the last word ID of the open multiword token
    for _, fields in sorted([*zip(block.words, block.fields), *block.ranges], key=lambda line: line[0]):
        space_after = "SpaceAfter=No" not in fields[MISC].split("|")
        if "-" in fields[0]:
            sentence.tokens.append(Token(fields[1], (), space_after, multiword=True))
            last = int(fields[0].partition("-")[2])
        elif last is not None:
            sentence.tokens[-1].words += (_word(fields),)
            if int(fields[0]) >= last:
                last = None
        else:
            sentence.tokens.append(Token(fields[1], (_word(fields),), space_after))
    return sentence


def read_treebank(path: str | Path) -> list[TreebankSentence]:
    """A CoNLL-U file's sentences with their tokens, ``# text`` and ``# newpar`` / ``# newdoc``.

    The lines are read and checked by ``conllu.read_file``, as training reads them; empty
    nodes are skipped, and a sentence with no token is none.
    """
    sentences = (block_sentence(block) for block in read_file(path, check_ranges=True))
    return [sentence for sentence in sentences if sentence.tokens]


def token_spans(sentence: TreebankSentence) -> tuple[str, list[tuple[int, int]]]:
    """The sentence's text and each token's (start, end) in it.

    The tokens are found in ``# text`` in order, whitespace skipped; when they do not spell it
    (or there is no ``# text``), the text is ``joined()`` instead.
    """
    if sentence.text is not None:
        spans, position, text = [], 0, sentence.text
        for token in sentence.tokens:
            while position < len(text) and text[position].isspace():
                position += 1
            if not text.startswith(token.form, position):
                break
            spans.append((position, position + len(token.form)))
            position += len(token.form)
        else:
            if not text[position:].strip():
                return text, spans
    text, spans, position = sentence.joined(), [], 0
    for token in sentence.tokens:
        spans.append((position, position + len(token.form)))
        position += len(token.form) + (1 if token.space_after else 0)
    return text, spans


def paragraphs(sentences: Sequence[TreebankSentence]) -> list[list[TreebankSentence]]:
    """Sentences grouped into paragraphs: a new one at each ``# newpar`` / ``# newdoc``."""
    groups: list[list[TreebankSentence]] = []
    for sentence in sentences:
        if sentence.new_paragraph or not groups:
            groups.append([])
        groups[-1].append(sentence)
    return groups


def paragraph_texts(sentences: Sequence[TreebankSentence]) -> list[str]:
    """Each paragraph's text: its sentences' texts joined by a space (``segmenter.labels.labelled_paragraphs`` without the labels)."""
    return [" ".join(token_spans(sentence)[0] for sentence in group) for group in paragraphs(sentences)]


def raw_text(sentences: Sequence[TreebankSentence]) -> str:
    """The treebank as raw text: paragraphs separated by a blank line."""
    return "\n\n".join(paragraph_texts(sentences)) + "\n"
