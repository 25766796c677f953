"""The segmenter's network and what a checkpoint holds of it.

A character-level BiLSTM (or GRU, from the project's recurrent family) labels every
character of a paragraph (``labels.INSIDE`` ... ``SENTENCE_MULTI``: where tokens end, where
sentences end, which tokens are multiword); a ``lexicon.Lexicon`` learned from the same
treebank gives a multiword token's words. It knows nothing of tags.

    characters (B, T) -> Embedding(chars) ++ Embedding(Unicode category) -> BiLSTM -> Linear -> (B, T, 5)

A character never seen in training keeps its Unicode category (a letter of an unseen script
is still a letter). ``Segmenter`` is what a checkpoint stores (weights, characters, lexicon,
dev scores); ``planned_shapes`` / ``checked_header`` check a stored one before anything is
allocated. Reading text is ``decoder``'s, learning ``training``'s.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import torch
from torch import nn

from lstm_tagger.config import TokenizerConfig
from lstm_tagger.limits import DEFAULT_MAX_PARAMETERS, MAX_LAYERS, count_parameters, planned_parameters
from lstm_tagger.model.tagger import RecurrentEncoder
from lstm_tagger.segmenter.header import CHAR_SPECIALS, SegmenterHeader, read_header
from lstm_tagger.segmenter.labels import NUM_LABELS, char_class
from lstm_tagger.segmenter.lexicon import Lexicon

PREFIX = "segmenter."
"""Tensor names of the segmenter inside a checkpoint file start with this."""
CLASSES = ("Cc", "Cf", "Cn", "Co", "Cs", "Ll", "Lm", "Lo", "Lt", "Lu", "Mc", "Me", "Mn", "Nd", "Nl", "No",
           "Pc", "Pd", "Pe", "Pf", "Pi", "Po", "Ps", "Sc", "Sk", "Sm", "So", "Zl", "Zp", "Zs")
CLASS_DIM = 8
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
    sentence_bias: float = 0.0
    """Added to the scores of the two sentence-end labels before the argmax: below 0, fewer
    sentence ends. Chosen on dev after training (``training.tuned_sentence_bias``)."""

    def tensors(self) -> dict[str, torch.Tensor]:
        """The weights, named ``segmenter.<name>`` for the checkpoint file."""
        return {PREFIX + k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()}

    def metadata(self) -> str:
        """Characters, lexicon and scores as one JSON string for the checkpoint header."""
        return json.dumps({"chars": self.table.itos, "lexicon": self.lexicon.to_dict(), "scores": self.scores,
                           "allow_spaces": self.allow_spaces, "sentence_bias": self.sentence_bias})

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
        return cls(config, net, table, lexicon, dict(header.scores), header.allow_spaces, header.sentence_bias)  # absent before: False, 0


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
