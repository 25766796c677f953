"""The edges of the process and of the files it trusts: crafted metadata, the CLI's last line of
defence, an unwritable or closed stdout, Ctrl-C at start-up, odd names, damaged runs."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lstm_tagger import cli
from lstm_tagger.rundir import BEST
from lstm_tagger.cli import app
from lstm_tagger.tagging.export import ExportError, export_model, load_onnx
from lstm_tagger.evaluation.plots import plot_confusion_matrix, plot_learning_curves

from conftest import ROOT, assert_one_line_error, rewrite_header

runner = CliRunner()


# --- crafted checkpoint metadata ---------------------------------------------------------


def with_metadata(source: Path, target: Path, **changes) -> Path:
    def edit(header):
        header["__metadata__"].update(changes)

    return rewrite_header(source, target, edit)


def vocab(source: Path, key: str) -> dict:
    data = source.read_bytes()
    return json.loads(json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])["__metadata__"][key])


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"format_version": ["1"]}, "checkpoint metadata is damaged: format_version: JSON input should be string"),
        ({"format_version": "one"}, "checkpoint metadata is damaged: format_version: invalid JSON"),
        ({"metrics": "[1, 2]"}, "checkpoint metadata is damaged: metrics: input should be a valid dictionary"),
        ({"config": 7}, "checkpoint metadata is damaged: config: JSON input should be string"),
        ({"tags": json.dumps({"itos": ["A", "A"], "unk": None})}, "tags: vocabulary entries are not unique"),
        ({"tags": json.dumps({"itos": ["A"], "unk": 5})}, "tags: unk id 5 is outside the vocabulary of 1"),
        ({"words": json.dumps({"itos": ["a", "b"], "unk": 1, "shapes": False, "lowercase_fallback": False})},
         "words: a word vocabulary starts with <pad>, <unk> and has unk 1"),
        ({"chars": json.dumps({"itos": ["<pad>", "<unk>"], "unk": 1})}, "a character vocabulary goes with a character encoder"),
        ({"surprise": "1"}, "checkpoint metadata is damaged: surprise: extra inputs are not permitted"),
    ],
)
def test_checkpoint_metadata_of_the_wrong_type_is_one_line(tiny_run, tmp_path, changes, expected):
    path = with_metadata(tiny_run / BEST, tmp_path / "bad.safetensors", **changes)
    for command in (["info", str(path)], ["predict", "--model", str(path), "The dog"]):
        assert_one_line_error(runner.invoke(app, command), str(path), expected)


def test_vocabularies_that_disagree_with_the_weights_are_refused(tiny_run, tmp_path):
    words = vocab(tiny_run / BEST, "words")
    words["itos"].append("zebra")
    columns = vocab(tiny_run / BEST, "columns")  # format 2: each column's tags (``tags`` repeats the first)
    columns["upos"]["itos"].append("X")
    for key, value in (("words", words), ("columns", columns)):
        path = with_metadata(tiny_run / BEST, tmp_path / f"{key}.safetensors", **{key: json.dumps(value)})
        assert_one_line_error(runner.invoke(app, ["info", str(path)]), "weights do not match the hyper-parameters and vocabulary sizes")


def test_tensor_entries_of_the_wrong_type_are_one_line(tiny_run, tmp_path):
    def edit(header):
        name = next(n for n in header if n != "__metadata__")
        header[name]["shape"] = "big"

    path = rewrite_header(tiny_run / BEST, tmp_path / "bad.safetensors", edit)
    assert_one_line_error(runner.invoke(app, ["info", str(path)]), "weights are damaged: shape: input should be a valid list")


def foreign_onnx(metadata: dict[str, str], declared: list, returned: list[int]) -> bytes:
    """An ONNX graph that is not ours: our input names, an ``emissions`` output declared as
    ``declared`` that is a constant of shape ``returned``, and our metadata."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    size = 1
    for dim in returned:
        size *= dim
    constant = helper.make_node("Constant", [], ["emissions"], value=helper.make_tensor("c", TensorProto.FLOAT, returned, [0.5] * size))
    graph = helper.make_graph(
        [constant], "foreign",
        [helper.make_tensor_value_info("words", TensorProto.INT64, ["b", "t"]), helper.make_tensor_value_info("lengths", TensorProto.INT64, ["b"])],
        [helper.make_tensor_value_info("emissions", TensorProto.FLOAT, declared)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, metadata)
    return model.SerializeToString()


def test_foreign_onnx_graph_carrying_our_metadata_is_refused(tiny_run, tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    ours = export_model(tiny_run, "onnx", tmp_path / "ours.onnx")
    metadata = {p.key: p.value for p in onnx.load(str(ours)).metadata_props}
    num_tags = len(json.loads(metadata["tags"])["itos"])
    wrong_size = tmp_path / "wrong-size.onnx"
    wrong_size.write_bytes(foreign_onnx(metadata, ["b", "t", num_tags + 1], [1, 1, num_tags + 1]))
    with pytest.raises(ExportError, match=rf"outputs are not a score for each tag of each column \({num_tags} upos\)"):
        load_onnx(wrong_size)
    lying = tmp_path / "lying.onnx"  # declares the right shape, returns another
    lying.write_bytes(foreign_onnx(metadata, ["b", "t", num_tags], [1, 1, num_tags]))
    result = runner.invoke(app, ["predict", "--onnx", str(lying), "The dog ate the apple"])
    assert_one_line_error(result, f"{lying}: the network returned upos scores of shape (1, 1, {num_tags})")
    tampered = dict(metadata, inputs=json.dumps(["words"]))
    (tmp_path / "tampered.onnx").write_bytes(foreign_onnx(tampered, ["b", "t", num_tags], [1, 1, num_tags]))
    assert_one_line_error(runner.invoke(app, ["predict", "--onnx", str(tmp_path / "tampered.onnx"), "a"]), "inputs ['words'] are not those")


# --- the last line of defence --------------------------------------------------------------


def test_an_unexpected_exception_is_one_line_and_exit_1(monkeypatch, capsys, tmp_path):
    def broken(runs_dir):
        raise RuntimeError("something nobody foresaw\nover two lines")

    monkeypatch.setattr("lstm_tagger.cli.runs.list_runs", broken)
    with pytest.raises(SystemExit) as exit_:
        cli.run(["runs", "--runs-dir", str(tmp_path)])
    assert exit_.value.code == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("lstm-tag: internal error: RuntimeError: something nobody foresaw over two lines (traceback saved to ")
    assert line.endswith("This is a bug: please report it with that traceback.")
    saved = Path(line.split("traceback saved to ")[1].split(")")[0])
    assert "in broken" in saved.read_text() and "RuntimeError" in saved.read_text()
    saved.unlink()
    with pytest.raises(RuntimeError, match="nobody foresaw"):  # --debug: the traceback itself
        cli.run(["--debug", "runs", "--runs-dir", str(tmp_path)])


def test_user_errors_stay_exit_2_behind_the_guard(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        cli.run(["predict", "--model", str(tmp_path / "none.safetensors"), "hi"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines() == [f"lstm-tag: error: {tmp_path / 'none.safetensors'}: checkpoint not found"]


def test_full_or_closed_stdout_is_one_line(tiny_run):
    with open("/dev/full", "w") as full:
        for args in (["--help"], ["predict", "--model", str(tiny_run), "The dog ate the apple"]):
            done = subprocess.run(
                [sys.executable, "-m", "lstm_tagger", *args], cwd=ROOT, stdout=full, stderr=subprocess.PIPE, text=True, timeout=300
            )
            assert done.returncode == 2
            assert done.stderr.splitlines() == ["lstm-tag: error: cannot write to standard output: No space left on device"]
    closed = subprocess.run(
        f"'{sys.executable}' -m lstm_tagger --version >&-", shell=True, cwd=ROOT, stderr=subprocess.PIPE, text=True, timeout=300
    )
    assert closed.returncode == 2
    assert closed.stderr.splitlines() == ["lstm-tag: error: standard output is closed (redirect it, e.g. >/dev/null, to discard it)"]


def test_ctrl_c_during_start_up_exits_130_quietly():
    process = subprocess.Popen([sys.executable, "-m", "lstm_tagger", "runs"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(0.3)  # importing torch takes longer; should it be done, Ctrl-C in a command is 130 too
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130 and err == b"", err.decode()


# --- names, runs and URLs --------------------------------------------------------------------


def test_dollars_in_tags_and_titles_are_plain_text(tmp_path):
    labels = ["$", "a$b", "$\\frac{$", "NOUN"]  # mathtext cannot parse "$\\frac{$": it must not try
    counts = [[3, 1, 0, 0], [0, 2, 0, 0], [1, 0, 1, 0], [0, 0, 0, 4]]
    assert plot_confusion_matrix(labels, counts, tmp_path / "c.png", "run $x^$").stat().st_size > 0
    history = [{"epoch": 1, "train_loss": 1.0, "dev_accuracy": 0.5}]
    assert plot_learning_curves(history, tmp_path / "l.png", "run $x^$ of $\\frac{$").stat().st_size > 0


def test_damaged_run_folders_are_listed_as_damaged(tiny_run, tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    good = runs / "good"
    good.mkdir()
    for name in ("config.yaml", "metrics.jsonl", "report.json"):
        (good / name).write_bytes((tiny_run / name).read_bytes())
    for name, config, metrics in (
        ("bad-config", "- just\n- a list\n", ""),
        ("bad-metrics", (tiny_run / "config.yaml").read_text(), "[1, 2]\n"),
        ("alias-bomb", "a: &a [x]\nb: *a\n", ""),
    ):
        (runs / name).mkdir()
        (runs / name / "config.yaml").write_text(config)
        (runs / name / "metrics.jsonl").write_text(metrics)
    result = runner.invoke(app, ["runs", "--runs-dir", str(runs), "--json"])
    assert result.exit_code == 0, result.output
    records = {r["name"]: r for r in json.loads(result.stdout)}
    assert records["good"]["damaged"] is None and records["good"]["epochs"] == 2
    assert all(records[name]["damaged"] for name in ("bad-config", "bad-metrics", "alias-bomb"))
    assert "alias *a stands for a mapping or list" in records["alias-bomb"]["damaged"]
    table = runner.invoke(app, ["runs", "--runs-dir", str(runs)])
    assert table.exit_code == 0 and table.stdout.count("damaged:") == 3


@pytest.mark.parametrize("url", ["not a url", "http://host:port/x", "ftp://mirror/x", "http://", "https://[::1"])
def test_malformed_base_url_is_one_line(tmp_path, url):
    result = runner.invoke(app, ["download", "ud_english_ewt", "--dest", str(tmp_path), "--base-url", url])
    assert_one_line_error(result, f"--base-url {url!r}: not an http(s) or file URL")
