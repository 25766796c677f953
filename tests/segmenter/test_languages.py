"""The segmenter beyond English: tokens that contain a space (Vietnamese), a training length in
updates that fits the corpus, and what its training costs in the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from safetensors import safe_open
from typer.testing import CliRunner

from lstm_tagger import load_checkpoint, load_config
from lstm_tagger.checkpoint import BEST
from lstm_tagger.cli import app
from lstm_tagger.corpus.rawtext import read_treebank
from lstm_tagger.evaluation.conll18 import evaluate
from lstm_tagger.segmenter.decoder import INNER_SPACE, SPACE, _Assembler, inner_spaces, segment
from lstm_tagger.segmenter.labels import SENTENCE, TOKEN, tokens_with_spaces
from lstm_tagger.segmenter.network import Segmenter
from lstm_tagger.segmenter.training import passes_per_epoch, train_segmenter
from lstm_tagger.segmenter.windows import Window

from conftest import ROOT, needs_script, official

runner = CliRunner()

SENTENCES = [
    (["Tôi", "có", "danh sách", "."], ["PRON", "VERB", "NOUN", "PUNCT"]),
    (["Có lẽ", "anh", "gọi", "điện thoại", "."], ["ADV", "PRON", "VERB", "NOUN", "PUNCT"]),
    (["Anh", "có", "điện thoại", "không", "?"], ["PRON", "VERB", "NOUN", "PART", "PUNCT"]),
]
TEXT = "Tôi có danh sách. Có lẽ anh gọi điện thoại. Anh có điện thoại không?"
TOKENS = [["Tôi", "có", "danh sách", "."], ["Có lẽ", "anh", "gọi", "điện thoại", "."],
          ["Anh", "có", "điện thoại", "không", "?"]]


def vietnamese_config(tmp_path: Path, **tokenizer) -> Path:
    """Three sentences whose tokens hold spaces, as train, dev and test; a tiny tagger and segmenter."""
    blocks = []
    for n, (words, tags) in enumerate(SENTENCES):
        lines = (["# newpar"] if n == 0 else []) + [f"# text = {' '.join(words)}"]
        lines += [f"{i}\t{w}\t_\t{t}\t_\t_\t_\t_\t_\t_" for i, (w, t) in enumerate(zip(words, tags), start=1)]
        blocks.append("\n".join(lines) + "\n\n")
    (tmp_path / "vi.conllu").write_text("".join(blocks), encoding="utf-8")
    config = {
        "data": {"train": "vi.conllu", "dev": "vi.conllu", "test": "vi.conllu"},
        "model": {"embedding_dim": 16, "hidden_dim": 16, "dropout": 0.0},
        "train": {"epochs": 30, "batch_size": 2, "lr": 0.5, "momentum": 0.9, "patience": 0, "seed": 3},
        "tokenizer": {"hidden_dim": 32, "num_layers": 1, "window": 32, "batch_size": 4, "epochs": 10, "min_updates": 100,
                      "lr": 0.01, "dropout": 0.0, "char_dropout": 0.0, "patience": 0, **tokenizer},
    }
    path = tmp_path / "vi.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def vi_run(tmp_path_factory) -> Path:
    """Tagger and segmenter overfitted on the three sentences, through ``lstm-tag train``."""
    tmp = tmp_path_factory.mktemp("vi")
    result = runner.invoke(app, ["train", str(vietnamese_config(tmp)), "--output", str(tmp / "run")])
    assert result.exit_code == 0, result.output
    assert "tokenizer: 4 training tokens contain a space: a space may be inside a token" in result.output
    return tmp / "run"


def forms(sentences) -> list[list[str]]:
    return [[t.form for t in s.tokens] for s in sentences]


def test_the_segmenter_learns_tokens_with_a_space(vi_run):
    segmenter = load_checkpoint(vi_run / BEST).segmenter
    assert segmenter is not None and segmenter.allow_spaces
    assert forms(segment(segmenter, [TEXT])) == TOKENS
    assert segmenter.scores["dev_tokens_f1"] == 100.0 and segmenter.scores["updates"] >= 100


def test_conllu_output_has_forms_with_a_space_and_round_trips_the_text(vi_run, tmp_path):
    result = runner.invoke(app, ["predict", "-m", str(vi_run), TEXT, "--format", "conllu"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "3\tdanh sách\t_\tNOUN\t_\t_\t_\t_\t_\tSpaceAfter=No" in lines
    assert "1\tCó lẽ\t_\tADV\t_\t_\t_\t_\t_\t_" in lines
    assert [line for line in lines if line.startswith("# text = ")] == [
        "# text = Tôi có danh sách.", "# text = Có lẽ anh gọi điện thoại.", "# text = Anh có điện thoại không?"]
    output = tmp_path / "out.conllu"
    output.write_text(result.stdout, encoding="utf-8")
    read = read_treebank(output)
    assert forms(read) == TOKENS and [s.joined() for s in read] == [s.text for s in read]
    scores = evaluate(read_treebank(vi_run.parent / "vi.conllu"), read)
    assert (scores["Tokens"].f1, scores["Sentences"].f1, scores["UPOS"].f1) == (1.0, 1.0, 1.0)


def test_a_checkpoint_without_the_flag_ends_every_token_at_a_space(vi_run):
    """The same weights loaded from a header that has no ``allow_spaces`` (written before it
    existed): every space ends a token, as before."""
    with safe_open(str(vi_run / BEST), "pt") as stored:
        tensors = {name: stored.get_tensor(name) for name in stored.keys()}
        meta = json.loads(stored.metadata()["segmenter"])
    del meta["allow_spaces"]
    old = Segmenter.load(load_config(vi_run / "config.yaml").tokenizer, tensors, json.dumps(meta))
    assert not old.allow_spaces
    assert forms(segment(old, [TEXT])) == [["Tôi", "có", "danh", "sách", "."], ["Có", "lẽ", "anh", "gọi", "điện", "thoại", "."],
                                          ["Anh", "có", "điện", "thoại", "không", "?"]]


def test_eval_raw_and_both_input_formats_take_forms_with_a_space(vi_run, tmp_path):
    raw = runner.invoke(app, ["eval", "-m", str(vi_run), "--raw", "--json"])
    assert raw.exit_code == 0, raw.output
    assert json.loads(raw.stdout)["raw"]["Tokens"]["f1"] == 1.0
    conllu = runner.invoke(app, ["predict", "-m", str(vi_run), "--file", str(vi_run.parent / "vi.conllu"), "--format", "text"])
    assert conllu.exit_code == 0, conllu.output
    assert conllu.stdout.splitlines()[0] == "Tôi/PRON có/VERB danh sách/NOUN ./PUNCT"  # one word with a space
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("Tôi có danh sách .\n", encoding="utf-8")  # whitespace-separated: two words here
    split = runner.invoke(app, ["predict", "-m", str(vi_run), "--file", str(tokens), "--input-format", "tokens"])
    assert split.exit_code == 0, split.output
    assert [pair.rpartition("/")[0] for pair in split.stdout.split()] == ["Tôi", "có", "danh", "sách", "."]


def test_the_tagger_vocabulary_holds_forms_with_a_space(vi_run):
    assert {"danh sách", "điện thoại", "Có lẽ"} <= set(load_checkpoint(vi_run / BEST).words.itos)


def test_tokens_with_spaces_counts_inner_spaces_only(tmp_path):
    vietnamese_config(tmp_path)
    assert tokens_with_spaces(read_treebank(tmp_path / "vi.conllu")) == 4


@pytest.mark.parametrize("text, marked", [
    ("ab cd", [INNER_SPACE]),
    ("ab  cd", [SPACE, SPACE]),  # two spaces: never inside a token
    ("ab\ncd", [SPACE]),  # a line break neither
    ("ab\tcd", [SPACE]),
])
def test_only_one_plain_space_between_two_characters_may_be_inside_a_token(text, marked):
    window = Window(text, 0, len(text), True, True)
    spaces = [i for i, c in enumerate(text) if c.isspace()]
    assert inner_spaces(window, (spaces, [SPACE] * len(spaces)))[1] == marked


def test_a_space_at_a_window_edge_follows_the_previous_windows_label():
    """The character before a space decides: ``ab`` then `` cd ef`` in two windows. When the
    first window ends no token at ``b``, ``ab cd`` is one token; when it does, two."""
    first, second = Window("ab cd", 0, 2, True, False), Window("ab cd ef", 2, 8, False, True)
    later = ([0, 2, 3, 5], [INNER_SPACE, TOKEN, INNER_SPACE, SENTENCE])  # in `` cd ef``: 'd' ends a token, 'f' a sentence
    for ends_at_b, expected in ((False, ["ab cd", "ef"]), (True, ["ab", "cd", "ef"])):
        assembler = _Assembler(None)
        assert assembler.add(first, ([1], [TOKEN]) if ends_at_b else ([], [])) == []
        (sentence,) = assembler.add(second, later)
        assert sentence.forms == expected and sentence.spaces == [True] * len(expected)


def test_no_space_token_when_the_label_before_each_space_ends_a_token():
    text = "ab cd."
    window = Window(text, 0, len(text), True, True)
    found = inner_spaces(window, ([1, 2, 5], [TOKEN, SPACE, SENTENCE]))
    (sentence,) = _Assembler(None).add(window, found)
    assert found[1] == [TOKEN, INNER_SPACE, SENTENCE] and sentence.forms == ["ab", "cd."]


GOLD_SPACES = """# text = Tôi có danh sách.
1\tTôi\t_\tPRON\t_\t_\t_\t_\t_\t_
2\tcó\t_\tVERB\t_\t_\t_\t_\t_\t_
3\tdanh sách\t_\tNOUN\t_\t_\t_\t_\t_\tSpaceAfter=No
4\t.\t_\tPUNCT\t_\t_\t_\t_\t_\t_

"""
SYSTEM_SPLIT = """# text = Tôi có danh sách.
1\tTôi\t_\tPRON\t_\t_\t_\t_\t_\t_
2\tcó danh\t_\tVERB\t_\t_\t_\t_\t_\t_
3\tsách\t_\tNOUN\t_\t_\t_\t_\t_\tSpaceAfter=No
4\t.\t_\tPUNCT\t_\t_\t_\t_\t_\t_

"""


@needs_script
def test_metrics_of_tokens_with_a_space_equal_the_official_script(tmp_path):
    gold, system = tmp_path / "gold.conllu", tmp_path / "system.conllu"
    gold.write_text(GOLD_SPACES, encoding="utf-8")
    system.write_text(SYSTEM_SPLIT, encoding="utf-8")
    ours = evaluate(read_treebank(gold), read_treebank(system))
    counts = official(gold, system, True)
    for metric in ("Tokens", "Sentences", "Words", "UPOS"):
        assert [str(ours[metric].correct), str(ours[metric].gold), str(ours[metric].system)] == counts[metric][:3], metric
    assert (ours["Tokens"].correct, ours["Tokens"].gold, ours["Tokens"].system) == (2, 4, 4)


def test_passes_per_epoch_reach_min_updates_on_a_small_corpus_only():
    config = load_config(ROOT / "configs" / "demo.yaml", ["tokenizer.epochs=30"]).tokenizer
    assert passes_per_epoch(2, config) == 1  # min_updates 0: one pass
    budget = config.model_copy(update={"min_updates": 1000})
    assert [passes_per_epoch(batches, budget) for batches in (2, 13, 33, 34, 124)] == [17, 3, 2, 1, 1]


def test_a_tiny_corpus_gets_min_updates_and_max_updates_stops(tmp_path):
    config = vietnamese_config(tmp_path)
    lines: list[str] = []
    calls: list[tuple[int, int]] = []
    steps: list[float | None] = []

    def progress(epoch: int, batches: int):
        calls.append((epoch, batches))
        return steps.append

    quick = ["tokenizer.epochs=3", "tokenizer.min_updates=12", "tokenizer.max_updates=12"]
    segmenter = train_segmenter(load_config(config, quick), lines.append, progress)
    assert segmenter is not None and segmenter.scores["updates"] == 12
    assert calls == [(1, 4), (2, 4), (3, 4)]  # one pass is one batch (the text is 2 windows): 4 passes an epoch
    assert steps.count(None) == 3 and [i for i, s in enumerate(steps) if s is None] == [4, 9, 14]  # dev after each epoch
    assert "tokenizer: 4 passes over the training text per epoch, to make 12 updates (tokenizer.min_updates) in 3 epochs" in lines
    stop = lines.index("tokenizer: stopped at 12 updates (tokenizer.max_updates)")
    assert lines[stop + 1] == "tokenizer: trying 5 sentence-end biases on dev" and len(lines) <= stop + 3  # then the one chosen, if not 0
    stopped = train_segmenter(load_config(config, ["tokenizer.epochs=3", "tokenizer.min_updates=0", "tokenizer.max_updates=2"]),
                              lines.append)
    assert stopped is not None and stopped.scores["updates"] == 2 and stopped.scores["best_epoch"] <= 2


def test_report_has_the_segmenters_seconds_updates_and_peak_memory(vi_run):
    training = json.loads((vi_run / "report.json").read_text())["training"]
    assert training["tokenizer updates"] >= 100
    assert training["tokenizer train_seconds"] > 0 and training["tokenizer peak_rss_mb"] > 10
