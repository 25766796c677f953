"""The CoNLL 2018 shared task's segmentation and tagging metrics, as pure functions.

Written from the definitions of the shared task (the official script is the reference the
tests compare with):

- both files' token FORMs, whitespace of category Zs removed, must spell the same
  characters; every token and sentence is a span of character offsets in that string;
- Tokens and Sentences: precision, recall and F1 of spans, a span counting when the same
  start and end are in both;
- Words: gold and system words aligned by their token spans, except inside a *multiword
  span* (the smallest stretch of characters that holds a multiword token and every
  multiword token overlapping it, on either side), where the words are aligned by a longest
  common subsequence of their lower-cased FORMs;
- UPOS, XPOS, UFeats (universal features only), AllTags (the three together): aligned words
  with equal values, over gold words (recall) and system words (precision).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Sequence

from lstm_tagger.errors import DataError
from lstm_tagger.corpus.rawtext import TreebankSentence, Word

UNIVERSAL_FEATURES = frozenset((
    "PronType", "NumType", "Poss", "Reflex", "Foreign", "Abbr", "Gender", "Animacy", "Number", "Case", "Definite",
    "Degree", "VerbForm", "Mood", "Tense", "Aspect", "Voice", "Evident", "Polarity", "Person", "Polite",
))
"""The features UFeats compares (the UD v2 universal features the shared task listed)."""
METRICS = ("Tokens", "Sentences", "Words", "UPOS", "XPOS", "UFeats", "AllTags")


@dataclass(frozen=True)
class Score:
    """Counts of one metric; ``aligned`` is the number of aligned words (tag metrics only)."""

    correct: int
    gold: int
    system: int
    aligned: int | None = None

    @property
    def precision(self) -> float:
        return self.correct / self.system if self.system else 0.0

    @property
    def recall(self) -> float:
        return self.correct / self.gold if self.gold else 0.0

    @property
    def f1(self) -> float:
        return 2 * self.correct / (self.gold + self.system) if self.gold + self.system else 0.0

    @property
    def aligned_accuracy(self) -> float | None:
        return self.correct / self.aligned if self.aligned else None

    def to_dict(self) -> dict[str, float | int | None]:
        return {"precision": self.precision, "recall": self.recall, "f1": self.f1,
                "aligned_accuracy": self.aligned_accuracy, "correct": self.correct, "gold": self.gold, "system": self.system}


@dataclass(frozen=True)
class _Word:
    start: int
    end: int  # the span of its token: the whole multiword token for a word inside one
    multiword: bool
    word: Word


@dataclass
class _Document:
    characters: str
    tokens: list[tuple[int, int]]
    sentences: list[tuple[int, int]]
    words: list[_Word]


def _universal(feats: str) -> str:
    return "|".join(sorted(f for f in feats.split("|") if f.split("=", 1)[0] in UNIVERSAL_FEATURES))


def _document(sentences: Sequence[TreebankSentence]) -> _Document:
    characters: list[str] = []
    doc = _Document("", [], [], [])
    position = 0
    for sentence in sentences:
        start = position
        for token in sentence.tokens:
            form = "".join(c for c in token.form if unicodedata.category(c) != "Zs")
            characters.append(form)
            doc.tokens.append((position, position + len(form)))
            for word in token.words:
                cleaned = Word("".join(c for c in word.form if unicodedata.category(c) != "Zs"), word.upos, word.xpos,
                               _universal(word.feats))
                doc.words.append(_Word(position, position + len(form), token.multiword, cleaned))
            position += len(form)
        doc.sentences.append((start, position))
    doc.characters = "".join(characters)
    return doc


def spans_score(gold: Sequence[tuple[int, int]], system: Sequence[tuple[int, int]]) -> Score:
    """Spans sorted by start; one counts when a gold and a system span start and end together."""
    correct, g, s = 0, 0, 0
    while g < len(gold) and s < len(system):
        if gold[g][0] == system[s][0]:
            correct += gold[g][1] == system[s][1]
            g, s = g + 1, s + 1
        elif gold[g][0] < system[s][0]:
            g += 1
        else:
            s += 1
    return Score(correct, len(gold), len(system))


def _past(word: _Word, end: int) -> bool:
    """Whether ``word`` lies beyond a multiword span that ends at ``end``."""
    return word.start >= end if word.multiword else word.end > end


def _multiword_span(gold: list[_Word], system: list[_Word], g: int, s: int) -> tuple[int, int, int, int]:
    """The words of the multiword span starting at ``gold[g]`` / ``system[s]``: (g0, s0, g1, s1)."""
    if gold[g].multiword:
        end = gold[g].end
        if not system[s].multiword and system[s].start < gold[g].start:
            s += 1
    else:
        end = system[s].end
        if not gold[g].multiword and gold[g].start < system[s].start:
            g += 1
    g0, s0 = g, s
    while (g < len(gold) and not _past(gold[g], end)) or (s < len(system) and not _past(system[s], end)):
        take_gold = g < len(gold) and (s >= len(system) or gold[g].start <= system[s].start)
        word = gold[g] if take_gold else system[s]
        if word.multiword:
            end = max(end, word.end)
        if take_gold:
            g += 1
        else:
            s += 1
    return g0, s0, g, s


def _lcs_pairs(gold: list[_Word], system: list[_Word]) -> list[tuple[_Word, _Word]]:
    """Words paired by a longest common subsequence of lower-cased FORMs (first gold word kept
    back when two choices are equally long)."""
    a = [w.word.form.lower() for w in gold]
    b = [w.word.form.lower() for w in system]
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]  # table[i][j]: LCS of a[i:], b[j:]
    for i in range(len(a) - 1, -1, -1):
        for j in range(len(b) - 1, -1, -1):
            table[i][j] = table[i + 1][j + 1] + 1 if a[i] == b[j] else max(table[i + 1][j], table[i][j + 1])
    pairs, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        if a[i] == b[j]:
            pairs.append((gold[i], system[j]))
            i, j = i + 1, j + 1
        elif table[i][j] == table[i + 1][j]:
            i += 1
        else:
            j += 1
    return pairs


def align_words(gold: list[_Word], system: list[_Word]) -> list[tuple[_Word, _Word]]:
    """Gold and system words paired: by token span, or by LCS inside multiword spans."""
    pairs: list[tuple[_Word, _Word]] = []
    g = s = 0
    while g < len(gold) and s < len(system):
        if gold[g].multiword or system[s].multiword:
            g0, s0, g, s = _multiword_span(gold, system, g, s)
            pairs.extend(_lcs_pairs(gold[g0:g], system[s0:s]))
        elif (gold[g].start, gold[g].end) == (system[s].start, system[s].end):
            pairs.append((gold[g], system[s]))
            g, s = g + 1, s + 1
        elif gold[g].start <= system[s].start:
            g += 1
        else:
            s += 1
    return pairs


_KEYS = {
    "UPOS": lambda w: w.upos,
    "XPOS": lambda w: w.xpos,
    "UFeats": lambda w: w.feats,
    "AllTags": lambda w: (w.upos, w.xpos, w.feats),
}


def evaluate(gold: Sequence[TreebankSentence], system: Sequence[TreebankSentence]) -> dict[str, Score]:
    """The scores of ``METRICS``; a ``DataError`` when the two do not spell the same characters."""
    g, s = _document(gold), _document(system)
    if g.characters != s.characters:
        at = next((i for i, (x, y) in enumerate(zip(g.characters, s.characters)) if x != y),
                  min(len(g.characters), len(s.characters)))
        raise DataError(
            f"gold and system text differ at character {at}: {g.characters[at:at + 20]!r} vs {s.characters[at:at + 20]!r}"
        )
    pairs = align_words(g.words, s.words)
    scores = {
        "Tokens": spans_score(g.tokens, s.tokens),
        "Sentences": spans_score(g.sentences, s.sentences),
        "Words": Score(len(pairs), len(g.words), len(s.words)),
    }
    for name, key in _KEYS.items():
        correct = sum(key(a.word) == key(b.word) for a, b in pairs)
        scores[name] = Score(correct, len(g.words), len(s.words), len(pairs))
    return scores
