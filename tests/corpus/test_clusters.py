"""Word clusters as a feature (``model.clusters``: ``brown-en`` or a ``word<TAB>cluster`` file).

The real resource is the 98 MB ``spacy-lookups-data`` package; these tests lay out a small fake one
the same way (``spacy_lookups_data/data/en_lexeme_cluster.json.gz``, a word -> number JSON object in
spaCy's encoding, and its dist-info for the version) in ``tmp_path``, put first on ``sys.path``.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from lstm_tagger import load_checkpoint, load_config, tag, train
from lstm_tagger.checkpoint import FORMAT_VERSION
from lstm_tagger.cli import app
from lstm_tagger.config import ModelConfig
from lstm_tagger.corpus.clusters import Clusters, brown_path, cluster_paths, read_cluster_resource, read_clusters, word_clusters
from lstm_tagger.corpus.conllu import read_file
from lstm_tagger.errors import CheckpointError, ConfigError
from lstm_tagger.model.tagger import ClusterLayout, PretrainedLayout, Tagger
from lstm_tagger.rundir import LAST

from conftest import ROOT, assert_one_line_error, rewrite_header, rewrite_metadata, tiny_config

runner = CliRunner()
MODULE = "spacy_lookups_data"
RESOURCE_FILE = Path(MODULE, "data", "en_lexeme_cluster.json.gz")


def spacy_number(path: str) -> int:
    """A Brown cluster's path as spaCy numbers it: the bit string reversed, read in binary."""
    return int(path[::-1], 2)


NOUNS, VERBS = "0110", "1011"
TABLE = {"dog": NOUNS, "cat": NOUNS, "apple": NOUNS, "run": VERBS, "eat": VERBS, "jump": VERBS, "zebra": NOUNS, "sprint": VERBS}
"""The fake resource's clusters: "zebra" and "sprint" are never seen in training."""
ONE_WORD = [([word], [tag]) for word, tag in [("dog", "NOUN"), ("run", "VERB"), ("cat", "NOUN"), ("eat", "VERB"),
                                              ("apple", "NOUN"), ("jump", "VERB")] * 3]
"""Sentences of one word: only the word's cluster tells an unseen word's tag."""


def fake_package(root: Path, numbers: dict[str, int], version: str = "0.0.1") -> Path:
    """A package laid out like spacy-lookups-data under ``root``: returns its cluster file."""
    path = root / RESOURCE_FILE
    path.parent.mkdir(parents=True)
    (root / MODULE / "__init__.py").write_text("raise ImportError('lstm-tag never imports the resource')\n")
    path.write_bytes(gzip.compress(json.dumps(numbers).encode("utf-8")))
    info = root / f"{MODULE}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: spacy-lookups-data\nVersion: {version}\n")
    return path


@pytest.fixture
def fake_brown(tmp_path, monkeypatch) -> Path:
    path = fake_package(tmp_path / "site", {**{w: spacy_number(p) for w, p in TABLE.items()}, "rare": 0})
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    return path


def without(monkeypatch, *modules: str) -> None:
    """Make ``modules`` look uninstalled (``importlib.util.find_spec`` finds nothing)."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, **k: None if name in modules else real(name, *a, **k))


def write_clusters(path: Path, table: dict[str, str]) -> Path:
    path.write_text("".join(f"{word}\t{cluster}\n" for word, cluster in table.items()), encoding="utf-8")
    return path


# --- reading --------------------------------------------------------------------------------------


def test_brown_numbers_are_reversed_paths():
    """spaCy's numbers keep a path's first bit lowest: 0b110 is the path 011, and a path's
    trailing zeros are lost (0110 -> 011)."""
    assert [brown_path(n) for n in (1, 6, 11)] == ["1", "011", "1101"]
    assert brown_path(spacy_number("1101")) == "1101" and brown_path(spacy_number(NOUNS)) == "011"


def test_a_name_resolves_to_the_installed_package(fake_brown):
    source = read_cluster_resource("brown-en")
    clusters = source.clusters
    assert clusters.words == list(TABLE)  # "rare" (0: no reliable cluster) is left out
    assert clusters.labels == ["011", "1011"] and clusters.ids == [0, 0, 0, 1, 1, 1, 0, 1]
    assert (source.name, source.version) == ("brown-en", "0.0.1")
    assert source.sha256 == hashlib.sha256(fake_brown.read_bytes()).hexdigest()
    assert read_clusters("brown-en").clusters == clusters


def test_a_file_reads_as_words_and_labels(tmp_path):
    path = tmp_path / "paths.tsv"
    path.write_bytes(b"\xef\xbb\xbfthe\t0010\r\n\nThe\t0011\nbig\tADJ-ish\n")
    source = read_clusters(str(path))
    assert source.clusters == Clusters(["the", "The", "big"], [0, 1, 2], ["0010", "0011", "ADJ-ish"])
    assert (source.name, source.version, source.sha256) == ("paths.tsv", None, hashlib.sha256(path.read_bytes()).hexdigest())
    gz = tmp_path / "paths.tsv.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert read_clusters(str(gz)).clusters == source.clusters


@pytest.mark.parametrize(
    "lines, bits, message",
    [
        ("a\t01\nb 01\n", False, "2: expected a word, a tab and its cluster; found 1 tab-separated fields"),
        ("a\t01\nb\t01\t7\n", False, "2: expected a word, a tab and its cluster; found 3 tab-separated fields"),
        ("\t01\n", False, "1: empty word"),
        ("a\t\n", False, "1: empty cluster"),
        ("a\t01\nb\t1\na\t01\n", False, "3: 'a' already has a cluster (line 1)"),
        ("a\t01\nb\tC7\n", True, "2: cluster 'C7' is not a bit string (model.cluster_prefixes needs one)"),
        ("a\t" + "1" * 201 + "\n", False, "1: a cluster label of 201 characters, above the limit of 200"),
    ],
    ids=["no-tab", "three-fields", "empty-word", "empty-cluster", "twice", "not-bits", "long-label"],
)
def test_a_bad_line_is_one_line_naming_file_and_line(tmp_path, lines, bits, message):
    path = tmp_path / "clusters.tsv"
    path.write_text(lines, encoding="utf-8")
    prefixes = {"cluster_prefixes": [1]} if bits else {}
    config = tiny_config(tmp_path, model={"clusters": "clusters.tsv", **prefixes})
    result = runner.invoke(app, ["train", str(config), "--output", str(tmp_path / "run")])
    assert_one_line_error(result)
    assert result.stderr == f"lstm-tag: error: {path}:{message}\n"
    assert not (tmp_path / "run").exists()


def test_an_empty_file_is_one_error(tmp_path):
    path = tmp_path / "clusters.tsv"
    path.write_text("\n", encoding="utf-8")
    with pytest.raises(Exception) as caught:
        read_clusters(str(path))
    assert str(caught.value) == f"{path}: no clusters in the file"


def test_a_missing_extra_is_one_line_before_anything_is_written(tmp_path, monkeypatch):
    without(monkeypatch, MODULE)
    config = tiny_config(tmp_path, model={"clusters": "brown-en"})
    result = runner.invoke(app, ["train", str(config), "--output", str(tmp_path / "run")])
    assert_one_line_error(result)
    assert result.stderr == (
        f"lstm-tag: error: {config}: model.clusters: brown-en needs the package spacy-lookups-data: "
        "pip install 'lstm-tag[clusters]'\n"
    )
    assert not (tmp_path / "run").exists()


def test_a_file_path_is_relative_to_the_config_and_a_name_is_not(tmp_path, fake_brown):
    write_clusters(tmp_path / "brown-en", {"dog": "0"})
    config = tiny_config(tmp_path, model={"clusters": "brown-en"})
    assert load_config(config).model.clusters == "brown-en"
    assert load_config(config, ["model.clusters=./brown-en"]).model.clusters == str(tmp_path / "brown-en")


def test_prefixes_need_clusters(tmp_path):
    config = tiny_config(tmp_path, model={"cluster_prefixes": [4, 6]})
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert str(caught.value) == (
        f"{config}: model.cluster_prefixes: prefixes of the word clusters, and model.clusters is not set (it is [4, 6])"
    )


# --- the rows of the tables -----------------------------------------------------------------------


def test_each_word_takes_its_exact_cluster_else_its_lower_cased_one():
    clusters = Clusters(["the", "The", "dog"], [0, 1, 2], ["0", "1", "01"])
    words = ["<pad>", "<unk>", "<unk:Aa>", "The", "Dog", "the", "DOG", "zebra"]
    assert word_clusters(clusters, words).tolist() == [0, 0, 0, 2, 3, 1, 3, 0]


def test_prefix_rows_group_the_clusters_that_share_a_prefix():
    """Row 0 is "no cluster" in every table; a path shorter than a length is padded with 0s (spaCy's
    numbers lose trailing zeros: "011" may be the path 0110)."""
    paths, rows = cluster_paths(["011", "0110", "1101", "0111"], [1, 3])
    assert paths.tolist() == [[0, 0, 0], [1, 1, 1], [2, 1, 1], [3, 2, 2], [4, 1, 1]]
    assert rows == (5, 3, 3)
    paths, rows = cluster_paths(["011", "1011"], [4])
    assert paths.tolist() == [[0, 0], [1, 1], [2, 2]] and rows == (3, 3)


# --- training, the checkpoint and tagging ---------------------------------------------------------


def train_one_word(tmp_path: Path, **model) -> Path:
    config = tiny_config(tmp_path, ONE_WORD, data={"lowercase_fallback": True}, model={"cluster_dim": 4, **model},
                         train={"epochs": 30, "batch_size": 4})
    result = runner.invoke(app, ["train", str(config), "--output", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 0, result.output
    return tmp_path / "run" / LAST


def assert_unseen_words_tagged_by_their_cluster(path: Path) -> None:
    """"zebra" and "sprint" (never in training) are tagged by their clusters, from the checkpoint alone;
    with their clusters taken away, they look the same."""
    checkpoint = load_checkpoint(path)
    assert not checkpoint.words.seen_in_training("zebra") and not checkpoint.words.seen_in_training("sprint")
    for word, wanted in (("zebra", "NOUN"), ("sprint", "VERB")):
        result = runner.invoke(app, ["predict", "--model", str(path), word])
        assert (result.exit_code, result.stdout) == (0, f"{word}/{wanted}\n"), result.output
    assert [t.tags for t in tag(checkpoint, [["zebra"], ["Sprint"]])] == [["NOUN"], ["VERB"]]  # data.lowercase_fallback
    with torch.no_grad():
        checkpoint.model.embed.clusters.word_clusters[[checkpoint.words.stoi["zebra"], checkpoint.words.stoi["sprint"]]] = 0
    dropped = [t.tags for t in tag(checkpoint, [["zebra"], ["sprint"]])]
    assert dropped[0] == dropped[1]


def test_a_named_resource_tags_unseen_words_from_the_checkpoint_alone(tmp_path, monkeypatch, fake_brown):
    path = train_one_word(tmp_path, clusters="brown-en")
    digest = hashlib.sha256(fake_brown.read_bytes()).hexdigest()
    shutil.rmtree(tmp_path / "site")
    without(monkeypatch, MODULE)  # tagging needs nothing but the checkpoint
    meta = load_checkpoint(path).clusters
    assert (meta.name, meta.version, meta.words, meta.labels, meta.prefixes, meta.dim) == (
        "brown-en", "0.0.1", len(TABLE), ["011", "1011"], [], 4
    )
    assert meta.sha256 == digest
    assert_unseen_words_tagged_by_their_cluster(path)


def test_a_file_tags_unseen_words_through_their_prefixes(tmp_path):
    """"zebra" and "sprint" are in clusters of their own that no training word shares, but their
    first bits are the nouns' and the verbs': the prefix tables carry them."""
    table = {"dog": "0010", "cat": "0011", "apple": "0001", "run": "1010", "eat": "1011", "jump": "1001",
             "zebra": "0111", "sprint": "1111"}
    write_clusters(tmp_path / "clusters.tsv", table)
    path = train_one_word(tmp_path, clusters="clusters.tsv", cluster_prefixes=[1])
    (tmp_path / "clusters.tsv").unlink()
    checkpoint = load_checkpoint(path)
    assert checkpoint.clusters.prefixes == [1] and checkpoint.model.embed.clusters.layout.rows == (9, 3)
    assert_unseen_words_tagged_by_their_cluster(path)


def demo_clusters() -> dict[str, int]:
    """Clusters for the demo corpus, spaCy-numbered: each training word in the cluster of its most
    frequent tag (a path of 5 bits)."""
    counts: dict[str, Counter[str]] = {}
    for block in read_file(ROOT / "data" / "demo" / "train.conllu"):
        for word, tag_ in zip(block.forms, block.column("upos")):
            counts.setdefault(word, Counter())[tag_] += 1
    tags = sorted({t for c in counts.values() for t in c})
    paths = {tag_: format(i + 1, "05b") for i, tag_ in enumerate(tags)}
    return {word: spacy_number(paths[c.most_common(1)[0][0]]) for word, c in counts.items()}


def test_a_demo_model_overfits_and_a_reload_from_the_checkpoint_alone_tags_the_same(tmp_path, monkeypatch):
    fake_package(tmp_path / "site", demo_clusters())
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    overrides = ["model.clusters=brown-en", "model.cluster_prefixes=[2, 4]", "model.dropout=0", "train.word_dropout=0",
                 "train.epochs=25", "train.patience=0", "tokenizer.mode=off"]
    train(load_config(ROOT / "configs" / "demo.yaml", overrides), tmp_path / "run")
    blocks = list(read_file(ROOT / "data" / "demo" / "train.conllu"))
    sentences = [block.forms for block in blocks]
    before = tag(load_checkpoint(tmp_path / "run" / LAST), sentences, scores=True)
    assert [t.tags for t in before] == [block.column("upos") for block in blocks]  # overfit: the exact tags
    shutil.rmtree(tmp_path / "site")
    without(monkeypatch, MODULE)
    after = tag(load_checkpoint(tmp_path / "run" / LAST), sentences, scores=True)
    assert [t.tags for t in after] == [t.tags for t in before]
    assert all(torch.equal(a.probs["upos"], b.probs["upos"]) for a, b in zip(after, before))


@pytest.fixture(scope="module")
def cluster_run(tmp_path_factory) -> Path:
    """``train_one_word`` with a clusters file and prefixes, trained once for the tests that only read it (do not change it)."""
    folder = tmp_path_factory.mktemp("clusters")
    write_clusters(folder / "clusters.tsv", {w: p for w, p in TABLE.items()})
    return train_one_word(folder, clusters="clusters.tsv", cluster_prefixes=[2, 3])


def test_the_header_carries_the_source_and_the_labels(cluster_run):
    data = cluster_run.read_bytes()
    header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
    meta = json.loads(header["__metadata__"]["clusters"])
    assert header["__metadata__"]["format_version"] == str(FORMAT_VERSION) == "4"
    assert {k: meta[k] for k in ("name", "version", "words", "labels", "dim", "prefixes")} == {
        "name": "clusters.tsv", "version": None, "words": len(TABLE), "labels": [NOUNS, VERBS], "dim": 4, "prefixes": [2, 3],
    }
    words = load_checkpoint(cluster_run).words
    assert header["embed.clusters.word_clusters"] == {**header["embed.clusters.word_clusters"], "dtype": "I32", "shape": [len(words)]}


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda m: m.update(labels=[NOUNS, NOUNS]), "clusters: the cluster labels are not unique"),
        (lambda m: m.update(labels=[NOUNS, "1x"]), "clusters: a cluster with prefixes has a label that is not a bit string"),
        (lambda m: m.update(labels=[NOUNS]), "weights do not match the hyper-parameters and vocabulary sizes stored with them (embed.clusters.tables.0.weight)"),
        (lambda m: m.update(prefixes=[2]), "the clusters' dim and prefixes do not match model.cluster_dim and model.cluster_prefixes"),
        (lambda m: m.update(sha256="xyz"), "clusters.sha256: string should match pattern '^[0-9a-f]{64}$'"),
        (lambda m: m.pop("words"), "clusters.words: field required"),
    ],
    ids=["labels-twice", "labels-not-bits", "labels-fewer", "prefixes", "sha256", "words-missing"],
)
def test_a_damaged_clusters_header_is_one_checkpoint_error(tmp_path, cluster_run, edit, message):
    bad = rewrite_metadata(cluster_run, tmp_path / "bad.safetensors", "clusters", edit)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(bad)
    assert str(caught.value).startswith(f"{bad}: ") and str(caught.value).endswith(message), str(caught.value)


def test_a_word_cluster_outside_the_labels_is_one_checkpoint_error(tmp_path, cluster_run):
    data = bytearray(cluster_run.read_bytes())
    size = int.from_bytes(data[:8], "little")
    entry = json.loads(data[8 : 8 + size])["embed.clusters.word_clusters"]
    start = 8 + size + entry["data_offsets"][1] - 4  # the last word's cluster
    data[start : start + 4] = (7).to_bytes(4, "little")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(bytes(data))
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(bad)
    assert str(caught.value) == f"{bad}: weights are damaged: embed.clusters.word_clusters names a cluster outside the 2 labels"


def test_a_format_3_checkpoint_still_loads(tmp_path, tiny_run):
    def older(header):
        header["__metadata__"]["format_version"] = "3"

    old = rewrite_header(tiny_run / LAST, tmp_path / "old.safetensors", older)
    assert load_checkpoint(old).clusters is None and load_checkpoint(old).model.embed.clusters is None


def test_an_onnx_export_carries_the_clusters(tmp_path, cluster_run):
    pytest.importorskip("onnxruntime", reason="the onnx extra")
    exported = tmp_path / "model.onnx"
    result = runner.invoke(app, ["export", str(cluster_run), "--format", "onnx", "--output", str(exported)])
    assert result.exit_code == 0, result.output
    for word, wanted in (("zebra", "NOUN"), ("sprint", "VERB")):
        result = runner.invoke(app, ["predict", "--onnx", str(exported), word])
        assert (result.exit_code, result.stdout) == (0, f"{word}/{wanted}\n"), result.output


def test_the_sizes_are_derived_beside_pretrained_vectors():
    """Vectors and clusters together: one trainable embedding of the training words, the pretrained
    table and the cluster tables side by side; the recurrent layer's input size follows."""
    own = torch.tensor([0, 1, 2, 3, 1, 1])  # <pad>, <unk>, two training words, two words only the resources have
    paths, rows = cluster_paths(["01", "10", "11"], [1])
    model = Tagger(
        ModelConfig(embedding_dim=7, hidden_dim=4, clusters="x", cluster_dim=3, cluster_prefixes=[1]), 6, 3,
        pretrained=PretrainedLayout(dim=5, frozen=True, own=own), clusters=ClusterLayout(3, paths, rows, own),
    )
    assert model.embed.embedding.weight.shape == (4, 7) and model.embed.pretrained_table().shape == (6, 5)
    assert [table.weight.shape for table in model.embed.clusters.tables] == [(4, 3), (3, 3)]
    assert model.encoder.rnn.input_size == 7 + 5 + 3 * 2
    with torch.no_grad():
        model.embed.clusters.word_clusters.copy_(torch.tensor([0, 0, 1, 2, 3, 0], dtype=torch.int32))
    vectors = model.embed.clusters(torch.tensor([[4, 5]]))  # a word in cluster "11", one without a cluster
    tables = model.embed.clusters.tables
    assert torch.equal(vectors[0, 0], torch.cat([tables[0].weight[3], tables[1].weight[2]]))
    assert torch.equal(vectors[0, 1], torch.cat([tables[0].weight[0], tables[1].weight[0]]))
