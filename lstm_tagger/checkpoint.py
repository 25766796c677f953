"""One self-describing checkpoint file: weights + config + vocabularies + format version.

The file is a safetensors file: a JSON header and raw tensor bytes, no pickle, so
loading it cannot execute code. The header's ``__metadata__`` holds (as JSON strings)
the format name and version, the resolved training config, the vocabularies (words,
tags and, with a character encoder, characters) and the
metrics at the time of saving; ``predict`` and ``eval`` need nothing else.
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

from .config import Config
from .errors import CheckpointError, UserError
from .files import atomic_write_bytes, read_bytes
from .model import FAMILY, Tagger
from .vocab import Vocab, WordVocab

FORMAT = "lstm-tag"
FORMAT_VERSION = 1
BEST = "model-best.safetensors"
LAST = "model-last.safetensors"
TRAIN_PREFIX = "train_state."


@dataclass
class Checkpoint:
    """A loaded tagger with everything needed to use it."""

    model: Tagger
    config: Config
    words: WordVocab
    tags: Vocab
    metrics: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    chars: Vocab | None = None
    """The character vocabulary, for models with a character encoder."""
    train_state: dict[str, Any] | None = None
    """Where training stopped (last checkpoints only): JSON-ready loop state, see ``train.LoopState``."""
    train_tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    """Tensors of the training state: RNG state, momentum buffers."""


def describe(checkpoint: Checkpoint) -> dict[str, str]:
    """What a file needs besides the weights to tag with them, as JSON strings: the config,
    the vocabularies (words, tags, characters if any) and the metrics. Shared with ``export``."""
    described = {
        "config": json.dumps(checkpoint.config.to_dict()),
        "words": json.dumps(checkpoint.words.to_dict()),
        "tags": json.dumps(checkpoint.tags.to_dict()),
        "metrics": json.dumps(checkpoint.metrics),
    }
    if checkpoint.chars is not None:
        described["chars"] = json.dumps(checkpoint.chars.to_dict())
    return described


def save_checkpoint(path: str | Path, checkpoint: Checkpoint) -> None:
    """Write ``checkpoint`` atomically to ``path``."""
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in checkpoint.model.state_dict().items()}
    tensors.update({TRAIN_PREFIX + name: t.detach().to("cpu").contiguous() for name, t in checkpoint.train_tensors.items()})
    metadata = {"format": FORMAT, "format_version": str(FORMAT_VERSION), **describe(checkpoint)}
    if checkpoint.train_state is not None:
        metadata["train_state"] = json.dumps(checkpoint.train_state)
    atomic_write_bytes(path, save_tensors(tensors, metadata=metadata))


def _read_metadata(data: bytes, path: Path) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors header (8-byte little-endian size, then JSON)."""
    if len(data) < 8:
        raise CheckpointError(f"{path}: not an lstm-tag checkpoint (file too short)")
    (size,) = struct.unpack("<Q", data[:8])
    if size > len(data) - 8:
        raise CheckpointError(f"{path}: not an lstm-tag checkpoint (truncated or foreign file)")
    try:
        header = json.loads(data[8 : 8 + size].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError(f"{path}: not an lstm-tag checkpoint (unreadable header)") from None
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an lstm-tag checkpoint (no lstm-tag metadata)")
    return metadata


@dataclass
class Description:
    """What ``describe`` wrote, read back: the config and the vocabularies (and the metrics)."""

    config: Config
    words: WordVocab
    tags: Vocab
    chars: Vocab | None
    metrics: dict[str, Any]


def read_description(
    meta: dict[str, str], path: Path, what: str = "checkpoint", version: int = FORMAT_VERSION, error: type = CheckpointError
) -> Description:
    """Check ``meta``'s format version (at most ``version``) and read what ``describe`` wrote;
    every way it can be wrong is an ``error`` naming ``path`` and ``what`` was read (shared with ``export``)."""
    try:
        found = int(meta["format_version"])
    except (KeyError, ValueError):
        raise error(f"{path}: {what} has no valid format_version") from None
    if found > version:
        noun = "checkpoint" if what == "checkpoint" else "export"
        raise error(f"{path}: {noun} format {found} is newer than this lstm-tag reads ({version}); upgrade lstm-tag")
    try:
        return Description(
            config=Config.model_validate(json.loads(meta["config"])),
            words=WordVocab.from_dict(json.loads(meta["words"])),
            tags=Vocab.from_dict(json.loads(meta["tags"])),
            chars=Vocab.from_dict(json.loads(meta["chars"])) if "chars" in meta else None,
            metrics=json.loads(meta.get("metrics", "{}")),
        )
    except (KeyError, TypeError, ValueError, ValidationError) as exc:
        raise error(f"{path}: {what} metadata is damaged ({type(exc).__name__})") from None


def load_checkpoint(path: str | Path, device: str = "cpu", cell: str | None = None) -> Checkpoint:
    """Load a checkpoint file; every way it can be wrong is a ``CheckpointError``.

    ``cell`` serves the weights with another cell of the same family (``hand_lstm`` ->
    ``lstm`` for PyTorch's fast kernel, or back): the parameters are the same.
    """
    path = Path(path)
    data = read_bytes(path, CheckpointError, "checkpoint")
    meta = _read_metadata(data, path)
    described = read_description(meta, path)
    config, words, tags, chars = described.config, described.words, described.tags, described.chars
    try:
        train_state = json.loads(meta["train_state"]) if "train_state" in meta else None
    except ValueError as exc:
        raise CheckpointError(f"{path}: checkpoint metadata is damaged ({type(exc).__name__})") from None
    if cell is not None and cell != config.model.cell:
        if cell not in FAMILY or FAMILY[cell] != FAMILY[config.model.cell]:
            raise CheckpointError(f"{path}: the model's cell is {config.model.cell}; only a cell of the same family can serve it, not {cell}")
        config = config.model_copy(update={"model": config.model.model_copy(update={"cell": cell})})
    try:
        tensors = load_tensors(data)
    except Exception as exc:  # safetensors raises its own error type for every kind of damage
        raise CheckpointError(f"{path}: checkpoint weights are unreadable ({exc})") from None
    train_tensors = {name[len(TRAIN_PREFIX) :]: t for name, t in tensors.items() if name.startswith(TRAIN_PREFIX)}
    tensors = {name: t for name, t in tensors.items() if not name.startswith(TRAIN_PREFIX)}
    try:
        model = Tagger(config.model, len(words), len(tags), len(chars) if chars is not None else 0)
        model.load_state_dict(tensors, strict=True)
    except (RuntimeError, ValueError):
        raise CheckpointError(
            f"{path}: weights do not match the hyper-parameters and vocabulary sizes stored with them"
        ) from None
    model.to(device).eval()
    return Checkpoint(
        model=model, config=config, words=words, tags=tags, metrics=described.metrics, path=path, chars=chars,
        train_state=train_state, train_tensors=train_tensors,
    )


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
