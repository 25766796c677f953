"""Shared helpers: tiny corpora and configs written into ``tmp_path``, trained runs shared by the
whole session, and the check of a one-line command-line error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import pytest
import torch
import yaml

from lstm_tagger import load_config, train
from lstm_tagger.segmenter import forked

ROOT = Path(__file__).resolve().parents[1]


def shared_path(*parts: str) -> Path:
    """A path in the shared folder of data and tools: ``$LSTM_TAG_SHARED`` when set, else the
    ``shared`` folder beside the checkout or beside the folder of worktrees that holds it
    (whichever exists); the tests that need it skip when it is absent."""
    if "LSTM_TAG_SHARED" in os.environ:
        return Path(os.environ["LSTM_TAG_SHARED"], *parts)
    found = [folder / "shared" for folder in ROOT.parents[:2] if (folder / "shared").is_dir()]
    return Path(found[0] if found else ROOT.parent / "shared", *parts)

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


def same_tensors(a: dict, b: dict) -> bool:
    """Two name -> tensor mappings with the same names and equal tensors (values and shapes)."""
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def assert_one_line_error(result, *fragments: str) -> None:
    """The command line's answer to bad input: exit code 2, one line on stderr (``lstm-tag: error: ...``)
    holding every fragment, and no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert result.stderr.startswith("lstm-tag: error: ") and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.endswith("\n") and "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr)


@pytest.fixture
def forking() -> None:
    """Skip unless ``forked.segmented_beside`` forks here (``os.fork``, no other thread)."""
    if not forked.can_fork():
        pytest.skip("this process cannot fork here (no os.fork, or other threads run)")


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


def rewrite_metadata(source: Path, target: Path, key: str, edit: Callable[[Any], None]) -> Path:
    """``rewrite_header`` with ``edit`` applied to the JSON value of one ``__metadata__`` field."""
    def damage(header: dict[str, Any]) -> None:
        value = json.loads(header["__metadata__"][key])
        edit(value)
        header["__metadata__"][key] = json.dumps(value)

    return rewrite_header(source, target, damage)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Callable[..., Path]:
    """``trained_run(config, *overrides)``: the run directory of ``config`` (``"demo"``, the shipped
    demo config, or ``"tiny"``, ``tiny_config``'s) trained with the ``--set`` ``overrides``. Each
    distinct run is trained once per test session and shared: tests must not change it."""
    runs: dict[tuple[str, tuple[str, ...]], Path] = {}

    def get(config: str, *overrides: str) -> Path:
        if (config, overrides) not in runs:
            folder = tmp_path_factory.mktemp(f"{config}-run")
            path = ROOT / "configs" / "demo.yaml" if config == "demo" else tiny_config(folder)
            train(load_config(path, list(overrides)), folder / "run")
            runs[config, overrides] = folder / "run"
        return runs[config, overrides]

    return get


@pytest.fixture(scope="session")
def tiny_run(trained_run) -> Path:
    """``tiny_config``'s model trained for 2 epochs: the run most tests of bad input start from (do not change it)."""
    return trained_run("tiny", "train.epochs=2")


@pytest.fixture(scope="session")
def demo_run(trained_run) -> Path:
    """The shipped demo config (tagger and segmenter) trained for 8 epochs: the run the CLI's, the
    pipeline's and the server's tests tag with (do not change it)."""
    return trained_run("demo", "train.epochs=8")


@pytest.fixture(scope="session")
def segmenter_run(trained_run) -> Path:
    """``tiny_config``'s corpus with a segmenter trained for one epoch (and the tagger for one): a real
    checkpoint with a segmenter in seconds, for tests of its header (do not change it)."""
    return trained_run("tiny", "train.epochs=1", "tokenizer.mode=on", "tokenizer.epochs=1", "tokenizer.hidden_dim=8", "tokenizer.window=16")


OFFICIAL_SCRIPT = shared_path("tools", "conll18_ud_eval.py")
"""The CoNLL 2018 shared task's official scorer (never copied into the repository)."""
needs_script = pytest.mark.skipif(
    not OFFICIAL_SCRIPT.is_file(), reason=f"the official CoNLL 2018 script is not at {OFFICIAL_SCRIPT}"
)


def official(gold: Path, system: Path, counts: bool) -> dict[str, list[str]]:
    """The official script's table: metric -> its cells (``-c``: correct, gold, system, aligned)."""
    result = subprocess.run(
        [sys.executable, str(OFFICIAL_SCRIPT), "-v", "--skip-parse", *(["-c"] if counts else []), str(gold), str(system)],
        capture_output=True, text=True, check=True,
    )
    rows = [line.split("|") for line in result.stdout.splitlines()[2:]]
    return {cells[0].strip(): [c.strip() for c in cells[1:]] for cells in rows}


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Torch single-threaded for a module (``pytestmark = pytest.mark.usefixtures("one_torch_thread")``):
    on a busy 2-core machine each step of two threads waits for a descheduled one (85 ms instead
    of 3 ms to segment a line)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
