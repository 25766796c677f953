"""Several tag columns in one model, and CoNLL-U in and out (issue 11).

A tiny three-column model (UPOS, XPOS, FEATS) is overfitted once per module; its exact
tags make the round trips exact: a CoNLL-U file with those columns blanked comes back
from ``predict`` byte for byte as the original.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors
from typer.testing import CliRunner

from lstm_tagger.checkpoint import load_checkpoint
from lstm_tagger.rundir import BEST
from lstm_tagger.cli import app
from lstm_tagger.config import Config, DataConfig, ModelConfig
from lstm_tagger.corpus.conllu import read_blocks
from lstm_tagger.tagging.export import load_exported, tag_exported
from lstm_tagger.model.tagger import Tagger
from lstm_tagger.tagging.predict import tag, tag_stream

from conftest import OFFICIAL_SCRIPT as SCORER
from conftest import ROOT

runner = CliRunner()

# word, UPOS, XPOS, FEATS ("_" is a FEATS value: no features)
GOLD = [
    [("The", "DET", "DT", "Definite=Def|PronType=Art"), ("dog", "NOUN", "NN", "Number=Sing"),
     ("ate", "VERB", "VBD", "Mood=Ind|Tense=Past"), ("the", "DET", "DT", "Definite=Def|PronType=Art"),
     ("apple", "NOUN", "NN", "Number=Sing")],
    [("Everybody", "PRON", "NN", "Number=Sing|PronType=Tot"), ("read", "VERB", "VBD", "_"),
     ("that", "DET", "DT", "Number=Sing|PronType=Dem"), ("book", "NOUN", "NN", "Number=Sing")],
]
COLUMNS = ["upos", "xpos", "feats"]


def conllu_text(sentences=GOLD, blank: bool = False, newline: str = "\n", extras: bool = False) -> str:
    """The gold corpus as CoNLL-U; ``blank`` puts ``_`` in UPOS, XPOS and FEATS; ``extras`` adds
    what a tagger must pass through: comments, a multiword range, an empty node, other columns."""
    lines = ["# newdoc id = tiny"] if extras else []
    for n, sentence in enumerate(sentences, start=1):
        lines += [f"# sent_id = s{n}", f"# text = {' '.join(w for w, *_ in sentence)}"]
        for i, (word, *tags) in enumerate(sentence, start=1):
            if extras and i == 2:
                lines.append(f"{i}-{i + 1}\t{word}{sentence[i][0]}\t_\t_\t_\t_\t_\t_\t_\tSpaceAfter=No")
            upos, xpos, feats = ("_", "_", "_") if blank else tags
            other = (word.lower(), f"{i - 1}", "dep", "_", "Gloss=x") if extras else ("_",) * 5
            lines.append("\t".join([str(i), word, other[0], upos, xpos, feats, *other[1:]]))
            if extras and i == 3:
                lines.append(f"{i}.1\tghost\t_\t_\t_\t_\t_\t_\t{i}:ref\t_")
        lines.append("")
    return newline.join(lines) + newline


@pytest.fixture(scope="module")
def three_columns(tmp_path_factory) -> Path:
    """A run directory whose model learned UPOS, XPOS and FEATS of ``GOLD`` exactly."""
    folder = tmp_path_factory.mktemp("three")
    (folder / "tiny.conllu").write_text(conllu_text(), encoding="utf-8")
    config = {
        "data": {"train": "tiny.conllu", "dev": "tiny.conllu", "test": "tiny.conllu", "columns": COLUMNS},
        "model": {"embedding_dim": 16, "hidden_dim": 16, "output": "crf", "output_per_column": {"feats": "softmax"}},
        "train": {"epochs": 40, "batch_size": 2, "lr": 0.5, "momentum": 0.9, "patience": 0, "seed": 3,
                  "column_weights": {"feats": 0.5}},
    }
    (folder / "tiny.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    result = runner.invoke(app, ["train", str(folder / "tiny.yaml"), "--output", str(folder / "run"), "--quiet"])
    assert result.exit_code == 0, result.output
    return folder / "run"


def test_one_model_learns_every_column_exactly(three_columns):
    checkpoint = load_checkpoint(three_columns / BEST)
    assert list(checkpoint.vocabs) == COLUMNS and checkpoint.model.columns == COLUMNS
    assert checkpoint.model.heads["upos"].crf is not None and checkpoint.model.heads["feats"].crf is None
    tagged = tag(checkpoint, [[w for w, *_ in s] for s in GOLD])
    for sentence, gold in zip(tagged, GOLD):
        assert [list(t) for t in zip(*sentence.columns.values())] == [list(tags) for _, *tags in gold]
    one_by_one = [tag(checkpoint, [[w for w, *_ in s]], batch_size=1)[0].columns for s in GOLD]
    assert one_by_one == [t.columns for t in tagged]


def test_streamed_tagging_with_several_workers_keeps_order_tags_and_scores(three_columns):
    """Many small chunks tagged by three worker threads at once come back in input order, with
    the tags and probabilities of ``tag`` on the whole list (empty sentences included)."""
    checkpoint = load_checkpoint(three_columns / BEST)
    sentences = [[w for w, *_ in s][: 1 + i % 4] for i, s in enumerate(GOLD * 30)] + [[]]
    sentences.insert(7, [])
    whole = tag(checkpoint, sentences, scores=True)
    streamed = list(tag_stream(checkpoint, iter(sentences), batch_size=2, scores=True, workers=3))
    assert [t.words for t in streamed] == [t.words for t in whole] == [list(s) for s in sentences]
    assert [t.columns for t in streamed] == [t.columns for t in whole]
    for a, b in zip(streamed, whole):
        assert a.probs.keys() == b.probs.keys()  # other batches: the same up to rounding
        assert all(torch.allclose(a.probs[c], b.probs[c], atol=1e-6) for c in a.probs)


def test_eval_json_has_every_column_and_all_tags(three_columns):
    result = runner.invoke(app, ["eval", "--model", str(three_columns), "--json"])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)
    assert list(scores["columns"]) == COLUMNS
    assert scores["accuracy"] == scores["columns"]["upos"]["accuracy"] == 1.0  # the first column's
    assert scores["all_tags"] == {"accuracy": 1.0, "tokens": 9, "correct": 9}
    assert scores["columns"]["feats"]["per_tag"]["_"]["support"] == 1  # "_" is a FEATS value
    assert scores["ufeats"] == {"accuracy": 1.0, "tokens": 9, "correct": 9}  # CoNLL 2018's, beside FEATS whole strings
    table = runner.invoke(app, ["eval", "--model", str(three_columns)], env={"COLUMNS": "120"})
    assert "UPOS %" in table.stdout and "FEATS (whole string) %" in table.stdout and "all tags right" in table.stdout
    assert "UFeats (CoNLL 2018)" in table.stdout and "FEATS %" not in table.stdout
    assert "per tag (XPOS)" in table.stdout


def test_report_plots_and_runs_cover_every_column(three_columns):
    report = json.loads((three_columns / "report.json").read_text())
    assert set(report["plots"].values()) >= {f"confusion-test-{c}.png" for c in COLUMNS}
    assert all((three_columns / f"confusion-test-{c}.png").is_file() for c in COLUMNS)
    markdown = (three_columns / "report.md").read_text()
    assert "| measure | UPOS % | XPOS % | FEATS (whole string) % | tokens |" in markdown and "### Per tag (FEATS)" in markdown
    assert "| UFeats (CoNLL 2018) |  |  | 100.00 | 9 |" in markdown
    log = (three_columns / "train.log").read_text(encoding="utf-8")
    assert "UPOS 100.00, XPOS 100.00, FEATS (whole string) 100.00, UFeats 100.00, all tags 100.00\n" in log
    history = [json.loads(line) for line in (three_columns / "metrics.jsonl").read_text().splitlines()]
    assert history[-1]["dev_all_tags"] == 1.0 and history[-1]["dev_xpos"] == 1.0 and history[-1]["dev_ufeats"] == 1.0
    records = json.loads(runner.invoke(app, ["runs", "--runs-dir", str(three_columns.parent), "--json"]).stdout)
    assert records[0]["test_columns"] == {"upos": 1.0, "xpos": 1.0, "feats": 1.0, "ufeats": 1.0, "all_tags": 1.0}
    info = json.loads(runner.invoke(app, ["info", str(three_columns), "--json"]).stdout)
    assert list(info["columns"]) == COLUMNS and "_" in info["columns"]["feats"]


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_conllu_round_trip_changes_only_the_model_columns(three_columns, tmp_path, newline):
    original = conllu_text(newline=newline, extras=True) + newline + "# a comment after the last sentence" + newline
    blanked = conllu_text(blank=True, newline=newline, extras=True) + newline + "# a comment after the last sentence" + newline
    assert blanked != original
    source = tmp_path / "blanked.conllu"  # the .conllu suffix chooses --input-format conllu
    source.write_bytes(b"\xef\xbb\xbf" + blanked.encode("utf-8"))
    result = runner.invoke(app, ["predict", "-m", str(three_columns), "--file", str(source), "--format", "conllu"])
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes == b"\xef\xbb\xbf" + original.encode("utf-8")
    piped = runner.invoke(
        app, ["predict", "-m", str(three_columns), "--file", "-", "--input-format", "conllu", "--format", "text"], input=blanked
    )
    assert piped.stdout.splitlines() == [
        "The/DET/DT/Definite=Def|PronType=Art dog/NOUN/NN/Number=Sing ate/VERB/VBD/Mood=Ind|Tense=Past "
        "the/DET/DT/Definite=Def|PronType=Art apple/NOUN/NN/Number=Sing",
        "Everybody/PRON/NN/Number=Sing|PronType=Tot read/VERB/VBD/_ that/DET/DT/Number=Sing|PronType=Dem book/NOUN/NN/Number=Sing",
    ]


def test_a_model_of_some_columns_leaves_the_others_untouched(tmp_path):
    """A UPOS-only model overwrites UPOS and nothing else; --scores adds its probabilities to MISC."""
    folder = tmp_path
    (folder / "tiny.conllu").write_text(conllu_text(), encoding="utf-8")
    config = {"data": {"train": "tiny.conllu", "dev": "tiny.conllu"}, "model": {"embedding_dim": 16, "hidden_dim": 16},
              "train": {"epochs": 40, "batch_size": 2, "lr": 0.5, "momentum": 0.9, "patience": 0}}
    (folder / "c.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    assert runner.invoke(app, ["train", str(folder / "c.yaml"), "--output", str(folder / "run"), "--quiet"]).exit_code == 0
    text = conllu_text(extras=True)
    source = folder / "in.conllu"
    source.write_text(text.replace("\tDET\t", "\tX\t"), encoding="utf-8")
    result = runner.invoke(app, ["predict", "-m", str(folder / "run"), "--file", str(source), "--format", "conllu", "--scores"])
    assert result.exit_code == 0, result.output
    out, want = result.stdout.splitlines(), text.splitlines()
    assert len(out) == len(want)
    for got, expected in zip(out, want):
        fields, gold = got.split("\t"), expected.split("\t")
        if not re.match(r"\d+\t", expected):
            assert got == expected
            continue
        assert fields[:9] == gold[:9]  # UPOS right again; XPOS, FEATS and the rest as they were
        misc = fields[9].split("|")
        assert misc[:-1] == [item for item in gold[9].split("|") if item != "_"] and misc[-1].startswith("UPOSProbs=")


def test_text_input_to_conllu_gets_sent_id_and_text_and_no_empty_sentence(three_columns):
    result = runner.invoke(app, ["predict", "-m", str(three_columns), "--file", "-", "--input-format", "tokens", "--format", "conllu"],
                           input="The dog ate the apple\n\n  \nEverybody read that book\n")
    assert result.exit_code == 0, result.output
    expected = ""
    for n, sentence in enumerate(GOLD, start=1):
        expected += f"# sent_id = {n}\n# text = {' '.join(w for w, *_ in sentence)}\n"
        expected += "".join(f"{i}\t{w}\t_\t{u}\t{x}\t{f}\t_\t_\t_\t_\n" for i, (w, u, x, f) in enumerate(sentence, start=1)) + "\n"
    assert result.stdout == expected
    assert [block.forms for block in read_blocks(result.stdout_bytes.splitlines(keepends=True), "out")] == [
        [w for w, *_ in s] for s in GOLD
    ]


def test_json_and_scores_per_column(three_columns):
    command = ["predict", "-m", str(three_columns), "Everybody read that book", "--scores", "--input-format", "tokens"]
    record = json.loads(runner.invoke(app, [*command, "--format", "json"]).stdout)
    assert list(record) == ["words", "upos", "xpos", "feats", "scores"]
    assert record["xpos"] == ["NN", "VBD", "DT", "NN"] and record["feats"][1] == "_"
    assert list(record["scores"]) == COLUMNS
    for column in COLUMNS:
        row = record["scores"][column][0]
        assert abs(sum(row.values()) - 1) < 1e-3 and max(row, key=row.get) == record[column][0]
    first = runner.invoke(app, command).stdout.split()[0]
    assert re.fullmatch(r"Everybody/PRON:[01]\.\d{3}/NN:[01]\.\d{3}/Number=Sing\|PronType=Tot:[01]\.\d{3}", first), first


def test_conllu_line_with_nine_columns_is_one_line_and_exit_2(three_columns, tmp_path):
    source = tmp_path / "bad.conllu"
    source.write_text("# sent_id = 1\n1\tThe\t_\t_\t_\t_\t_\t_\t_\t_\n2\tdog\t_\t_\t_\t_\t_\t_\t_\n\n", encoding="utf-8")
    result = runner.invoke(app, ["predict", "-m", str(three_columns), "--file", str(source), "--format", "conllu"])
    assert result.exit_code == 2
    assert result.stderr == f"lstm-tag: error: {source}:3: expected 10 tab-separated columns, found 9\n"


def test_training_on_a_column_that_is_all_underscore_is_one_line(tmp_path):
    (tmp_path / "t.conllu").write_text(conllu_text().replace("\tDT\t", "\t_\t").replace("\tNN\t", "\t_\t").replace("\tVBD\t", "\t_\t"))
    config = {"data": {"train": "t.conllu", "dev": "t.conllu", "columns": ["upos", "xpos"]}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    result = runner.invoke(app, ["train", str(tmp_path / "c.yaml"), "--output", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert result.stderr == (
        f"lstm-tag: error: {tmp_path / 't.conllu'}:3: missing XPOS tag for 'The' "
        "(every word's XPOS is _, nothing to learn: remove xpos from data.columns)\n"
    )
    assert not (tmp_path / "run").exists()


HAVE_ONNX = all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))


@pytest.mark.parametrize(
    "format", ["torchscript", pytest.param("onnx", marks=pytest.mark.skipif(not HAVE_ONNX, reason="onnx and onnxruntime are not installed"))]
)
def test_export_carries_every_head_and_tags_as_the_checkpoint(three_columns, tmp_path, format):
    output = tmp_path / ("m.pt" if format == "torchscript" else "m.onnx")
    result = runner.invoke(app, ["export", str(three_columns), "--format", format, "--output", str(output)])
    assert result.exit_code == 0, result.output
    exported = load_exported(output)
    checkpoint = load_checkpoint(three_columns / BEST)
    assert list(exported.vocabs) == COLUMNS and [c is not None for c in exported.crfs.values()] == [True, True, False]
    sentences = [list(w for w, *_ in sentence) for sentence in GOLD] + [["dog"], []]
    expected, got = tag(checkpoint, sentences, scores=True), tag_exported(exported, sentences, batch_size=2, scores=True)
    assert [t.columns for t in got] == [t.columns for t in expected]
    for a, b in zip(got, expected):
        for column in COLUMNS:
            torch.testing.assert_close(a.probs[column], b.probs[column], atol=1e-4, rtol=0)
    if format == "onnx":
        source = tmp_path / "in.conllu"
        source.write_text(conllu_text(extras=True), encoding="utf-8")
        for args in (["--format", "json", "--scores"], ["--format", "conllu"], ["--format", "text"]):
            by_model = runner.invoke(app, ["predict", "-m", str(three_columns), "--file", str(source), *args])
            by_onnx = runner.invoke(app, ["predict", "--onnx", str(output), "--file", str(source), *args])
            assert by_model.exit_code == by_onnx.exit_code == 0, by_onnx.output
            if "--scores" in args:
                rows = [(json.loads(x), json.loads(y)) for x, y in zip(by_onnx.stdout.splitlines(), by_model.stdout.splitlines())]
                assert [x[c] for x, _ in rows for c in COLUMNS] == [y[c] for _, y in rows for c in COLUMNS]
            else:
                assert by_onnx.stdout == by_model.stdout


def _as_format_1(path: Path, out: Path) -> None:
    """Rewrite a one-column checkpoint the way format 1 wrote it: ``data.tag_column`` in the config,
    one ``tags`` vocabulary and no ``columns``, the head's weights as ``output.*`` and ``crf.*``."""
    data = path.read_bytes()
    size = int.from_bytes(data[:8], "little")
    meta = json.loads(data[8 : 8 + size])["__metadata__"]
    tensors = {re.sub(r"^(train_state\.momentum\.)?heads\.\w+\.", r"\1", name): t for name, t in load_tensors(data).items()}
    config = json.loads(meta["config"])
    column = config["data"].pop("columns")[0]
    config["data"]["tag_column"] = column
    meta.update(format_version="1", config=json.dumps(config))
    del meta["columns"]
    out.write_bytes(save_tensors(tensors, metadata=meta))


def test_checkpoint_of_format_1_still_loads(tmp_path):
    torch.manual_seed(0)
    config = Config(data=DataConfig(train="t", dev="d", columns=["xpos"]), model=ModelConfig(embedding_dim=8, hidden_dim=8, output="crf"))
    from lstm_tagger.checkpoint import Checkpoint, save_checkpoint
    from lstm_tagger.corpus.vocab import Vocab, build_word_vocab

    words, _ = build_word_vocab([["The", "dog", "ate"]])
    vocab = Vocab(["DT", "NN", "VBD"])
    model = Tagger(config.model, len(words), {"xpos": len(vocab)}).eval()
    save_checkpoint(tmp_path / "new.safetensors", Checkpoint(model=model, config=config, words=words, vocabs={"xpos": vocab}))
    _as_format_1(tmp_path / "new.safetensors", tmp_path / "old.safetensors")
    assert b"heads." not in (tmp_path / "old.safetensors").read_bytes()[:4000]
    old = load_checkpoint(tmp_path / "old.safetensors")
    assert old.config.data.columns == ["xpos"] and list(old.vocabs) == ["xpos"] and old.tags.itos == vocab.itos
    sentences = [["The", "dog", "ate"], ["dog"]]
    new = load_checkpoint(tmp_path / "new.safetensors")
    for a, b in zip(tag(old, sentences, scores=True), tag(new, sentences, scores=True)):
        assert a.columns == b.columns and torch.equal(a.probs["xpos"], b.probs["xpos"])


@pytest.mark.skipif(not SCORER.is_file(), reason="the CoNLL 2018 scorer (shared/tools/conll18_ud_eval.py) is absent")
def test_official_scorer_agrees_with_eval_json(tmp_path):
    """Demo test set with UPOS, XPOS and FEATS blanked -> predict -> conll18_ud_eval.py: the same
    UPOS and XPOS counts as ``eval --json``."""
    config = ROOT / "configs" / "demo.yaml"
    trained = runner.invoke(app, ["train", str(config), "--set", "data.columns=[upos,xpos]", "--set", "train.epochs=3",
                                  "--output", str(tmp_path / "run"), "--quiet"])
    assert trained.exit_code == 0, trained.output
    gold = ROOT / "data" / "demo" / "test.conllu"
    blanked = "".join(
        "\t".join(f[:3] + ["_", "_", "_"] + f[6:]) if re.match(r"\d+\t", line) else line
        for line in gold.read_text(encoding="utf-8").splitlines(keepends=True)
        for f in [line.split("\t")]
    )
    (tmp_path / "blanked.conllu").write_text(blanked, encoding="utf-8")
    system = runner.invoke(app, ["predict", "-m", str(tmp_path / "run"), "--file", str(tmp_path / "blanked.conllu"), "--format", "conllu"])
    assert system.exit_code == 0, system.output
    (tmp_path / "system.conllu").write_text(system.stdout, encoding="utf-8")
    scored = subprocess.run([sys.executable, str(SCORER), "-c", "--skip-parse", str(gold), str(tmp_path / "system.conllu")],
                            capture_output=True, text=True, check=True).stdout
    counts = {line.split("|")[0].strip(): [c.strip() for c in line.split("|")[1:]] for line in scored.splitlines()[2:]}
    ours = json.loads(runner.invoke(app, ["eval", "--model", str(tmp_path / "run"), "--json"]).stdout)
    for metric, column in (("UPOS", "upos"), ("XPOS", "xpos")):
        correct, gold_total, _, aligned = counts[metric]
        assert int(aligned) == int(gold_total) == ours["columns"][column]["tokens"]
        assert int(correct) == ours["columns"][column]["correct"], metric
        assert int(correct) / int(aligned) == ours["columns"][column]["accuracy"]
    assert 0 < ours["columns"]["xpos"]["accuracy"] < 1  # a real comparison, not two perfect scores


PEAK_RSS = """
import resource, sys
from lstm_tagger.cli import app
try:
    app(["predict", "-m", sys.argv[1], "--file", sys.argv[2], "--format", "conllu", "--batch-size", "64"])
except SystemExit:
    pass
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""


def _big_conllu(path: Path, tokens: int) -> None:
    block = conllu_text(blank=True, extras=True).encode("utf-8")
    per_block = sum(len(s) for s in GOLD)
    with path.open("wb") as handle:
        for _ in range(tokens // per_block):
            handle.write(block)


def test_a_million_tokens_stream_in_constant_memory(three_columns, tmp_path):
    """Peak memory of tagging 1M tokens is that of 200k: the input is never held whole."""
    peaks, sizes = {}, {}
    for tokens in (200_000, 1_000_000):
        source = tmp_path / f"big{tokens}.conllu"
        _big_conllu(source, tokens)
        output = tmp_path / "out.conllu"
        with output.open("wb") as out:
            done = subprocess.run(
                [sys.executable, "-c", PEAK_RSS, str(three_columns / BEST), str(source)],
                stdout=out, stderr=subprocess.PIPE, check=True, cwd=ROOT, timeout=1800,
                env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
            )
        peaks[tokens] = int(done.stderr.decode().strip().splitlines()[-1])  # KiB
        sizes[tokens] = source.stat().st_size
        with source.open("rb") as a, output.open("rb") as b:
            assert sum(1 for _ in a) == sum(1 for _ in b)  # every line came back
        source.unlink()
    assert sizes[1_000_000] - sizes[200_000] > 50_000_000  # 50 MB more input...
    assert peaks[1_000_000] - peaks[200_000] < 20_000  # ... and less than 20 MB more memory
