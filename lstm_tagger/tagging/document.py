"""A tagged document in Stanza's shape: sentences of tokens of words, each word with the tags of
the columns the model learnt (``upos``, ``xpos``, ``feats``; None for a column it did not).

A document keeps what it was made from, the input as read (a segmented sentence, a CoNLL-U
block, or nothing for pre-split tokens) beside each tagged sentence, and writes itself with
the one writer ``lstm-tag predict`` uses (``formats.write``), so ``doc.to_conllu()`` and
``doc.to_json()`` are the command line's ``--format conllu`` and ``--format json`` output byte
for byte.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Iterable, Iterator, Mapping, TextIO

from lstm_tagger.corpus.conllu import Block
from lstm_tagger.corpus.rawtext import Segmented, TreebankSentence, block_sentence
from lstm_tagger.corpus.vocab import Vocab
from lstm_tagger.tagging.formats import Record, Source, json_record, write
from lstm_tagger.tagging.predict import Tagged

TAG_COLUMNS = ("upos", "xpos", "feats")


@dataclass(slots=True)
class Word:
    """A syntactic word: its ID in the sentence, its form and each column's tag (None for a
    column the model did not learn); with ``scores=True``, each learnt column's probability of
    every tag, most probable first (``{"upos": {"NOUN": 0.98, ...}}``, as ``--format json --scores``)."""

    id: int
    form: str
    upos: str | None = None
    xpos: str | None = None
    feats: str | None = None
    scores: dict[str, dict[str, float]] | None = None

    @property
    def text(self) -> str:
        """The form (Stanza's name for it)."""
        return self.form


@dataclass(slots=True)
class Token:
    """A surface token: one word, or a multiword token (``Don't`` -> ``Do`` + ``n't``) whose ``id``
    is the range of its words' IDs, ``(1, 2)``; a one-word token's ``id`` is ``(n,)``."""

    id: tuple[int, ...]
    text: str
    words: list[Word]
    space_after: bool = True
    multiword: bool = False


@dataclass
class Sentence:
    """One tagged sentence: its tokens, their words, its text (what ``# text`` says) and its
    number in the document (``# sent_id`` of the command line's CoNLL-U output for raw text and tokens);
    ``tagged`` is what the tagger returned for it (``predict.Tagged``: words, tags, probabilities)."""

    id: int
    text: str
    tokens: list[Token]
    tagged: Tagged = field(repr=False)
    vocabs: Mapping[str, Vocab] = field(repr=False)

    @property
    def words(self) -> list[Word]:
        return [word for token in self.tokens for word in token.words]

    def to_dict(self) -> dict[str, Any]:
        """The sentence as ``--format json`` writes it: ``{"words": [...], "upos": [...], ...}``
        (a key per learnt column) and, with scores, ``"scores"``."""
        return json_record(self.tagged, self.vocabs)


@dataclass
class Document:
    """Tagged sentences and the input they were read from (``input_format``: ``text``, ``tokens``
    or ``conllu``); ``text`` is the raw text given, for raw-text input. Its ``sentences`` (words and
    tokens as objects) are built when first asked for: the outputs (``to_conllu``, ``to_dict``...)
    are written from the records, as ``lstm-tag predict`` writes them."""

    input_format: str
    records: list[Record] = field(repr=False)
    vocabs: Mapping[str, Vocab] = field(repr=False)
    text: str | None = None

    @classmethod
    def build(cls, input_format: str, records: Iterable[Record], vocabs: Mapping[str, Vocab], text: str | None = None) -> "Document":
        return cls(input_format, list(records), vocabs, text)

    @cached_property
    def sentences(self) -> list[Sentence]:
        """Each sentence, numbered from 1 (see ``sentences_of``)."""
        return list(sentences_of(self.input_format, self.records, self.vocabs))

    def write(self, format: str, out: TextIO) -> int:
        """Write the document in ``format`` (``text``, ``json`` or ``conllu``), as ``lstm-tag predict`` does."""
        return write(self.records, self.vocabs, format, out)

    def _written(self, format: str) -> str:
        buffer = io.StringIO()
        self.write(format, buffer)
        return buffer.getvalue()

    def to_conllu(self) -> str:
        """``lstm-tag predict --format conllu``'s output for the same input."""
        return self._written("conllu")

    def to_json(self) -> str:
        """``lstm-tag predict --format json``'s output for the same input: one JSON object per line."""
        return self._written("json")

    def to_text(self) -> str:
        """``lstm-tag predict``'s default output for the same input: one line of ``word/TAG`` per sentence."""
        return self._written("text")

    def to_dict(self) -> dict[str, Any]:
        """``{"sentences": [...]}``: each sentence's ``--format json`` object."""
        return {"sentences": [json_record(tagged, self.vocabs) for _, tagged in _sentence_records(self.input_format, self.records)]}


def sentences_of(input_format: str, records: Iterable[Record], vocabs: Mapping[str, Vocab]) -> Iterator[Sentence]:
    """The ``Sentence`` of each record that is one (a blank tokens line or a CoNLL-U block without
    words is not), numbered from 1."""
    for number, (source, tagged) in enumerate(_sentence_records(input_format, records), start=1):
        yield _sentence(input_format, source, tagged, number, vocabs)


def _sentence_records(input_format: str, records: Iterable[Record]) -> Iterator[Record]:
    """The records that are sentences: every one of raw text, those with words of the other inputs."""
    return (record for record in records if input_format == "text" or record[1].words)


def _sentence(input_format: str, source: Source, tagged: Tagged, number: int, vocabs: Mapping[str, Vocab]) -> Sentence:
    words = _words(tagged, vocabs)
    if isinstance(source, Segmented):
        tokens, text = _tokens(source.sentence(), words, None)
    elif isinstance(source, Block):
        read = block_sentence(source)
        tokens, text = _tokens(read, words, [int(fields[0]) for fields in source.fields])
        text = read.text if read.text is not None else text
    else:
        tokens, text = [Token((w.id,), w.form, [w]) for w in words], " ".join(tagged.words)
    return Sentence(number, text, tokens, tagged, vocabs)


def _words(tagged: Tagged, vocabs: Mapping[str, Vocab]) -> list[Word]:
    """Each word with its tags and, when the sentence has them, its scores (``--format json``'s)."""
    scores = json_record(tagged, vocabs)["scores"] if tagged.probs is not None else None
    words = []
    for k, form in enumerate(tagged.words):
        tags = {column: tagged.columns[column][k] for column in TAG_COLUMNS if column in tagged.columns}
        shown = {column: by_word[k] for column, by_word in scores.items()} if scores is not None else None
        words.append(Word(k + 1, form, **tags, scores=shown))
    return words


def _tokens(read: TreebankSentence, words: list[Word], ids: list[int] | None) -> tuple[list[Token], str]:
    """``read``'s tokens holding ``words`` in order (their IDs set from ``ids`` when given), and its joined text."""
    tokens, k = [], 0
    for token in read.tokens:
        mine = words[k : k + len(token.words)]
        k += len(token.words)
        for word in mine:
            word.id = ids[word.id - 1] if ids is not None else word.id
        span = (mine[0].id, mine[-1].id) if token.multiword and mine else tuple(w.id for w in mine[:1])
        tokens.append(Token(span, token.form, mine, token.space_after, token.multiword))
    return tokens, read.joined()
