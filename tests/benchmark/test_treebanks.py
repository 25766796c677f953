"""The multi-treebank benchmark end to end on a tiny treebank folder (the demo corpus's first
sentences), with training cut to seconds by ``--set`` and a fake UDPipe script (it copies the
test file as both of its outputs), so that nothing needs ufal.udpipe. The scores must be the
official script's own; timings are only checked to be there."""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path

import pytest

from conftest import OFFICIAL_SCRIPT, ROOT, needs_script, official
from lstm_tagger.benchmark.treebanks import COLUMNS, blank_tags, main

FAST = ["train.epochs=1", "tokenizer.epochs=1", "tokenizer.min_updates=0", "model.embedding_dim=16", "model.hidden_dim=16",
        "model.char_hidden=8", "tokenizer.hidden_dim=8", "tokenizer.window=32"]
FAKE_UDPIPE = """import shutil, sys
train, dev, test, out = sys.argv[1:5]
shutil.copy(test, out + "/gold-tok.conllu")
shutil.copy(test, out + "/raw.conllu")
print("train seconds 0")
"""
STEPS = {"lstm-tag": ["init", "train", "tag gold tokens", "tag raw text", "score"], "udpipe1": ["train and tag", "score"]}


def first_sentences(source: Path, target: Path, count: int) -> None:
    blocks = source.read_text(encoding="utf-8").strip().split("\n\n")
    target.write_text("\n\n".join(blocks[:count]) + "\n\n", encoding="utf-8")


def treebank_folder(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for split, count in (("train", 40), ("dev", 8), ("test", 8)):
        first_sentences(ROOT / "data" / "demo" / f"{split}.conllu", folder / f"xx_demo-ud-{split}.conllu", count)
    return folder


def arguments(folder: Path, output: Path, udpipe: Path | None, *more: str) -> list[str]:
    given = [str(folder), "--output-dir", str(output), "--official-script", str(OFFICIAL_SCRIPT), *more]
    given += ["--udpipe-python", sys.executable, "--udpipe-script", str(udpipe)] if udpipe else ["--no-udpipe"]
    return given + [arg for override in FAST for arg in ("--set", override)]


def run_main(argv: list[str]) -> tuple[int, str]:
    """``main(argv)``: (exit code, stderr)."""
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        try:
            main(argv)
        except SystemExit as exc:
            return int(exc.code), stderr.getvalue()
    return 0, stderr.getvalue()


def script(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def benchmark(tmp_path_factory) -> dict:
    """The benchmark run twice on the tiny folder (the second run finds every step done)."""
    if not OFFICIAL_SCRIPT.is_file():
        pytest.skip(f"the official CoNLL 2018 script is not at {OFFICIAL_SCRIPT}")
    tmp = tmp_path_factory.mktemp("treebanks")
    folder, output = treebank_folder(tmp / "xx_demo"), tmp / "out"
    udpipe = script(tmp / "fake_udpipe.py", FAKE_UDPIPE)
    argv = arguments(folder, output, udpipe)
    first = run_main(argv)
    written = {name: (output / name).read_text(encoding="utf-8") for name in ("treebanks.md", "treebanks.json")}
    records = {system: (output / "xx_demo" / system / "steps.json").read_text(encoding="utf-8") for system in STEPS}
    second = run_main(argv)
    return {"tmp": tmp, "folder": folder, "output": output, "udpipe": udpipe, "argv": argv, "first": first, "second": second,
            "written": written, "records": records}


@needs_script
def test_each_system_gets_a_row_of_the_official_scripts_scores(benchmark):
    code, stderr = benchmark["first"]
    assert code == 0, stderr
    output, test = benchmark["output"], benchmark["folder"] / "xx_demo-ud-test.conllu"
    result = json.loads(benchmark["written"]["treebanks.json"])
    assert [t["name"] for t in result["treebanks"]] == ["xx_demo"]
    systems = result["treebanks"][0]["systems"]
    assert list(systems) == ["lstm-tag", "udpipe1"]
    for system, row in systems.items():
        gold = official(test, output / "xx_demo" / system / "gold-tok.conllu", counts=False)
        raw = official(test, output / "xx_demo" / system / "raw.conllu", counts=False)
        assert {m: f"{v:.2f}" for m, v in row["gold"].items()} == {m: gold[m][2] for m in ("UPOS", "XPOS", "UFeats", "AllTags")}
        assert {m: f"{v:.2f}" for m, v in row["raw"].items()} == {
            m: raw[m][2] for m in ("Tokens", "Sentences", "Words", "UPOS", "XPOS", "UFeats")}
    assert systems["udpipe1"]["gold"] == {"UPOS": 100.0, "XPOS": 100.0, "UFeats": 100.0, "AllTags": 100.0}
    assert systems["udpipe1"]["train_seconds"] == 0.0 and systems["udpipe1"]["tag_seconds"] > 0
    assert systems["lstm-tag"]["train_seconds"] > 0 and systems["lstm-tag"]["tag_seconds"] > 0
    assert systems["lstm-tag"]["train_peak_rss_mib"] > 50
    assert set(result["machine"]) == {"cores", "ram_gib", "cpu", "torch"}
    assert result["command"] == "python -m lstm_tagger.benchmark.treebanks " + " ".join(benchmark["argv"])


@needs_script
def test_the_markdown_table_has_a_row_per_treebank_and_system(benchmark):
    lines = benchmark["written"]["treebanks.md"].splitlines()
    assert lines[0] == "# lstm-tag and UDPipe 1 on UD treebanks"
    assert [line.split(":")[0] for line in lines[2:6]] == ["- date", "- machine", "- torch", "- command"]
    assert lines[7] == "| " + " | ".join(COLUMNS) + " |"
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[9:]]
    assert [row[:2] for row in rows] == [["xx_demo", "lstm-tag"], ["xx_demo", "UDPipe 1"]]
    assert rows[1][2] == "0" and rows[1][5:] == ["100.00"] * 10
    row = json.loads(benchmark["written"]["treebanks.json"])["treebanks"][0]["systems"]["lstm-tag"]
    assert rows[0][5:] == [f"{row['gold'][m]:.2f}" for m in ("UPOS", "XPOS", "UFeats", "AllTags")] + [
        f"{row['raw'][m]:.2f}" for m in ("Tokens", "Sentences", "Words", "UPOS", "XPOS", "UFeats")]


@needs_script
def test_each_step_writes_its_outputs_and_logs_in_its_folder(benchmark):
    folder = benchmark["output"] / "xx_demo"
    assert {"config.yaml", "run", "init.log", "train.log", "test-notags.conllu", "test.txt", "gold-tok.conllu", "raw.conllu",
            "tag-gold.log", "tag-raw.log", "gold-tok.eval.txt", "raw.eval.txt", "steps.json"} <= {
        p.name for p in (folder / "lstm-tag").iterdir()}
    assert (folder / "lstm-tag" / "run" / "model-best.safetensors").is_file()
    assert {"udpipe.out", "udpipe.log", "gold-tok.conllu", "raw.conllu"} <= {p.name for p in (folder / "udpipe1").iterdir()}
    for system, steps in STEPS.items():
        assert list(json.loads(benchmark["records"][system])) == steps
    first = benchmark["first"][1].splitlines()
    assert [line.split(": ", 2)[2] for line in first if line.endswith(" ...")] == [
        "init ...", "train ...", "tag gold tokens ...", "tag raw text ...", "score ...", "train and tag ...", "score ..."]


def test_the_gold_token_input_has_no_tags(tmp_path):
    source = tmp_path / "gold.conllu"
    source.write_bytes(b"# text = I'm\n1-2\tI'm\t_\t_\t_\t_\t_\t_\t_\t_\n1\tI\tI\tPRON\tPRP\tCase=Nom\t2\tnsubj\t_\t_\r\n"
                      b"2\t'm\tbe\tAUX\tVBP\tMood=Ind\t0\troot\t_\tSpaceAfter=No\n\n")
    blank_tags(source, tmp_path / "blank.conllu")
    assert (tmp_path / "blank.conllu").read_bytes() == (
        b"# text = I'm\n1-2\tI'm\t_\t_\t_\t_\t_\t_\t_\t_\n1\tI\tI\t_\t_\t_\t2\tnsubj\t_\t_\r\n"
        b"2\t'm\tbe\t_\t_\t_\t0\troot\t_\tSpaceAfter=No\n\n")


@needs_script
def test_a_second_run_keeps_every_completed_step(benchmark):
    code, stderr = benchmark["second"]
    assert code == 0, stderr
    lines = stderr.splitlines()
    assert [line.split(": ", 2)[2] for line in lines[:-1]] == [f"{step}: done before, kept" for steps in STEPS.values() for step in steps]
    result = json.loads(benchmark["written"]["treebanks.json"])
    again = json.loads((benchmark["output"] / "treebanks.json").read_text(encoding="utf-8"))
    assert again["treebanks"] == result["treebanks"]


@needs_script
def test_a_step_whose_output_is_missing_is_redone_with_the_steps_after_it(benchmark):
    output = benchmark["output"]
    (output / "xx_demo" / "lstm-tag" / "raw.conllu").unlink()
    code, stderr = run_main([*benchmark["argv"][:-2 * len(FAST)], "--no-udpipe",
                             *[arg for override in FAST for arg in ("--set", override)]])
    assert code == 0, stderr
    assert [line.split(": ", 2)[2] for line in stderr.splitlines()[:-1]] == [
        "init: done before, kept", "train: done before, kept", "tag gold tokens: done before, kept", "tag raw text ...",
        "score ..."]
    assert (output / "xx_demo" / "lstm-tag" / "raw.conllu").is_file()
    assert "| xx_demo | UDPipe 1 | not run |" in (output / "treebanks.md").read_text(encoding="utf-8")


@needs_script
def test_a_failing_child_is_one_line_naming_it_and_its_log_and_nothing_is_lost(benchmark):
    output = benchmark["output"]
    before = {p: p.read_bytes() for p in [output / "treebanks.json", output / "treebanks.md", *(output / "xx_demo" / "lstm-tag").iterdir()]
              if p.is_file()}
    failing = script(benchmark["tmp"] / "failing.py", "import sys\nprint('cannot train: boom', file=sys.stderr)\nsys.exit(1)\n")
    argv = [str(benchmark["folder"]), "--output-dir", str(output), "--official-script", str(OFFICIAL_SCRIPT),
            "--udpipe-python", sys.executable, "--udpipe-script", str(failing), *[a for o in FAST for a in ("--set", o)]]
    code, stderr = run_main(argv)
    log = output / "xx_demo" / "udpipe1" / "udpipe.log"
    assert code == 2
    assert stderr.splitlines()[-1] == f"lstm-tag: error: xx_demo: UDPipe 1 ({failing}) failed with exit code 1 (log: {log}): cannot train: boom"
    assert {p: p.read_bytes() for p in before} == before


@needs_script
def test_a_failing_official_script_names_the_system_file(benchmark):
    output = benchmark["output"]
    other_text = FAKE_UDPIPE.replace('shutil.copy(test, out + "/raw.conllu")',
                                     'open(out + "/raw.conllu", "w").write("1\\tZZZ\\t_\\t_\\t_\\t_\\t_\\t_\\t_\\t_\\n\\n")')
    udpipe = script(benchmark["tmp"] / "other_text.py", other_text)
    table = (output / "treebanks.json").read_bytes()
    code, stderr = run_main(arguments(benchmark["folder"], output, udpipe))
    assert code == 2
    last = stderr.splitlines()[-1]
    assert last.startswith(f"lstm-tag: error: {output / 'xx_demo' / 'udpipe1' / 'raw.conllu'}: the official script "
                           f"{OFFICIAL_SCRIPT} failed (exit code 1): ")
    assert (output / "treebanks.json").read_bytes() == table


@pytest.mark.parametrize("split", ["train", "dev", "test"])
def test_a_folder_without_its_three_files_is_one_line(tmp_path, split):
    folder = tmp_path / "ud_x"
    folder.mkdir()
    for other in {"train", "dev", "test"} - {split}:
        (folder / f"x-ud-{other}.conllu").write_text("", encoding="utf-8")
    code, stderr = run_main([str(folder), "--output-dir", str(tmp_path / "out"), "--official-script", str(folder / "x-ud-dev.conllu")])
    assert (code, stderr) == (2, f"lstm-tag: error: {folder}: expected one *-{split}.conllu, found none\n")
    assert not (tmp_path / "out").exists()


def test_two_files_of_a_split_and_a_missing_folder_are_one_line(tmp_path):
    folder = tmp_path / "ud_x"
    folder.mkdir()
    for name in ("a-ud-train.conllu", "b-ud-train.conllu", "x-ud-dev.conllu", "x-ud-test.conllu"):
        (folder / name).write_text("", encoding="utf-8")
    code, stderr = run_main([str(folder), "--output-dir", str(tmp_path / "out")])
    assert (code, stderr) == (2, f"lstm-tag: error: {folder}: expected one *-train.conllu, found 2 (a-ud-train.conllu, b-ud-train.conllu)\n")
    code, stderr = run_main([str(tmp_path / "nowhere"), "--output-dir", str(tmp_path / "out")])
    assert (code, stderr) == (2, f"lstm-tag: error: {tmp_path / 'nowhere'}: not a folder (a treebank folder holds *-train.conllu, "
                                 "*-dev.conllu and *-test.conllu)\n")


def test_a_missing_official_script_or_udpipe_is_one_line_before_any_work(tmp_path):
    folder = treebank_folder(tmp_path / "ud_x")
    missing = tmp_path / "conll18_ud_eval.py"
    code, stderr = run_main([str(folder), "--output-dir", str(tmp_path / "out"), "--official-script", str(missing)])
    assert (code, stderr) == (2, f"lstm-tag: error: {missing}: the official CoNLL 2018 script (conll18_ud_eval.py) is not there; "
                                 "give its path with --official-script PATH\n")
    code, stderr = run_main([str(folder), "--output-dir", str(tmp_path / "out"), "--official-script", str(folder / "x"),
                             "--udpipe-python", sys.executable])
    assert (code, stderr) == (2, "lstm-tag: error: give both --udpipe-python and --udpipe-script (or neither, or --no-udpipe, "
                                 "to run lstm-tag only)\n")
    script_path = folder / "xx_demo-ud-dev.conllu"
    code, stderr = run_main([str(folder), "--output-dir", str(tmp_path / "out"), "--official-script", str(script_path),
                             "--udpipe-python", sys.executable, "--udpipe-script", str(missing)])
    assert (code, stderr) == (2, f"lstm-tag: error: {missing}: the UDPipe script is not there\n")
    assert not (tmp_path / "out").exists()


def test_a_failing_lstm_tag_train_names_its_log(tmp_path):
    folder = treebank_folder(tmp_path / "ud_x")
    stand_in = folder / "xx_demo-ud-dev.conllu"  # any file: the script is not reached
    code, stderr = run_main([str(folder), "--output-dir", str(tmp_path / "out"), "--official-script", str(stand_in),
                             "--set", "train.epochs=0"])
    log = tmp_path / "out" / "ud_x" / "lstm-tag" / "train.log"
    assert code == 2
    assert stderr.splitlines()[-1].startswith(f"lstm-tag: error: ud_x: lstm-tag train failed with exit code 2 (log: {log}): ")
    assert "train.epochs" in stderr.splitlines()[-1]
    assert list(json.loads((tmp_path / "out" / "ud_x" / "lstm-tag" / "steps.json").read_text(encoding="utf-8"))) == ["init"]

