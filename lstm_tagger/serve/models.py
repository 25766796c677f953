"""The models a server holds, each loaded once, by name, with its batcher.

``lstm-tag serve --model NAME=PATH`` names a model for requests (``"model": "NAME"``); a bare
PATH is named after its run directory (``runs/demo`` and ``runs/demo/model-best.safetensors``
are both ``demo``). The first model is the default.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from lstm_tagger.rundir import BEST, LAST
from lstm_tagger.errors import UserError
from lstm_tagger.serve.batching import DEFAULT_WAIT, Batcher
from lstm_tagger.tagging.pipeline import Pipeline, load

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass
class Served:
    """One model being served: its pipeline, the batcher that segments and tags for it, and the
    lock its segmenter is used under (by the batcher, and by ``inputs.from_text`` for long text)."""

    name: str
    pipeline: Pipeline
    batcher: Batcher
    segmenting: threading.Lock = field(default_factory=threading.Lock)

    @property
    def components(self) -> list[str]:
        """What UDPipe's ``/models`` lists for it: raw text is always split (by the trained
        segmenter, or by Unicode categories without one), and it tags."""
        return ["tokenizer", "tagger"]


def split_option(value: str) -> tuple[str | None, str]:
    """``--model``'s value: ``NAME=PATH`` -> (NAME, PATH); a bare path -> (None, PATH)."""
    name, sep, path = value.partition("=")
    if not sep:
        return None, value
    if not _NAME.fullmatch(name):
        raise UserError(f"--model {value}: NAME=PATH needs a NAME of letters, digits, '.', '_' and '-' (e.g. --model en={path})")
    return name, path


def default_name(path: Path) -> str:
    """A model's name from its path: a run directory's name (for its best or last checkpoint
    too), else the checkpoint file's name without its suffix."""
    path = path.resolve()
    if path.is_dir() or path.name in (BEST, LAST):
        return (path if path.is_dir() else path.parent).name
    return path.stem


def load_models(values: Sequence[str], threads: int | str | None = None, device: str = "cpu") -> dict[str, Pipeline]:
    """Load each ``--model`` value once (none: the newest run under ``runs/``), by name, in order."""
    pipelines: dict[str, Pipeline] = {}
    for value in values or [""]:
        name, path = split_option(value) if value else (None, None)
        pipeline = load(path, device=device, threads=threads)
        name = name or default_name(pipeline.path)
        if name in pipelines:
            raise UserError(f"--model: two models are named {name!r}: name them, e.g. --model a=PATH --model b=PATH")
        pipelines[name] = pipeline
    return pipelines


def serving(pipelines: Mapping[str, Pipeline], wait: float = DEFAULT_WAIT) -> dict[str, Served]:
    """Each pipeline with a running batcher (``close`` stops them)."""
    served = {}
    for name, pipeline in pipelines.items():
        lock = threading.Lock()
        served[name] = Served(name, pipeline, Batcher(pipeline, wait, name, lock), lock)
    return served


def close(served: Mapping[str, Served]) -> None:
    """Stop every batcher, once what it holds is tagged."""
    for model in served.values():
        model.batcher.close()
