"""Shared helpers: tiny corpora and configs written into ``tmp_path``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

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
        "tokenizer": {"mode": "off"},  # tagger tests; the segmenter's tests turn it on
    }
    for section, values in sections.items():
        config.setdefault(section, {}).update(values)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.fixture
def classic_config(tmp_path: Path) -> Path:
    return tiny_config(tmp_path)
