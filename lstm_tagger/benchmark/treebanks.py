"""lstm-tag beside UDPipe 1 on UD treebanks: one table of what a new user of each treebank gets.

For each treebank folder (one ``*-train.conllu``, ``*-dev.conllu`` and ``*-test.conllu``), one
after the other and never in parallel, each system does what its user would do:

- lstm-tag: ``lstm-tag init`` writes the shipped recipe for the folder's files, ``lstm-tag train``
  trains it (``--set`` overrides passed through), ``lstm-tag predict`` tags the test set on gold
  tokens (its CoNLL-U with the tag columns blanked, so no gold tag can leak through a column the
  model does not learn) and from its raw text (``rawtext.raw_text``: ``# text``, paragraphs at
  ``# newpar``/``# newdoc``, as ``eval --raw`` rebuilds it);
- UDPipe 1: the baseline script (``udpipe_run.py TRAIN DEV TEST OUTDIR``) trains, then writes
  ``OUTDIR/gold-tok.conllu`` and ``OUTDIR/raw.conllu`` in the same process; its training time
  is the figure the script prints (``train seconds N``), its tagging time the rest of the process.

Both systems' outputs are scored by the official CoNLL 2018 script (run, never copied), and each
child is measured the same way (``measure.run_measured``: wall time, and peak RSS from
``os.wait4``, which covers the child and the processes it waited for, as the largest of them).
Each step's outputs and logs live in ``DIR/<treebank>/<system>/``; ``steps.json`` there records
each finished step with its command, so a benchmark stopped half-way resumes where it stopped,
and a changed command (other ``--set``) redoes that step and those after it.
Run it alone on the machine: ``python -m lstm_tagger.benchmark.treebanks TREEBANK_DIR... --output-dir DIR``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Callable, Sequence

from lstm_tagger.benchmark.flops import cpu_model
from lstm_tagger.benchmark.measure import ProcessRun, run_measured
from lstm_tagger.corpus.rawtext import raw_text, read_treebank
from lstm_tagger.errors import UserError
from lstm_tagger.files import atomic_write_text, make_dir
from lstm_tagger.rundir import BEST

SPLITS = ("train", "dev", "test")
LSTM_TAG, UDPIPE = "lstm-tag", "udpipe1"
SYSTEM_NAMES = {LSTM_TAG: "lstm-tag", UDPIPE: "UDPipe 1"}
GOLD_METRICS = ("UPOS", "XPOS", "UFeats", "AllTags")
RAW_METRICS = ("Tokens", "Sentences", "Words", "UPOS", "XPOS", "UFeats")
DEFAULT_OFFICIAL_SCRIPT = Path("../shared/tools/conll18_ud_eval.py")
"""Relative to the working directory: the shared folder beside the checkout."""
TAG_COLUMNS = slice(3, 6)
"""UPOS, XPOS and FEATS in a CoNLL-U word line: blanked in the gold-token input of ``predict``."""
RECORD = "steps.json"

Say = Callable[[str], None]


def _stderr(line: str) -> None:
    print(f"treebanks: {line}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Treebank:
    """A UD treebank folder and its three files."""

    name: str
    folder: Path
    train: Path
    dev: Path
    test: Path


@dataclass(frozen=True)
class UDPipe:
    """How to run the UDPipe 1 baseline: its Python, its script and extra arguments for the script."""

    python: Path
    script: Path
    args: tuple[str, ...] = ()


def find_treebank(folder: str | Path) -> Treebank:
    """The folder's train, dev and test files (one ``*-SPLIT.conllu`` each), or a ``UserError`` naming it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder (a treebank folder holds *-train.conllu, *-dev.conllu and *-test.conllu)")
    files = {}
    for split in SPLITS:
        found = sorted(folder.glob(f"*-{split}.conllu"))
        if len(found) != 1:
            which = "none" if not found else f"{len(found)} ({', '.join(p.name for p in found)})"
            raise UserError(f"{folder}: expected one *-{split}.conllu, found {which}")
        files[split] = found[0]
    return Treebank(folder.resolve().name, folder, files["train"], files["dev"], files["test"])


def _check_inputs(treebanks: Sequence[Treebank], official_script: Path, udpipe: UDPipe | None) -> None:
    """Everything the benchmark needs exists, before any work starts."""
    names = [t.name for t in treebanks]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise UserError(f"two treebank folders are named {twice[0]}: their outputs would share DIR/{twice[0]}")
    if not official_script.is_file():
        raise UserError(f"{official_script}: the official CoNLL 2018 script (conll18_ud_eval.py) is not there; "
                        "give its path with official_script=PATH", {"official_script=PATH": "--official-script PATH"})
    for path, what in ((udpipe.python, "UDPipe's Python"), (udpipe.script, "the UDPipe script")) if udpipe else ():
        if not path.is_file():
            raise UserError(f"{path}: {what} is not there")


# --- the steps of one system ---------------------------------------------------------------


@dataclass
class Steps:
    """One system's steps in its folder, in order: each is kept when ``steps.json`` records it done
    with the same command and its outputs exist. Once one runs, every later one runs too, and the
    records of that step and the later ones are dropped before it starts, so that a step stopped
    half-way (or one whose input changed) is never taken for done."""

    folder: Path
    label: str
    force: bool
    say: Say
    started: float
    record: dict[str, Any] = field(default_factory=dict)
    visited: list[str] = field(default_factory=list)
    redo: bool = False

    @classmethod
    def open(cls, folder: Path, label: str, force: bool, say: Say, started: float) -> "Steps":
        make_dir(folder)
        try:
            record = json.loads((folder / RECORD).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            record = {}
        return cls(folder, label, force, say, started, record if isinstance(record, dict) else {})

    def run(self, name: str, command: list[str], outputs: Sequence[Path], action: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        done = self.record.get(name)
        if not (self.force or self.redo) and isinstance(done, dict) and done.get("command") == command \
                and all(path.exists() for path in outputs):
            self._say(f"{name}: done before, kept")
            self.visited.append(name)
            return done
        self.redo = True
        self.record = {step: self.record[step] for step in self.visited}
        self._save()
        self._say(f"{name} ...")
        result = {**action(), "command": command, "finished": _now()}
        self.record[name] = result
        self.visited.append(name)
        self._save()
        return result

    def _save(self) -> None:
        atomic_write_text(self.folder / RECORD, json.dumps(self.record, indent=2, ensure_ascii=False) + "\n")

    def _say(self, text: str) -> None:
        self.say(f"[{time.monotonic() - self.started:7.1f} s] {self.label}: {text}")


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def _child(command: list[str], stdout: Path, log: Path, what: str) -> ProcessRun:
    """Run a child with its output in files; a failure is one line naming the step and its log."""
    run = run_measured(command, stdout, log)
    if run.returncode != 0:
        detail = run.stderr_tail.removeprefix("lstm-tag: error: ") or "no message"
        raise UserError(f"{what} failed with exit code {run.returncode} (log: {log}): {detail}")
    return run


def _measured(run: ProcessRun) -> dict[str, Any]:
    return {"wall_seconds": round(run.wall_seconds, 2), "peak_rss_mib": round(run.peak_rss_kib / 1024, 1)}


def _lstm_tag(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "lstm_tagger", *map(str, args)]


# --- lstm-tag -------------------------------------------------------------------------------


def blank_tags(source: Path, target: Path) -> None:
    """``source`` with UPOS, XPOS and FEATS of every word line made ``_``; every other byte kept."""
    lines = []
    for line in source.read_bytes().decode("utf-8").splitlines(keepends=True):
        body = line.rstrip("\r\n")
        fields = body.split("\t")
        if len(fields) == 10 and not body.startswith("#"):
            fields[TAG_COLUMNS] = ["_"] * 3
            line = "\t".join(fields) + line[len(body):]
        lines.append(line)
    atomic_write_text(target, "".join(lines))


def run_lstm_tag(treebank: Treebank, steps: Steps, overrides: Sequence[str], official_script: Path) -> dict[str, Any]:
    """init, train, tag on gold tokens and from raw text, score: the figures of the table."""
    where, what = steps.folder, f"{treebank.name}: lstm-tag"
    config, run = where / "config.yaml", where / "run"
    init = _lstm_tag("init", "--train", treebank.train, "--dev", treebank.dev, "--test", treebank.test, "--output", config, "--force")
    steps.run("init", init, [config], lambda: _measured(_child(init, where / "init.out", where / "init.log", f"{what} init")))
    train = _lstm_tag("train", config, "--output", run, "--force", "--no-progress", "--quiet", *_sets(overrides))
    trained = steps.run("train", train, [run / BEST],
                        lambda: _measured(_child(train, where / "train.out", where / "train.log", f"{what} train")))
    gold_input, text_input = where / "test-notags.conllu", where / "test.txt"
    gold = _lstm_tag("predict", "--model", run, "--file", gold_input, "--input-format", "conllu", "--format", "conllu")
    raw = _lstm_tag("predict", "--model", run, "--file", text_input, "--input-format", "text", "--format", "conllu")

    def tag_gold() -> dict[str, Any]:
        blank_tags(treebank.test, gold_input)
        return _measured(_child(gold, where / "gold-tok.conllu", where / "tag-gold.log", f"{what} predict (gold tokens)"))

    def tag_raw() -> dict[str, Any]:
        atomic_write_text(text_input, raw_text(read_treebank(treebank.test)))
        return _measured(_child(raw, where / "raw.conllu", where / "tag-raw.log", f"{what} predict (raw text)"))

    tagged = [steps.run("tag gold tokens", gold, [where / "gold-tok.conllu"], tag_gold),
              steps.run("tag raw text", raw, [where / "raw.conllu"], tag_raw)]
    scores = _score(treebank, steps, official_script)
    return _row(trained["wall_seconds"], trained["peak_rss_mib"], sum(t["wall_seconds"] for t in tagged), scores)


def _sets(overrides: Sequence[str]) -> list[str]:
    return [arg for override in overrides for arg in ("--set", override)]


# --- UDPipe 1 -------------------------------------------------------------------------------


def run_udpipe(treebank: Treebank, steps: Steps, udpipe: UDPipe, official_script: Path) -> dict[str, Any]:
    """The baseline script (train, then tag both inputs, one process), scored the same way."""
    where = steps.folder
    command = [str(udpipe.python), str(udpipe.script), str(treebank.train), str(treebank.dev), str(treebank.test), str(where),
               *udpipe.args]

    def train_and_tag() -> dict[str, Any]:
        run = _child(command, where / "udpipe.out", where / "udpipe.log", f"{treebank.name}: UDPipe 1 ({udpipe.script})")
        return {**_measured(run), "train_seconds": _train_seconds(where / "udpipe.out")}

    done = steps.run("train and tag", command, [where / "gold-tok.conllu", where / "raw.conllu"], train_and_tag)
    scores = _score(treebank, steps, official_script)
    trained = done["train_seconds"] if done["train_seconds"] is not None else done["wall_seconds"]
    tagging = round(done["wall_seconds"] - trained, 2) if done["train_seconds"] is not None else None
    return _row(trained, done["peak_rss_mib"], tagging, scores)


def _train_seconds(output: Path) -> float | None:
    """The training time the UDPipe script prints (``train seconds N``), if it printed one."""
    found = re.search(r"^train seconds (\d+(?:\.\d+)?)", output.read_text(encoding="utf-8", errors="replace"), re.M)
    return float(found.group(1)) if found else None


# --- scoring --------------------------------------------------------------------------------


def official_scores(script: Path, gold: Path, system: Path, table: Path) -> dict[str, float]:
    """The official script's F1 (in percent, as it prints it) of each metric of ``system`` against
    ``gold``; its table is kept in ``table``. A failure is one line naming the system file."""
    run = subprocess.run([sys.executable, str(script), "-v", "--skip-parse", str(gold), str(system)],
                         stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if run.returncode != 0:
        lines = [line for line in (run.stderr + run.stdout).splitlines() if line.strip()]
        raise UserError(f"{system}: the official script {script} failed (exit code {run.returncode}): "
                        f"{lines[-1] if lines else 'no message'}")
    atomic_write_text(table, run.stdout)
    rows = [[cell.strip() for cell in line.split("|")] for line in run.stdout.splitlines()[2:] if "|" in line]
    return {cells[0]: float(cells[3]) for cells in rows}


def _score(treebank: Treebank, steps: Steps, script: Path) -> dict[str, dict[str, float]]:
    where = steps.folder
    command = [sys.executable, str(script), "-v", "--skip-parse", str(treebank.test)]

    def score() -> dict[str, Any]:
        gold = official_scores(script, treebank.test, where / "gold-tok.conllu", where / "gold-tok.eval.txt")
        raw = official_scores(script, treebank.test, where / "raw.conllu", where / "raw.eval.txt")
        return {"gold": {m: gold[m] for m in GOLD_METRICS}, "raw": {m: raw[m] for m in RAW_METRICS}}

    done = steps.run("score", command, [where / "gold-tok.eval.txt", where / "raw.eval.txt"], score)
    return {"gold": done["gold"], "raw": done["raw"]}


def _row(train_seconds: float, peak_rss_mib: float, tag_seconds: float | None, scores: dict[str, Any]) -> dict[str, Any]:
    return {"train_seconds": train_seconds, "train_peak_rss_mib": peak_rss_mib, "tag_seconds": tag_seconds, **scores}


# --- the whole benchmark --------------------------------------------------------------------


def benchmark_treebanks(
    folders: Sequence[str | Path], output_dir: str | Path, udpipe: UDPipe | None = None,
    official_script: str | Path = DEFAULT_OFFICIAL_SCRIPT, overrides: Sequence[str] = (), force: bool = False,
    command: str = "", say: Say = _stderr,
) -> dict[str, Any]:
    """Run both systems on each treebank in turn; writes ``treebanks.md`` and ``treebanks.json`` into
    ``output_dir`` (after each treebank, so a stopped run leaves the rows it finished) and returns the JSON."""
    treebanks = [find_treebank(folder) for folder in folders]
    official_script = Path(official_script)
    _check_inputs(treebanks, official_script, udpipe)
    output_dir = make_dir(output_dir)
    result: dict[str, Any] = {"command": command, "machine": machine(), "udpipe_run": udpipe is not None, "treebanks": []}
    started = time.monotonic()
    for treebank in treebanks:
        systems = {LSTM_TAG: run_lstm_tag(treebank, _steps(output_dir, treebank, LSTM_TAG, force, say, started),
                                          overrides, official_script)}
        if udpipe is not None:
            systems[UDPIPE] = run_udpipe(treebank, _steps(output_dir, treebank, UDPIPE, force, say, started), udpipe, official_script)
        result["treebanks"].append({"name": treebank.name, "folder": str(treebank.folder),
                                    "files": {s: getattr(treebank, s).name for s in SPLITS}, "systems": systems})
        result["date"] = _now()
        atomic_write_text(output_dir / "treebanks.json", json.dumps(result, indent=2, ensure_ascii=False) + "\n")
        atomic_write_text(output_dir / "treebanks.md", markdown(result))
    say(f"[{time.monotonic() - started:7.1f} s] wrote {output_dir / 'treebanks.md'} and {output_dir / 'treebanks.json'}")
    return result


def _steps(output_dir: Path, treebank: Treebank, system: str, force: bool, say: Say, started: float) -> Steps:
    return Steps.open(output_dir / treebank.name / system, f"{treebank.name} {SYSTEM_NAMES[system]}", force, say, started)


def machine() -> dict[str, Any]:
    """Cores, memory, CPU model and the torch version: what the figures were measured on."""
    try:
        torch_version = version("torch")
    except PackageNotFoundError:
        torch_version = "not installed"
    return {"cores": os.cpu_count(), "ram_gib": _ram_gib(), "cpu": cpu_model(), "torch": torch_version}


def _ram_gib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024 ** 2, 1)
    except OSError:
        return None
    return None


COLUMNS = ("treebank", "system", "train s", "train peak RSS MiB", "tag s",
           *(f"gold {m}" for m in GOLD_METRICS), *(f"raw {m}" for m in RAW_METRICS))


def markdown(result: dict[str, Any]) -> str:
    """The table: a row per treebank and system, under the date, machine, torch version and command."""
    m = result["machine"]
    ram = "?" if m["ram_gib"] is None else f"{m['ram_gib']:g} GiB"
    lines = ["# lstm-tag and UDPipe 1 on UD treebanks", "",
             f"- date: {result['date']}", f"- machine: {m['cores']} cores, {ram} RAM, {m['cpu']}", f"- torch: {m['torch']}",
             f"- command: `{result['command']}`", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * 2 + "---:|" * (len(COLUMNS) - 2)]
    for treebank in result["treebanks"]:
        for system, row in treebank["systems"].items():
            lines.append(_markdown_row(treebank["name"], SYSTEM_NAMES[system], row))
        if not result["udpipe_run"]:
            lines.append(f"| {treebank['name']} | UDPipe 1 | not run |" + " |" * (len(COLUMNS) - 3))
    return "\n".join(lines) + "\n"


def _markdown_row(name: str, system: str, row: dict[str, Any]) -> str:
    cells = [name, system, _number(row["train_seconds"], "{:.0f}"), _number(row["train_peak_rss_mib"], "{:.0f}"),
             _number(row["tag_seconds"], "{:.1f}"), *(f"{row['gold'][m]:.2f}" for m in GOLD_METRICS),
             *(f"{row['raw'][m]:.2f}" for m in RAW_METRICS)]
    return "| " + " | ".join(cells) + " |"


def _number(value: float | None, form: str) -> str:
    return "" if value is None else form.format(value)


def main(argv: list[str] | None = None) -> None:
    """``python -m lstm_tagger.benchmark.treebanks``: the benchmark's thin command line."""
    import argparse

    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m lstm_tagger.benchmark.treebanks", description=__doc__.split("\n\n")[0])
    parser.add_argument("treebanks", nargs="+", metavar="TREEBANK_DIR", help="UD folders with *-train/dev/test.conllu")
    parser.add_argument("--output-dir", required=True, help="the table, the JSON and each step's outputs go here")
    parser.add_argument("--udpipe-python", help="the Python that has ufal.udpipe (with --udpipe-script; without both: UDPipe is not run)")
    parser.add_argument("--udpipe-script", help="udpipe_run.py (usage: TRAIN DEV TEST OUTDIR)")
    parser.add_argument("--udpipe-args", default="", help='extra arguments for the UDPipe script, e.g. "--tokenizer-epochs 5"')
    parser.add_argument("--no-udpipe", action="store_true", help="run lstm-tag only")
    parser.add_argument("--official-script", default=str(DEFAULT_OFFICIAL_SCRIPT), help="conll18_ud_eval.py \\[default: %(default)s]")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="passed to lstm-tag train (repeatable)")
    parser.add_argument("--force", action="store_true", help="redo the steps done before")
    args = parser.parse_args(argv)
    command = shlex.join(["python", "-m", "lstm_tagger.benchmark.treebanks", *argv])
    try:
        udpipe = None if args.no_udpipe else _udpipe(args.udpipe_python, args.udpipe_script, args.udpipe_args)
        benchmark_treebanks(args.treebanks, args.output_dir, udpipe, args.official_script, args.overrides, args.force, command)
    except UserError as exc:
        print(f"lstm-tag: error: {exc.for_cli()}", file=sys.stderr)
        raise SystemExit(2) from None


def _udpipe(python: str | None, script: str | None, extra: str) -> UDPipe | None:
    if python is None and script is None:
        return None
    if python is None or script is None:
        raise UserError("give both --udpipe-python and --udpipe-script (or neither, or --no-udpipe, to run lstm-tag only)")
    return UDPipe(Path(python), Path(script), tuple(shlex.split(extra)))


if __name__ == "__main__":
    main()
