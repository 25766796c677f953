"""The schema of a checkpoint's header: every field typed and checked before anything is built from it.

``checkpoint.load_checkpoint`` reads the safetensors header's ``__metadata__`` into these models
(strict pydantic: no extra key, no coercion), so a damaged or crafted header is one
``CheckpointError`` line naming the field (``short``), never a traceback or a model built from
impossible sizes. ``Described`` is shared by checkpoints and exported files.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional

import torch
from pydantic import BaseModel, ConfigDict, Field, Json, model_validator

from lstm_tagger import limits
from lstm_tagger.config import Config
from lstm_tagger.corpus.clusters import cluster_paths
from lstm_tagger.corpus.vocab import PAD, SHAPES, UNK, UNK_ID
from lstm_tagger.model.tagger import ClusterLayout, PretrainedLayout


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class VocabMeta(_Strict):
    """A ``Vocab.to_dict()``: unique strings, and ``unk`` (if any) one of their ids."""

    itos: list[str]
    unk: Optional[int] = None

    @model_validator(mode="after")
    def _consistent(self) -> "VocabMeta":
        if len(set(self.itos)) != len(self.itos):
            raise ValueError("vocabulary entries are not unique")
        if self.unk is not None and not 0 <= self.unk < len(self.itos):
            raise ValueError(f"unk id {self.unk} is outside the vocabulary of {len(self.itos)}")
        return self


class WordVocabMeta(VocabMeta):
    """A ``WordVocab.to_dict()``: ``<pad>``, ``<unk>``, the shape classes if used, then words."""

    shapes: bool
    lowercase_fallback: bool
    trained: Optional[int] = None

    @model_validator(mode="after")
    def _specials(self) -> "WordVocabMeta":
        specials = [PAD, UNK, *(SHAPES if self.shapes else ())]
        if self.itos[: len(specials)] != specials or self.unk != UNK_ID:
            raise ValueError(f"a word vocabulary starts with {', '.join(specials)} and has unk {UNK_ID}")
        if self.trained is not None and not len(specials) <= self.trained <= len(self.itos):
            raise ValueError(f"trained {self.trained} is outside the vocabulary of {len(self.itos)}")
        return self


class TagVocabMeta(VocabMeta):
    @model_validator(mode="after")
    def _tags(self) -> "TagVocabMeta":
        if not self.itos or self.unk is not None:
            raise ValueError("a tag vocabulary has at least one tag and no unk")
        return self


class PretrainedMeta(_Strict):
    """Where a model's pretrained table came from (``corpus.pretrained.Source``) and its shape: the
    rows themselves are the tensor ``embed.pretrained``, one per vocabulary word."""

    name: str = Field(min_length=1, max_length=limits.MAX_RESOURCE_TEXT)
    """a resource's name (``glove-6b-50d``) or the vectors file's name"""
    version: Optional[str] = Field(None, min_length=1, max_length=limits.MAX_RESOURCE_TEXT)
    """the resource package's version (None for a file)"""
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    """of the resource's data files (or the file), as read for training"""
    vectors: int = Field(ge=1, le=limits.MAX_PRETRAINED_ROWS)
    """how many vectors were read from it"""
    dim: int = Field(ge=1, le=limits.MAX_PRETRAINED_DIM)
    frozen: bool
    """a float16 buffer (``model.freeze_vectors``), else a fine-tuned float32 parameter"""

    def layout(self, own: torch.Tensor) -> PretrainedLayout:
        """The table's layout in a model whose vocabulary has the trainable rows ``own`` (``WordVocab.trainable_rows``)."""
        return PretrainedLayout(self.dim, self.frozen, own)


Label = Annotated[str, Field(min_length=1, max_length=limits.MAX_RESOURCE_TEXT)]


class ClusterMeta(_Strict):
    """Where a model's word clusters came from (``corpus.clusters.ClusterSource``) and their labels:
    which word is in which cluster is the tensor ``embed.clusters.word_clusters`` (1 + a label's
    position, 0: none), one per vocabulary word; the tables' rows follow from the labels."""

    name: str = Field(min_length=1, max_length=limits.MAX_RESOURCE_TEXT)
    """a resource's name (``brown-en``) or the file's name"""
    version: Optional[str] = Field(None, min_length=1, max_length=limits.MAX_RESOURCE_TEXT)
    """the resource package's version (None for a file)"""
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    """of the resource's data file (or the file), as read for training"""
    words: int = Field(ge=1, le=limits.MAX_CLUSTER_WORDS)
    """how many words with a cluster were read from it"""
    labels: list[Label] = Field(min_length=1, max_length=limits.MAX_CLUSTERS)
    """every cluster's label (a Brown cluster's: its path), in the order of the table's rows from 1"""
    dim: int = Field(ge=1, le=limits.MAX_DIMENSION)
    prefixes: list[Annotated[int, Field(gt=0, le=limits.MAX_CLUSTER_PREFIX)]]
    """the bit-string prefix lengths that have a table each (``model.cluster_prefixes``)"""

    @model_validator(mode="after")
    def _consistent(self) -> "ClusterMeta":
        if len(set(self.labels)) != len(self.labels):
            raise ValueError("the cluster labels are not unique")
        if self.prefixes and not all(set(label) <= {"0", "1"} for label in self.labels):
            raise ValueError("a cluster with prefixes has a label that is not a bit string")
        return self

    def layout(self, own: torch.Tensor) -> ClusterLayout:
        """The cluster tables' layout in a model whose vocabulary has the trainable rows ``own``."""
        paths, rows = cluster_paths(self.labels, self.prefixes)
        return ClusterLayout(self.dim, paths, rows, own)


class Described(_Strict):
    """What ``describe`` writes: shared by checkpoints and exported files (each adds its own fields)."""

    format_version: Json[int]
    config: Json[Config]
    words: Json[WordVocabMeta]
    tags: Json[TagVocabMeta]
    """the first column's vocabulary, for readers of one column"""
    columns: Optional[Json[dict[str, TagVocabMeta]]] = None
    """each tag column's vocabulary, in ``data.columns`` order (format 2; format 1 is upgraded before the check)"""
    chars: Optional[Json[VocabMeta]] = None
    metrics: Json[dict[str, Any]] = {}
    pretrained: Optional[Json[PretrainedMeta]] = None
    """the pretrained table's source (absent: none, or an older checkpoint's vectors in the embedding)"""
    clusters: Optional[Json[ClusterMeta]] = None
    """the word clusters' source and labels (format 4)"""

    @model_validator(mode="after")
    def _chars_match_config(self) -> "Described":
        if self.columns is None or list(self.columns) != self.config.data.columns:
            raise ValueError("the tag vocabularies (columns) do not match data.columns")
        if (self.chars is None) != (self.config.model.char_encoder == "none"):
            raise ValueError("a character vocabulary goes with a character encoder, and only with one")
        if self.chars is not None and self.chars.unk is None:
            raise ValueError("the character vocabulary has no unk")
        if self.pretrained is not None and self.config.model.vectors is None:
            raise ValueError("a pretrained table goes with model.vectors")
        if self.pretrained is not None and self.pretrained.frozen != self.config.model.freeze_vectors:
            raise ValueError("the pretrained table's frozen does not match model.freeze_vectors")
        model = self.config.model
        if (self.clusters is None) != (model.clusters is None):
            raise ValueError("word clusters (clusters) go with model.clusters, and only with it")
        if self.clusters is not None and (self.clusters.dim, self.clusters.prefixes) != (model.cluster_dim, model.cluster_prefixes):
            raise ValueError("the clusters' dim and prefixes do not match model.cluster_dim and model.cluster_prefixes")
        return self


class CheckpointMeta(Described):
    """The ``__metadata__`` of a checkpoint's safetensors header."""

    format: Literal["lstm-tag"]
    train_state: Optional[Json[dict[str, Any]]] = None
    segmenter: Optional[str] = None
    """the raw-text segmenter's own header (checked by ``segment.checked_header``)"""


class TensorEntry(_Strict):
    """One tensor of a safetensors header."""

    dtype: str
    shape: list[int]
    data_offsets: list[int]


def short(error: dict[str, Any]) -> str:
    """A pydantic error as ``where: what``, on one line (a key holding a line break is quoted)."""
    where = ".".join(repr(part) if isinstance(part, str) and not part.isprintable() else str(part) for part in error["loc"])
    where = where or "(top level)"
    message = str(error["msg"]).removeprefix("Value error, ")
    if not message[:2].isupper():  # "Input should be ..." -> "input should be ...", but "JSON ..." stays
        message = message[0].lower() + message[1:]
    return f"{where}: {message}"
