"""The segmenter's part of a checkpoint header, typed and bounded before anything is built from it.

A checkpoint is a file from anywhere, and the segmenter's words go into the output as they
are: a line break in a multiword token's word would forge a CoNLL-U line, a TAB add columns,
an empty word give an empty FORM, an empty suffix cut a token into a word and nothing. So the
character table, the multiword lexicon and the dev scores are checked here field by field:
every word non-empty, without whitespace or control characters, every length and count
within ``limits.py``. The network's sizes are checked against the tensors by ``network.py``.
Training keeps only what this check accepts (``words_only``), so a trained segmenter always loads.
"""

from __future__ import annotations

import math
import re
import unicodedata
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from lstm_tagger.segmenter.lexicon import Lexicon
from lstm_tagger.limits import (
    MAX_LEXICON_FORMS, MAX_LEXICON_SUFFIXES, MAX_MULTIWORD_CHARS, MAX_MULTIWORD_WORDS, MAX_SEGMENTER_SCORES,
)

MAX_SENTENCE_BIAS = 100.0
"""A bias beyond this decides every character alone; training chooses one within ``training.SENTENCE_BIASES``."""

CHAR_SPECIALS = ("<pad>", "<unk>", " ")
"""The first three entries of a character table: padding, unknown, and whitespace (every space is ``" "``)."""
_SCORE_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
_REFUSED = ("Cc", "Cs")
"""Unicode categories no word may hold: control characters (TAB, line breaks, NUL...) and lone surrogates."""


def _shown(text: str) -> str:
    """``text`` quoted on one line (escapes for line breaks and the like), cut to 20 characters."""
    return repr(text[:20]) + ("..." if len(text) > 20 else "")


def word_problem(word: str) -> str | None:
    """What makes ``word`` no word of a token (None when nothing does)."""
    if not word:
        return "is empty"
    if len(word) > MAX_MULTIWORD_CHARS:
        return f"is longer than {MAX_MULTIWORD_CHARS:,} characters"
    for char in word:
        if char.isspace() or unicodedata.category(char) in _REFUSED:
            return f"holds whitespace or a control character (U+{ord(char):04X})"
    return None


def _entry_problem(form: str, words: list[str]) -> str | None:
    """What makes ``words`` no multiword token's words, said of its form (None when nothing does)."""
    if not 1 <= len(words) <= MAX_MULTIWORD_WORDS:
        return f"has {len(words)} words, not 1 to {MAX_MULTIWORD_WORDS}"
    for word in words:
        problem = word_problem(word)
        if problem is not None:
            return f"has a word {_shown(word)} that {problem}"
    if sum(map(len, words)) > MAX_MULTIWORD_CHARS:
        return f"has words longer than {MAX_MULTIWORD_CHARS:,} characters together"
    return None


def words_only(lexicon: Lexicon) -> Lexicon:
    """``lexicon`` without the forms, words and suffixes that the header would refuse (a treebank's
    multiword token whose word holds a space, say), so that a trained segmenter always loads."""
    kept = [(form, words) for form, words in lexicon.entries.items() if word_problem(form) is None and _entry_problem(form, words) is None]
    entries = dict(kept[:MAX_LEXICON_FORMS])
    suffixes = [suffix for suffix in lexicon.suffixes if word_problem(suffix) is None][:MAX_LEXICON_SUFFIXES]
    return Lexicon(entries, [form for form in lexicon.usual if form in entries], suffixes)


def _check_word(word: str, what: str) -> None:
    problem = word_problem(word)
    if problem is not None:
        raise ValueError(f"{what} {_shown(word)} {problem}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class LexiconHeader(_Strict):
    """A ``lexicon.Lexicon.to_dict()``: lower-cased form -> its words, the forms always expanded, the suffixes."""

    entries: dict[str, list[str]]
    usual: list[str] = []
    suffixes: list[str]

    @model_validator(mode="after")
    def _words(self) -> "LexiconHeader":
        if len(self.entries) > MAX_LEXICON_FORMS:
            raise ValueError(f"more than {MAX_LEXICON_FORMS:,} multiword forms")
        for form, words in self.entries.items():
            _check_word(form, "the form")
            problem = _entry_problem(form, words)
            if problem is not None:
                raise ValueError(f"the form {_shown(form)} {problem}")
        unknown = [form for form in self.usual if form not in self.entries]
        if unknown:
            raise ValueError(f"the usual form {_shown(unknown[0])} is not one of the entries")
        if len(self.suffixes) > MAX_LEXICON_SUFFIXES:
            raise ValueError(f"more than {MAX_LEXICON_SUFFIXES:,} suffixes")
        for suffix in self.suffixes:
            _check_word(suffix, "the suffix")
        return self


class SegmenterHeader(_Strict):
    """``Segmenter.metadata()``: the character table, the multiword lexicon, the dev scores, ``allow_spaces``."""

    chars: list[str]
    lexicon: LexiconHeader
    scores: dict[str, Any] = {}
    allow_spaces: bool = False
    """A space may be inside a token (learned from the training tokens); absent in older checkpoints."""
    sentence_bias: float = 0.0
    """Added to the sentence-end labels' scores before the argmax (chosen on dev); absent in older checkpoints."""

    @field_validator("sentence_bias", mode="before")
    @classmethod
    def _bias(cls, bias: Any) -> float:
        number = isinstance(bias, (int, float)) and not isinstance(bias, bool)
        if not number or not math.isfinite(bias) or abs(bias) > MAX_SENTENCE_BIAS:
            raise ValueError(f"the sentence bias is not a number from -{MAX_SENTENCE_BIAS} to {MAX_SENTENCE_BIAS}")
        return float(bias)

    @field_validator("chars")
    @classmethod
    def _table(cls, chars: list[str]) -> list[str]:
        """Unique entries: the specials, then single characters other than whitespace (so at most
        one entry per Unicode character)."""
        if tuple(chars[: len(CHAR_SPECIALS)]) != CHAR_SPECIALS:
            raise ValueError(f"the character table does not start with {', '.join(map(repr, CHAR_SPECIALS))}")
        for char in chars[len(CHAR_SPECIALS) :]:
            if len(char) != 1 or char.isspace():
                raise ValueError(f"the character table holds {_shown(char)}, not one character other than whitespace")
        if len(set(chars)) != len(chars):
            raise ValueError("the character table holds a character twice")
        return chars

    @field_validator("scores")
    @classmethod
    def _numbers(cls, scores: dict[str, Any]) -> dict[str, Any]:
        if len(scores) > MAX_SEGMENTER_SCORES:
            raise ValueError(f"more than {MAX_SEGMENTER_SCORES} scores")
        for name, value in scores.items():
            if not _SCORE_NAME.fullmatch(name):
                raise ValueError(f"the score name {_shown(name)} is not a lower-case name of at most 40 characters")
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not number or isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"the score {name} is not a finite number")
        return scores


def read_header(metadata: str) -> SegmenterHeader:
    """The segmenter's header (a JSON string) checked; a pydantic ``ValidationError`` naming the field otherwise."""
    return SegmenterHeader.model_validate_json(metadata)
