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

from collections import Counter
from dataclasses import dataclass
from functools import partial
from typing import Iterable, Sequence

import torch
from torch import nn

from .cells import fused_direction, length_mask, run_layers
from .vocab import PAD, PAD_ID, UNK, UNK_ID, Vocab

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


class FormTable:
    """The distinct word forms of a set of sentences as character ids, and each sentence as form ids.

    Row 0 is the padding form (one ``<pad>`` character), so padded positions have a row
    too. Built once for the training set, and once per chunk of text when tagging.
    """

    def __init__(self, chars: Vocab, sentences: Iterable[Sequence[str]]):
        rows: dict[str, int] = {}
        self.sentences: list[torch.Tensor] = []
        for words in sentences:
            self.sentences.append(torch.tensor([rows.setdefault(w, len(rows) + 1) for w in words], dtype=torch.long))
        clipped = [_clip(form) for form in rows]
        self.lengths = torch.tensor([1, *(len(f) for f in clipped)], dtype=torch.long)
        self.forms = torch.full((len(clipped) + 1, int(self.lengths.max())), PAD_ID, dtype=torch.long)
        stoi, unk = chars.stoi, UNK_ID
        for row, form in enumerate(clipped, start=1):
            self.forms[row, : len(form)] = torch.tensor([stoi.get(c, unk) for c in form], dtype=torch.long)

    def batch(self, sentence_ids: Sequence[int]) -> CharBatch:
        """The ``CharBatch`` of the given sentences (positions of this table), padded to the longest."""
        rows = nn.utils.rnn.pad_sequence([self.sentences[i] for i in sentence_ids], batch_first=True, padding_value=0)
        distinct, index = torch.unique(rows, return_inverse=True)
        lengths = self.lengths[distinct]
        return CharBatch(index, self.forms[distinct, : int(lengths.max())], lengths)


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
        embedded = self.embedding(chars.forms)  # (U, L, char_dim)
        if self.kind == "cnn":
            features = self.conv(embedded.transpose(1, 2))  # (U, hidden, L)
            beyond = ~length_mask(chars.lengths.to(features.device), chars.forms.size(1))  # (U, L)
            features = features.masked_fill(beyond[:, None, :], float("-inf"))
            per_form = torch.tanh(features.max(dim=2).values)
        elif torch.jit.is_tracing():  # the exporters: one group, no size read from the data
            per_form = self._final_states(embedded, chars.lengths)
        else:
            groups = length_groups(chars.lengths)
            parts = [self._final_states(embedded[rows], chars.lengths[rows]) for rows in groups]
            order = torch.cat(groups).to(embedded.device)
            per_form = torch.cat(parts).index_select(0, torch.argsort(order))  # back to the forms' order
        return self.dropout(per_form[chars.index])

    def _final_states(self, embedded: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The BiLSTM over U forms: embedded (U, L, char_dim), lengths (U,) -> (U, 2H), the forward
        direction's state at each form's last character beside the backward one's at its first."""
        hidden = self.rnn.hidden_size
        states = run_layers(partial(fused_direction, self.rnn), embedded, lengths, 1, True, hidden, nn.Identity())
        last = (lengths - 1).to(states.device)  # states (U, L, 2H)
        forward_final = states[torch.arange(states.size(0), device=states.device), last, :hidden]
        return torch.cat([forward_final, states[:, 0, hidden:]], dim=-1)


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
