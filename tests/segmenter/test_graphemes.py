"""No token (and so no sentence) starts or ends inside an extended grapheme cluster (UAX #29).

Most tests run twice: with the rules used when a model has no segmenter, and with an "eager"
segmenter whose network ends a token after every character, so that only the cluster rule
keeps characters together (an untrained or unlucky network cannot do worse).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from lstm_tagger import load_checkpoint
from lstm_tagger.checkpoint import save_checkpoint
from lstm_tagger.rundir import BEST
from lstm_tagger.cli import app
from lstm_tagger.config import TokenizerConfig
from lstm_tagger.corpus.rawtext import Token, TreebankSentence, Word
from lstm_tagger.limits import MAX_CLUSTER_CHARS
from lstm_tagger.segmenter.decoder import segment
from lstm_tagger.segmenter.labels import NUM_LABELS, SENTENCE, TOKEN, labelled_paragraphs
from lstm_tagger.segmenter.lexicon import Lexicon
from lstm_tagger.segmenter.network import CharTable, Segmenter, SegmenterNet
from lstm_tagger.segmenter.windows import text_windows

runner = CliRunner()

FAMILY = "\U0001F468\u200d\U0001F469\u200d\U0001F467"  # man ZWJ woman ZWJ girl: one cluster of 5 characters
THUMB = "\U0001F44D\U0001F3FD"  # thumbs up with a skin tone
FLAGS = "\U0001F1FA\U0001F1F8\U0001F1EC\U0001F1E7"  # two flags: four regional indicators
ACUTE = "\u0301"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def eager(config: TokenizerConfig | None = None, label: int = TOKEN) -> Segmenter:
    """A segmenter whose network gives ``label`` (a token's or a sentence's end) to every character."""
    config = config or TokenizerConfig(char_dim=4, hidden_dim=4, num_layers=1, dropout=0.0)
    table = CharTable.build(["abc"])
    net = SegmenterNet(config, len(table.itos))
    with torch.no_grad():
        net.output.weight.zero_()
        net.output.bias.copy_(torch.nn.functional.one_hot(torch.tensor(label), NUM_LABELS).float())
    net.eval()
    return Segmenter(config, net, table, Lexicon({}, [], []))


def tokens_of(segmenter: Segmenter | None, chunks) -> list[str]:
    return [token.form for sentence in segment(segmenter, chunks) for token in sentence.tokens]


def test_a_thousand_combining_marks_stay_on_their_letter():
    """The issue's input: the 1,000-character cut made a word of a lone U+0301."""
    text = "e" + ACUTE * 1000 + " dog ate."
    assert tokens_of(None, [text]) == ["e" + ACUTE * 1000, "dog", "ate", "."]  # one cluster of 1,001 characters
    assert tokens_of(eager(), [text]) == ["e" + ACUTE * 1000, *"dogate."]


def test_a_long_token_is_cut_between_clusters():
    """Cut at the last cluster boundary within MAX_TOKEN_CHARS (1,000): 999 characters here,
    as the 1,000th is an accent; a cluster longer than MAX_CLUSTER_CHARS is cut there."""
    text = "b" + ("a" + ACUTE) * 600 + " x"
    assert tokens_of(None, [text]) == ["b" + ("a" + ACUTE) * 499, ("a" + ACUTE) * 101, "x"]
    huge = "e" + ACUTE * (MAX_CLUSTER_CHARS + 500)
    assert tokens_of(None, [huge]) == [huge[:MAX_CLUSTER_CHARS], huge[MAX_CLUSTER_CHARS:]]


@pytest.mark.parametrize("kind", ["rules", "network"])
def test_emoji_sequences_are_one_token_each(kind):
    text = f"Hi {FAMILY} and {THUMB} ok {FLAGS}."
    if kind == "rules":
        assert tokens_of(None, [text]) == ["Hi", FAMILY, "and", THUMB, "ok", FLAGS[:2], FLAGS[2:], "."]
    else:
        assert tokens_of(eager(), [text]) == [*"Hi", FAMILY, *"and", THUMB, *"ok", FLAGS[:2], FLAGS[2:], "."]


def test_a_sentence_ends_only_where_a_cluster_ends():
    text = f"A{ACUTE}{FAMILY}"
    sentences = [[t.form for t in s.tokens] for s in segment(eager(label=SENTENCE), [text])]
    assert sentences == [["A" + ACUTE], [FAMILY]]


def test_a_cluster_across_a_window_edge_stays_whole():
    """The family's characters are the 255th to 259th: the first window's core (256 characters)
    ends before it, and a cut into chunks anywhere changes nothing."""
    text = "a" * 254 + FAMILY + " end" * 30
    windows = list(text_windows([text], 256, 48))
    assert windows[0].core == "a" * 254 and windows[1].core.startswith(FAMILY)
    assert "".join(w.core for w in windows) == text
    expected = {"rules": ["a" * 254, FAMILY] + ["end"] * 30, "network": [*"a" * 254, FAMILY] + [*"end"] * 30}
    for kind, segmenter in (("rules", None), ("network", eager())):
        assert tokens_of(segmenter, [text]) == expected[kind]
        assert tokens_of(segmenter, iter(text)) == expected[kind]  # one character per chunk


def test_whitespace_still_separates_a_mark_from_its_space():
    """A space and a combining mark are one cluster in UAX #29, but whitespace always ends a
    token: the mark starts the next one (the one place a token starts with a mark)."""
    assert tokens_of(None, [f"a {ACUTE}b"]) == ["a", ACUTE + "b"]
    assert tokens_of(eager(), [f"a {ACUTE}b"]) == ["a", ACUTE, "b"]


def test_training_moves_a_gold_end_inside_a_cluster_to_the_cluster_end():
    """A treebank that splits ``👍🏽`` teaches the segmenter to end the token after the skin tone."""
    tokens = [Token(form, (Word(form),), space) for form, space in (("ok", False), (THUMB[0], False), (THUMB[1], True))]
    [(text, labels)] = labelled_paragraphs([TreebankSentence(tokens, "ok" + THUMB)])
    assert text == "ok" + THUMB and labels == [0, TOKEN, 0, SENTENCE]


def test_predict_conllu_keeps_clusters_and_the_text(tiny_run, tmp_path: Path):
    """The issue's command, with a model whose segmenter ends a token after every character."""
    checkpoint = load_checkpoint(tiny_run / BEST)
    checkpoint.segmenter = eager(checkpoint.config.tokenizer)
    save_checkpoint(tmp_path / "eager.safetensors", checkpoint)
    text = "e" + ACUTE * 1000 + f" dog {FAMILY}"
    result = runner.invoke(app, ["predict", "-m", str(tmp_path / "eager.safetensors"), "--format", "conllu", text])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split("\t")[1] for line in lines if line[:1].isdigit()] == ["e" + ACUTE * 1000, *"dog", FAMILY]
    assert [line for line in lines if line.startswith("# text")] == [f"# text = {text}"]
