"""Shared helpers: tiny corpora and configs written into ``tmp_path``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

CLASSIC = [
    ("The dog ate the apple".split(), "DET NOUN VERB DET NOUN".split()),
    ("Everybody read that book".split(), "PRON VERB DET NOUN".split()),
]


def write_conllu(path: Path, sentences: Sequence[tuple[Sequence[str], Sequence[str]]]) -> Path:
    lines = []
    for n, (words, tags) in enumerate(sentences, start=1):
        lines.append(f"# sent_id = {n}")
        lines.append(f"# text = {' '.join(words)}")
        for i, (word, tag) in enumerate(zip(words, tags), start=1):
            lines.append(f"{i}\t{word}\t_\t{tag}\t_\t_\t_\t_\t_\t_")
        lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def tiny_config(tmp_path: Path, sentences=CLASSIC, **sections: dict[str, Any]) -> Path:
    """A config over ``sentences`` (used as train, dev and test) for a tiny, fast model."""
    corpus = write_conllu(tmp_path / "tiny.conllu", sentences)
    config = {
        "data": {"train": corpus.name, "dev": corpus.name, "test": corpus.name},
        "model": {"embedding_dim": 16, "hidden_dim": 16, "num_layers": 1, "bidirectional": True, "dropout": 0.0},
        "train": {"epochs": 40, "batch_size": 2, "lr": 0.5, "momentum": 0.9, "patience": 0, "seed": 3},
    }
    for section, values in sections.items():
        config.setdefault(section, {}).update(values)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.fixture
def classic_config(tmp_path: Path) -> Path:
    return tiny_config(tmp_path)


def rewrite_header(source: Path, target: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    """``source`` (a safetensors file) written to ``target`` with its JSON header changed in place
    by ``edit``; the tensor bytes are kept as they were. Metadata values may become any JSON."""
    data = source.read_bytes()
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    edit(header)
    text = json.dumps(header).encode("utf-8")
    target.write_bytes(len(text).to_bytes(8, "little") + text + data[8 + size :])
    return target


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A run directory of a tiny model trained for 2 epochs, shared by the whole test session (do not change it)."""
    from rich.console import Console

    from lstm_tagger import load_config, train

    folder = tmp_path_factory.mktemp("tiny-run")
    train(load_config(tiny_config(folder, train={"epochs": 2})), folder / "run", progress=False, console=Console(quiet=True))
    return folder / "run"
