"""Raw text and treebank tokens: what the segmenter learns from, and the text it reads.

- ``read_treebank``: a CoNLL-U file as sentences of tokens (multiword tokens with their
  words), each sentence's ``# text`` and its paragraph and document starts, built from the
  blocks of ``conllu.read_file`` (so its lines are split and checked as training's are).
- ``paragraphs`` / ``raw_text``: the raw text of a treebank rebuilt from ``# text`` (or
  FORMs joined by ``SpaceAfter=No``), one paragraph per ``# newpar`` / ``# newdoc``.
- ``labelled_paragraphs``: that text with one label per character (see ``INSIDE`` ...).
- ``Lexicon``: the multiword tokens of the training data, to expand ``Don't`` into ``Do n't``.
- ``text_windows``: a stream of text cut into paragraphs (blank lines) and overlapping
  windows of bounded size, so that a paragraph of any length is read in constant memory.
- ``rule_labels``: labels by Unicode category alone, for models trained without raw text.
- ``glued`` / ``outside_clusters``: no token (and so no sentence) starts or ends inside an extended
  grapheme cluster (Unicode UAX #29: a letter and its combining marks, an emoji with its skin
  tone or a ZWJ family, a flag): the one rule every labelling above goes through.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, NamedTuple, Sequence

import regex

from lstm_tagger.corpus.conllu import MISC, Block, read_file

INSIDE, TOKEN, MULTI, SENTENCE, SENTENCE_MULTI = range(5)
"""Character labels: inside a token (or whitespace), last character of a token, of a
multiword token, of a sentence's last token, of a sentence's last token that is multiword."""
NUM_LABELS = 5


def label_of(token_end: bool, multiword: bool, sentence_end: bool) -> int:
    if not token_end:
        return INSIDE
    return (SENTENCE if sentence_end else TOKEN) + (1 if multiword else 0)


_CLUSTER = regex.compile(r"\X")
"""One extended grapheme cluster (UAX #29), as the ``regex`` package finds it."""
_BEFORE_MARK = regex.compile(r"\S(?=\p{M})")
_JOINER = regex.compile(r"[\p{M}\p{GCB=Extend}\p{GCB=ZWJ}\p{GCB=SpacingMark}\p{GCB=Prepend}\p{GCB=Regional_Indicator}"
                        r"\p{GCB=L}\p{GCB=V}\p{GCB=T}]")
"""A character that two characters of one cluster need (one of them has it in each of UAX #29's
rules GB6 to GB13), or a combining mark: text without one (Chinese, precomposed Korean or
Vietnamese) is glued nowhere, and costs one search."""


def glued(text: str) -> list[int]:
    """The positions ``i``, in order, where ``text[i]`` and ``text[i + 1]`` stay in one token:
    they are one extended grapheme cluster, or ``text[i + 1]`` is a combining mark (which UAX #29
    lets start a cluster in a few cases, after a control character or in Myanmar), and neither is
    whitespace (a space with a mark is one cluster, but whitespace always separates tokens).

    ``text`` starts where a token may start (a cluster's start, or after whitespace): clusters
    are found from there on, and the last position has no next character to be glued to.
    """
    if text.isascii() or not _JOINER.search(text):  # (ASCII has no cluster but CR LF, whitespace)
        return []
    found = {match.start() for match in _BEFORE_MARK.finditer(text)}
    position = 0
    for cluster in _CLUSTER.findall(text):
        if len(cluster) > 1:
            found.update(range(position, position + len(cluster) - 1))
        position += len(cluster)
    return sorted(i for i in found if not text[i].isspace() and not text[i + 1].isspace())


def outside_clusters(positions: list[int], labels: list[int], joins: Sequence[int]) -> tuple[list[int], list[int]]:
    """Labelled positions (in order) without those inside a grapheme cluster (``joins``, from
    ``glued``): a token ends only where its cluster ends. The segmenter's label inside a cluster
    is dropped rather than moved to the cluster's end: a model that never saw a character (a
    combining mark of NFD text) often ends a token just before it, and the label at the
    cluster's own end is the one to trust."""
    if not joins:
        return positions, labels
    inside = set(joins)
    kept = [k for k, position in enumerate(positions) if position not in inside]
    return [positions[k] for k in kept], [labels[k] for k in kept]


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


def paragraph_texts(sentences: Sequence[TreebankSentence]) -> list[str]:
    """Each paragraph's text: its sentences' texts joined by a space (``labelled_paragraphs`` without the labels)."""
    return [" ".join(token_spans(sentence)[0] for sentence in group) for group in paragraphs(sentences)]


def raw_text(sentences: Sequence[TreebankSentence]) -> str:
    """The treebank as raw text: paragraphs separated by a blank line."""
    return "\n\n".join(paragraph_texts(sentences)) + "\n"


def _restore_case(form: str, words: Sequence[str]) -> list[str]:
    """``words`` (as learned, lower case) written in ``form``'s case.

    When the words spell the form (``do`` + ``n't`` = ``don't``), the form itself is cut at
    the same places, so ``DON'T`` gives ``DO`` + ``N'T``; otherwise all capitals stay all
    capitals and a capital first letter goes to the first word.
    """
    if "".join(words) == form.lower() and len(form.lower()) == len(form):
        pieces, start = [], 0
        for word in words:
            pieces.append(form[start : start + len(word)])
            start += len(word)
        return pieces
    if form.isupper():
        return [w.upper() for w in words]
    if form[:1].isupper():
        return [words[0][:1].upper() + words[0][1:], *words[1:]]
    return list(words)


class Lexicon:
    """Multiword tokens of the training data: lower-cased form -> its most frequent words.

    ``usual`` are the forms that were multiword in most of their training occurrences
    (``don't``, not ``its``): they are expanded wherever they occur; the others only where the
    segmenter says so. ``suffixes`` are the last words of two-word tokens that spell their
    token (``n't``, ``'s``), to split a multiword token never seen in training (``Zlatko's``).
    """

    def __init__(self, entries: dict[str, list[str]], usual: Iterable[str], suffixes: Sequence[str]):
        self.entries = entries
        self.usual = set(usual)
        self.suffixes = sorted(suffixes, key=lambda s: (-len(s), s))

    @classmethod
    def learn(cls, sentences: Iterable[TreebankSentence]) -> "Lexicon":
        counts: dict[str, Counter[tuple[str, ...]]] = defaultdict(Counter)
        tokens: Counter[str] = Counter()
        suffixes: Counter[str] = Counter()
        for sentence in sentences:
            for token in sentence.tokens:
                tokens[token.form.lower()] += 1
                if token.multiword and token.words:
                    words = tuple(w.form.lower() for w in token.words)
                    counts[token.form.lower()][words] += 1
                    if len(words) == 2 and "".join(words) == token.form.lower():
                        suffixes[words[1]] += 1
        entries = {form: list(c.most_common(1)[0][0]) for form, c in counts.items()}
        usual = [form for form, c in counts.items() if 2 * sum(c.values()) > tokens[form]]
        return cls(entries, usual, [s for s, n in suffixes.items() if n >= 2])

    def expand(self, form: str, flagged: bool = True) -> list[str]:
        """The words of token ``form`` (``[form]`` when it stays one word). ``flagged``: the
        segmenter marked it as multiword; otherwise only a usual multiword form is expanded."""
        lower = form.lower()
        words = self.entries.get(lower)
        if words is not None and (flagged or lower in self.usual):
            return _restore_case(form, words)
        if not flagged:
            return [form]
        for suffix in self.suffixes:
            if lower.endswith(suffix) and len(lower) > len(suffix) and len(lower) == len(form):
                cut = len(form) - len(suffix)
                return [form[:cut], form[cut:]]
        return [form]

    def to_dict(self) -> dict[str, Any]:
        return {"entries": self.entries, "usual": sorted(self.usual), "suffixes": self.suffixes}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Lexicon":
        entries = {str(k): [str(w) for w in v] for k, v in data["entries"].items()}
        return cls(entries, [str(f) for f in data.get("usual", [])], [str(s) for s in data["suffixes"]])


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
