"""The tagger: word embedding [+ characters] -> recurrent encoder -> Linear -> log_softmax [or CRF].

Each layer is its own module, so that a richer word representation, another recurrent
cell or another output layer replaces one piece without touching the others.
"""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import nn

from .cells import HandGRU, HandLSTM, fused_direction, run_layers
from .chars import CharBatch, CharEncoder
from .config import ModelConfig
from .crf import CRF, decode_tags
from .data import TAG_PAD
from .vocab import PAD_ID


class WordEmbedding(nn.Module):
    """Word ids -> vectors, with ``<pad>`` as ``padding_idx``, then dropout.

    Vectors start uniform in +-sqrt(3/dim) (unit variance per vector, not per entry):
    PyTorch's default N(0, 1) saturates the LSTM gates, and SGD then learns far more
    slowly on EWT.
    """

    def __init__(self, num_words: int, dim: int, dropout: float):
        super().__init__()
        self.embedding = nn.Embedding(num_words, dim, padding_idx=PAD_ID)
        bound = math.sqrt(3.0 / dim)
        with torch.no_grad():
            self.embedding.weight.uniform_(-bound, bound)
            self.embedding.weight[PAD_ID].zero_()
        self.dropout = nn.Dropout(dropout)
        self.output_dim = dim

    def forward(self, words: torch.Tensor) -> torch.Tensor:
        """words (B, T) int64 -> (B, T, output_dim) float."""
        return self.dropout(self.embedding(words))


CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "hand_lstm": HandLSTM, "hand_gru": HandGRU}
"""``model.cell`` -> the recurrent module. Both kinds take the padded batch and its lengths
(``RecurrentEncoder``). Same-family cells share parameter
names and shapes, so their weights are interchangeable."""

FAMILY = {"lstm": "lstm", "hand_lstm": "lstm", "gru": "gru", "hand_gru": "gru"}


class RecurrentEncoder(nn.Module):
    """A (Bi)LSTM or GRU over each sentence's real tokens, so padding never reaches a real token's state.

    PyTorch's cells keep their ``nn.LSTM``/``nn.GRU`` module (and so its parameter names) but
    run layer by layer and direction by direction through the fused dense kernel
    (``cells.fused_direction``), each sentence reversed within its length for the backward
    direction; the hand-written cells do the same with their own loop.
    """

    def __init__(self, cell: str, input_dim: int, hidden_dim: int, num_layers: int, bidirectional: bool, dropout: float):
        super().__init__()
        between_layers = dropout if num_layers > 1 else 0.0
        if cell in ("lstm", "gru"):
            self.rnn = CELLS[cell](
                input_dim, hidden_dim, num_layers=num_layers, bidirectional=bidirectional,
                dropout=between_layers, batch_first=True,
            )
            self.between_layers = nn.Dropout(between_layers)
        else:
            self.rnn = CELLS[cell](input_dim, hidden_dim, num_layers, bidirectional, between_layers)
        self.fused = cell in ("lstm", "gru")
        self.dropout = nn.Dropout(dropout)
        self.output_dim = hidden_dim * (2 if bidirectional else 1)

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """inputs (B, T, input_dim), lengths (B,) int64 on the CPU -> (B, T, output_dim).

        Positions beyond a sentence's length are zeros.
        """
        if not self.fused:
            return self.dropout(self.rnn(inputs, lengths))
        rnn = self.rnn
        output = run_layers(
            partial(fused_direction, rnn), inputs, lengths, rnn.num_layers, rnn.bidirectional, rnn.hidden_size,
            self.between_layers,
        )
        return self.dropout(output)


class Tagger(nn.Module):
    """Embedding(padding_idx=0) [+ character encoder] -> (Bi)LSTM or GRU -> Linear -> log_softmax or CRF.

    With ``model.char_encoder`` set, each token's input is its word embedding
    concatenated with its character encoding (``chars.py``). With ``model.output: crf``
    the Linear layer's scores are a CRF's emissions: training maximises the whole tag
    sequence's likelihood, tagging is Viterbi, and ``forward`` gives the marginals.
    """

    def __init__(self, config: ModelConfig, num_words: int, num_tags: int, num_chars: int = 0):
        super().__init__()
        self.config = config
        self.embed = WordEmbedding(num_words, config.embedding_dim, config.dropout)
        input_dim = self.embed.output_dim
        self.chars: CharEncoder | None = None
        if config.char_encoder != "none":
            if num_chars <= 2:
                raise ValueError("a character encoder needs a character vocabulary")
            self.chars = CharEncoder(config.char_encoder, num_chars, config.char_dim, config.char_hidden, config.dropout)
            input_dim += self.chars.output_dim
        self.encoder = RecurrentEncoder(
            config.cell, input_dim, config.hidden_dim, config.num_layers, config.bidirectional, config.dropout
        )
        self.output = nn.Linear(self.encoder.output_dim, num_tags)
        self.crf = CRF(num_tags) if config.output == "crf" else None

    def emissions(self, words: torch.Tensor, lengths: torch.Tensor, chars: CharBatch | None = None) -> torch.Tensor:
        """words (B, T) int64 padded with ``<pad>``, lengths (B,) int64 -> (B, T, K) unnormalised tag scores."""
        inputs = self.embed(words)
        if self.chars is not None:
            if chars is None:
                raise ValueError("this model reads characters: pass a CharBatch")
            inputs = torch.cat([inputs, self.chars(chars)], dim=-1)
        return self.output(self.encoder(inputs, lengths))

    def forward(self, words: torch.Tensor, lengths: torch.Tensor, chars: CharBatch | None = None) -> torch.Tensor:
        """words (B, T) int64 padded with ``<pad>``, lengths (B,) int64 -> (B, T, K) log-probabilities.

        K is the number of tags; with a CRF, each token's marginal tag probabilities.
        Rows beyond a sentence's length are meaningless and must be masked by the caller
        (the loss ignores them through ``TAG_PAD``).
        """
        scores = self.emissions(words, lengths, chars)
        if self.crf is not None:
            return self.crf.marginals(scores, lengths)
        return torch.log_softmax(scores, dim=-1)

    def loss(self, words: torch.Tensor, lengths: torch.Tensor, tags: torch.Tensor, chars: CharBatch | None = None) -> torch.Tensor:
        """Mean negative log-likelihood per real token: NLLLoss of log_softmax, or the CRF's sequence NLL.

        tags (B, T) int64 with ``TAG_PAD`` beyond each length.
        """
        scores = self.emissions(words, lengths, chars)
        if self.crf is not None:
            return self.crf.nll(scores, tags, lengths)
        return nn.functional.nll_loss(torch.log_softmax(scores, dim=-1).flatten(0, 1), tags.flatten(), ignore_index=TAG_PAD)

    def predict(
        self, words: torch.Tensor, lengths: torch.Tensor, chars: CharBatch | None = None, scores: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """-> (B, T) int64 best tags (argmax per token, or Viterbi with a CRF), and (B, T, K)
        log-probabilities when ``scores`` (else None)."""
        return decode_tags(self.emissions(words, lengths, chars), lengths, self.crf, scores)
