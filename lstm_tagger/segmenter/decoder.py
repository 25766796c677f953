"""The segmenter's streaming decoder: raw text -> sentences of tokens (multiword tokens
expanded into words), in bounded memory on any input.

Text is read in overlapping windows (``windows.text_windows``); the network labels each
window's characters a pool of windows at a time (or ``labels.rule_labels`` does, without a
segmenter); the ``_Assembler`` turns the labels into tokens and sentences, cutting a token or
a sentence that grows past the limits (``limits.MAX_TOKEN_CHARS`` and the like), and never
inside a grapheme cluster.
"""

from __future__ import annotations

from itertools import islice
from typing import Iterable, Iterator, Sequence

import torch

from lstm_tagger.corpus.rawtext import Segmented, TreebankSentence
from lstm_tagger.corpus.reader import bucket_order, padded_rows
from lstm_tagger.limits import MAX_CLUSTER_CHARS, MAX_SENTENCE_CHARS, MAX_SENTENCE_TOKENS, MAX_TOKEN_CHARS
from lstm_tagger.segmenter.graphemes import glued, outside_clusters
from lstm_tagger.segmenter.labels import INSIDE, MULTI, SENTENCE, SENTENCE_MULTI, rule_labels
from lstm_tagger.segmenter.lexicon import Lexicon
from lstm_tagger.segmenter.network import _PAD, Segmenter
from lstm_tagger.segmenter.windows import Window, text_windows

WINDOW, CONTEXT = 256, 48
"""Segmentation windows: labelled characters, and context characters on each side."""
SENTENCE_LABELS = [SENTENCE, SENTENCE_MULTI]
"""The labels that end a sentence, whose scores ``Segmenter.sentence_bias`` moves."""


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
    """The events of each window's core from the network's labels (argmax of its scores, those of
    the sentence ends moved by ``segmenter.sentence_bias``), a token's end inside a grapheme
    cluster left out (``graphemes.outside_clusters``), the spaces
    that may be inside a token marked when the segmenter allows them (``inner_spaces``)."""
    net, table = segmenter.net, segmenter.table
    lengths = torch.tensor([len(w.text) for w in windows], dtype=torch.long)
    if int(lengths.max()) == 0:
        return [([], []) for _ in windows]
    starts = torch.cumsum(lengths, 0) - lengths
    codes = padded_rows(table.codes("".join(w.text for w in windows)), starts, lengths, _PAD)  # (B, T)
    chars, classes = codes // table.CODE_BASE, codes % table.CODE_BASE
    with torch.inference_mode():
        scores = net(chars, classes, lengths.clamp(min=1))  # (B, T, NUM_LABELS)
        if segmenter.sentence_bias:
            scores[..., SENTENCE_LABELS] += segmenter.sentence_bias
        best = scores.argmax(-1)
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
    categories (``labels.rule_labels``). Each sentence's ``sentence().joined()`` is its text.
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


def segmented_texts(segmenter: Segmenter | None, texts: Sequence[str], batch_size: int = 64) -> list[list[Segmented]]:
    """Several texts segmented together, each as ``list(segmented(segmenter, [text]))``: the
    windows of all of them labelled in shared batches (a server's requests: one network run
    for many short texts instead of one each). The texts are held whole: for short ones."""
    windows = [list(text_windows([text], WINDOW, CONTEXT)) for text in texts]
    if segmenter is None:
        labelled: Iterator[tuple[Window, Events]] = ((w, events(w.core, rule_labels(w))) for ws in windows for w in ws)
    else:
        segmenter.net.eval()
        labelled = _labelled(segmenter, (w for ws in windows for w in ws), batch_size)
    lexicon = segmenter.lexicon if segmenter is not None else None
    return [_assembled(_Assembler(lexicon), islice(labelled, len(ws))) for ws in windows]


def _assembled(assembler: _Assembler, labelled: Iterable[tuple[Window, Events]]) -> list[Segmented]:
    return [sentence for window, found in labelled for sentence in assembler.add(window, found)]


def segment(segmenter: Segmenter | None, chunks: Iterable[str], batch_size: int = 64) -> Iterator[TreebankSentence]:
    """``segmented`` as ``TreebankSentence``s."""
    return (found.sentence() for found in segmented(segmenter, chunks, batch_size))
