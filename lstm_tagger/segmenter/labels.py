"""The segmenter's character labels: one per character, saying where tokens and sentences end
and which tokens are multiword (``INSIDE`` ... ``SENTENCE_MULTI``).

- ``labelled_paragraphs``: a treebank's raw text with the labels that training learns from.
- ``rule_labels``: labels by Unicode category alone, the fallback for models trained without
  raw text.
- ``tokens_with_spaces``: how many of a treebank's tokens hold a space; when some do, the
  segmenter learns where a space is inside a token.

A token's end never falls inside a grapheme cluster (``graphemes``).
"""

from __future__ import annotations

import unicodedata
from typing import Iterable, Sequence

from lstm_tagger.corpus.rawtext import TreebankSentence, paragraphs, token_spans
from lstm_tagger.segmenter.graphemes import glued
from lstm_tagger.segmenter.windows import Window

INSIDE, TOKEN, MULTI, SENTENCE, SENTENCE_MULTI = range(5)
"""Character labels: inside a token (or whitespace), last character of a token, of a
multiword token, of a sentence's last token, of a sentence's last token that is multiword."""
NUM_LABELS = 5


def label_of(token_end: bool, multiword: bool, sentence_end: bool) -> int:
    if not token_end:
        return INSIDE
    return (SENTENCE if sentence_end else TOKEN) + (1 if multiword else 0)


def labelled_paragraphs(sentences: Sequence[TreebankSentence]) -> list[tuple[str, list[int]]]:
    """Each paragraph's text (sentences joined by a space) and one label per character."""
    result = []
    for group in paragraphs(sentences):
        text_parts: list[str] = []
        labels: list[int] = []
        for sentence in group:
            if text_parts:
                text_parts.append(" ")
                labels.append(INSIDE)
            text, spans = token_spans(sentence)
            sentence_labels = [INSIDE] * len(text)
            for i, (token, (_, end)) in enumerate(zip(sentence.tokens, spans)):
                sentence_labels[end - 1] = label_of(True, token.multiword, i == len(spans) - 1)
            text_parts.append(text)
            labels.extend(sentence_labels)
        paragraph = "".join(text_parts)
        result.append((paragraph, _cluster_ends(paragraph, labels)))
    return result


def _cluster_ends(text: str, labels: list[int]) -> list[int]:
    """``labels`` of ``text`` with a token's end inside a grapheme cluster moved to the cluster's
    end (a sentence's or multiword token's end stays one), the nearest end the segmenter can
    give (``outside_clusters``); for treebanks that end a token inside one (``👍`` ``🏽``)."""
    joins = glued(text)
    if not joins:
        return labels
    labels = list(labels)
    for i in joins:  # in order: a label moves on until its cluster ends
        if labels[i] != INSIDE:
            moved, there = labels[i], labels[i + 1]
            multiword = MULTI in (moved, there) or SENTENCE_MULTI in (moved, there)
            labels[i], labels[i + 1] = INSIDE, label_of(True, multiword, max(moved, there) >= SENTENCE)
    return labels


def tokens_with_spaces(sentences: Iterable[TreebankSentence]) -> int:
    """How many tokens hold a space between two other characters (Vietnamese ``danh sách``): the
    segmenter lets a space be inside a token when there is one (``Segmenter.allow_spaces``)."""
    return sum(" " in token.form.strip() for sentence in sentences for token in sentence.tokens)


_WORDLIKE = ("L", "N", "M")
SENTENCE_FINAL = frozenset(".!?。！？…‼⁇⁈⁉؟।॥")
_FULL_WIDTH_FINAL = frozenset("。！？")
"""Scripts written without spaces end a sentence with these whatever follows."""


def char_class(char: str) -> str:
    """A character's Unicode general category (``Lu``, ``Po`` ...); whitespace is ``Zs``."""
    return "Zs" if char.isspace() else unicodedata.category(char)


def rule_labels(window: Window) -> list[int]:
    """Labels of ``window.core`` by Unicode category: a token is a run of letters, digits and
    marks, or one punctuation mark or symbol; a sentence ends after ``.!?`` and the like
    followed by whitespace (or the paragraph's end), and after ``。！？`` anywhere. A grapheme
    cluster counts as its first character (``👍🏽`` is one symbol) and is never split."""
    text, labels = window.text, []
    joins = {window.start + i for i in glued(text[window.start :])}
    base = ""  # the first character of the current cluster
    for i in range(window.start, window.end):
        char = text[i]
        if i - 1 not in joins:
            base = char
        if char.isspace() or i in joins:
            labels.append(INSIDE)
            continue
        following = text[i + 1] if i + 1 < len(text) else " "
        wordlike = char_class(base)[0] in _WORDLIKE
        end = following.isspace() or not wordlike or char_class(following)[0] not in _WORDLIKE
        sentence_end = base in SENTENCE_FINAL and (following.isspace() or base in _FULL_WIDTH_FINAL)
        labels.append(label_of(end, False, end and sentence_end))
    return labels
