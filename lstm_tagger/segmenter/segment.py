"""The segmenter: raw text -> sentences of tokens (multiword tokens expanded into words).

A character-level BiLSTM (or GRU, from the project's recurrent family) labels every
character of a paragraph (``rawtext.INSIDE`` ... ``SENTENCE_MULTI``: where tokens end, where
sentences end, which tokens are multiword); a ``rawtext.Lexicon`` learned from the same
treebank gives a multiword token's words. It knows nothing of tags.

    characters (B, T) -> Embedding(chars) ++ Embedding(Unicode category) -> BiLSTM -> Linear -> (B, T, 5)

A character never seen in training keeps its Unicode category (a letter of an unseen script
is still a letter). Training reads fixed-length windows of the training text; segmentation
reads paragraphs (blank lines) in overlapping windows, so memory stays bounded on any input.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections import Counter
from copy import deepcopy
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

import torch
from torch import nn

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from lstm_tagger.config import Config, TokenizerConfig
from lstm_tagger.evaluation.conll18 import evaluate as conll18_evaluate
from lstm_tagger.corpus.reader import bucket_order, padded_rows
from lstm_tagger.errors import ConfigError, UserError
from lstm_tagger.limits import DEFAULT_MAX_PARAMETERS, MAX_LAYERS, count_parameters, planned_parameters
from lstm_tagger.model.tagger import RecurrentEncoder
from lstm_tagger.model.optim import set_epoch_lr
from lstm_tagger.corpus.rawtext import (
    INSIDE, MULTI, NUM_LABELS, SENTENCE, SENTENCE_MULTI, Lexicon, Segmented, TreebankSentence, Window,
    char_class, glued, labelled_paragraphs, paragraph_texts, raw_text, read_treebank, rule_labels,
    outside_clusters, text_windows, tokens_with_spaces,
)
from lstm_tagger.segmenter.header import CHAR_SPECIALS, SegmenterHeader, read_header, words_only

PREFIX = "segmenter."
"""Tensor names of the segmenter inside a checkpoint file start with this."""
CLASSES = ("Cc", "Cf", "Cn", "Co", "Cs", "Ll", "Lm", "Lo", "Lt", "Lu", "Mc", "Me", "Mn", "Nd", "Nl", "No",
           "Pc", "Pd", "Pe", "Pf", "Pi", "Po", "Ps", "Sc", "Sk", "Sm", "So", "Zl", "Zp", "Zs")
CLASS_DIM = 8
WINDOW, CONTEXT = 256, 48
"""Segmentation windows: labelled characters, and context characters on each side."""
MAX_TOKEN_CHARS = 1000
MAX_SENTENCE_TOKENS = 1000
MAX_SENTENCE_CHARS = 10_000
"""A token or sentence that grows past these is cut (a line of 1 MB without spaces); a token
between grapheme clusters, so that a piece may be shorter."""
MAX_CLUSTER_CHARS = 10_000
"""A grapheme cluster longer than ``MAX_TOKEN_CHARS`` (a letter with a thousand combining
marks) stays one token up to this length, and is cut there."""
_PAD, _UNK = 0, 1


class CharTable:
    """Characters -> (character id, category id); whitespace is one character, ``" "``.

    Each character's pair is computed once and kept as one code, ``id * CODE_BASE + category``
    (at most ``MAX_CACHED`` of them, then the cache starts over): segmenting looks up every
    character of the text, and ``unicodedata`` per character would cost more than the network.
    """

    CODE_BASE = 32
    """Above the number of category ids (``len(CLASSES) + 1``)."""
    MAX_CACHED = 100_000

    def __init__(self, itos: Sequence[str]):
        self.itos = list(itos)
        self.stoi = {c: i for i, c in enumerate(self.itos)}
        self._classes = {c: i + 1 for i, c in enumerate(CLASSES)}
        self._codes: dict[str, int] = {}

    @classmethod
    def build(cls, texts: Iterable[str]) -> "CharTable":
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(text)
        chars = sorted((c for c in counts if not c.isspace()), key=lambda c: (-counts[c], c))
        return cls([*CHAR_SPECIALS, *chars])

    def _code(self, char: str) -> int:
        if char.isspace():
            char = " "
        return self.stoi.get(char, _UNK) * self.CODE_BASE + self._classes.get(char_class(char), 1)

    def codes(self, text: str) -> torch.Tensor:
        """text -> (N,) int64 codes, ``id * CODE_BASE + category id`` of each character."""
        known = self._codes
        try:
            return torch.tensor([known[c] for c in text], dtype=torch.long)
        except KeyError:
            missing = set(text).difference(known)
            if len(known) + len(missing) > self.MAX_CACHED:
                known.clear()
                missing = set(text)
            known.update((c, self._code(c)) for c in missing)
            return torch.tensor([known[c] for c in text], dtype=torch.long)

    def encode(self, text: str) -> tuple[torch.Tensor, torch.Tensor]:
        """text -> character ids (N,) and category ids (N,), int64."""
        codes = self.codes(text)
        return codes // self.CODE_BASE, codes % self.CODE_BASE


class SegmenterNet(nn.Module):
    """Embedding(chars) ++ Embedding(categories) -> bidirectional recurrent encoder -> Linear."""

    def __init__(self, config: TokenizerConfig, num_chars: int):
        super().__init__()
        self.chars = nn.Embedding(num_chars, config.char_dim, padding_idx=_PAD)
        self.classes = nn.Embedding(len(CLASSES) + 1, CLASS_DIM, padding_idx=_PAD)
        self.encoder = RecurrentEncoder(
            config.cell, config.char_dim + CLASS_DIM, config.hidden_dim, config.num_layers, True, config.dropout
        )
        self.output = nn.Linear(self.encoder.output_dim, NUM_LABELS)

    def forward(self, chars: torch.Tensor, classes: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """chars (B, T), classes (B, T) int64, lengths (B,) -> label scores (B, T, NUM_LABELS)."""
        inputs = torch.cat([self.chars(chars), self.classes(classes)], dim=-1)
        return self.output(self.encoder(inputs, lengths))


@dataclass
class Segmenter:
    """A trained segmenter: the network, its characters, the multiword lexicon, dev scores."""

    config: TokenizerConfig
    net: SegmenterNet
    table: CharTable
    lexicon: Lexicon
    scores: dict[str, Any] = field(default_factory=dict)
    allow_spaces: bool = False
    """A space between two characters may be inside a token (``inner_spaces``): learned from
    training tokens that hold one (Vietnamese ``danh sách``); off, every space ends a token."""

    def tensors(self) -> dict[str, torch.Tensor]:
        """The weights, named ``segmenter.<name>`` for the checkpoint file."""
        return {PREFIX + k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()}

    def metadata(self) -> str:
        """Characters, lexicon and scores as one JSON string for the checkpoint header."""
        return json.dumps({"chars": self.table.itos, "lexicon": self.lexicon.to_dict(), "scores": self.scores,
                           "allow_spaces": self.allow_spaces})

    @classmethod
    def load(cls, config: TokenizerConfig, tensors: dict[str, torch.Tensor], metadata: str) -> "Segmenter":
        """Undo ``tensors`` + ``metadata``, checked before anything is built: a ValueError (a pydantic
        ``ValidationError`` for a field of the header) when they do not fit."""
        shapes = {name[len(PREFIX) :]: tuple(t.shape) for name, t in tensors.items() if name.startswith(PREFIX)}
        return cls.from_header(config, checked_header(config, metadata, shapes), tensors)

    @classmethod
    def from_header(cls, config: TokenizerConfig, header: SegmenterHeader, tensors: dict[str, torch.Tensor]) -> "Segmenter":
        """The segmenter of a header that ``checked_header`` passed, with its weights (``segmenter.*`` of ``tensors``)."""
        table = CharTable(header.chars)
        net = SegmenterNet(config, len(table.itos))
        net.load_state_dict({k[len(PREFIX) :]: v for k, v in tensors.items() if k.startswith(PREFIX)}, strict=True)
        net.eval()
        lexicon = Lexicon.from_dict(header.lexicon.model_dump())
        return cls(config, net, table, lexicon, dict(header.scores), header.allow_spaces)  # absent before: False


def planned_shapes(config: TokenizerConfig, num_chars: int) -> dict[str, tuple[int, ...]]:
    """The shapes of the weights of the network of ``config`` with ``num_chars`` characters, planned
    without allocating it; a ValueError when it cannot be built or would be above the limit."""
    if config.num_layers > MAX_LAYERS:  # planning a layer costs time: a million of them would not end
        raise ValueError(f"tokenizer.num_layers {config.num_layers:,} is above the limit of {MAX_LAYERS}")
    try:
        shapes = planned_parameters(lambda: SegmenterNet(config, num_chars))
    except (RuntimeError, TypeError, OverflowError):  # a size torch cannot even plan (above 2^63 values)
        raise ValueError("the tokenizer's sizes are beyond what torch can hold") from None
    count = count_parameters(shapes)
    if count > DEFAULT_MAX_PARAMETERS:
        raise ValueError(f"the tokenizer would have {count:,} parameters, above the limit of {DEFAULT_MAX_PARAMETERS:,}")
    return shapes


def checked_header(config: TokenizerConfig, metadata: str, shapes: dict[str, tuple[int, ...]]) -> SegmenterHeader:
    """The segmenter's header (``Segmenter.metadata()``) read, and the network it describes checked
    against ``shapes``, its stored weights' shapes (named without ``PREFIX``), before anything is allocated."""
    header = read_header(metadata)
    planned = planned_shapes(config, len(header.chars))
    if shapes != planned:
        wrong = sorted(set(shapes) ^ set(planned)) or [name for name in planned if shapes[name] != planned[name]]
        raise ValueError(f"its weights do not match its sizes and characters ({PREFIX}{wrong[0]})")
    return header


SPACE = -1
"""The event of a whitespace character (see ``events``)."""
INNER_SPACE = -2
"""The event of a space that may be inside a token (``inner_spaces``): it is, when the character
before it does not end a token; the assembler decides (``_Assembler._spaces_resolved``)."""
Events = tuple[list[int], list[int]]
"""A window's events: the positions in its core of the characters that are whitespace or end
a token, in order, and their labels (``SPACE``, ``INNER_SPACE``, or the label that ends the
token); every other character is inside a token. The assembler works on these, not on every
character."""


def events(core: str, labels: Sequence[int]) -> Events:
    """The events of ``core`` labelled character by character."""
    found = [(i, SPACE if char.isspace() else label) for i, (char, label) in enumerate(zip(core, labels))
             if label != INSIDE or char.isspace()]
    return [i for i, _ in found], [label for _, label in found]


def inner_spaces(window: Window, found: Events) -> Events:
    """``found`` with each ``SPACE`` that may be inside a token made ``INNER_SPACE``: one space
    character (U+0020) between two characters that are not whitespace. Other whitespace (a line
    break, a tab, two spaces) always ends a token, so that a FORM never holds one."""
    text, offset = window.text, window.start
    labels = [INNER_SPACE if label == SPACE and text[offset + i] == " " and 0 < offset + i < len(text) - 1
              and not text[offset + i - 1].isspace() and not text[offset + i + 1].isspace() else label
              for i, label in zip(*found)]
    return found[0], labels


def _label_batch(segmenter: Segmenter, windows: list[Window]) -> list[Events]:
    """The events of each window's core from the network's labels (argmax of its scores), a
    token's end inside a grapheme cluster left out (``rawtext.outside_clusters``), the spaces
    that may be inside a token marked when the segmenter allows them (``inner_spaces``)."""
    net, table = segmenter.net, segmenter.table
    lengths = torch.tensor([len(w.text) for w in windows], dtype=torch.long)
    if int(lengths.max()) == 0:
        return [([], []) for _ in windows]
    starts = torch.cumsum(lengths, 0) - lengths
    codes = padded_rows(table.codes("".join(w.text for w in windows)), starts, lengths, _PAD)  # (B, T)
    chars, classes = codes // table.CODE_BASE, codes % table.CODE_BASE
    with torch.inference_mode():
        best = net(chars, classes, lengths.clamp(min=1)).argmax(-1)
        best.masked_fill_(chars == table.stoi[" "], SPACE)
        core_start = torch.tensor([w.start for w in windows], dtype=torch.long)
        core_end = torch.tensor([w.end for w in windows], dtype=torch.long)
        position = torch.arange(best.size(1))
        core = (position >= core_start[:, None]) & (position < core_end[:, None])  # (B, T)
        rows, positions = torch.nonzero((best != INSIDE) & core, as_tuple=True)
        labels = best[rows, positions].tolist()
        positions = (positions - core_start[rows]).tolist()
        counts = torch.bincount(rows, minlength=len(windows)).tolist()
    found, k = [], 0
    for window, count in zip(windows, counts):
        joins = glued(window.text[window.start :])
        kept = outside_clusters(positions[k : k + count], labels[k : k + count], joins)
        found.append(inner_spaces(window, kept) if segmenter.allow_spaces else kept)
        k += count
    return found


POOL_CHARS = 1 << 16
"""Segmenting sorts windows by length in pools of at most this many characters (and at least
one window), to keep padding small; one pool is in memory at a time."""


def _pools(windows: Iterator[Window]) -> Iterator[list[Window]]:
    pool: list[Window] = []
    size = 0
    for window in windows:
        if pool and size + len(window.text) > POOL_CHARS:
            yield pool
            pool, size = [], 0
        pool.append(window)
        size += len(window.text)
    if pool:
        yield pool


def _label_pool(segmenter: Segmenter, pool: list[Window], batch_size: int) -> list[Events]:
    """The events of each window of ``pool``, in order; the network sees batches of similar lengths."""
    labels: list[Events] = [([], []) for _ in pool]
    for group in bucket_order([len(w.text) for w in pool], batch_size, rng=None):
        for i, found in zip(group, _label_batch(segmenter, [pool[i] for i in group])):
            labels[i] = found
    return labels


def _labelled(segmenter: Segmenter, windows: Iterator[Window], batch_size: int) -> Iterator[tuple[Window, Events]]:
    """Each window with its events, in order, labelled a pool at a time."""
    for pool in _pools(windows):
        yield from zip(pool, _label_pool(segmenter, pool, batch_size))


class _Assembler:
    """Labelled characters -> tokens -> sentences (``Segmented``), one window at a time.

    Each window's tokens are cut from its core between events (list operations, not a step
    per character), then grouped into sentences. A token longer than ``MAX_TOKEN_CHARS`` is
    cut into pieces of at most that length between grapheme clusters (``_first_piece``), and
    a sentence ends after ``MAX_SENTENCE_TOKENS`` tokens or ``MAX_SENTENCE_CHARS``
    characters, so that memory stays bounded on any text.
    """

    def __init__(self, lexicon: Lexicon | None):
        self.lexicon = lexicon
        self.partial = ""  # an unfinished token: at most MAX_TOKEN_CHARS characters, or one grapheme cluster
        self.sentence = Segmented([], [], {}, False)  # the current one
        self.chars = 0  # in the current sentence's tokens
        self.new_paragraph = False  # the next sentence starts a paragraph

    def _pieces(self, window: Window, found: Events) -> tuple[list[str], list[int], list[bool]]:
        """The tokens that end in ``window``: their forms, labels (``INSIDE`` for a token ended by
        whitespace, the paragraph's end or the length limit) and whether whitespace (or the
        paragraph's end) follows. A window that does not end its paragraph has ``CONTEXT``
        characters after its core, so the character after a token at its core's end is known."""
        text, (positions, labels) = window.core, found
        if INNER_SPACE in labels:
            positions, labels = self._spaces_resolved(positions, labels)
        ends = [i if label == SPACE else i + 1 for i, label in zip(positions, labels)]
        forms = [text[start:end] for start, end in zip([0, *[i + 1 for i in positions]], ends)]
        full, offset, size = window.text, window.start, len(window.text)
        spaces = [label == SPACE or offset + end >= size or full[offset + end].isspace() for label, end in zip(labels, ends)]
        labels = [INSIDE if label == SPACE else label for label in labels]
        if forms:
            forms[0], self.partial = self.partial + forms[0], ""
        if "" in forms:  # whitespace after whitespace or after a token's end: no token
            kept = [k for k, form in enumerate(forms) if form]
            forms, labels, spaces = [forms[k] for k in kept], [labels[k] for k in kept], [spaces[k] for k in kept]
        if forms and max(map(len, forms)) > MAX_TOKEN_CHARS:
            forms, labels, spaces = _cut_long(forms, labels, spaces)
        self.partial += text[positions[-1] + 1 :] if positions else text
        while len(self.partial) > MAX_TOKEN_CHARS and (cut := _first_piece(self.partial)) < len(self.partial):
            forms.append(self.partial[:cut])
            self.partial = self.partial[cut:]
            labels.append(INSIDE)
            spaces.append(not self.partial and (window.end >= size or full[window.end].isspace()))
        if window.last and self.partial:
            forms.append(self.partial)
            labels.append(INSIDE)
            spaces.append(True)
            self.partial = ""
        return forms, labels, spaces

    def _spaces_resolved(self, positions: list[int], labels: list[int]) -> Events:
        """Each ``INNER_SPACE`` left out (inside a token) when the character before it does not end
        a token, else made ``SPACE``. That character is the window's previous event or, for a
        space at the core's start, the previous window's last one (a token goes on: ``partial``)."""
        kept: Events = ([], [])
        for position, label in zip(positions, labels):
            if label == INNER_SPACE:
                ended = kept[0][-1] == position - 1 if kept[0] else position == 0 and not self.partial
                if not ended:
                    continue
                label = SPACE
            kept[0].append(position)
            kept[1].append(label)
        return kept

    def add(self, window: Window, found: Events) -> list[Segmented]:
        """Take one window and its events; returns the sentences finished in it, in order."""
        if window.first:
            self.new_paragraph = True
        forms, labels, spaces = self._pieces(window, found)
        expand = self.lexicon.expand if self.lexicon is not None else None
        finished = []
        sentence, chars = self.sentence, self.chars
        for form, label, space in zip(forms, labels, spaces):
            if not sentence.forms:
                sentence, self.new_paragraph = sentence._replace(new_paragraph=self.new_paragraph), False
            if expand is not None and len(words := expand(form, label == MULTI or label == SENTENCE_MULTI)) > 1:
                sentence.expanded[len(sentence.forms)] = tuple(words)
            sentence.forms.append(form)
            sentence.spaces.append(space)
            chars += len(form)
            if label >= SENTENCE or len(sentence.forms) >= MAX_SENTENCE_TOKENS or chars >= MAX_SENTENCE_CHARS:
                finished.append(sentence)
                sentence, chars = Segmented([], [], {}, False), 0
        if window.last and sentence.forms:
            finished.append(sentence)
            sentence, chars = Segmented([], [], {}, False), 0
        self.sentence, self.chars = sentence, chars
        return finished


def _first_piece(token: str) -> int:
    """The length of the first piece of a token longer than ``MAX_TOKEN_CHARS``: up to its last
    grapheme-cluster boundary within that length, or else its first cluster whole, up to
    ``MAX_CLUSTER_CHARS``; ``len(token)`` when the token is one cluster (so far)."""
    inside = set(glued(token[: MAX_CLUSTER_CHARS + 1]))
    cut = MAX_TOKEN_CHARS
    while cut and cut - 1 in inside:
        cut -= 1
    if cut:
        return cut
    cut = MAX_TOKEN_CHARS + 1
    while cut - 1 in inside:
        cut += 1
    return min(cut, MAX_CLUSTER_CHARS, len(token))


def _cut_long(forms: list[str], labels: list[int], spaces: list[bool]) -> tuple[list[str], list[int], list[bool]]:
    """Tokens longer than ``MAX_TOKEN_CHARS`` cut into pieces (``_first_piece``; the last one
    keeps the token's label and the whitespace after it)."""
    cut: tuple[list[str], list[int], list[bool]] = ([], [], [])
    for form, label, space in zip(forms, labels, spaces):
        pieces = []
        while len(form) > MAX_TOKEN_CHARS and (size := _first_piece(form)) < len(form):
            pieces.append(form[:size])
            form = form[size:]
        pieces.append(form)
        cut[0].extend(pieces)
        cut[1].extend([INSIDE] * (len(pieces) - 1) + [label])
        cut[2].extend([False] * (len(pieces) - 1) + [space])
    return cut


def segmented(segmenter: Segmenter | None, chunks: Iterable[str], batch_size: int = 64) -> Iterator[Segmented]:
    """Raw text (any chunking: a string, a file's blocks) -> sentences of tokens, in order.

    Paragraphs are separated by blank lines and always end a sentence; inside a paragraph a
    line break is a space. Without a segmenter, tokens and sentences follow Unicode
    categories (``rawtext.rule_labels``). Each sentence's ``sentence().joined()`` is its text.
    """
    windows = text_windows(chunks, WINDOW, CONTEXT)
    if segmenter is None:
        labelled: Iterable[tuple[Window, Events]] = ((w, events(w.core, rule_labels(w))) for w in windows)
    else:
        segmenter.net.eval()
        labelled = _labelled(segmenter, windows, batch_size)
    assembler = _Assembler(segmenter.lexicon if segmenter is not None else None)
    for window, labels in labelled:
        yield from assembler.add(window, labels)


def segment(segmenter: Segmenter | None, chunks: Iterable[str], batch_size: int = 64) -> Iterator[TreebankSentence]:
    """``segmented`` as ``TreebankSentence``s."""
    return (found.sentence() for found in segmented(segmenter, chunks, batch_size))


def wanted(config: Config, sentences: Sequence[TreebankSentence] | None) -> bool:
    """Whether to train a segmenter: ``tokenizer.mode`` on, or auto and every sentence has ``# text``."""
    mode = config.tokenizer.mode
    if mode == "off":
        return False
    if config.data.format != "conllu":
        if mode == "on":
            raise ConfigError("tokenizer.mode: on needs data.format conllu (raw text comes from # text)")
        return False
    return mode == "on" or bool(sentences) and all(s.text is not None for s in sentences)


def _stream(sentences: Sequence[TreebankSentence], table: CharTable) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The training text, paragraphs joined by a space: character ids, category ids, labels (N,)."""
    texts, labels = [], []
    for text, paragraph_labels in labelled_paragraphs(sentences):
        texts.append(text + " ")
        labels.extend(paragraph_labels + [INSIDE])
    chars, classes = table.encode("".join(texts))
    return chars, classes, torch.tensor(labels, dtype=torch.long)


def dev_scores(segmenter: Segmenter, gold: Sequence[TreebankSentence]) -> dict[str, float]:
    """Tokens and Sentences F1 (CoNLL 2018) of segmenting ``gold``'s raw text, in percent."""
    system = list(segment(segmenter, [raw_text(gold)]))
    scores = conll18_evaluate(gold, system)
    return {"tokens_f1": round(100 * scores["Tokens"].f1, 2), "sentences_f1": round(100 * scores["Sentences"].f1, 2),
            "words_f1": round(100 * scores["Words"].f1, 2)}


ProgressHook = Callable[[int, int], Callable[[float | None], None]]
"""``progress(epoch, batches)`` -> a callback called with the mean loss after each batch, and
with None when the epoch's batches are done and the dev evaluation starts."""


def batches_per_pass(characters: int, config: TokenizerConfig) -> int:
    """The batches of one pass over ``characters`` of training text (``_pass`` makes about this many)."""
    return -(-max(1, (characters - config.window) // config.window) // config.batch_size)


def passes_per_epoch(batches: int, config: TokenizerConfig) -> int:
    """Whole passes over the training text per epoch, so that ``config.epochs`` epochs make at
    least ``config.min_updates`` updates: 1 on a corpus of that many batches per epoch or more."""
    return max(1, -(-config.min_updates // (config.epochs * batches)))


def _pass(net: SegmenterNet, optimizer: torch.optim.Optimizer, data: tuple[torch.Tensor, ...], config: TokenizerConfig,
          rng: random.Random, step: Callable[[float], None], limit: int | None) -> tuple[float, int]:
    """One pass over the training text in windows of ``config.window`` characters (at most
    ``limit`` batches); the summed loss (times windows) and the number of windows."""
    chars, classes, labels = data
    size = config.window
    offset = rng.randrange(size)
    starts = list(range(offset, len(chars) - size + 1, size)) or [0]
    rng.shuffle(starts)
    if limit is not None:
        starts = starts[: limit * config.batch_size]
    net.train()
    total = 0.0
    for first in range(0, len(starts), config.batch_size):
        index = torch.tensor(starts[first : first + config.batch_size]).unsqueeze(1) + torch.arange(min(size, len(chars)))
        batch_chars = chars[index].masked_fill(torch.rand(index.shape) < config.char_dropout, _UNK)
        lengths = torch.full((index.size(0),), index.size(1), dtype=torch.long)
        scores = net(batch_chars, classes[index], lengths)
        loss = nn.functional.cross_entropy(scores.flatten(0, 1), labels[index].flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        optimizer.step()
        total += loss.item() * index.size(0)
        step(total / (first + index.size(0)))
    return total, len(starts)


def _epoch(net: SegmenterNet, optimizer: torch.optim.Optimizer, data: tuple[torch.Tensor, ...], config: TokenizerConfig,
           rng: random.Random, step: Callable[[float], None], passes: int, limit: int | None) -> tuple[float, int]:
    """``passes`` passes over the training text, at most ``limit`` updates in all; the mean loss and the updates made."""
    total, windows, updates = 0.0, 0, 0
    for _ in range(passes):
        left = None if limit is None else limit - updates
        if left is not None and left <= 0:
            break
        loss, count = _pass(net, optimizer, data, config, rng, step, left)  # the bar shows this pass's mean loss
        total, windows, updates = total + loss, windows + count, updates + -(-count // config.batch_size)
    return total / max(1, windows), updates


def train_segmenter(config: Config, say: Callable[[str], None], progress: ProgressHook | None = None) -> Segmenter | None:
    """Train the segmenter of ``config.tokenizer`` on ``data.train`` (best epoch by dev Tokens +
    Sentences F1), or return None when the config or the data asks for none.

    ``say`` gets one line per epoch; ``progress(epoch, batches)`` may return a per-batch callback
    (see ``ProgressHook``). The segmenter's ``scores`` hold its best epoch's dev scores and what its
    training cost: seconds, updates and the peak resident memory of this process.
    """
    started = time.perf_counter()
    train_sentences = read_treebank(config.data.train) if config.data.format == "conllu" else None
    if not wanted(config, train_sentences):
        return None
    assert train_sentences is not None
    dev = read_treebank(config.data.dev)
    settings = config.tokenizer
    torch.manual_seed(config.train.seed)
    table = CharTable.build(paragraph_texts(train_sentences))
    try:
        planned_shapes(settings, len(table.itos))  # before the network is built, as when it is loaded
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    segmenter = Segmenter(settings, SegmenterNet(settings, len(table.itos)), table, words_only(Lexicon.learn(train_sentences)))
    with_spaces = tokens_with_spaces(train_sentences)
    segmenter.allow_spaces = with_spaces > 0
    data = _stream(train_sentences, table)
    del train_sentences  # the stream, the table and the lexicon hold what training needs
    say(f"tokenizer: {len(data[0]):,} training characters, {len(table.itos)} characters known, "
        f"{len(segmenter.lexicon.entries)} multiword tokens; {sum(p.numel() for p in segmenter.net.parameters()):,} parameters")
    if with_spaces:
        say(f"tokenizer: {with_spaces:,} training tokens contain a space: a space may be inside a token")
    best, updates = _train_epochs(segmenter, data, dev, config, say, progress)
    segmenter.net.load_state_dict(best[0])
    segmenter.net.eval()
    segmenter.scores = {"dev_" + k if k != "epoch" else "best_epoch": v for k, v in best[1].items()}
    segmenter.scores.update(updates=updates, train_seconds=round(time.perf_counter() - started, 1), peak_rss_mb=peak_rss_mb())
    return segmenter


def _train_epochs(
    segmenter: Segmenter, data: tuple[torch.Tensor, ...], dev: Sequence[TreebankSentence], config: Config,
    say: Callable[[str], None], progress: ProgressHook | None,
) -> tuple[tuple[dict[str, torch.Tensor], dict[str, Any]], int]:
    """The epochs of ``train_segmenter``: the best epoch's weights and scores, and the updates made."""
    settings = config.tokenizer
    rng = random.Random(config.train.seed)
    optimizer = torch.optim.Adam(segmenter.net.parameters(), lr=settings.lr)
    batches = batches_per_pass(len(data[0]), settings)
    passes = passes_per_epoch(batches, settings)
    if passes > 1:
        say(f"tokenizer: {passes} passes over the training text per epoch, to make {settings.min_updates:,} updates "
            f"(tokenizer.min_updates) in {settings.epochs} epochs")
    best, best_key, stale, updates = None, -1.0, 0, 0
    for epoch in range(1, settings.epochs + 1):
        started = time.perf_counter()
        limit = settings.max_updates - updates if settings.max_updates else None
        step = progress(epoch, min(passes * batches, limit or passes * batches)) if progress is not None else None
        set_epoch_lr(optimizer, settings.lr, settings.lr_decay, epoch)
        loss, made = _epoch(segmenter.net, optimizer, data, settings, rng, step or (lambda loss: None), passes, limit)
        updates += made
        if step is not None:
            step(None)  # evaluating on dev
        scores = dev_scores(segmenter, dev)
        key = scores["tokens_f1"] + scores["sentences_f1"]
        improved = key > best_key
        if improved:
            best, best_key, stale = (deepcopy(segmenter.net.state_dict()), {"epoch": epoch, **scores}), key, 0
        else:
            stale += 1
        say(f"tokenizer epoch {epoch:3d}  loss {loss:.4f}  dev tokens {scores['tokens_f1']:6.2f}  "
            f"sentences {scores['sentences_f1']:6.2f}  {time.perf_counter() - started:6.1f} s" + ("  *best" if improved else ""))
        if settings.max_updates and updates >= settings.max_updates:
            say(f"tokenizer: stopped at {updates:,} updates (tokenizer.max_updates)")
            break
        if settings.patience and stale >= settings.patience and updates >= settings.min_updates:
            say(f"tokenizer early stop: no dev improvement for {stale} epochs")
            break
    assert best is not None
    return best, updates


def peak_rss_mb() -> float | None:
    """The peak resident memory of this process so far, in MB (None where the system does not say)."""
    try:
        import resource
    except ImportError:  # not on Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1 << 20 if sys.platform == "darwin" else 1 << 10), 1)  # macOS: bytes, Linux: KiB


def training_phase(
    config: Config, resumed: Segmenter | None, say: Callable[[str], None], console: Console, show_progress: bool
) -> Segmenter | None:
    """The segmenter phase of ``lstm-tag train``: the segmenter of the run being resumed, or a
    newly trained one (with a progress bar when ``show_progress``), or None."""
    if resumed is not None:
        say(f"tokenizer: kept from the run being resumed (dev tokens {resumed.scores.get('dev_tokens_f1')}, "
            f"sentences {resumed.scores.get('dev_sentences_f1')})")
        return resumed
    columns = (TextColumn("tokenizer epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("loss {task.fields[loss]:.4f}"), TextColumn("{task.fields[doing]}"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True, disable=not show_progress) as bar:

        def progress(epoch: int, batches: int) -> Callable[[float | None], None]:
            for task_id in list(bar.task_ids):
                bar.remove_task(task_id)
            task = bar.add_task("tokenizer", total=batches, epoch=epoch, loss=0.0, doing="")

            def step(loss: float | None) -> None:
                if loss is None:
                    bar.update(task, doing="evaluating on dev")
                else:
                    bar.update(task, advance=1, loss=loss)

            return step

        try:
            return train_segmenter(config, say, progress)
        except KeyboardInterrupt:
            raise UserError("interrupted while training the tokenizer: no checkpoint was written") from None
