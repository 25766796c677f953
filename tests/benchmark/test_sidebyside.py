"""The side-by-side timing of two checkouts: stub checkouts whose ``python -m lstm_tagger`` writes
what it was given, and one real comparison of two exports of HEAD on the demo config.

No figure is compared with a time: only the order of the runs, what each saw, and that the
medians and ratios are those of the runs' own figures.
"""

from __future__ import annotations

import json
import statistics
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lstm_tagger.benchmark.sidebyside import app, side_by_side, table
from lstm_tagger.errors import UserError

from conftest import ROOT, assert_one_line_error

STUB = '''
import json, os, sys
from pathlib import Path

here = Path(__file__).resolve().parents[1]
count_file = here / "count"
count = int(count_file.read_text()) if count_file.exists() else 0
count_file.write_text(str(count + 1))
with open(os.environ["STUB_LOG"], "a") as log:
    log.write(json.dumps({{"side": {name!r}, "cwd": os.getcwd(), "args": sys.argv[1:],
                          "pythonpath": os.environ.get("PYTHONPATH"), "arena": os.environ.get("MALLOC_ARENA_MAX")}}) + "\\n")
args = sys.argv[1:]
if "--output" in args:
    output = Path(args[args.index("--output") + 1])
    output.mkdir(parents=True)
    seconds = {seconds!r}
    training = {{"training seconds": seconds[count]}} if seconds else {{"epochs run": 1}}
    (output / "report.json").write_text(json.dumps({{"training": training}}))
'''


def stub_checkout(folder: Path, name: str, seconds: list[float]) -> Path:
    """A directory whose ``python -m lstm_tagger`` logs its call; a train run reports ``seconds[n]``
    at its n-th call (no ``training seconds`` at all when ``seconds`` is empty)."""
    package = folder / "lstm_tagger"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(STUB.format(name=name, seconds=seconds))
    return folder


@pytest.fixture
def stubs(tmp_path, monkeypatch) -> tuple[Path, Path, Path]:
    """Checkouts A (reports 10, 30, 20 s) and B (5, 50, 40 s), their log; the current directory is
    this repository's checkout, whose own ``lstm_tagger`` must not shadow theirs."""
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv("STUB_LOG", str(log))
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    monkeypatch.chdir(ROOT)
    return stub_checkout(tmp_path / "a", "A", [10.0, 30.0, 20.0]), stub_checkout(tmp_path / "b", "B", [5.0, 50.0, 40.0]), log


def calls(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_runs_alternate_and_each_side_runs_its_own_checkout(stubs):
    a, b, log = stubs
    result = side_by_side(str(a), str(b), ["train", "{checkout}/c.yaml", "--quiet"], rounds=3)
    seen = calls(log)
    assert [c["side"] for c in seen] == ["A", "B", "A", "B", "A", "B"]
    assert [(r["round"], r["side"]) for r in result["runs"]] == [(1, "A"), (1, "B"), (2, "A"), (2, "B"), (3, "A"), (3, "B")]
    assert {c["pythonpath"] for c in seen if c["side"] == "A"} == {str(a.resolve())}
    assert {c["cwd"] for c in seen} == {str(ROOT)}
    outputs = [c["args"][-1] for c in seen]
    assert len(set(outputs)) == 6 and not any(Path(o).exists() for o in outputs)  # each its own, removed after
    assert seen[0]["args"][:3] == ["train", f"{a.resolve()}/c.yaml", "--quiet"] and seen[0]["args"][3] == "--output"


def test_medians_and_ratios_are_those_of_the_runs(stubs):
    a, b, _ = stubs
    result = side_by_side(str(a), str(b), ["train", "c.yaml"], rounds=3)
    assert [r["train_seconds"] for r in result["runs"]] == [10.0, 5.0, 30.0, 50.0, 20.0, 40.0]
    assert result["medians"]["A"]["train_seconds"] == 20.0 and result["medians"]["B"]["train_seconds"] == 40.0
    assert result["ratio_b_over_a"]["train_seconds"] == 2.0
    for side in ("A", "B"):
        walls = [r["wall_seconds"] for r in result["runs"] if r["side"] == side]
        assert result["medians"][side]["wall_seconds"] == statistics.median(walls)
    medians = result["medians"]
    assert result["ratio_b_over_a"]["peak_rss_mib"] == medians["B"]["peak_rss_mib"] / medians["A"]["peak_rss_mib"]
    lines = table(result).splitlines()
    assert lines[-3].startswith("| median | A |") and lines[-3].endswith("| 20.00 |")
    assert lines[-1].startswith("| ratio | B / A |") and lines[-1].endswith("| 2.000 |")


def test_a_report_without_training_seconds_is_a_missing_figure(stubs, tmp_path):
    a, _, _ = stubs
    old = stub_checkout(tmp_path / "old", "old", [])
    result = side_by_side(str(old), str(a), ["train", "c.yaml"], rounds=1)
    assert result["runs"][0]["train_seconds"] is None and result["medians"]["A"]["train_seconds"] is None
    assert result["ratio_b_over_a"]["train_seconds"] is None
    assert table(result).splitlines()[-1].endswith("| - |")


def test_extra_environment_goes_to_its_side_only(stubs):
    a, b, log = stubs
    result = runner.invoke(app, [str(a), str(b), "--rounds", "2", "--env-b", "MALLOC_ARENA_MAX=2", "--", "predict", "x"])
    assert result.exit_code == 0, result.output
    assert [(c["side"], c["arena"], c["args"]) for c in calls(log)] == [
        ("A", None, ["predict", "x"]), ("B", "2", ["predict", "x"])
    ] * 2  # not train: the arguments as given, no --output


runner = CliRunner()


def test_a_bad_revision_is_one_line(stubs):
    a, _, log = stubs
    result = runner.invoke(app, ["no-such-revision", str(a), "--", "train", "c.yaml"])
    assert_one_line_error(result, f"no-such-revision: neither a checkout directory nor a git revision of the repository at {ROOT}")
    assert not log.exists()


@pytest.mark.parametrize("arguments, message", [
    (["--rounds", "0", "--", "x"], "rounds must be from 1 to 100, got 0"),
    (["--env-a", "NOEQUALS", "--", "x"], "--env-a: expected KEY=VALUE, got 'NOEQUALS'"),
    (["--", "train", "c.yaml", "--output", "runs/x"], "leave out train's --output"),
])
def test_mistakes_are_one_line_before_any_run(stubs, arguments, message):
    a, b, log = stubs
    assert_one_line_error(runner.invoke(app, [str(a), str(b), *arguments]), message)
    assert not log.exists()


def test_a_failed_run_names_its_side_and_round(stubs, tmp_path):
    a, _, _ = stubs
    broken = tmp_path / "broken"
    (broken / "lstm_tagger").mkdir(parents=True)
    (broken / "lstm_tagger" / "__main__.py").write_text("import sys\nsys.exit('lstm-tag: error: no such config')\n")
    with pytest.raises(UserError) as caught:
        side_by_side(str(a), str(broken), ["train", "c.yaml"], rounds=2)
    assert str(caught.value) == f"B ({broken}), round 1: exit code 1: no such config"


def test_two_exports_of_head_train_the_demo(tmp_path, monkeypatch):
    """The real thing, small: HEAD against HEAD, each exported with git archive, one epoch of the demo."""
    if subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True).returncode != 0:
        pytest.skip("not a git checkout: no revision to export")
    monkeypatch.chdir(tmp_path)  # relative to nothing: the config is named in each export
    output = tmp_path / "out" / "result.json"
    result = side_by_side(
        "HEAD", "HEAD", ["train", "{checkout}/configs/demo.yaml", "--set", "train.epochs=1", "--quiet"],
        rounds=1, repo=ROOT, output=output,
    )
    assert json.loads(output.read_text()) == result
    assert [r["side"] for r in result["runs"]] == ["A", "B"]
    assert all(r["train_seconds"] > 0 and r["peak_rss_mib"] > 0 and r["wall_seconds"] > 0 for r in result["runs"])
    assert result["sides"]["A"]["commit"] == result["sides"]["B"]["commit"] and result["sides"]["A"]["path"] is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no run directory left in the current one
