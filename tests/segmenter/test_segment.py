"""The segmenter: raw text -> sentences of tokens -> words, trained from a treebank's # text."""

from __future__ import annotations

import json
import tracemalloc
from itertools import takewhile
from pathlib import Path
from typing import Iterator

import pytest
import yaml
from typer.testing import CliRunner

from lstm_tagger import load_checkpoint, load_config
from lstm_tagger.rundir import BEST
from lstm_tagger.cli import app
from lstm_tagger.corpus.reader import read_conllu
from lstm_tagger.errors import CheckpointError, ConfigError, DataError
from lstm_tagger.corpus.rawtext import raw_text, read_treebank
from lstm_tagger.limits import MAX_TOKEN_CHARS
from lstm_tagger.segmenter import decoder, forked
from lstm_tagger.segmenter.decoder import segment, segmented
from lstm_tagger.segmenter.labels import labelled_paragraphs
from lstm_tagger.segmenter.lexicon import Lexicon
from lstm_tagger.segmenter.training import train_segmenter
from lstm_tagger.segmenter.windows import text_windows

from conftest import ROOT, assert_one_line_error, same_tensors

runner = CliRunner()
DEMO = ROOT / "configs" / "demo.yaml"

# A tiny treebank: multiword tokens, SpaceAfter from # text, paragraphs.
TINY = """# newdoc
# text = Don't stop.
1-2	Don't	_	_	_	_	_	_	_	_
1	Do	do	AUX	_	_	_	_	_	_
2	n't	not	PART	_	_	_	_	_	_
3	stop	stop	VERB	_	_	_	_	_	_
4	.	.	PUNCT	_	_	_	_	_	_

# text = We can't stop now.
1	We	we	PRON	_	_	_	_	_	_
2-3	can't	_	_	_	_	_	_	_	_
2	ca	can	AUX	_	_	_	_	_	_
3	n't	not	PART	_	_	_	_	_	_
4	stop	stop	VERB	_	_	_	_	_	_
5	now	now	ADV	_	_	_	_	_	_
6	.	.	PUNCT	_	_	_	_	_	_

# newpar
# text = I don't know.
1	I	I	PRON	_	_	_	_	_	_
2-3	don't	_	_	_	_	_	_	_	_
2	do	do	AUX	_	_	_	_	_	_
3	n't	not	PART	_	_	_	_	_	_
4	know	know	VERB	_	_	_	_	_	_
5	.	.	PUNCT	_	_	_	_	_	_

# text = Stop it!
1	Stop	stop	VERB	_	_	_	_	_	_
2	it	it	PRON	_	_	_	_	_	_
3	!	!	PUNCT	_	_	_	_	_	_

"""


def tiny_corpus_config(tmp_path: Path, **tokenizer) -> Path:
    (tmp_path / "tiny.conllu").write_text(TINY, encoding="utf-8")
    config = {
        "data": {"train": "tiny.conllu", "dev": "tiny.conllu", "test": "tiny.conllu"},
        "model": {"embedding_dim": 16, "hidden_dim": 16, "dropout": 0.0},
        "train": {"epochs": 40, "batch_size": 2, "lr": 0.5, "momentum": 0.9, "patience": 0, "seed": 3},
        "tokenizer": {"hidden_dim": 32, "num_layers": 1, "window": 24, "batch_size": 4, "epochs": 40, "lr": 0.01,
                      "dropout": 0.0, "char_dropout": 0.0, "patience": 0, **tokenizer},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """Tagger and segmenter overfitted on the tiny treebank, through ``lstm-tag train``."""
    tmp = tmp_path_factory.mktemp("tiny_seg")
    result = runner.invoke(app, ["train", str(tiny_corpus_config(tmp)), "--output", str(tmp / "run")])
    assert result.exit_code == 0, result.output
    assert "tokenizer epoch  40" in result.output
    return tmp / "run"


@pytest.fixture(scope="module")
def demo_segmenter(tmp_path_factory):
    """The demo config's segmenter (the library function, no tagger)."""
    return train_segmenter(load_config(DEMO), lambda line: None)


def forms(sentences) -> list[list[str]]:
    return [[t.form for t in s.tokens] for s in sentences]


def test_predict_dont_stop_gives_the_words_of_the_multiword_token(tiny_run):
    result = runner.invoke(app, ["predict", "-m", str(tiny_run), "Don't stop."])
    assert result.exit_code == 0, result.output
    assert result.stdout == "Do/AUX n't/PART stop/VERB ./PUNCT\n"
    assert "segmenter" not in result.stderr


def test_conllu_output_has_ranges_space_after_and_round_trips_the_text(tiny_run):
    text = "We don't stop.  Stop it!\n\nI can't"
    result = runner.invoke(app, ["predict", "-m", str(tiny_run), text, "--format", "conllu"])
    assert result.exit_code == 0, result.output
    blocks = result.stdout.strip("\n").split("\n\n")
    assert [b.splitlines()[1 if b.startswith("# newpar") else 0] for b in blocks] == [
        "# sent_id = 1", "# sent_id = 2", "# sent_id = 3"]
    assert "2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_" in blocks[0].splitlines()
    assert "4\tstop\t_\tVERB\t_\t_\t_\t_\t_\tSpaceAfter=No" in blocks[0].splitlines()
    texts = [line[len("# text = "):] for line in result.stdout.splitlines() if line.startswith("# text = ")]
    assert texts == ["We don't stop.", "Stop it!", "I can't"]  # no final punctuation: still a sentence
    assert blocks[0].startswith("# newpar") and blocks[2].startswith("# newpar") and not blocks[1].startswith("# newpar")


def test_checkpoint_keeps_the_segmenter_and_eval_raw_scores_it(tiny_run):
    checkpoint = load_checkpoint(tiny_run / BEST)
    assert checkpoint.segmenter is not None and checkpoint.segmenter.scores["dev_tokens_f1"] == 100.0
    result = runner.invoke(app, ["eval", "-m", str(tiny_run), "--raw", "--json"])
    assert result.exit_code == 0, result.output
    raw = json.loads(result.stdout)["raw"]
    assert sorted(raw) == ["Sentences", "Tokens", "UPOS", "Words"]
    assert raw["Tokens"]["f1"] == 1.0 and raw["Words"]["gold"] == 18 and raw["UPOS"]["f1"] == 1.0
    table = runner.invoke(app, ["eval", "-m", str(tiny_run), "--raw"])
    rows = [" ".join(line.split()) for line in table.stdout.splitlines()]
    assert table.exit_code == 0 and "Tokens 100.00 100.00 100.00" in rows and "UPOS 100.00 100.00 100.00 100.00" in rows
    report = json.loads((tiny_run / "report.json").read_text())
    assert report["training"]["tokenizer dev_tokens_f1"] == 100.0


def test_damaged_segmenter_metadata_is_one_clean_error(tiny_run, tmp_path):
    from safetensors.torch import load_file, save_file
    from safetensors import safe_open

    with safe_open(str(tiny_run / BEST), "pt") as handle:
        metadata = handle.metadata()
    metadata["segmenter"] = '{"chars": 3}'
    save_file(load_file(str(tiny_run / BEST)), str(tmp_path / "bad.safetensors"), metadata=metadata)
    with pytest.raises(CheckpointError, match="the segmenter stored in the checkpoint is damaged"):
        load_checkpoint(tmp_path / "bad.safetensors")


def test_a_model_without_segmenter_splits_by_unicode_category_and_says_so_once(tmp_path):
    config = tiny_corpus_config(tmp_path, mode="off")
    assert runner.invoke(app, ["train", str(config), "--output", str(tmp_path / "run"), "--set", "train.epochs=2"]).exit_code == 0
    assert load_checkpoint(tmp_path / "run" / BEST).segmenter is None
    tokens = runner.invoke(app, ["predict", "-m", str(tmp_path / "run"), "Stop it! Now"])
    assert tokens.stdout.count("/") == 3 and tokens.stderr == ""  # default for such a model: whitespace tokens
    text = runner.invoke(app, ["predict", "-m", str(tmp_path / "run"), "Stop it! Now.\n\nOK", "--input-format", "text"])
    assert text.exit_code == 0
    assert [[t.rsplit("/", 1)[0] for t in line.split()] for line in text.stdout.splitlines()] == [
        ["Stop", "it", "!"], ["Now", "."], ["OK"]]
    assert text.stderr.count("no segmenter") == 1


def test_tokenizer_modes(tmp_path):
    (tmp_path / "tiny.conllu").write_text(TINY.replace("# text = Stop it!\n", ""), encoding="utf-8")
    base = [f"data.train={tmp_path / 'tiny.conllu'}", f"data.dev={tmp_path / 'tiny.conllu'}", "tokenizer.epochs=1"]
    assert train_segmenter(load_config(DEMO, base), lambda line: None) is None  # auto: one sentence lacks # text
    assert train_segmenter(load_config(DEMO, [*base, "tokenizer.mode=on"]), lambda line: None) is not None
    assert train_segmenter(load_config(DEMO, ["tokenizer.mode=off"]), lambda line: None) is None
    tsv = tmp_path / "c.tsv"
    tsv.write_text("a\tX\n", encoding="utf-8")
    on_tsv = load_config(DEMO, [f"data.train={tsv}", f"data.dev={tsv}", "data.format=tsv", "tokenizer.mode=on"])
    with pytest.raises(ConfigError, match="tokenizer.mode: on needs data.format conllu"):
        train_segmenter(on_tsv, lambda line: None)
    with pytest.raises(ConfigError, match="tokenizer.mode: must be one of 'auto', 'on' or 'off', got 'always'"):
        load_config(DEMO, ["tokenizer.mode=always"])
    assert load_config(DEMO, ["tokenizer.mode=on"]).tokenizer.mode == "on"  # YAML's boolean "on", taken back


def test_labels_and_text_from_the_treebank(tmp_path):
    (tmp_path / "tiny.conllu").write_text(TINY, encoding="utf-8")
    sentences = read_treebank(tmp_path / "tiny.conllu")
    assert raw_text(sentences) == "Don't stop. We can't stop now.\n\nI don't know. Stop it!\n"
    text, labels = labelled_paragraphs(sentences)[0]
    assert text == "Don't stop. We can't stop now." and len(labels) == len(text)
    assert [text[i] for i, label in enumerate(labels) if label] == ["t", "p", ".", "e", "t", "p", "w", "."]
    assert [label for label in labels if label] == [2, 1, 3, 1, 2, 1, 1, 3]


# A multiword token, SpaceAfter=No, an empty node, # newdoc / # newpar, a sentence without # text.
CRAFTED = """# newdoc id = d1
# sent_id = 1
# text = Don't go.
1-2\tDon't\t_\t_\t_\t_\t_\t_\t_\t_
1\tDo\tdo\tAUX\tVB\tMood=Imp\t3\taux\t_\t_
2\tn't\tnot\tPART\tRB\tPolarity=Neg\t3\tadvmod\t_\t_
3\tgo\tgo\tVERB\tVB\t_\t0\troot\t_\tSpaceAfter=No
3.1\twent\tgo\tVERB\tVBD\t_\t_\t_\t0:root\t_
4\t.\t.\tPUNCT\t.\t_\t3\tpunct\t_\t_

# newpar
# sent_id = 2
1\tYes\tyes\tINTJ\tUH\t_\t0\troot\t_\tSpaceAfter=No|Gloss=yes
2\t!\t!\tPUNCT\t.\t_\t1\tpunct\t_\t_

# sent_id = 3
# text = Fine.
1\tFine\tfine\tADJ\tJJ\t_\t0\troot\t_\tSpaceAfter=No
2\t.\t.\tPUNCT\t.\t_\t1\tpunct\t_\t_
"""


def test_the_segmenters_view_of_a_crafted_treebank(tmp_path):
    (tmp_path / "c.conllu").write_text(CRAFTED, encoding="utf-8")
    sentences = read_treebank(tmp_path / "c.conllu")
    tokens = [[(t.form, [w.form for w in t.words], t.space_after, t.multiword) for t in s.tokens] for s in sentences]
    assert tokens == [
        [("Don't", ["Do", "n't"], True, True), ("go", ["go"], False, False), (".", ["."], True, False)],
        [("Yes", ["Yes"], False, False), ("!", ["!"], True, False)],
        [("Fine", ["Fine"], False, False), (".", ["."], True, False)],
    ]
    assert [s.text for s in sentences] == ["Don't go.", None, "Fine."]
    assert [(s.new_paragraph, s.new_document) for s in sentences] == [(True, True), (True, False), (False, False)]
    assert [w.feats for w in sentences[0].tokens[0].words] == ["Mood=Imp", "Polarity=Neg"]
    assert raw_text(sentences) == "Don't go.\n\nYes! Fine.\n"  # no # text: FORMs joined by SpaceAfter
    training = read_conllu(tmp_path / "c.conllu", ["upos", "xpos"])  # the same words as the tagger's
    assert [list(s.words) for s in training] == [s.words for s in sentences]
    assert [list(s.columns["upos"]) for s in training] == [[w.upos for t in s.tokens for w in t.words] for s in sentences]


@pytest.mark.parametrize(
    "line, bad",
    [
        (b"2\tn't\tnot\tPART\tRB\tPolarity=Neg\t3\tadvmod\t_", "expected 10 tab-separated columns, found 9"),
        (b"2\t\tnot\tPART\tRB\tPolarity=Neg\t3\tadvmod\t_\t_", "empty FORM"),
        (b"2a\tn't\tnot\tPART\tRB\tPolarity=Neg\t3\tadvmod\t_\t_", "ID '2a' is not a number"),
        (b"2.x\tn't\tnot\tPART\tRB\tPolarity=Neg\t3\tadvmod\t_\t_", "ID '2.x' is not a number"),
        (b"2\tn\x92t\tnot\tPART\tRB\tPolarity=Neg\t3\tadvmod\t_\t_", "not UTF-8 (byte 4 of the line)"),
    ],
)
def test_a_bad_line_is_the_same_error_for_the_segmenter_as_for_training(tiny_run, tmp_path, line, bad):
    lines = CRAFTED.encode("utf-8").split(b"\n")
    lines[5] = line  # the sixth line, the word n't
    path = tmp_path / "bad.conllu"
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(DataError) as training:
        read_conllu(path)
    with pytest.raises(DataError) as segmenter:
        read_treebank(path)
    assert str(segmenter.value) == str(training.value) and str(training.value).startswith(f"{path}:6: {bad}")
    assert "\n" not in str(training.value)
    result = runner.invoke(app, ["eval", "-m", str(tiny_run), "--raw", "--data", str(path)])
    assert_one_line_error(result, f"lstm-tag: error: {training.value}\n")


def test_the_segmenter_needs_what_the_tagger_skips_in_a_range(tmp_path):
    """A range without FORM or ending before it starts: the tagger skips the line, the segmenter cannot."""
    path = tmp_path / "r.conllu"
    for range_line, error in (("1-2\t\t", "empty FORM"), ("2-1\tDon't\t", "bad multiword token range '2-1'")):
        path.write_text(CRAFTED.replace("1-2\tDon't\t", range_line), encoding="utf-8")
        assert [s.words for s in read_conllu(path)][0] == ("Do", "n't", "go", ".")
        with pytest.raises(DataError) as caught:
            read_treebank(path)
        assert str(caught.value) == f"{path}:4: {error}"


def test_lexicon_expands_with_case_and_splits_unseen_possessives(tmp_path):
    (tmp_path / "tiny.conllu").write_text(TINY + TINY.replace("can't", "cannot").replace("\tca\t", "\tcan\t").replace(
        "n't\tnot", "not\tnot"), encoding="utf-8")
    lexicon = Lexicon.from_dict(json.loads(json.dumps(Lexicon.learn(read_treebank(tmp_path / "tiny.conllu")).to_dict())))
    assert lexicon.expand("Don't") == ["Do", "n't"]
    assert lexicon.expand("DON'T") == ["DO", "N'T"]
    assert lexicon.expand("don't", flagged=False) == ["do", "n't"]  # usually multiword: expanded anyway
    assert lexicon.expand("Cannot") == ["Can", "not"]
    assert lexicon.expand("Zlatkon't") == ["Zlatko", "n't"]  # unseen, flagged: a learned suffix
    assert lexicon.expand("Zlatkon't", flagged=False) == ["Zlatkon't"]
    assert lexicon.expand("stop") == ["stop"]


def test_same_sentences_whatever_the_chunking(demo_segmenter):
    text = "The dog ate the apple. Everybody read that book!\r\nMy sister bought three books\n \n\nDon't stop. " * 3
    whole = list(segment(demo_segmenter, [text]))
    by_char = list(segment(demo_segmenter, iter(text)))
    assert forms(whole) == forms(by_char) and len(whole) >= 6
    assert [s.new_paragraph for s in whole] == [s.new_paragraph for s in by_char]
    assert "".join(t.form for s in whole for t in s.tokens) == "".join(text.split())


def test_a_forked_child_segments_as_this_thread_does(demo_segmenter, forking):
    """``tag_text`` segments in a forked child (``forked``): the same sentences, multiword
    tokens' words and spaces as here."""
    text = "Don't stop. We can't stop now!\n\nThe dog ate the apple. Everybody read that book! " * 100
    here = list(segmented(demo_segmenter, [text]))
    assert len(here) > forked.BATCH and any(s.expanded for s in here)
    assert list(forked.segmented_beside(demo_segmenter, [text])) == here
    assert [s.sentence() for s in here] == list(segment(demo_segmenter, [text]))


def test_pooled_length_sorted_labelling_equals_one_window_at_a_time(demo_segmenter, monkeypatch):
    """Windows go to the network sorted by length in pools; the sentences must be those of
    labelling each window alone (a pool of one), in the text's order."""
    paragraphs = ["The dog ate the apple.", "Everybody read that book! My sister bought three books",
                  "Don't stop. " * 40, "Hi.", "A " * 300 + "end."]
    text = "\n\n".join(paragraphs * 5)
    pooled = list(segment(demo_segmenter, [text]))
    monkeypatch.setattr(decoder, "POOL_CHARS", 1)
    alone = list(segment(demo_segmenter, [text]))
    assert forms(pooled) == forms(alone) and len(pooled) >= 25
    assert [s.new_paragraph for s in pooled] == [s.new_paragraph for s in alone]
    assert [[t.space_after for t in s.tokens] for s in pooled] == [[t.space_after for t in s.tokens] for s in alone]


def test_crlf_equals_lf(demo_segmenter):
    lf = "Hello there.\n\nA new paragraph\nthat goes on.\n"
    crlf = lf.replace("\n", "\r\n")
    assert forms(segment(demo_segmenter, [crlf])) == forms(segment(demo_segmenter, [lf]))
    assert all("\r" not in t.form for s in segment(demo_segmenter, [crlf]) for t in s.tokens)
    assert sum(s.new_paragraph for s in segment(demo_segmenter, [crlf])) == 2


@pytest.mark.parametrize("text", [
    "I love pizza 🍕🍕! The 👩‍👩‍👧 family came.",
    "Cafe\u0301 nai\u0308ve re\u0301sume\u0301 here.",
    "Привет, мир. Как дела?",
    "我爱你。你好吗？",
    "مرحبا بالعالم. كيف حالك؟",
])
def test_emoji_combining_characters_and_unseen_scripts(demo_segmenter, text):
    for segmenter in (demo_segmenter, None):
        sentences = list(segment(segmenter, [text]))
        assert "".join(t.form for s in sentences for t in s.tokens) == "".join(text.split())
        for sentence in sentences:
            for token in sentence.tokens:
                assert not token.form[0] in "\u0301\u0308"  # a combining mark stays on its letter


def chunks_of(text: str, size: int, count: int) -> Iterator[str]:
    for _ in range(count):
        yield text * size


def test_a_long_line_without_spaces_in_bounded_memory(demo_segmenter):
    """1 MB without a space or line break, read in 64 KB chunks: every character comes back,
    tokens are cut at MAX_TOKEN_CHARS, and the peak of Python allocations stays far below the input."""
    tracemalloc.start()
    total, longest, sentences = 0, 0, 0
    for sentence in segment(demo_segmenter, chunks_of("abcdefgh", 8192, 16)):  # 16 x 64 KB
        sentences += 1
        for token in sentence.tokens:
            total += len(token.form)
            longest = max(longest, len(token.form))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert total == 16 * 65536 and longest <= MAX_TOKEN_CHARS and sentences >= 1
    assert peak < 1_000_000  # the whole input is 1,048,576 characters


def test_windows_are_bounded_and_cover_every_character():
    text = "x" * 10_000 + "\n \n" + "y" * 10
    windows = list(text_windows(iter([text[i : i + 999] for i in range(0, len(text), 999)]), 256, 32))
    assert max(len(w.text) for w in windows) <= 256 + 2 * 32
    assert "".join(w.core for w in windows) == "x" * 10_000 + "y" * 10
    assert [w.last for w in windows].count(True) == 2 and [w.first for w in windows].count(True) == 2


def test_resume_keeps_the_segmenter_of_the_run(tmp_path):
    config = tiny_corpus_config(tmp_path, epochs=3)
    out = tmp_path / "run"
    first = runner.invoke(app, ["train", str(config), "--output", str(out), "--set", "train.epochs=2"])
    assert first.exit_code == 0 and first.output.count("tokenizer epoch") == 3
    before = load_checkpoint(out / "model-last.safetensors").segmenter.tensors()
    resumed = runner.invoke(app, ["train", str(config), "--output", str(out), "--set", "train.epochs=3", "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert "tokenizer epoch" not in resumed.output and "tokenizer: kept from the run being resumed" in resumed.output
    after = load_checkpoint(out / "model-last.safetensors").segmenter.tensors()
    assert same_tensors(before, after)


def test_tokenizer_lr_decay_lowers_the_rate_from_the_second_epoch(tmp_path):
    def weights(epochs: int, decay: float) -> dict:
        config = load_config(tiny_corpus_config(tmp_path, epochs=epochs, patience=0, lr_decay=decay))
        return train_segmenter(config, lambda line: None).tensors()

    assert same_tensors(weights(1, 0.0), weights(1, 5.0))  # epoch 1 runs at tokenizer.lr either way
    assert not same_tensors(weights(2, 0.0), weights(2, 5.0))  # epoch 2 at lr / 6


def test_info_shows_the_segmenter_its_settings_and_dev_scores(tiny_run):
    info = json.loads(runner.invoke(app, ["info", str(tiny_run), "--json"]).stdout)
    segmenter = load_checkpoint(tiny_run / BEST).segmenter
    scores, bias = segmenter.scores, segmenter.sentence_bias
    assert info["tokenizer"] == {"settings": info["tokenizer"]["settings"], "scores": scores, "sentence_bias": bias}
    assert scores["dev_tokens_f1"] == 100.0 and {"dev_sentences_f1", "dev_words_f1", "best_epoch"} <= scores.keys()
    assert info["tokenizer"]["settings"]["window"] == 24 and info["tokenizer"]["settings"]["mode"] == "auto"
    table = runner.invoke(app, ["info", str(tiny_run)]).stdout.splitlines()
    first = next(i for i, line in enumerate(table) if line.startswith("│ segmenter "))
    rows = [table[first]] + list(takewhile(lambda line: line.split("│")[1].strip() == "", table[first + 1 :]))
    assert " ".join(row.split("│")[2].strip() for row in rows) == (
        f"dev F1 Tokens 100.0, Sentences {scores['dev_sentences_f1']}, Words {scores['dev_words_f1']}, "
        f"best epoch {scores['best_epoch']}, {scores['updates']:,} updates, trained in {scores['train_seconds']} s, "
        f"peak RSS {scores['peak_rss_mb']} MB" + (f", sentence-end bias {bias:+g}" if bias else "")
    )
    assert any(line.startswith("│ tokenizer.window ") for line in table)


def test_texts_segmented_together_are_each_as_segmented_alone(demo_segmenter):
    texts = ["Don't stop. The dog ate the apple", "", "  \n", "Everybody read that book.\n\nWe can't stop now!",
             "A long one. " * 60, "x" * (MAX_TOKEN_CHARS + 5)]
    for segmenter in (demo_segmenter, None):
        together = decoder.segmented_texts(segmenter, texts)
        assert together == [list(segmented(segmenter, [text])) for text in texts]


def test_the_sentence_bias_moves_sentence_ends(demo_segmenter):
    text = raw_text(read_treebank(ROOT / "data" / "demo" / "dev.conllu")).split("\n\n")[0]  # one paragraph
    by_bias = {}
    for bias in (0.0, -100.0, 100.0):
        demo_segmenter.sentence_bias = bias
        by_bias[bias] = list(segment(demo_segmenter, [text]))
    demo_segmenter.sentence_bias = 0.0
    unbiased = by_bias[0.0]
    assert len(unbiased) > 1 and len(by_bias[-100.0]) == 1  # no sentence end but the paragraph's
    assert len(by_bias[100.0]) > len(unbiased)


def test_training_keeps_the_sentence_bias_best_on_dev_and_zero_on_a_tie(demo_segmenter, monkeypatch):
    from lstm_tagger.segmenter import training

    unbiased = {"epoch": 7, "tokens_f1": 99.0, "sentences_f1": 80.0, "words_f1": 98.0}
    for best, expected in ((-1.0, -1.0), (None, 0.0)):
        seen = []

        def scores(segmenter, dev, best=best):
            seen.append(segmenter.sentence_bias)
            gain = 2.0 if segmenter.sentence_bias == best else 0.0
            return {"tokens_f1": 99.0, "sentences_f1": 80.0 + gain, "words_f1": 98.0}

        monkeypatch.setattr(training, "dev_scores", scores)
        chosen = training.tuned_sentence_bias(demo_segmenter, [], unbiased)
        assert demo_segmenter.sentence_bias == expected and seen == list(training.SENTENCE_BIASES)
        assert chosen == {**unbiased, "sentences_f1": 82.0 if best else 80.0}
    demo_segmenter.sentence_bias = 0.0


def test_info_names_a_sentence_bias_that_is_not_zero():
    from lstm_tagger.runs import segmenter_text

    tokenizer = {"scores": {"dev_tokens_f1": 99.1, "best_epoch": 3}, "sentence_bias": -0.5}
    assert segmenter_text(tokenizer) == "dev F1 Tokens 99.1, best epoch 3, sentence-end bias -0.5"
    assert segmenter_text({**tokenizer, "sentence_bias": 0.0}) == "dev F1 Tokens 99.1, best epoch 3"
