"""Export to TorchScript and ONNX: the exported network tags exactly as the checkpoint does.

Five tiny demo models (2 epochs each) cover both cell families, one and two layers, both
character encoders and the CRF output. Each is exported, loaded back and run on the whole
demo test set plus a one-word, an empty and an 80-word sentence (longer than any the
exporters saw), in batches other than the checkpoint's: the tags must be identical and the
emissions and log-probabilities within 1e-4.
"""

import importlib.util
import json
import re
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from lstm_tagger.model.chars import FormTable
from lstm_tagger.checkpoint import load_checkpoint
from lstm_tagger.rundir import BEST
from lstm_tagger.cli import app
from lstm_tagger.corpus.reader import read_corpus
from lstm_tagger.tagging.export import ExportError, export_model, load_exported, load_onnx, load_torchscript, run_exported, tag_exported
from lstm_tagger.tagging.predict import run_model, tag
from lstm_tagger.corpus.vocab import PAD_ID

from conftest import ROOT, assert_one_line_error

runner = CliRunner()

HAVE_ONNX = all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))
needs_onnx = pytest.mark.skipif(not HAVE_ONNX, reason="onnx and onnxruntime are not installed: pip install 'lstm-tag[onnx]'")
FORMATS = ["torchscript", pytest.param("onnx", marks=needs_onnx)]

MODELS = {
    "lstm": [],  # the demo config: one BiLSTM layer, softmax output
    "gru": ["model.cell=gru", "model.num_layers=2"],
    "char_cnn": ["model.char_encoder=cnn"],
    "char_lstm": ["model.char_encoder=lstm", "model.cell=hand_lstm"],
    "crf": ["model.output=crf", "model.cell=hand_gru"],
}

SUFFIX = {"torchscript": ".pt", "onnx": ".onnx"}


@pytest.fixture(scope="module")
def demo_run(trained_run):
    """``demo_run(name)``: the run directory of model ``name``, trained once for the session."""
    return lambda name: trained_run("demo", "train.epochs=2", "tokenizer.mode=off", *MODELS[name])


def _sentences() -> list[list[str]]:
    test = [s.words for s in read_corpus(ROOT / "data" / "demo" / "test.conllu")]
    long = [w for words in test for w in words][:80]
    return [*test, ["Zyzzyva"], [], long]


def _reference_emissions(checkpoint, sentences) -> list[torch.Tensor]:
    """The checkpoint's emissions of every non-empty sentence, all in one batch."""
    kept = [s for s in sentences if s]
    words = torch.nn.utils.rnn.pad_sequence([checkpoint.words.encode(s) for s in kept], batch_first=True, padding_value=PAD_ID)
    lengths = torch.tensor([len(s) for s in kept])
    chars = FormTable(checkpoint.chars, kept).batch(range(len(kept))) if checkpoint.chars is not None else None
    with torch.inference_mode():
        emissions = checkpoint.model.emissions(words, lengths, chars)
    return [emissions[i, : len(s)] for i, s in enumerate(kept)]


@pytest.mark.parametrize("format", FORMATS)
@pytest.mark.parametrize("name", MODELS)
def test_export_tags_as_the_checkpoint(demo_run, tmp_path, name, format):
    checkpoint = load_checkpoint(demo_run(name) / BEST)
    path = export_model(demo_run(name), format, tmp_path / f"model{SUFFIX[format]}")
    exported = load_exported(path)
    assert exported.format == format and exported.tags.itos == checkpoint.tags.itos
    assert (exported.crf is not None) == (name == "crf") and (exported.chars is not None) == name.startswith("char")

    sentences = _sentences()
    expected = tag(checkpoint, sentences)
    got = tag_exported(exported, sentences, batch_size=8)
    assert [t.tags for t in got] == [t.tags for t in expected]
    assert got[-2].tags == [] and len(got[-1].tags) == 80

    results = run_exported(exported, sentences, batch_size=5, scores=True)
    kept = [r for r, s in zip(results, sentences) if s]
    for (_, _, emissions), reference in zip(kept, _reference_emissions(checkpoint, sentences)):
        np.testing.assert_allclose(emissions, reference.numpy(), atol=1e-4, rtol=0)
    for (_, logp, _), (_, reference) in zip(results, run_model(checkpoint, sentences, scores=True)):
        np.testing.assert_allclose(logp, reference.numpy(), atol=1e-4, rtol=0)


def _predict(*args: str) -> str:
    result = runner.invoke(app, ["predict", *args])
    assert result.exit_code == 0, result.output
    return result.stdout


@needs_onnx
@pytest.mark.parametrize("name", MODELS)
def test_cli_export_then_predict_onnx_prints_what_predict_prints(demo_run, tmp_path, name):
    run = demo_run(name)
    onnx_file = tmp_path / "tagger.onnx"
    result = runner.invoke(app, ["export", str(run), "--format", "onnx", "--output", str(onnx_file)])
    assert result.exit_code == 0, result.output
    assert str(onnx_file) in result.stdout and onnx_file.is_file()

    text = tmp_path / "in.txt"
    text.write_text("\n".join(" ".join(words) for words in _sentences()) + "\n", encoding="utf-8")
    for format in ("text", "json", "conllu"):
        args = ["--file", str(text), "--format", format, "--batch-size", "16"]
        assert _predict("--onnx", str(onnx_file), *args) == _predict("--model", str(run), *args)

    # Probabilities are printed rounded, so they are compared as numbers.
    args = ["--file", str(text), "--format", "json", "--scores"]
    from_onnx = [json.loads(line) for line in _predict("--onnx", str(onnx_file), *args).splitlines()]
    from_model = [json.loads(line) for line in _predict("--model", str(run), *args).splitlines()]
    assert [r["upos"] for r in from_onnx] == [r["upos"] for r in from_model]
    for a, b in zip(from_onnx, from_model):
        for row_a, row_b in zip(a["scores"]["upos"], b["scores"]["upos"]):
            assert row_a.keys() == row_b.keys()
            assert all(abs(row_a[t] - row_b[t]) <= 2e-4 for t in row_a)


def test_cli_export_torchscript(demo_run, tmp_path):
    out = tmp_path / "tagger.pt"
    result = runner.invoke(app, ["export", str(demo_run("lstm") / BEST), "--format", "torchscript", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert load_torchscript(out).words.itos == load_checkpoint(demo_run("lstm") / BEST).words.itos


def test_export_errors(demo_run, tmp_path):
    run = str(demo_run("lstm"))
    assert_one_line_error(
        runner.invoke(app, ["export", run, "--format", "tflite", "--output", str(tmp_path / "m")]), "unknown export format 'tflite'"
    )
    missing_dir = tmp_path / "nowhere" / "m.pt"
    assert_one_line_error(
        runner.invoke(app, ["export", run, "--format", "torchscript", "--output", str(missing_dir)]), "output directory does not exist"
    )
    assert_one_line_error(runner.invoke(app, ["export", run, "--format", "torchscript", "--output", str(tmp_path)]), "is a directory")
    assert_one_line_error(
        runner.invoke(app, ["export", str(tmp_path / "none"), "--format", "onnx", "--output", str(tmp_path / "m")]), "not found"
    )
    assert list(tmp_path.iterdir()) == []


def test_missing_onnx_packages_say_what_to_install(demo_run, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now fails as if it were not installed
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    result = runner.invoke(app, ["export", str(demo_run("lstm")), "--format", "onnx", "--output", str(tmp_path / "m.onnx")])
    assert_one_line_error(result, "needs the onnx package", "pip install 'lstm-tag[onnx]'")
    result = runner.invoke(app, ["predict", "--onnx", str(tmp_path / "m.onnx"), "The dog"])
    assert_one_line_error(result, "needs onnxruntime", "pip install 'lstm-tag[onnx]'")
    assert not (tmp_path / "m.onnx").exists()


def _scripted_file(path: Path, metadata: dict | None) -> Path:
    """A TorchScript file of a Linear layer, with ``metadata`` as its lstm-tag extra file (or none)."""
    extra = {"lstm_tag.json": json.dumps(metadata)} if metadata is not None else {}
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(path), _extra_files=extra)
    return path


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_files_that_are_not_torchscript_exports_are_refused(demo_run, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("The dog ate the apple\n")
    plain_zip = tmp_path / "plain.zip"
    with zipfile.ZipFile(plain_zip, "w") as archive:
        archive.writestr("a.txt", "hello")
    refused = {
        demo_run("lstm") / BEST: "not an exported lstm-tag model (not a TorchScript file)",
        text: "not an exported lstm-tag model (not a TorchScript file)",
        plain_zip: "not an exported lstm-tag model (not a TorchScript file)",
        _scripted_file(tmp_path / "foreign.pt", None): "not an exported lstm-tag model (no lstm-tag metadata)",
        _scripted_file(tmp_path / "future.pt", {"format": "lstm-tag-export", "format_version": "99"}): "upgrade lstm-tag",
        _scripted_file(tmp_path / "damaged.pt", {"format": "lstm-tag-export", "format_version": "1"}): "metadata is damaged",
        tmp_path / "missing.pt": "not found",
        tmp_path: "is a directory",
    }
    for path, message in refused.items():
        with pytest.raises(ExportError, match=re.escape(message)):
            load_torchscript(path)
    with pytest.raises(ExportError, match="not an exported lstm-tag model"):
        load_exported(tmp_path / "foreign.pt")  # a zip archive: read as TorchScript


def test_export_help_has_examples():
    result = runner.invoke(app, ["export", "--help"])
    assert result.exit_code == 0 and "Examples" in result.stdout and "--format" in result.stdout


@needs_onnx
def test_predict_onnx_refuses_other_files(demo_run, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    foreign = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(foreign))
    text = tmp_path / "notes.txt"
    text.write_text("The dog ate the apple\n")
    checkpoint = demo_run("lstm") / BEST
    for path in (foreign, text, checkpoint):
        assert_one_line_error(runner.invoke(app, ["predict", "--onnx", str(path), "The dog"]), str(path), "not an exported lstm-tag model")
    assert_one_line_error(runner.invoke(app, ["predict", "--onnx", str(tmp_path / "gone.onnx"), "The dog"]), "not found")
    exported = export_model(checkpoint, "onnx", tmp_path / "m.onnx")
    result = runner.invoke(app, ["predict", "--onnx", str(exported), "--model", str(checkpoint), "The dog"])
    assert_one_line_error(result, "--onnx takes the place of --model")
    assert load_onnx(exported, threads=1).format == "onnx"
