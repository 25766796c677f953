"""String <-> id maps for words and tags, serialised as plain dicts.

Words: ``<pad>`` = 0 (the embedding's ``padding_idx``), ``<unk>`` = 1, optionally five
shape classes of unknown words, then the training words by falling frequency. Tags: no
pad and no unk; padded positions carry ``data.TAG_PAD`` and are ignored by the loss.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable, Mapping, Sequence

import torch

PAD = "<pad>"
UNK = "<unk>"
PAD_ID = 0
UNK_ID = 1
SHAPES = ("<unk:Aa>", "<unk:AA>", "<unk:9>", "<unk:a>", "<unk:.>")
"""Unknown-word classes: capitalised, all capitals, with a digit, lower case, no letters."""


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


def shape_of(word: str) -> str:
    """The unknown-word class of ``word`` (one of ``SHAPES``), from its capitals and digits."""
    if any(c.isdigit() for c in word):
        return "<unk:9>"
    if not any(c.isalpha() for c in word):
        return "<unk:.>"
    if word.isupper() and len(word) > 1:
        return "<unk:AA>"
    if word[0].isupper():
        return "<unk:Aa>"
    return "<unk:a>"


class WordVocab(Vocab):
    """Word ids with ``<pad>`` = 0 and ``<unk>`` = 1, and two optional ways to place an unknown word.

    ``lowercase_fallback``: an unknown word whose lower-case form is known gets that id
    ("Each" at the start of a sentence -> "each"). ``shapes``: any other unknown word gets
    the id of its shape class (``<unk:Aa>`` for "Zyzzyva", ``<unk:9>`` for "3.14") instead
    of the single ``<unk>``, so the tagger keeps the capitalisation and digit cues.
    """

    UNKNOWN_CACHE = 100_000
    """How many unknown words' ids ``encode`` remembers (then it starts over): tagging a large
    file meets the same unknown forms again and again, and placing one is the slow path."""

    def __init__(self, itos: Sequence[str], shapes: bool = False, lowercase_fallback: bool = False, trained: int | None = None):
        super().__init__(itos, unk=UNK_ID)
        self.shapes = shapes
        self.lowercase_fallback = lowercase_fallback
        self.trained = len(self.itos) if trained is None else trained
        """Entries before this came from the training data; the rest from a pretrained resource (vectors, clusters)."""
        self._unknown: dict[str, int] = {}

    def seen_in_training(self, word: str) -> bool:
        """Whether ``word`` has its own id learned from the training data (what evaluation calls known, not OOV)."""
        return self.stoi.get(word, self.trained) < self.trained

    def encode(self, items: Iterable[str]) -> torch.Tensor:
        """(N,) int64 ids of ``items``: a dictionary lookup per word, the unknown-word rules only for misses."""
        items = items if isinstance(items, Sequence) else list(items)
        get = self.stoi.get
        ids = list(map(get, items))
        if None in ids:
            cache = self._unknown
            if len(cache) > self.UNKNOWN_CACHE:
                cache.clear()
            for position, found in enumerate(ids):
                if found is None:
                    item = items[position]
                    found = cache.get(item)
                    if found is None:
                        found = cache[item] = self.index(item)
                    ids[position] = found
        return torch.tensor(ids, dtype=torch.long)

    def unknown_id(self, word: str) -> int:
        """The id ``word`` would get if it were not in the vocabulary (no lower-case fallback)."""
        return self.stoi[shape_of(word)] if self.shapes else UNK_ID

    def index(self, item: str) -> int:
        found = self.stoi.get(item)
        if found is not None:
            return found
        if self.lowercase_fallback:
            found = self.stoi.get(item.lower())
            if found is not None:
                return found
        return self.unknown_id(item)

    def trainable_rows(self) -> torch.Tensor:
        """(V,) int64: each entry's row of a trainable embedding of the ``trained`` entries: its own
        id below ``trained``, and for a word only a pretrained resource brought in, the id of its
        unknown-word class (``model.tagger.PretrainedLayout``, ``ClusterLayout``)."""
        rows = torch.arange(len(self.itos))
        if self.shapes:  # else every such word is <unk>
            rows[self.trained :] = torch.tensor([self.unknown_id(w) for w in self.itos[self.trained :]], dtype=torch.long)
        else:
            rows[self.trained :] = UNK_ID
        return rows

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "shapes": self.shapes, "lowercase_fallback": self.lowercase_fallback, "trained": self.trained}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "WordVocab":
        return cls(data["itos"], shapes=data["shapes"], lowercase_fallback=data["lowercase_fallback"], trained=data.get("trained"))


def build_word_vocab(
    sentences: Iterable[Sequence[str]],
    min_freq: int = 1,
    shapes: bool = False,
    lowercase_fallback: bool = False,
    extra: Iterable[str] = (),
) -> tuple[WordVocab, Counter[str]]:
    """``<pad>``, ``<unk>``, the shape classes (if ``shapes``), then the words seen at least
    ``min_freq`` times, most frequent first, then the ``extra`` words (those of pretrained
    vectors and word clusters) not already in, in their order. Also returns the count of every training word."""
    counts = Counter(word for words in sentences for word in words)
    specials = [PAD, UNK, *(SHAPES if shapes else ())]
    kept = sorted((w for w, c in counts.items() if c >= min_freq and w not in specials), key=lambda w: (-counts[w], w))
    seen = set(specials) | set(kept)
    added = [w for w in extra if not (w in seen or seen.add(w))]
    vocab = WordVocab([*specials, *kept, *added], shapes=shapes, lowercase_fallback=lowercase_fallback, trained=len(specials) + len(kept))
    return vocab, counts


def build_tag_vocab(sentences: Iterable[Sequence[str]]) -> Vocab:
    """Every tag of the training data, most frequent first; no pad, no unk."""
    counts = Counter(tag for tags in sentences for tag in tags)
    return Vocab(sorted(counts, key=lambda t: (-counts[t], t)), unk=None)


def build_tag_vocabs(columns: Sequence[str], sentences: Iterable[Mapping[str, Sequence[str]]]) -> dict[str, Vocab]:
    """One tag vocabulary per column (see ``build_tag_vocab``) from each sentence's ``{column: tags}``."""
    sentences = list(sentences)
    return {column: build_tag_vocab(tags[column] for tags in sentences) for column in columns}


def encode_tags(vocabs: Mapping[str, Vocab], tags: Mapping[str, Sequence[str]]) -> torch.Tensor:
    """One sentence's ``{column: tags}`` -> (T, C) int64 ids, the columns in ``vocabs`` order."""
    return torch.stack([vocab.encode(tags[column]) for column, vocab in vocabs.items()], dim=1)
