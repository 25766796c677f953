"""``frontier(bench_files, output)``: test UPOS against tagging speed, one point per benchmarked
recipe, beside the systems a user would pick instead.

Each lstm-tag point comes from a ``lstm-tag bench`` JSON file (``bench.py``): the recipe (the
config's name, with any ``--set`` overrides), the whole-process speed of ``lstm-tag predict
--file`` at the default batch size (start-up and loading included), and the test UPOS accuracy
of the model it tagged with (``model.test_upos``, from the run's report). The other systems'
figures are ``OUTSIDE``, the one place they are kept; they are UD English EWT test figures, so
they join the plot only when every bench file's model was scored on EWT test.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from rich.table import Table

from lstm_tagger import limits
from lstm_tagger.errors import UserError
from lstm_tagger.files import check_output, read_bytes
from lstm_tagger.evaluation.report import figure, percent

EWT_TEST = "en_ewt-ud-test.conllu"
"""The test file the outside systems were scored on (UD English EWT, gold tokens)."""

BASELINES = "../shared/baselines/README.md, the project's record of outside measurements (not shipped)"
BASELINE_MACHINE = "2 CPU cores, torch 2.13 CPU, a machine of the kind the docs' figures come from; session of 2026-12-01"


@dataclass(frozen=True)
class Outside:
    """A system measured outside lstm-tag: test UPOS (a fraction) on UD English EWT test with
    gold tokens, and its tagging speed as measured (in process, loading not counted)."""

    label: str
    test_upos: float
    tokens_per_second: float
    speed: str
    machine: str = BASELINE_MACHINE
    source: str = BASELINES
    test_data: str = EWT_TEST
    system: str = "outside"


OUTSIDE = (
    # spaCy 3.8 en_core_web_sm (trained on OntoNotes): 91.41% UPOS on EWT test's gold tokens.
    Outside("spaCy en_core_web_sm 3.8", 0.9141, 18_600, "in process: nlp.pipe, batch 256, median of 3 runs"),
    # UDPipe 1 (ufal.udpipe 1.4) trained on EWT v2.15 train, tagging EWT test's gold tokens: 95.01% UPOS.
    Outside("UDPipe 1, trained on EWT", 0.9501, 8_700, "in process: the test file's gold tokens tagged (words/s)"),
)
"""spaCy's small English pipeline and UDPipe 1, both measured on a 2-core machine of the kind
lstm-tag's figures come from (session of 2026-12-01; ``BASELINES``)."""


def _bench_json(path: Path) -> dict[str, Any]:
    """The parsed JSON object of ``path``; anything else is one line."""
    data = read_bytes(path, UserError, "bench JSON file", limits.MAX_BENCH_BYTES)
    try:
        parsed = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (byte {exc.start + 1})") from None
    except ValueError as exc:
        raise UserError(f"{path}: not JSON: {getattr(exc, 'msg', exc)} (line {getattr(exc, 'lineno', '?')})") from None
    if not isinstance(parsed, dict):
        raise UserError(f"{path}: not an lstm-tag bench file (expected a JSON object)")
    return parsed


def _number(value: Any) -> float | None:
    """``value`` as a finite float, or ``None`` when it is not a finite number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def read_bench_point(path: str | Path) -> dict[str, Any]:
    """One lstm-tag point of the frontier from a ``lstm-tag bench`` JSON file: ``label``,
    ``system`` (``lstm-tag``), ``test_upos`` (a fraction), ``tokens_per_second`` (whole process,
    default batch), ``speed`` (how), ``machine``, ``source`` (the file) and ``test_data``.
    A file without a test accuracy (a model that is no run's best checkpoint, or a run without
    a test set) is one line naming it."""
    path = Path(path)
    data = _bench_json(path)
    tagging = data.get("tagging")
    tagging = tagging.get("default_batch") if isinstance(tagging, dict) else None
    model = data.get("model")
    speed = _number(tagging.get("tokens_per_second")) if isinstance(tagging, dict) else None
    if speed is None or speed <= 0 or not isinstance(model, dict):
        raise UserError(f"{path}: not an lstm-tag bench file (no model, or no tagging.default_batch.tokens_per_second)")
    accuracy = _number(model.get("test_upos"))
    if accuracy is not None and not 0 <= accuracy <= 1:
        raise UserError(f"{path}: model.test_upos must be a fraction in [0, 1], got {accuracy}")
    if accuracy is None:
        raise UserError(
            f"{path}: no test UPOS accuracy: bench the best model of a run trained with a test set (lstm-tag bench CONFIG --model RUN)"
        )
    # bench --threads N adds train.threads=N: a measuring setting, not part of the recipe
    given = data.get("overrides") if isinstance(data.get("overrides"), list) else []
    overrides = [str(o) for o in given if not str(o).startswith("train.threads=")]
    recipe = str(data.get("recipe") or Path(str(data.get("config", "?"))).stem)
    machine = data.get("machine") if isinstance(data.get("machine"), dict) else {}
    return {
        "label": recipe + (f" ({' '.join(overrides)})" if overrides else ""),
        "system": "lstm-tag",
        "test_upos": accuracy,
        "tokens_per_second": speed,
        "speed": f"whole process: lstm-tag predict --file, batch {tagging.get('batch_size', '?')}, {figure(tagging.get('tokens', '?'))} tokens",
        "machine": f"{machine.get('cpu', '?')}, {machine.get('cores', '?')} cores, {machine.get('date', '?')}",
        "source": str(path),
        "test_data": None if model.get("test_data") is None else str(model["test_data"]),
    }


def frontier(bench_files: Sequence[str | Path], output: str | Path, force: bool = False) -> dict[str, Any]:
    """Plot test UPOS (%) against tagging tokens/s (log scale) for each bench file's recipe, and
    for ``OUTSIDE``'s systems when every recipe was scored on EWT test; write the PNG to
    ``output`` (an existing file only with ``force``).

    Returns ``{"output": path, "points": [...], "note": why the other systems are left out, or
    None}``, the points as ``read_bench_point`` gives them, lstm-tag's first in the given order.
    """
    if not bench_files:
        raise UserError("give at least one bench JSON file (written by lstm-tag bench CONFIG --model RUN)")
    output = Path(output)
    check_output(output, force)
    points = [read_bench_point(path) for path in bench_files]
    elsewhere = [p for p in points if Path(p["test_data"] or "?").name != EWT_TEST]
    note = None
    if elsewhere:
        note = (f"the other systems' figures are for UD English EWT test ({EWT_TEST}): left out, as {elsewhere[0]['source']} "
                f"was scored on {elsewhere[0]['test_data'] or 'an unnamed test file'}")
    else:
        points += [asdict(system) for system in OUTSIDE]
    corpora = sorted({Path(p["test_data"] or "?").name for p in points})
    title = "Test UPOS against tagging speed, UD English EWT" if not elsewhere else f"Test UPOS against tagging speed ({', '.join(corpora)})"
    from lstm_tagger.evaluation.plots import plot_frontier  # matplotlib is imported only when plots are drawn

    plot_frontier(points, output, title)
    return {"output": str(output), "points": points, "note": note}


def frontier_table(result: dict[str, Any]) -> Table:
    """``frontier``'s points as the terminal table of ``lstm-tag frontier``."""
    table = Table(title="frontier points", title_justify="left")
    for column in ("recipe or system", "test UPOS %", "tokens/s", "speed"):
        table.add_column(column, justify="right" if column in ("test UPOS %", "tokens/s") else "left")
    for point in result["points"]:
        table.add_row(point["label"], percent(point["test_upos"]), f"{point['tokens_per_second']:,.0f}", point["speed"])
    return table
