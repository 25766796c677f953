"""The tagger: word embedding [+ pretrained vectors, clusters, characters] -> recurrent encoder -> one head per tag column.

Each layer is its own module, so that a richer word representation, another recurrent
cell or another output layer replaces one piece without touching the others.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Mapping, Sequence

import torch
from torch import nn

from lstm_tagger.model.cells import HandGRU, HandLSTM, fused_direction, run_layers
from lstm_tagger.model.chars import CharBatch, CharEncoder
from lstm_tagger.config import ModelConfig
from lstm_tagger.model.crf import CRF, decode_tags
from lstm_tagger.corpus.reader import TAG_PAD
from lstm_tagger.corpus.vocab import PAD_ID
from lstm_tagger import sections
from lstm_tagger.sections import gradient_ready, section


@dataclass(frozen=True)
class PretrainedLayout:
    """A pretrained table beside the trainable embedding (``model.vectors``).

    ``dim``: the pretrained vectors' size (any: it is concatenated, not projected);
    ``frozen``: a float16 buffer that never learns, else a float32 parameter that is fine-tuned;
    ``own`` (V,) int64: for each vocabulary row its row of the trainable embedding: its own for
    the words of the training data (and the specials), the row of its unknown-word class for a
    word that only the pretrained resource has (``WordVocab.trainable_rows``).
    """

    dim: int
    frozen: bool
    own: torch.Tensor


@dataclass(frozen=True)
class ClusterLayout:
    """Word clusters beside the word embedding (``model.clusters``).

    ``dim``: the size of each cluster vector; ``paths`` (1 + L, 1 + P) int64: for "no cluster"
    (row 0) and each of the L clusters, its row of the cluster table and of each of the P prefix
    tables (``corpus.clusters.cluster_paths``); ``rows``: each table's number of rows; ``own``: as
    ``PretrainedLayout.own`` (the clusters' words join the vocabulary too).
    """

    dim: int
    paths: torch.Tensor
    rows: tuple[int, ...]
    own: torch.Tensor


class ClusterEmbedding(nn.Module):
    """Word ids -> the vectors of each word's cluster and of its prefixes, concatenated.

    ``word_clusters`` (V,) int32, a buffer stored in the checkpoint: each vocabulary word's
    cluster (1 + its label's position; 0: none), filled from the source when training starts.
    A word without a cluster gets row 0 of every table, the "unknown cluster" vectors, which learn.
    """

    def __init__(self, num_words: int, layout: ClusterLayout):
        super().__init__()
        self.register_buffer("word_clusters", torch.zeros(num_words, dtype=torch.int32))
        self.register_buffer("paths", layout.paths.clone(), persistent=False)  # from the header's labels, not stored
        self.tables = nn.ModuleList(nn.Embedding(rows, layout.dim) for rows in layout.rows)
        bound = math.sqrt(3.0 / layout.dim)  # as the word vectors (``WordEmbedding``)
        with torch.no_grad():
            for table in self.tables:
                table.weight.uniform_(-bound, bound)
        self.layout = layout
        self.output_dim = layout.dim * len(layout.rows)

    def forward(self, words: torch.Tensor) -> torch.Tensor:
        """words (B, T) int64 -> (B, T, output_dim)."""
        rows = self.paths[self.word_clusters[words].long()]  # (B, T, 1 + P)
        return torch.cat([table(rows[..., k]) for k, table in enumerate(self.tables)], dim=-1)


class WordEmbedding(nn.Module):
    """Word ids -> vectors, with ``<pad>`` as ``padding_idx``, then dropout.

    Vectors start uniform in +-sqrt(3/dim) (unit variance per vector, not per entry):
    PyTorch's default N(0, 1) saturates the LSTM gates, and SGD then learns far more
    slowly on EWT.

    With a ``PretrainedLayout`` (or a ``ClusterLayout``), the trainable embedding holds the training
    words only (and the specials): a word that only a resource has takes its unknown-word class's row
    (``own``). With a ``PretrainedLayout``, a word's vector is its trainable one (``dim``) concatenated
    with its row of the pretrained table (``pretrained``, V x ``layout.dim``, aligned with the
    vocabulary; zeros for a word the resource lacks): a word never seen in training still gets
    its pretrained vector, beside its unknown-word class's trainable one.

    With a ``ClusterLayout``, the vectors of its cluster and prefixes (``ClusterEmbedding``) are
    concatenated after those.
    """

    def __init__(
        self, num_words: int, dim: int, dropout: float, pretrained: PretrainedLayout | None = None,
        clusters: ClusterLayout | None = None,
    ):
        super().__init__()
        own = pretrained.own if pretrained is not None else clusters.own if clusters is not None else None
        if own is not None and len(own) != num_words:
            raise ValueError(f"the layout has {len(own)} rows for {num_words} words")
        rows = num_words if own is None else int(own.max()) + 1 if len(own) else 0
        self.embedding = nn.Embedding(rows, dim, padding_idx=PAD_ID)
        bound = math.sqrt(3.0 / dim)
        with torch.no_grad():
            self.embedding.weight.uniform_(-bound, bound)
            self.embedding.weight[PAD_ID].zero_()
        self.dropout = nn.Dropout(dropout)
        self.output_dim = dim
        # (V,) each word's trainable row, when words beyond the training ones joined; from the vocabulary, not stored
        self.register_buffer("own", own.clone() if own is not None else None, persistent=False)
        self.layout = pretrained
        if pretrained is not None and pretrained.frozen:
            self.register_buffer("pretrained", torch.zeros(num_words, pretrained.dim, dtype=torch.float16))
        elif pretrained is not None:  # fine-tuned: only the training words' rows ever get a gradient
            self.pretrained_tuned = nn.Parameter(torch.zeros(rows, pretrained.dim))
            self.register_buffer("pretrained_fixed", torch.zeros(num_words - rows, pretrained.dim), persistent=False)
        if pretrained is not None:
            self.output_dim += pretrained.dim
        self.clusters = ClusterEmbedding(num_words, clusters) if clusters is not None else None
        if self.clusters is not None:
            self.output_dim += self.clusters.output_dim

    def pretrained_table(self) -> torch.Tensor:
        """(V, layout.dim) the pretrained rows of every vocabulary word (a copy when fine-tuned)."""
        if self.layout.frozen:
            return self.pretrained
        return torch.cat([self.pretrained_tuned.detach(), self.pretrained_fixed])

    def set_pretrained(self, table: torch.Tensor) -> None:
        """Copy ``table`` (V, layout.dim) into the pretrained rows."""
        with torch.no_grad():
            if self.layout.frozen:
                self.pretrained.copy_(table)
            else:
                rows = self.pretrained_tuned.size(0)
                self.pretrained_tuned.copy_(table[:rows])
                self.pretrained_fixed.copy_(table[rows:])

    def _pretrained_rows(self, words: torch.Tensor) -> torch.Tensor:
        """words (B, T) -> (B, T, layout.dim). Fine-tuned, the table is held in two parts: the rows of
        the words of the training data (a parameter: the words below ``WordVocab.trained``, which come
        first) and the others (a buffer: no gradient reaches them), so that an update touches the
        training words' rows only, not the resource's 400,000 (whole, a fine-tuned GloVe table's epochs
        had taken 2.5 times a frozen one's: docs/pretrained.md)."""
        if self.layout.frozen:
            return self.pretrained[words]
        rows = self.pretrained_tuned.size(0)
        tuned = self.pretrained_tuned[words.clamp(max=rows - 1)]
        if self.pretrained_fixed.size(0) == 0:
            return tuned
        fixed = self.pretrained_fixed[(words - rows).clamp(min=0)]
        return torch.where((words < rows).unsqueeze(-1), tuned, fixed)

    def _save_to_state_dict(self, destination, prefix, keep_vars):  # type: ignore[no-untyped-def]
        """A fine-tuned table is stored whole, as ``pretrained`` (one tensor, as a frozen one)."""
        super()._save_to_state_dict(destination, prefix, keep_vars)
        if self.layout is not None and not self.layout.frozen:
            tuned = destination.pop(prefix + "pretrained_tuned")
            destination[prefix + "pretrained"] = torch.cat([tuned if keep_vars else tuned.detach(), self.pretrained_fixed])

    def _load_from_state_dict(self, state_dict, prefix, *args):  # type: ignore[no-untyped-def]
        """Undo ``_save_to_state_dict``: the stored whole table split into its two parts."""
        key = prefix + "pretrained"
        if self.layout is not None and not self.layout.frozen and key in state_dict:
            table, rows = state_dict.pop(key), self.pretrained_tuned.size(0)
            if table.shape == (rows + self.pretrained_fixed.size(0), self.layout.dim):
                state_dict[prefix + "pretrained_tuned"] = table[:rows]
                with torch.no_grad():
                    self.pretrained_fixed.copy_(table[rows:])
            else:  # whole, so that the tuned part's shape check names the tensor
                state_dict[prefix + "pretrained_tuned"] = table
        super()._load_from_state_dict(state_dict, prefix, *args)

    @property
    def cluster_layout(self) -> ClusterLayout | None:
        return self.clusters.layout if self.clusters is not None else None

    def forward(self, words: torch.Tensor) -> torch.Tensor:
        """words (B, T) int64 -> (B, T, output_dim) float."""
        own = self.embedding(words if self.own is None else self.own[words])
        if self.layout is None and self.clusters is None:
            return self.dropout(own)
        parts = [own]
        if self.layout is not None:
            parts.append(self._pretrained_rows(words).to(own.dtype))
        if self.clusters is not None:
            parts.append(self.clusters(words))
        return self.dropout(torch.cat(parts, dim=-1))


CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "hand_lstm": HandLSTM, "hand_gru": HandGRU}
"""``model.cell`` -> the recurrent module. Both kinds take the padded batch and its lengths
(``RecurrentEncoder``). Same-family cells share parameter
names and shapes, so their weights are interchangeable."""

Chars = CharBatch | torch.Tensor | None
"""A model's character input: a ``CharBatch``, (B, T, D) character vectors, or None for a word-level model."""

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


class Head(nn.Module):
    """One tag column's output layer: Linear -> log_softmax, or Linear -> CRF emissions.

    ``smoothing`` (eps, softmax only) mixes the loss with the mean over the tags of -log p;
    ``distill`` (w) mixes it with the cross-entropy against a teacher's probabilities, when given.
    """

    def __init__(self, input_dim: int, num_tags: int, crf: bool, smoothing: float = 0.0, distill: float = 0.0):
        super().__init__()
        self.output = nn.Linear(input_dim, num_tags)
        self.crf = CRF(num_tags) if crf else None
        self.smoothing = smoothing
        self.distill = distill

    def log_probs(self, scores: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """scores (B, T, K) emissions -> (B, T, K) log-probabilities (a CRF's: the marginals)."""
        if self.crf is not None:
            return self.crf.marginals(scores, lengths)
        return torch.log_softmax(scores, dim=-1)

    def loss(
        self, scores: torch.Tensor, lengths: torch.Tensor, tags: torch.Tensor, soft: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Mean negative log-likelihood per real token; tags (B, T) with ``TAG_PAD`` beyond each length.

        With ``smoothing`` eps (softmax): per real token, (1 - eps) * NLL + eps * mean over the K tags of -log p.
        With ``soft`` (B, T, K) teacher probabilities and ``distill`` w: (1 - w) * that + w * the mean
        per real token of -sum_k soft_k log p_k (p: the softmax, or a CRF's marginals).
        """
        if self.crf is not None:
            with section(sections.CRF):
                hard = self.crf.nll(scores, tags, lengths)
        else:
            hard = nn.functional.cross_entropy(
                scores.flatten(0, 1), tags.flatten(), ignore_index=TAG_PAD, label_smoothing=self.smoothing
            )  # log_softmax + nll_loss when smoothing is 0
        if soft is None or self.distill == 0:
            return hard
        cross = -(soft * self.log_probs(scores, lengths)).sum(dim=-1)  # (B, T)
        return (1 - self.distill) * hard + self.distill * cross[tags != TAG_PAD].mean()

    def predict(self, scores: torch.Tensor, lengths: torch.Tensor, probs: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """-> (B, T) best tags (argmax, or Viterbi with a CRF) and (B, T, K) log-probabilities when ``probs``."""
        return decode_tags(scores, lengths, self.crf, probs)


class Tagger(nn.Module):
    """Embedding(padding_idx=0) [+ character encoder] -> (Bi)LSTM or GRU -> one head per tag column.

    With ``model.char_encoder`` set, each token's input is its word embedding
    concatenated with its character encoding (``chars.py``). Each tag column (``upos``,
    ``xpos``, ``feats``) has its own ``Head`` over the shared encoder: a Linear layer and,
    with ``model.output: crf`` (or ``model.output_per_column``), a CRF whose emissions are
    the Linear layer's scores: training maximises the whole tag sequence's likelihood,
    tagging is Viterbi, and ``forward`` gives the marginals. ``num_tags`` maps each column
    to its number of tags, in ``data.columns`` order (an int: one ``upos`` column);
    ``loss_weights`` weighs each head's loss (default 1); ``label_smoothing`` is the softmax
    heads' eps (``Head``; a CRF head is not smoothed); ``distill_weight`` the weight w of
    teacher probabilities in every head's loss, when ``loss`` is given them (``distill.py``);
    ``adversarial`` the size of the perturbation adversarial training adds (``loss``);
    ``pretrained`` a table of pretrained vectors concatenated with the word embedding
    (``WordEmbedding``; None: none, or an older checkpoint's vectors copied into the embedding);
    ``clusters`` the word clusters' tables, whose vectors are concatenated too (``ClusterEmbedding``).
    """

    def __init__(
        self,
        config: ModelConfig,
        num_words: int,
        num_tags: Mapping[str, int] | int,
        num_chars: int = 0,
        loss_weights: Mapping[str, float] | None = None,
        label_smoothing: float = 0.0,
        distill_weight: float = 0.0,
        adversarial: float = 0.0,
        pretrained: PretrainedLayout | None = None,
        clusters: ClusterLayout | None = None,
    ):
        super().__init__()
        self.config = config
        columns = {"upos": num_tags} if isinstance(num_tags, int) else dict(num_tags)
        self.embed = WordEmbedding(num_words, config.embedding_dim, config.dropout, pretrained, clusters)
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
        self.heads = nn.ModuleDict(
            {
                column: Head(self.encoder.output_dim, size, config.output_of(column) == "crf", label_smoothing, distill_weight)
                for column, size in columns.items()
            }
        )
        self.columns = list(columns)
        self.loss_weights = [float((loss_weights or {}).get(column, 1.0)) for column in self.columns]
        self.adversarial = adversarial

    @property
    def output(self) -> nn.Linear:
        """The first column's Linear layer."""
        return self.heads[self.columns[0]].output

    @property
    def crf(self) -> CRF | None:
        """The first column's CRF, if it has one."""
        return self.heads[self.columns[0]].crf

    def inputs(self, words: torch.Tensor, chars: Chars = None) -> torch.Tensor:
        """words (B, T) int64 padded with ``<pad>`` -> (B, T, D) the encoder's input: each token's word
        vector [and character vector], after dropout.

        ``chars``: the batch's ``CharBatch``, or its tokens' character vectors (B, T, D_c) already
        computed (``chars.FormCache``, when tagging)."""
        inputs = self.embed(words)
        if self.chars is not None:
            if chars is None:
                raise ValueError("this model reads characters: pass a CharBatch")
            with section(sections.CHARS):
                vectors = self.chars.dropout(chars) if isinstance(chars, torch.Tensor) else self.chars(chars)
            inputs = torch.cat([inputs, vectors], dim=-1)
        return inputs

    def features(self, words: torch.Tensor, lengths: torch.Tensor, chars: Chars = None) -> torch.Tensor:
        """words (B, T) int64 padded with ``<pad>``, lengths (B,) int64 -> (B, T, H) encoder outputs shared by the heads."""
        return self.encoder(self.inputs(words, chars), lengths)

    def emissions(self, words: torch.Tensor, lengths: torch.Tensor, chars: Chars = None) -> torch.Tensor:
        """words (B, T), lengths (B,) -> (B, T, K) unnormalised tag scores of the first column."""
        return self.output(self.features(words, lengths, chars))

    def column_emissions(self, words: torch.Tensor, lengths: torch.Tensor, chars: Chars = None) -> list[torch.Tensor]:
        """words (B, T), lengths (B,) -> each column's (B, T, K_c) unnormalised tag scores, in ``columns`` order."""
        features = self.features(words, lengths, chars)
        return [self.heads[column].output(features) for column in self.columns]

    def forward(self, words: torch.Tensor, lengths: torch.Tensor, chars: Chars = None) -> torch.Tensor:
        """words (B, T) int64 padded with ``<pad>``, lengths (B,) int64 -> (B, T, K) log-probabilities
        of the first column.

        K is its number of tags; with a CRF, each token's marginal tag probabilities.
        Rows beyond a sentence's length are meaningless and must be masked by the caller
        (the loss ignores them through ``TAG_PAD``).
        """
        head = self.heads[self.columns[0]]
        return head.log_probs(head.output(self.features(words, lengths, chars)), lengths)

    def loss(
        self, words: torch.Tensor, lengths: torch.Tensor, tags: torch.Tensor, chars: Chars = None,
        soft: Sequence[torch.Tensor | None] | None = None,
    ) -> torch.Tensor:
        """The weighted sum over the heads of each one's mean negative log-likelihood per real token
        (NLLLoss of log_softmax, or the CRF's sequence NLL).

        tags (B, T, C) int64, one slice per column in ``columns`` order ((B, T) for one
        column), ``TAG_PAD`` beyond each length. ``soft``: per column, (B, T, K) teacher
        probabilities or None (``Head.loss``). With ``adversarial`` eps > 0, in training mode, the
        same loss of the inputs moved by eps * sqrt(T_i) along its gradient (per sentence i, of
        length T_i) is added: the worst small change of the word and character vectors, to
        which the model learns to be robust (Goodfellow et al. 2015; Yasunaga et al. 2018).
        """
        if tags.dim() == 2:
            tags = tags.unsqueeze(-1)
        soft = soft if soft is not None else [None] * len(self.columns)
        inputs = self.inputs(words, chars)  # (B, T, D)
        with section(sections.WORD_ENCODER):
            features = self.encoder(inputs, lengths)
        gradient_ready(inputs, sections.BACKWARD_WORD_ENCODER)  # the profile's split of the backward pass
        gradient_ready(features, sections.BACKWARD_HEADS)
        total = self._heads_loss(features, lengths, tags, soft)
        if self.adversarial > 0 and self.training and torch.is_grad_enabled():
            (gradient,) = torch.autograd.grad(total, inputs, retain_graph=True)  # zero beyond each length
            scale = self.adversarial * lengths.to(gradient).sqrt() / gradient.flatten(1).norm(dim=1).clamp_min(1e-12)  # (B,)
            worst = inputs + (gradient * scale[:, None, None]).detach()
            with section(sections.WORD_ENCODER):
                features = self.encoder(worst, lengths)
            total = total + self._heads_loss(features, lengths, tags, soft)
        return total

    def _heads_loss(
        self, features: torch.Tensor, lengths: torch.Tensor, tags: torch.Tensor, soft: Sequence[torch.Tensor | None]
    ) -> torch.Tensor:
        """features (B, T, H), tags (B, T, C) -> the weighted sum of the heads' losses."""
        total = features.new_zeros(())
        for c, (column, weight) in enumerate(zip(self.columns, self.loss_weights)):
            head = self.heads[column]
            total = total + weight * head.loss(head.output(features), lengths, tags[..., c], soft[c])
        return total

    def predict_columns(
        self, words: torch.Tensor, lengths: torch.Tensor, chars: Chars = None, scores: bool = False
    ) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
        """column -> ((B, T) int64 best tags, (B, T, K) log-probabilities when ``scores`` else None)."""
        features = self.features(words, lengths, chars)
        return {column: head.predict(head.output(features), lengths, scores) for column, head in self.heads.items()}

    def predict(
        self, words: torch.Tensor, lengths: torch.Tensor, chars: Chars = None, scores: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The first column's (B, T) int64 best tags (argmax per token, or Viterbi with a CRF), and
        (B, T, K) log-probabilities when ``scores`` (else None)."""
        return decode_tags(self.emissions(words, lengths, chars), lengths, self.crf, scores)


def parameter_count(model: nn.Module) -> int:
    """How many numbers a model learns (every parameter tensor's elements)."""
    return sum(p.numel() for p in model.parameters())
