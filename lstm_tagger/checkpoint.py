"""One self-describing checkpoint file: weights + config + vocabularies + format version.

The file is a safetensors file: a JSON header and raw tensor bytes, no pickle, so
loading it cannot execute code. The header's ``__metadata__`` holds (as JSON strings)
the format name and version, the resolved training config, the vocabularies (words,
each tag column's tags and, with a character encoder, characters) and the
metrics at the time of saving; ``predict`` and ``eval`` need nothing else.

Format 4 adds word clusters (header key ``clusters``: the source and the cluster labels; the
tensor ``embed.clusters.word_clusters``: each vocabulary word's cluster); 3 and 2 load as they
are. Format 1 (before several tag columns) had one tag vocabulary, ``data.tag_column`` in its
config and one output layer (``output.*``, ``crf.*``); it loads as a model with that one
column (``upgrade_v1``).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from lstm_tagger.config import Config
from lstm_tagger.errors import CheckpointError, UserError, one_line
from lstm_tagger.files import atomic_write_bytes, read_bytes
from lstm_tagger.limits import check_parameters, planned_parameters
from lstm_tagger.model.tagger import FAMILY, ClusterLayout, PretrainedLayout, Tagger
from lstm_tagger.segmenter.network import PREFIX as SEGMENTER_PREFIX
from lstm_tagger.segmenter.header import SegmenterHeader
from lstm_tagger.segmenter.network import Segmenter, checked_header
from lstm_tagger.corpus.vocab import Vocab, WordVocab
from lstm_tagger.rundir import BEST
from lstm_tagger.checkpoint_schema import CheckpointMeta, ClusterMeta, Described, PretrainedMeta, TensorEntry, short

FORMAT = "lstm-tag"
FORMAT_VERSION = 4
"""4: word clusters (``clusters``) may be in the header; 3: a pretrained table (``pretrained``) and the segmenter's
learnt settings may be; 3, 2 and 1 still load."""
TRAIN_PREFIX = "train_state."


@dataclass
class Checkpoint:
    """A loaded tagger with everything needed to use it."""

    model: Tagger
    config: Config
    words: WordVocab
    vocabs: dict[str, Vocab]
    """Each tag column's vocabulary, in ``data.columns`` order."""
    metrics: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    chars: Vocab | None = None
    """The character vocabulary, for models with a character encoder."""
    train_state: dict[str, Any] | None = None
    """Where training stopped (last checkpoints only): JSON-ready loop state, see ``train.LoopState``."""
    train_tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    """Tensors of the training state: RNG state, the optimiser's state and the weight average's (``optim.training_tensors``)."""
    segmenter: Segmenter | None = None
    """The raw-text segmenter, when one was trained (tensors ``segmenter.*``, header key ``segmenter``)."""
    pretrained: "PretrainedMeta | None" = None
    """The pretrained table's source, when the model has one (tensor ``embed.pretrained``, header key ``pretrained``)."""
    clusters: "ClusterMeta | None" = None
    """The word clusters' source and labels, when the model has them (header key ``clusters``)."""

    @property
    def tags(self) -> Vocab:
        """The first column's tag vocabulary."""
        return next(iter(self.vocabs.values()))


def describe(checkpoint: Checkpoint) -> dict[str, str]:
    """What a file needs besides the weights to tag with them, as JSON strings: the config,
    the vocabularies (words, each column's tags as ``columns``, characters if any) and the metrics;
    ``tags`` repeats the first column's vocabulary for readers of one column. Shared with ``export``."""
    described = {
        "config": json.dumps(checkpoint.config.to_dict()),
        "words": json.dumps(checkpoint.words.to_dict()),
        "tags": json.dumps(checkpoint.tags.to_dict()),
        "columns": json.dumps({column: vocab.to_dict() for column, vocab in checkpoint.vocabs.items()}),
        "metrics": json.dumps(checkpoint.metrics),
    }
    if checkpoint.chars is not None:
        described["chars"] = json.dumps(checkpoint.chars.to_dict())
    if checkpoint.pretrained is not None:
        described["pretrained"] = checkpoint.pretrained.model_dump_json()
    if checkpoint.clusters is not None:
        described["clusters"] = checkpoint.clusters.model_dump_json()
    return described


def save_checkpoint(path: str | Path, checkpoint: Checkpoint) -> None:
    """Write ``checkpoint`` atomically to ``path``."""
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in checkpoint.model.state_dict().items()}
    tensors.update({TRAIN_PREFIX + name: t.detach().to("cpu").contiguous() for name, t in checkpoint.train_tensors.items()})
    metadata = {"format": FORMAT, "format_version": str(FORMAT_VERSION), **describe(checkpoint)}
    if checkpoint.train_state is not None:
        metadata["train_state"] = json.dumps(checkpoint.train_state)
    if checkpoint.segmenter is not None:
        tensors.update(checkpoint.segmenter.tensors())
        metadata["segmenter"] = checkpoint.segmenter.metadata()
    atomic_write_bytes(path, save_tensors(tensors, metadata=metadata))


def _read_header(data: bytes, path: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file (8-byte little-endian size, then JSON)."""
    if len(data) < 8:
        raise CheckpointError(f"{path}: not an lstm-tag checkpoint (file too short)")
    (size,) = struct.unpack("<Q", data[:8])
    if size > len(data) - 8:
        raise CheckpointError(f"{path}: not an lstm-tag checkpoint (truncated or foreign file)")
    try:
        header = json.loads(data[8 : 8 + size].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise CheckpointError(f"{path}: not an lstm-tag checkpoint (unreadable header)") from None
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an lstm-tag checkpoint (no lstm-tag metadata)")
    return header


def _checked_shapes(header: dict[str, Any], meta: Description, path: Path) -> tuple[PretrainedLayout | None, ClusterLayout | None]:
    """The header's weights against the model its metadata describes, built on the meta device
    (no memory): within ``model.max_parameters``, and every tensor of the right shape. Returns the
    pretrained table's layout and the clusters', if any (computed once: a row per word of a large vocabulary)."""
    try:
        stored = {
            name: tuple(TensorEntry.model_validate(entry).shape)
            for name, entry in header.items()
            if name != "__metadata__" and not name.startswith((TRAIN_PREFIX, SEGMENTER_PREFIX))
        }
        if meta.upgraded:
            stored = {_v1_name(name, meta.config.data.columns[0]): shape for name, shape in stored.items()}
    except ValidationError as exc:
        raise CheckpointError(f"{path}: weights are damaged: {short(exc.errors()[0])}") from None
    chars = len(meta.chars) if meta.chars is not None else 0
    model = meta.config.model
    sizes = {column: len(vocab) for column, vocab in meta.vocabs.items()}
    own = meta.words.trainable_rows() if meta.pretrained is not None or meta.clusters is not None else None
    layout = meta.pretrained.layout(own) if meta.pretrained is not None else None
    clusters = meta.clusters.layout(own) if meta.clusters is not None else None
    planned = planned_parameters(lambda: Tagger(model, len(meta.words), sizes, chars, pretrained=layout, clusters=clusters))
    try:
        check_parameters(planned, model.max_parameters, str(path))
    except UserError as exc:
        raise CheckpointError(str(exc)) from None
    if stored != planned:
        wrong = sorted(set(stored) ^ set(planned)) or [n for n in planned if stored[n] != planned[n]]
        raise CheckpointError(
            f"{path}: weights do not match the hyper-parameters and vocabulary sizes stored with them ({wrong[0]})"
        )
    if clusters is not None and header[WORD_CLUSTERS]["dtype"] != "I32":
        raise CheckpointError(f"{path}: weights are damaged: {WORD_CLUSTERS} is {header[WORD_CLUSTERS]['dtype']}, not I32")
    return layout, clusters


WORD_CLUSTERS = "embed.clusters.word_clusters"
"""The tensor of each vocabulary word's cluster."""


def _check_word_clusters(model: Tagger, meta: ClusterMeta, path: Path) -> None:
    """Every word's cluster is 0 (none) or the row of one of the header's labels."""
    assert model.embed.clusters is not None
    found = model.embed.clusters.word_clusters
    if len(found) and not 0 <= int(found.min()) <= int(found.max()) <= len(meta.labels):
        raise CheckpointError(f"{path}: weights are damaged: {WORD_CLUSTERS} names a cluster outside the {len(meta.labels):,} labels")


@dataclass
class Description:
    """What ``describe`` wrote, read back and checked: the config and the vocabularies (and the metrics), format 1 upgraded."""

    config: Config
    words: WordVocab
    vocabs: dict[str, Vocab]
    """Each tag column's vocabulary, in ``data.columns`` order."""
    chars: Vocab | None
    metrics: dict[str, Any]
    upgraded: bool
    """Written with one tag column (checkpoint format 1): its parameter names are format 1's."""
    fields: Described
    """Every validated field, those ``schema`` adds included (``train_state``, an export's ``inputs``)."""
    pretrained: PretrainedMeta | None = None
    clusters: ClusterMeta | None = None

    @property
    def tags(self) -> Vocab:
        """The first column's tag vocabulary."""
        return next(iter(self.vocabs.values()))


def read_description(
    meta: Any, path: Path, what: str = "checkpoint", version: int = FORMAT_VERSION, error: type[UserError] = CheckpointError,
    schema: type[Described] = CheckpointMeta,
) -> Description:
    """``meta`` (the string fields of a header) checked against ``schema`` and read: a format
    version newer than ``version`` asks for an upgrade (``what`` names the kind of file); any field of the wrong type or out of
    range is one ``error`` naming ``path``, ``what`` was read and the field. The one place where
    metadata is trusted (shared with ``export``): extend the schema."""
    found = meta.get("format_version") if isinstance(meta, dict) else None
    if isinstance(found, str) and found.isdecimal() and int(found) > version:
        raise error(f"{path}: {what} format {int(found)} is newer than this lstm-tag reads ({version}); upgrade lstm-tag")
    try:
        upgraded = isinstance(meta, dict) and "columns" not in meta  # one tag column (checkpoint format 1)
        if upgraded:
            meta = upgrade_v1(meta)
        fields = schema.model_validate(meta)
    except ValidationError as exc:
        raise error(f"{path}: {what} metadata is damaged: {short(exc.errors()[0])}") from None
    return Description(
        config=fields.config,
        words=WordVocab.from_dict(fields.words.model_dump()),
        vocabs={column: Vocab.from_dict(vocab.model_dump()) for column, vocab in (fields.columns or {}).items()},
        chars=Vocab.from_dict(fields.chars.model_dump()) if fields.chars is not None else None,
        metrics=fields.metrics,
        upgraded=upgraded,
        fields=fields,
        pretrained=fields.pretrained,
        clusters=fields.clusters,
    )


def load_checkpoint(path: str | Path, device: str = "cpu", cell: str | None = None) -> Checkpoint:
    """Load a checkpoint file; every way it can be wrong is a ``CheckpointError``.

    ``cell`` serves the weights with another cell of the same family (``hand_lstm`` ->
    ``lstm`` for PyTorch's fast kernel, or back): the parameters are the same.
    """
    path = Path(path)
    data = read_bytes(path, CheckpointError, "checkpoint")
    header = _read_header(data, path)
    described = read_description(header["__metadata__"], path)
    config, words, vocabs, chars = described.config, described.words, described.vocabs, described.chars
    layout, clusters = _checked_shapes(header, described, path)
    segmenter_header = _checked_segmenter(header, config, path)
    if cell is not None and cell != config.model.cell:
        if cell not in FAMILY or FAMILY[cell] != FAMILY[config.model.cell]:
            raise CheckpointError(f"{path}: the model's cell is {config.model.cell}; only a cell of the same family can serve it, not {cell}")
        config = config.model_copy(update={"model": config.model.model_copy(update={"cell": cell})})
    try:
        tensors = load_tensors(data)
    except Exception as exc:  # safetensors raises its own error type for every kind of damage
        raise CheckpointError(f"{path}: checkpoint weights are unreadable ({one_line(exc)})") from None
    train_tensors = {name[len(TRAIN_PREFIX) :]: t for name, t in tensors.items() if name.startswith(TRAIN_PREFIX)}
    tensors = {name: t for name, t in tensors.items() if not name.startswith(TRAIN_PREFIX)}
    if described.upgraded:
        tensors = {_v1_name(name, config.data.columns[0]): t for name, t in tensors.items()}
        train_tensors = {_v1_name(name, config.data.columns[0], "momentum."): t for name, t in train_tensors.items()}
    segmenter = _load_segmenter(path, config, segmenter_header, tensors)
    tensors = {name: t for name, t in tensors.items() if not name.startswith(SEGMENTER_PREFIX)}
    try:
        sizes = {column: len(vocab) for column, vocab in vocabs.items()}
        if list(sizes) != config.data.columns:
            raise ValueError("the tag vocabularies do not match data.columns")
        model = Tagger(
            config.model, len(words), sizes, len(chars) if chars is not None else 0, pretrained=layout, clusters=clusters
        )
        model.load_state_dict(tensors, strict=True)
    except (RuntimeError, ValueError):
        raise CheckpointError(
            f"{path}: weights do not match the hyper-parameters and vocabulary sizes stored with them"
        ) from None
    if described.clusters is not None:
        _check_word_clusters(model, described.clusters, path)
    model.to(device).eval()
    return Checkpoint(
        model=model, config=config, words=words, vocabs=vocabs, metrics=described.metrics, path=path, chars=chars,
        train_state=described.fields.train_state, train_tensors=train_tensors, segmenter=segmenter,
        pretrained=described.pretrained, clusters=described.clusters,
    )


def upgrade_v1(meta: dict[str, Any]) -> dict[str, Any]:
    """Format-1 metadata as format 2 has it: ``data.tag_column`` becomes the one entry of
    ``data.columns``, and the one tag vocabulary that column's. Damaged metadata is left as it
    is, for the schema to name what is wrong."""
    try:
        config = json.loads(meta["config"])
        data = dict(config["data"])
        column = data.pop("tag_column", "upos")
        data["columns"] = [column]
        return {**meta, "config": json.dumps({**config, "data": data}), "columns": json.dumps({column: json.loads(meta["tags"])})}
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError):
        return meta


def _v1_name(name: str, column: str, prefix: str = "") -> str:
    """A format-1 parameter name (``output.weight``, ``crf.start``) -> the one head's (``heads.upos.output.weight``)."""
    rest = name[len(prefix) :]
    if rest.startswith(("output.", "crf.")):
        return f"{prefix}heads.{column}.{rest}"
    return name


SEGMENTER_DAMAGED = "the segmenter stored in the checkpoint is damaged"


def _checked_segmenter(header: dict[str, Any], config: Config, path: Path) -> SegmenterHeader | None:
    """The segmenter's part of the header (None without one), every field checked and its network's
    sizes checked against the limits and its tensors' shapes, before anything is allocated."""
    meta = header["__metadata__"]
    if meta.get("segmenter") is None:
        return None
    try:
        shapes = {
            name[len(SEGMENTER_PREFIX) :]: tuple(TensorEntry.model_validate(entry).shape)
            for name, entry in header.items() if name.startswith(SEGMENTER_PREFIX)
        }
        return checked_header(config.tokenizer, meta["segmenter"], shapes)
    except ValidationError as exc:
        raise CheckpointError(f"{path}: {SEGMENTER_DAMAGED}: {short(exc.errors()[0])}") from None
    except ValueError as exc:
        raise CheckpointError(f"{path}: {SEGMENTER_DAMAGED}: {exc}") from None


def _load_segmenter(
    path: Path, config: Config, header: SegmenterHeader | None, tensors: dict[str, torch.Tensor]
) -> Segmenter | None:
    """The segmenter of a header that ``_checked_segmenter`` passed, with its weights (None without one)."""
    if header is None:
        return None
    try:
        return Segmenter.from_header(config.tokenizer, header, tensors)
    except (RuntimeError, ValueError):  # safetensors checked the bytes and we the shapes: a dtype torch cannot copy
        raise CheckpointError(f"{path}: {SEGMENTER_DAMAGED}: its weights cannot be read") from None


def find_checkpoint(model: str | Path | None, runs_dir: str | Path = "runs") -> Path:
    """Resolve ``--model``: a checkpoint file, a run directory (its best checkpoint), or,
    when ``None``, the best checkpoint of the most recently written run under ``runs_dir``."""
    if model is not None:
        path = Path(model)
        if path.is_dir():
            best = path / BEST
            if not best.is_file():
                raise CheckpointError(f"{path}: run directory has no {BEST}")
            return best
        if not path.exists():
            raise CheckpointError(f"{path}: checkpoint not found")
        return path
    candidates = sorted(Path(runs_dir).glob(f"*/{BEST}"), key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise CheckpointError(f"no trained model under {runs_dir}/: train one, or pass model=PATH", {"model=PATH": "--model PATH"})
    return candidates[-1]


def serving_device(wanted: str) -> str:
    """``--device`` of ``predict`` and ``eval``: ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (CUDA
    when torch finds it) -> a device string for ``load_checkpoint``; anything else is a ``UserError``."""
    if wanted == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(wanted)
    except (RuntimeError, ValueError):
        device = None
    named = {f"device={wanted!r}": f"--device {wanted}"}  # the Python argument, the command line's option
    if device is None or device.type not in ("cpu", "cuda"):
        raise UserError(f"device={wanted!r}: expected cpu, cuda, cuda:N or auto", named)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device={wanted!r}: torch finds no CUDA device (use cpu or auto)", named)
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise UserError(f"device={wanted!r}: torch finds {torch.cuda.device_count()} CUDA devices", named)
    return str(device)
