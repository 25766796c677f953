"""Character-level word representations: a CNN or a BiLSTM over the characters of each word.

A word never seen in training still has characters: suffixes ("-ly", "-tion", "-ed"),
capitals, digits, hyphens. The character encoder turns each word *form* into a vector
that is concatenated with its word embedding (Ling et al. 2015; Plank et al. 2016;
Ma and Hovy 2016).

Work is done once per distinct form in a batch, not per token: a batch of B sentences
becomes a table of its U distinct forms (U, L) and, for each token, the row of its form
(B, T). Forms longer than ``MAX_WORD_CHARS`` keep their first and last
``MAX_WORD_CHARS // 2`` characters (prefix and suffix carry the signal; URLs and long
numbers would otherwise dominate the batch's length).
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from functools import partial
from typing import Iterable, Sequence

import torch
from torch import nn

from lstm_tagger.model.cells import fused_direction, length_mask, run_layers
from lstm_tagger.corpus.reader import padded_rows
from lstm_tagger.corpus.vocab import PAD, PAD_ID, UNK, UNK_ID, Vocab
from lstm_tagger.limits import ENCODE_FORMS, FORM_CACHE_FORMS

MAX_WORD_CHARS = 30


def build_char_vocab(sentences: Iterable[Sequence[str]]) -> Vocab:
    """``<pad>`` = 0, ``<unk>`` = 1, then every character of the training words, most frequent first."""
    counts = Counter(char for words in sentences for word in words for char in word)
    kept = sorted((c for c in counts if c not in (PAD, UNK)), key=lambda c: (-counts[c], c))
    return Vocab([PAD, UNK, *kept], unk=UNK_ID)


def _clip(form: str) -> str:
    if len(form) <= MAX_WORD_CHARS:
        return form
    half = MAX_WORD_CHARS // 2
    return form[:half] + form[-half:]


@dataclass
class CharBatch:
    """The characters of one batch of sentences.

    index:   (B, T) int64, for each token the row of its form in ``forms`` (0 at padding)
    forms:   (U, L) int64 character ids of the batch's distinct forms, ``<pad>`` beyond each length
    lengths: (U,)   int64 characters per form, all >= 1, on the CPU
    """

    index: torch.Tensor
    forms: torch.Tensor
    lengths: torch.Tensor

    def to(self, device: torch.device | str) -> "CharBatch":
        return CharBatch(self.index.to(device), self.forms.to(device), self.lengths)


def char_ids(chars: Vocab, forms: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """The character ids of ``forms`` behind the padding form: (1 + U, L) int64, row 0 one ``<pad>``
    and row r the (clipped) form r - 1 with ``<pad>`` beyond its length, and the (1 + U,) lengths."""
    clipped = [_clip(form) for form in forms]
    lengths = torch.tensor([1, *(len(f) for f in clipped)], dtype=torch.long)
    table = torch.full((len(clipped) + 1, int(lengths.max())), PAD_ID, dtype=torch.long)
    stoi, unk = chars.stoi, UNK_ID
    flat = [stoi.get(c, unk) for form in clipped for c in form]
    if flat:  # row-major order of the mask is the order of the forms' characters
        table[1:][length_mask(lengths[1:], table.size(1))] = torch.tensor(flat, dtype=torch.long)
    return table, lengths


class FormTable:
    """The distinct word forms of a set of sentences, and each sentence as form ids.

    ``strings[r - 1]`` is form r; row 0 is the padding form (one ``<pad>`` character), so
    padded positions have a row too. Its character ids (``forms``, ``lengths``) are built when
    first asked for: tagging with a ``FormCache`` needs only the strings it has not seen.
    Built once for the training set, and once per chunk of text when tagging.
    """

    def __init__(self, chars: Vocab, sentences: Iterable[Sequence[str]]):
        sentences = sentences if isinstance(sentences, Sequence) else list(sentences)
        tokens = [word for words in sentences for word in words]
        self.chars = chars
        self.strings = list(dict.fromkeys(tokens))  # in order of first use
        rows = {form: row for row, form in enumerate(self.strings, start=1)}
        self._flat = torch.tensor(list(map(rows.__getitem__, tokens)), dtype=torch.long)  # (N,) each token's form id
        self._counts = torch.tensor(list(map(len, sentences)), dtype=torch.long)  # (S,) tokens per sentence
        self._starts = torch.cumsum(self._counts, 0) - self._counts  # (S,)
        self._ids: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def forms(self) -> torch.Tensor:
        """(1 + U, L) int64 character ids of every form (``char_ids``)."""
        return self._char_ids()[0]

    @property
    def lengths(self) -> torch.Tensor:
        """(1 + U,) int64 characters per form."""
        return self._char_ids()[1]

    def _char_ids(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._ids is None:
            self._ids = char_ids(self.chars, self.strings)
        return self._ids

    def rows(self, sentence_ids: Sequence[int]) -> torch.Tensor:
        """(B, T) int64: the form ids of the given sentences (positions of this table), 0 beyond each length."""
        index = torch.as_tensor(sentence_ids, dtype=torch.long)
        return padded_rows(self._flat, self._starts[index], self._counts[index], 0)

    def char_batch(self, rows: torch.Tensor) -> CharBatch:
        """The ``CharBatch`` of form ids ``rows`` (B, T): its distinct forms only."""
        distinct, index = torch.unique(rows, return_inverse=True)
        lengths = self.lengths[distinct]
        return CharBatch(index, self.forms[distinct, : int(lengths.max())], lengths)

    def batch(self, sentence_ids: Sequence[int]) -> CharBatch:
        """The ``CharBatch`` of the given sentences (positions of this table), padded to the longest."""
        return self.char_batch(self.rows(sentence_ids))


class CharEncoder(nn.Module):
    """Character ids of U forms -> one vector per form.

    ``cnn``: character embeddings -> Conv1d (width 3) -> max over the form's characters -> tanh;
    output ``hidden`` wide. ``lstm``: character embeddings -> BiLSTM -> the final states of
    both directions concatenated; output ``2 * hidden`` wide.
    """

    def __init__(self, kind: str, num_chars: int, char_dim: int, hidden: int, dropout: float):
        super().__init__()
        self.kind = kind
        self.embedding = nn.Embedding(num_chars, char_dim, padding_idx=PAD_ID)
        if kind == "cnn":
            self.conv = nn.Conv1d(char_dim, hidden, kernel_size=3, padding=1)
            self.output_dim = hidden
        elif kind == "lstm":
            self.rnn = nn.LSTM(char_dim, hidden, batch_first=True, bidirectional=True)
            self.output_dim = 2 * hidden
        else:
            raise ValueError(f"unknown character encoder {kind!r}")
        self.dropout = nn.Dropout(dropout)

    def forward(self, chars: CharBatch) -> torch.Tensor:
        """-> (B, T, output_dim): each token's form vector (padding positions get the padding form's)."""
        return self.dropout(self.encode(chars.forms, chars.lengths)[chars.index])

    def encode(self, forms: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """forms (U, L) int64 character ids, lengths (U,) int64 on the CPU -> (U, output_dim), one
        vector per form, no dropout. A row's vector depends on its characters only."""
        embedded = self.embedding(forms)  # (U, L, char_dim)
        if self.kind == "cnn":
            features = self.conv(embedded.transpose(1, 2))  # (U, hidden, L)
            beyond = ~length_mask(lengths.to(features.device), forms.size(1))  # (U, L)
            features = features.masked_fill(beyond[:, None, :], float("-inf"))
            return torch.tanh(features.max(dim=2).values)
        if torch.jit.is_tracing():  # the exporters: one group, no size read from the data
            return self._final_states(embedded, lengths)
        groups = length_groups(lengths)
        parts = [self._final_states(embedded[rows], lengths[rows]) for rows in groups]
        order = torch.cat(groups).to(embedded.device)
        return torch.cat(parts).index_select(0, torch.argsort(order))  # back to the forms' order

    def _final_states(self, embedded: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The BiLSTM over U forms: embedded (U, L, char_dim), lengths (U,) -> (U, 2H), the forward
        direction's state at each form's last character beside the backward one's at its first."""
        hidden = self.rnn.hidden_size
        states = run_layers(partial(fused_direction, self.rnn), embedded, lengths, 1, True, hidden, nn.Identity())
        last = (lengths - 1).to(states.device)  # states (U, L, 2H)
        forward_final = states[torch.arange(states.size(0), device=states.device), last, :hidden]
        return torch.cat([forward_final, states[:, 0, hidden:]], dim=-1)


class FormCache:
    """Tagging's memory of the character encoder's output: each form's vector, computed once.

    A form's vector depends on its characters only (``CharEncoder.encode``), and text repeats
    its forms (Zipf), so across the chunks of a file the encoder runs on forms it has not seen
    yet, not on every batch's distinct forms. At most ``capacity`` forms are kept (a chunk's
    own forms always fit, so one chunk with more grows the table to them): past that the
    cache starts afresh, so memory stays flat in the input's size. New forms are encoded
    ``ENCODE_FORMS`` at a time (``limits.py``). For an encoder in eval
    mode, under ``torch.inference_mode``; one lock makes it safe for several tagging threads.
    """

    def __init__(self, encoder: CharEncoder, capacity: int = FORM_CACHE_FORMS):
        self.encoder, self.capacity = encoder, capacity
        self._rows: dict[str, int] = {}
        self._lock = threading.Lock()
        self._table: torch.Tensor | None = None  # (rows, output_dim): row 0 the padding form's vector

    def vectors(self, table: FormTable) -> torch.Tensor:
        """(1 + U, output_dim): the vector of each form of ``table``, row 0 the padding form's.
        Every table given to one cache must use the same character vocabulary (the model's)."""
        with self._lock:
            missing = [form for form in table.strings if form not in self._rows]
            if len(self._rows) + len(missing) > self.capacity:
                self._rows.clear()
                missing = table.strings
            first = 1 + len(self._rows)  # the row of the first missing form
            if not self._rows:  # a fresh start: the padding form first
                self._store(0, self._encode(*char_ids(table.chars, [])))
            for start in range(0, len(missing), ENCODE_FORMS):  # the encoder's memory bounded by a slice's
                ids, lengths = char_ids(table.chars, missing[start : start + ENCODE_FORMS])
                self._store(first + start, self._encode(ids[1:], lengths[1:]))  # row 0 of char_ids is the padding form
            self._rows.update(zip(missing, range(first, first + len(missing))))
            rows = torch.tensor([0, *map(self._rows.__getitem__, table.strings)], dtype=torch.long)
            return self._table[rows.to(self._table.device)]

    def _encode(self, forms: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.encoder.encode(forms.to(self.encoder.embedding.weight.device), lengths)

    def _store(self, start: int, vectors: torch.Tensor) -> None:
        """Put ``vectors`` (M, output_dim) at rows ``start``.. of the table, doubling it when full."""
        end = start + vectors.size(0)
        if self._table is None or start == 0 or end > self._table.size(0):
            grown = vectors.new_empty(max(end, min(max(2 * start, 1024), self.capacity + 1)), vectors.size(1))
            if self._table is not None and start > 0:
                grown[:start] = self._table[:start]
            self._table = grown
        self._table[start:end] = vectors


LENGTH_GROUPS = (3, 6, 10)
"""Upper bounds of the form-length groups the character BiLSTM runs separately (then the rest)."""


def length_groups(lengths: torch.Tensor) -> list[torch.Tensor]:
    """lengths (U,) int64 -> the row indices of the non-empty groups of forms of lengths
    1-3, 4-6, 7-10 and 11+ characters.

    The dense recurrent kernel runs every row of a batch for as many steps as its longest
    row; most forms are short and a few (URLs, numbers) are long, so one group would spend
    most of its steps on padding. Each row's result does not depend on the group it is in.
    """
    group = torch.bucketize(lengths, torch.tensor(LENGTH_GROUPS))  # (U,): 0 for 1-3, ..., 3 for 11+
    rows = [torch.nonzero(group == g).flatten() for g in range(len(LENGTH_GROUPS) + 1)]
    return [r for r in rows if r.numel()]
