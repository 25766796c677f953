"""A property-based fuzzer of the inputs ``limits.py`` and the strict readers guard: configs with
aliases, duplicates, deep nesting and huge sizes; CoNLL-U IDs; TSV lines; checkpoint metadata
and tensor entries. The contract for every example: success (exit 0) or one line naming the
file (exit 2), never a traceback, and the process's peak memory stays under a bound.

Examples are few enough for CI (600 in all, with OMP_NUM_THREADS=1).
"""

from __future__ import annotations

import json
import resource
import tempfile
from pathlib import Path
from typing import Any, Callable

import pytest

pytest.importorskip("hypothesis")

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from lstm_tagger import limits, load_config  # noqa: E402
from lstm_tagger.rundir import BEST  # noqa: E402
from lstm_tagger.cli import app  # noqa: E402
from lstm_tagger.corpus.reader import read_conllu, read_tsv  # noqa: E402
from lstm_tagger.errors import ConfigError, UserError  # noqa: E402
from lstm_tagger.model.tagger import Tagger  # noqa: E402

from conftest import rewrite_header, tiny_config  # noqa: E402
from fuzzing import assert_one_line, fuzz  # noqa: E402

runner = CliRunner()
MEMORY_BOUND_KIB = 1 << 20
"""Peak memory may grow by at most 1 GiB over the whole module (an alias bomb took 4 GB)."""


@pytest.fixture(scope="module")
def memory_baseline() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def check_memory(baseline: int) -> None:
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline
    assert grown < MEMORY_BOUND_KIB, f"peak memory grew by {grown // 1024} MiB"


def outcome(call: Callable[[], Any], names: str) -> int:
    """0 if ``call`` succeeds, 2 for a one-line ``UserError`` that names ``names`` (a ``ConfigError``:
    one such line per problem); anything else fails the test."""
    try:
        call()
    except UserError as exc:
        for message in str(exc).split("\n") if isinstance(exc, ConfigError) else [str(exc)]:
            assert_one_line(message)
            assert message.startswith(names), (names, message)
        return 2
    return 0


# --- configs -------------------------------------------------------------------------------

SIZES = st.one_of(st.integers(-3, 300), st.integers(2**20, 2**40), st.integers(2**60, 2**70))
ADVERSARIAL_LINES = st.one_of(
    st.builds(lambda k, v: f"  {k}: {v}", st.sampled_from(["embedding_dim", "hidden_dim", "num_layers", "char_dim", "char_hidden", "max_parameters"]), SIZES),
    st.builds(lambda v: f"  seed: {v}", st.one_of(SIZES, st.integers(2**63, 2**65))),
    st.builds(lambda n: "  deep: " + "[" * n + "]" * n, st.integers(1, 3000)),
    st.builds(lambda n: "  deep: " + "{a: " * n + "1" + "}" * n, st.integers(1, 200)),
    st.just("  alias: *top"),
    st.just("  <<: *top"),
    st.builds(lambda n: "  many: [" + ", ".join(["*s"] * n) + "]", st.integers(0, 150)),
    st.sampled_from(["  epochs: 1", "  epochs: 2", "  cell: gru", "  dropout: 0.5"]),
)


@st.composite
def hostile_config(draw) -> str:
    """A config text: three sections, the first holding anchors, each given adversarial lines."""
    sections = {"data": ["  train: tiny.conllu", "  dev: tiny.conllu", "  s: &s 7"], "model": [], "train": ["  epochs: 1"]}
    for name in sections:
        sections[name] += draw(st.lists(ADVERSARIAL_LINES, max_size=4))
    text = "top: &top {a: 1}\n" if draw(st.booleans()) else ""
    order = draw(st.permutations(list(sections)))
    for name in order + draw(st.lists(st.sampled_from(list(sections)), max_size=1)):  # maybe a section twice
        text += f"{name}:\n" + "\n".join(sections[name]) + "\n"
    return text


@fuzz(150)
@given(text=hostile_config())
def test_hostile_configs_load_or_fail_in_one_line_in_bounded_memory(tmp_path_factory, memory_baseline, text):
    folder = tmp_path_factory.mktemp("cfg")
    tiny_config(folder)  # the corpus tiny.conllu
    path = folder / "hostile.yaml"
    path.write_text(text, encoding="utf-8")

    def load_and_plan() -> None:  # what train does before it allocates the model
        config = load_config(path)
        chars = 30 if config.model.char_encoder != "none" else 0
        shapes = limits.planned_parameters(lambda: Tagger(config.model, 1000, 17, chars))
        limits.check_parameters(shapes, config.model.max_parameters, str(path))

    outcome(load_and_plan, str(path))
    check_memory(memory_baseline)


# --- CoNLL-U IDs and TSV lines ---------------------------------------------------------------

IDS = st.text(alphabet="0123456789-.x ", min_size=0, max_size=6)


@fuzz(200)
@given(ids=st.lists(IDS, min_size=1, max_size=6))
def test_conllu_ids_are_read_or_named_by_file_and_line(memory_baseline, ids):
    lines = [f"{token_id}\tw{n}\t_\tNOUN\t_\t_\t_\t_\t_\t_" for n, token_id in enumerate(ids)]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ids.conllu"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        code = outcome(lambda: read_conllu(path), f"{path}:")
    words = [i for i in ids if i.isdigit() and i[0] != "0"]
    malformed = [i for i in ids if i not in words and not _skipped(i)]
    assert code == (2 if malformed else 0), (ids, code)
    check_memory(memory_baseline)


def _skipped(token_id: str) -> bool:
    """A range (N-M) or an empty node (N.M), as UD writes them."""
    for sep, first_may_be_zero in (("-", False), (".", True)):
        left, found, right = token_id.partition(sep)
        if found and left.isdigit() and right.isdigit() and right[0] != "0" and (left == "0" and first_may_be_zero or left[0] != "0"):
            return True
    return False


@fuzz(100)
@given(lines=st.lists(st.text(alphabet="ab\t _#\r\x00é", max_size=12), max_size=8))
def test_tsv_lines_are_read_or_named_by_file_and_line(memory_baseline, lines):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "x.tsv"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        outcome(lambda: read_tsv(path), f"{path}:")
    check_memory(memory_baseline)


# --- checkpoint metadata ---------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)
FIELDS = ["format", "format_version", "config", "words", "tags", "chars", "metrics", "train_state", "other"]


@st.composite
def header_change(draw) -> Callable[[dict], None]:
    """One change to a checkpoint header: a metadata field replaced (by raw JSON, a JSON string,
    or its own JSON with one entry replaced), removed, or a tensor entry's shape or dtype changed."""
    kind = draw(st.sampled_from(["raw", "string", "nested", "remove", "shape", "dtype"]))
    key = draw(st.sampled_from(FIELDS))
    value = draw(JSON)
    inner = draw(st.sampled_from(["itos", "unk", "shapes", "trained", "model", "data", "train", "hidden_dim", "cell"]))
    position = draw(st.integers(0, 50))

    def change(header: dict) -> None:
        meta = header["__metadata__"]
        tensors = sorted(name for name in header if name != "__metadata__")
        tensor = header[tensors[position % len(tensors)]]
        if kind == "raw":
            meta[key] = value
        elif kind == "string":
            meta[key] = json.dumps(value)
        elif kind == "remove":
            meta.pop(key, None)
        elif kind == "shape":
            tensor["shape"] = value if not isinstance(value, int) else [value]
        elif kind == "dtype":
            tensor["dtype"] = value
        elif isinstance(meta.get(key), str) and meta[key][:1] in "{[":
            data = json.loads(meta[key])
            target = data.get("model", data) if isinstance(data, dict) else data
            if isinstance(target, dict):
                target[inner] = value
            meta[key] = json.dumps(data)

    return change


@fuzz(150)
@given(change=header_change())
def test_checkpoint_metadata_loads_or_fails_in_one_line(tiny_run, memory_baseline, change):
    with tempfile.TemporaryDirectory() as folder:
        path = rewrite_header(tiny_run / BEST, Path(folder) / "fuzzed.safetensors", change)
        result = runner.invoke(app, ["info", str(path), "--json"])
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        assert result.exit_code in (0, 2), result.output
        if result.exit_code == 2:
            assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith(f"lstm-tag: error: {path}"), result.stderr
    check_memory(memory_baseline)


def test_a_tensor_dtype_with_a_line_break_is_still_one_line(tiny_run, tmp_path):
    """Found by the test above: safetensors quotes the unknown dtype, line break and all."""

    def change(header: dict) -> None:
        header[sorted(name for name in header if name != "__metadata__")[0]]["dtype"] = "F\n32"

    path = rewrite_header(tiny_run / BEST, tmp_path / "fuzzed.safetensors", change)
    result = runner.invoke(app, ["info", str(path), "--json"])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"lstm-tag: error: {path}: checkpoint weights are unreadable (") and len(result.stderr.splitlines()) == 1
