"""String <-> id maps for words and tags, serialised as plain dicts.

Words: ``<pad>`` = 0 (the embedding's ``padding_idx``), ``<unk>`` = 1, then the training
words by falling frequency. Tags: no pad and no unk; padded positions carry
``data.TAG_PAD`` and are ignored by the loss.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable, Sequence

import torch

PAD = "<pad>"
UNK = "<unk>"
PAD_ID = 0
UNK_ID = 1


class Vocab:
    """An ordered list of strings; ``unk`` (if any) is the id of unknown strings."""

    def __init__(self, itos: Sequence[str], unk: int | None = None):
        self.itos = list(itos)
        self.stoi = {s: i for i, s in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise ValueError("vocabulary entries must be unique")
        self.unk = unk

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, item: str) -> bool:
        return item in self.stoi

    def index(self, item: str) -> int:
        """The id of ``item``; unknown items get ``unk`` or raise ``KeyError`` if there is none."""
        found = self.stoi.get(item)
        if found is not None:
            return found
        if self.unk is None:
            raise KeyError(item)
        return self.unk

    def encode(self, items: Iterable[str]) -> torch.Tensor:
        """(N,) int64 ids of ``items``."""
        return torch.tensor([self.index(s) for s in items], dtype=torch.long)

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.itos[i] for i in ids]

    def to_dict(self) -> dict[str, Any]:
        return {"itos": self.itos, "unk": self.unk}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Vocab":
        return cls(data["itos"], data["unk"])


def build_word_vocab(sentences: Iterable[Sequence[str]], min_freq: int = 1) -> Vocab:
    """``<pad>``, ``<unk>``, then words seen at least ``min_freq`` times, most frequent first."""
    counts = Counter(word for words in sentences for word in words)
    kept = sorted((w for w, c in counts.items() if c >= min_freq and w not in (PAD, UNK)), key=lambda w: (-counts[w], w))
    return Vocab([PAD, UNK, *kept], unk=UNK_ID)


def build_tag_vocab(sentences: Iterable[Sequence[str]]) -> Vocab:
    """Every tag of the training data, most frequent first; no pad, no unk."""
    counts = Counter(tag for tags in sentences for tag in tags)
    return Vocab(sorted(counts, key=lambda t: (-counts[t], t)), unk=None)
