"""Two checkouts of lstm-tag timed side by side, in one sitting:
``python -m lstm_tagger.benchmark.sidebyside A B [--rounds N] -- <lstm-tag arguments>``.

Why alternately: a slowdown of 20% between two commits is smaller than what the machine's load
and temperature change between two sittings, so one figure per commit taken an hour apart says
little. Here each round runs A's command, then B's (A B A B ...), each in a fresh process, and
the medians of the rounds are compared: whatever drifts during the sitting falls on both sides.

A and B are each a checkout directory (one holding ``lstm_tagger/__main__.py``) or a git
revision of the repository of the current directory, exported with ``git archive`` into a
temporary directory that is removed afterwards (no worktree, nothing in the repository
changes). Every run is ``PYTHONPATH=<checkout> python -P -m lstm_tagger <arguments>`` from the
current directory, so relative config and data paths mean the same for both sides; ``-P``
keeps the current directory (itself a checkout, often) off the module path, where it would
shadow the side's code. ``{checkout}`` in the arguments is the side's checkout directory: an old
commit may not read today's config files, so ``train {checkout}/configs/demo.yaml`` trains each
side on its own (a config's paths are relative to it: point a git-ignored corpus elsewhere with
``--set data.train=...``). A ``train`` run gets ``--output`` in a temporary directory of its own
(nothing in ``runs/`` is touched) and is read there: its ``report.json``'s training seconds
(``training`` -> ``training seconds``, the sum of the epochs' ``train_seconds``; missing in a
report that lacks it).

For each run: the whole process's wall seconds, its peak resident memory (``os.wait4``), and a
training run's training seconds; then each side's medians and the ratio B / A.
"""

from __future__ import annotations

import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence

import typer

from lstm_tagger.benchmark.measure import run_measured
from lstm_tagger.errors import UserError, one_line
from lstm_tagger.files import atomic_write_text, check_writable, make_dir
from lstm_tagger.limits import MAX_SIDE_BY_SIDE_ROUNDS
from lstm_tagger.rundir import REPORT_JSON

FIGURES = ("wall_seconds", "peak_rss_mib", "train_seconds")
"""What each run measures, in the table's order."""

Say = Callable[[str], None]


@dataclass
class Side:
    """One of the two things compared: ``name`` A or B, what the user gave (``spec``), the
    checkout it runs (``path``), the commit when ``spec`` is a revision, and extra environment."""

    name: str
    spec: str
    path: Path
    commit: str | None = None
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Run:
    """One finished run: its round (from 1), its side, and what it measured (None: not measured)."""

    round: int
    side: str
    wall_seconds: float
    peak_rss_mib: float
    train_seconds: float | None


def parse_env(pairs: Sequence[str], option: str) -> dict[str, str]:
    """``KEY=VALUE`` texts -> a dict; anything else is a UserError naming ``option``."""
    env = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key or "\0" in pair:
            raise UserError(f"{option}: expected KEY=VALUE, got {pair!r}")
        env[key] = value
    return env


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, stdin=subprocess.DEVNULL)
    except OSError as exc:
        raise UserError(f"cannot run git: {one_line(exc)}") from None


def resolve_commit(spec: str, repo: Path) -> str:
    """The full commit hash of the revision ``spec`` in the repository of ``repo``; a UserError
    when ``spec`` is neither a directory nor a revision there."""
    found = None if spec.startswith("-") else _git(repo, "rev-parse", "--verify", "--quiet", f"{spec}^{{commit}}")
    if found is None or found.returncode != 0:
        raise UserError(f"{spec}: neither a checkout directory nor a git revision of the repository at {repo}")
    return found.stdout.decode().strip()


def export_commit(commit: str, repo: Path, target: Path) -> Path:
    """The tree of ``commit`` written into ``target`` with ``git archive`` (no worktree); -> target."""
    archive = _git(repo, "archive", "--format=tar", commit)
    if archive.returncode != 0:
        raise UserError(f"git archive {commit} failed: {one_line(Exception(archive.stderr.decode(errors='replace')))}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(target, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    return target


def checkout(name: str, spec: str, work: Path, repo: Path, env: dict[str, str]) -> Side:
    """The side ``name`` for ``spec``: a checkout directory as it is, or a revision exported under ``work``."""
    path = Path(spec)
    if path.is_dir():
        if not (path / "lstm_tagger" / "__main__.py").is_file():
            raise UserError(f"{spec}: a directory without lstm_tagger/__main__.py, not a checkout of lstm-tag")
        return Side(name, spec, path.resolve(), None, env)
    commit = resolve_commit(spec, repo)
    return Side(name, spec, export_commit(commit, repo, work / f"checkout-{name}"), commit, env)


_SAFE_MAIN = "import runpy, sys; del sys.path[0]; runpy.run_module('lstm_tagger', run_name='__main__', alter_sys=True)"
"""Before Python 3.11 (no ``-P``): ``-m lstm_tagger`` without the current directory on the path."""


def command(args: Sequence[str]) -> list[str]:
    """``python -m lstm_tagger ARGS`` run by this Python, the current directory kept off the module path."""
    if sys.version_info >= (3, 11):
        return [sys.executable, "-P", "-m", "lstm_tagger", *args]
    return [sys.executable, "-c", _SAFE_MAIN, *args]


CHECKOUT = "{checkout}"
"""In the lstm-tag arguments, the side's checkout directory: ``train {checkout}/configs/demo.yaml``
trains each side on its own version of the config (an old commit may not read today's)."""


def run_arguments(args: Sequence[str], run_dir: Path, checkout: Path) -> list[str]:
    """The lstm-tag arguments of one run: ``{checkout}`` replaced, and a ``train`` run given ``--output run_dir``."""
    args = [arg.replace(CHECKOUT, str(checkout)) for arg in args]
    if not args or args[0] != "train":
        return args
    if any(a in ("--output", "-o") or a.startswith(("--output=", "-o")) for a in args):
        raise UserError("leave out train's --output: each run trains into a temporary directory of its own")
    return [*args, "--output", str(run_dir)]


def train_seconds(run_dir: Path) -> float | None:
    """``training seconds`` of the ``report.json`` in ``run_dir``; None without one, or without that figure."""
    try:
        report = json.loads((run_dir / REPORT_JSON).read_text(encoding="utf-8"))
        seconds = report["training"]["training seconds"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return float(seconds) if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) else None


def run_once(side: Side, round_: int, args: Sequence[str], work: Path) -> Run:
    """Run ``args`` from ``side``'s checkout in a fresh process and measure it; a failure is a UserError."""
    run_dir = work / f"run-{round_}-{side.name}"
    make_dir(run_dir)
    env = {**os.environ, **side.env, "PYTHONPATH": str(side.path)}
    process = run_measured(command(run_arguments(args, run_dir / "output", side.path)), run_dir / "stdout", run_dir / "stderr", env)
    if process.returncode != 0:
        detail = process.stderr_tail.removeprefix("lstm-tag: error: ") or "no message"
        raise UserError(f"{side.name} ({side.spec}), round {round_}: exit code {process.returncode}: {detail}")
    seconds = train_seconds(run_dir / "output")
    return Run(round_, side.name, round(process.wall_seconds, 3), round(process.peak_rss_kib / 1024, 1), seconds)


def medians(runs: Sequence[Run], side: str) -> dict[str, float | None]:
    """Each figure's median over ``side``'s runs (None when no run measured it)."""
    result: dict[str, float | None] = {}
    for figure in FIGURES:
        values = [getattr(r, figure) for r in runs if r.side == side and getattr(r, figure) is not None]
        result[figure] = statistics.median(values) if values else None
    return result


def ratios(a: dict[str, float | None], b: dict[str, float | None]) -> dict[str, float | None]:
    """B / A of each figure's median (None where either is missing or A's is 0)."""
    return {f: (b[f] / a[f] if a[f] and b[f] is not None else None) for f in FIGURES}


def side_by_side(
    a: str, b: str, args: Sequence[str], rounds: int = 3, *, env_a: dict[str, str] | None = None,
    env_b: dict[str, str] | None = None, output: str | Path | None = None, repo: str | Path = ".", say: Say = lambda line: None,
) -> dict[str, Any]:
    """Run lstm-tag ``args`` from checkouts (or revisions) ``a`` and ``b`` alternately, ``rounds``
    times each (A B A B ...); -> every run, each side's medians and the ratios B / A, as a
    JSON-ready dict (written to ``output`` too, when given). ``say`` gets a line per finished run."""
    if not 1 <= rounds <= MAX_SIDE_BY_SIDE_ROUNDS:
        raise UserError(f"rounds must be from 1 to {MAX_SIDE_BY_SIDE_ROUNDS}, got {rounds}")
    if not args:
        raise UserError("give the lstm-tag arguments to run after --, e.g. -- train configs/demo.yaml --set train.epochs=1")
    run_arguments(args, Path("."), Path("."))  # a refused --output fails before any work
    if output is not None:
        check_writable(make_dir(Path(output).parent))
    with tempfile.TemporaryDirectory(prefix="lstm-tag-sidebyside-") as temporary:
        work = Path(temporary)
        repo = Path(repo).resolve()
        sides = [checkout("A", a, work, repo, env_a or {}), checkout("B", b, work, repo, env_b or {})]
        runs = []
        for round_ in range(1, rounds + 1):
            for side in sides:
                runs.append(run_once(side, round_, args, work))
                run = runs[-1]
                say(f"round {round_} {side.name}: wall {_cell(run.wall_seconds)} s, peak RSS {_cell(run.peak_rss_mib, 1)} MiB, "
                    f"train {_cell(run.train_seconds)} s")
    result = _result(sides, runs, args)
    if output is not None:
        atomic_write_text(Path(output), json.dumps(result, indent=2) + "\n")
    return result


def _result(sides: Sequence[Side], runs: Sequence[Run], args: Sequence[str]) -> dict[str, Any]:
    median = {side.name: medians(runs, side.name) for side in sides}
    return {
        "arguments": list(args),
        "sides": {s.name: {"spec": s.spec, "path": None if s.commit else str(s.path), "commit": s.commit, "env": s.env} for s in sides},
        "runs": [asdict(r) for r in runs],
        "medians": median,
        "ratio_b_over_a": ratios(median["A"], median["B"]),
    }


def _cell(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(result: dict[str, Any]) -> str:
    """The result as a markdown table: one row per run, then the medians of A and B and B / A."""
    rows = [["round", "side", "wall s", "peak RSS MiB", "train s"], ["---:", ":---", "---:", "---:", "---:"]]
    rows += [[str(r["round"]), r["side"], *(_cell(r[f], 1 if f == "peak_rss_mib" else 2) for f in FIGURES)] for r in result["runs"]]
    for side in ("A", "B"):
        rows.append(["median", side, *(_cell(result["medians"][side][f], 1 if f == "peak_rss_mib" else 2) for f in FIGURES)])
    rows.append(["ratio", "B / A", *(_cell(result["ratio_b_over_a"][f], 3) for f in FIGURES)])
    sides = [f"{name}: {s['spec']}" + (f" ({s['commit'][:12]})" if s["commit"] else "") + "".join(f" {k}={v}" for k, v in s["env"].items())
             for name, s in result["sides"].items()]
    return "\n".join(["; ".join(sides), "", *("| " + " | ".join(row) + " |" for row in rows)])


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def sidebyside_cli(
    a: str = typer.Argument(..., help="Checkout directory or git revision of this repository (the baseline)."),
    b: str = typer.Argument(..., help="Checkout directory or git revision (compared with A: ratios are B / A)."),
    arguments: List[str] = typer.Argument(..., metavar="-- LSTM-TAG-ARGUMENTS", help="What to run, after --."),
    rounds: int = typer.Option(3, "--rounds", help=f"Runs of each side, alternately (1-{MAX_SIDE_BY_SIDE_ROUNDS})."),
    env_a: Optional[List[str]] = typer.Option(None, "--env-a", metavar="KEY=VALUE", help="Extra environment of A's runs."),
    env_b: Optional[List[str]] = typer.Option(None, "--env-b", metavar="KEY=VALUE", help="Extra environment of B's runs."),
    output: Optional[Path] = typer.Option(None, "--output", help="Also write the results as JSON here."),
) -> None:
    """Time lstm-tag from two checkouts alternately (A B A B ...); print each run, the medians and B / A."""
    from lstm_tagger.cli.common import user_errors

    with user_errors():
        result = side_by_side(
            a, b, arguments, rounds, env_a=parse_env(env_a or [], "--env-a"), env_b=parse_env(env_b or [], "--env-b"),
            output=output, say=lambda line: print(line, file=sys.stderr, flush=True),
        )
    print(table(result))


if __name__ == "__main__":
    app(prog_name="python -m lstm_tagger.benchmark.sidebyside")
