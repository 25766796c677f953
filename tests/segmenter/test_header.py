"""The segmenter's part of a checkpoint header is checked before anything is built from it:
crafted words, characters, scores and sizes end in one line naming the file, exit code 2."""

from __future__ import annotations

import json
import resource
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml
from typer.testing import CliRunner

from lstm_tagger import limits, load_checkpoint
from lstm_tagger.rundir import BEST
from lstm_tagger.cli import app
from lstm_tagger.errors import CheckpointError
from lstm_tagger.segmenter import network
from lstm_tagger.segmenter.header import read_header, words_only
from lstm_tagger.segmenter.lexicon import Lexicon
from lstm_tagger.segmenter.network import Segmenter

from conftest import assert_one_line_error, rewrite_header, tiny_config

runner = CliRunner()
DAMAGED = "the segmenter stored in the checkpoint is damaged"


def stored_header(run: Path) -> dict[str, Any]:
    data = (run / BEST).read_bytes()
    return json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])


def crafted(run: Path, target: Path, change: Callable[[dict[str, Any], dict[str, Any]], str | None]) -> Path:
    """The run's best checkpoint with ``change(segmenter_header, config)`` applied to its header (a
    string that ``change`` returns replaces the segmenter's header)."""

    def edit(header: dict[str, Any]) -> None:
        meta = header["__metadata__"]
        segmenter, config = json.loads(meta["segmenter"]), json.loads(meta["config"])
        text = change(segmenter, config)
        meta["segmenter"], meta["config"] = text if isinstance(text, str) else json.dumps(segmenter), json.dumps(config)

    return rewrite_header(run / BEST, target, edit)


def lexicon_word(words: list[str]) -> Callable[[dict, dict], None]:
    """A lexicon that always expands ``dog`` into ``words``."""

    def change(segmenter: dict, config: dict) -> None:
        segmenter["lexicon"]["entries"]["dog"] = words
        segmenter["lexicon"]["usual"].append("dog")

    return change


def setting(key: str, value: Any) -> Callable[[dict, dict], None]:
    def change(segmenter: dict, config: dict) -> None:
        segmenter[key] = value

    return change


def lexicon(key: str, value: Any) -> Callable[[dict, dict], None]:
    def change(segmenter: dict, config: dict) -> None:
        segmenter["lexicon"][key] = value

    return change


def tokenizer(**values: Any) -> Callable[[dict, dict], None]:
    def change(segmenter: dict, config: dict) -> None:
        config["tokenizer"].update(values)

    return change


SPECIALS = ["<pad>", "<unk>", " "]
CASES = {
    # issue 31: a line break forged a CoNLL-U line, a TAB gave 11 columns, an empty word an empty FORM
    "line break": (lexicon_word(["do\n1\tFORGED", "g"]),
                   "lexicon: the form 'dog' has a word 'do\\n1\\tFORGED' that holds whitespace or a control character (U+000A)"),
    "tab": (lexicon_word(["do\tx", "g"]), "lexicon: the form 'dog' has a word 'do\\tx' that holds whitespace or a control character (U+0009)"),
    "empty word": (lexicon_word(["", "dog"]), "lexicon: the form 'dog' has a word '' that is empty"),
    "no words": (lexicon_word([]), "lexicon: the form 'dog' has 0 words, not 1 to 32"),  # an IndexError in the child
    "too many words": (lexicon_word(["d"] * 33), "lexicon: the form 'dog' has 33 words, not 1 to 32"),
    "long words": (lexicon_word(["d" * 600, "g" * 600]), "lexicon: the form 'dog' has words longer than 1,000 characters together"),
    "space in a form": (lexicon("entries", {"a b": ["a", "b"]}), "lexicon: the form 'a b' holds whitespace or a control character (U+0020)"),
    "NUL": (lexicon_word(["d\x00", "og"]), "lexicon: the form 'dog' has a word 'd\\x00' that holds whitespace or a control character (U+0000)"),
    "line separator": (lexicon_word(["d\u2028", "og"]), "lexicon: the form 'dog' has a word 'd\\u2028' that holds whitespace or a control character (U+2028)"),
    "empty suffix": (lexicon("suffixes", ["n't", ""]), "lexicon: the suffix '' is empty"),
    "usual not an entry": (lexicon("usual", ["zebra"]), "lexicon: the usual form 'zebra' is not one of the entries"),
    "words not a list": (lexicon("entries", {"dog": "do g"}), "lexicon.entries.dog: input should be a valid array"),
    "key with a line break": (lexicon("entries", {"a\nb": [1]}), "lexicon.entries.'a\\nb'.0: input should be a valid string"),
    "no lexicon": (lambda s, c: s.pop("lexicon"), "lexicon: field required"),
    "an extra field": (setting("surprise", 1), "surprise: extra inputs are not permitted"),
    "chars not a list": (setting("chars", 3), "chars: input should be a valid array"),
    "no space": (setting("chars", ["<pad>", "<unk>", "x", "y"]), "chars: the character table does not start with '<pad>', '<unk>', ' '"),
    "two characters": (setting("chars", [*SPECIALS, "ab"]), "chars: the character table holds 'ab', not one character other than whitespace"),
    "a tab": (setting("chars", [*SPECIALS, "\t"]), "chars: the character table holds '\\t', not one character other than whitespace"),
    "twice": (setting("chars", [*SPECIALS, "a", "a"]), "chars: the character table holds a character twice"),
    "NaN score": (setting("scores", {"dev_tokens_f1": float("nan")}), "scores: the score dev_tokens_f1 is not a finite number"),
    "text score": (setting("scores", {"dev_tokens_f1": "99"}), "scores: the score dev_tokens_f1 is not a finite number"),
    "score name": (setting("scores", {"Dev\nF1": 1}), "scores: the score name 'Dev\\nF1' is not a lower-case name of at most 40 characters"),
    "NaN bias": (setting("sentence_bias", float("nan")), "sentence_bias: the sentence bias is not a number from -100.0 to 100.0"),
    "huge bias": (setting("sentence_bias", 1e300), "sentence_bias: the sentence bias is not a number from -100.0 to 100.0"),
    "text bias": (setting("sentence_bias", "-1"), "sentence_bias: the sentence bias is not a number from -100.0 to 100.0"),
    "not JSON": (lambda s, c: "{", "(top level): invalid JSON: EOF while parsing an object at line 1 column 1"),
    "deep JSON": (lambda s, c: "[" * 100_000, "(top level): invalid JSON: recursion limit exceeded at line 1 column 202"),
    "lone surrogate": (setting("chars", [*SPECIALS, "\ud800"]), "(top level): invalid JSON: unexpected end of hex escape at line 1 column 42"),
    # issue 31 (7): sizes are checked against the limits and the tensors before anything is built
    "64 x 512": (tokenizer(num_layers=64, hidden_dim=512), "the tokenizer would have 399,152,989 parameters, above the limit of 200,000,000"),
    "16 x 512": (tokenizer(num_layers=16, hidden_dim=512),
                 "its weights do not match its sizes and characters (segmenter.encoder.rnn.bias_hh_l10)"),
    # sizes over the config's own bounds are refused by the checkpoint's config, before the segmenter's check
    "layers": (tokenizer(num_layers=10**7), "checkpoint metadata is damaged: config.tokenizer.num_layers: input should be less than or equal to 64"),
    "beyond torch": (tokenizer(hidden_dim=2**62),
                     "checkpoint metadata is damaged: config.tokenizer.hidden_dim: input should be less than or equal to 16777216"),
    "one character more": (lambda s, c: s["chars"].append("\u2603"), "its weights do not match its sizes and characters (segmenter.chars.weight)"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_crafted_segmenter_header_is_one_line_naming_the_field(segmenter_run, tmp_path, case):
    change, expected = CASES[case]
    expected = expected if expected.startswith("checkpoint metadata") else f"{DAMAGED}: {expected}"
    path = crafted(segmenter_run, tmp_path / "crafted.safetensors", change)
    result = runner.invoke(app, ["predict", "-m", str(path), "--format", "conllu", "The dog ate the apple."])
    assert_one_line_error(result, f"{path}: {expected}")
    with pytest.raises(CheckpointError) as raised:
        load_checkpoint(path)
    assert str(raised.value) == f"{path}: {expected}"


def test_the_header_as_written_loads_and_is_written_back_the_same(segmenter_run):
    header = stored_header(segmenter_run)
    segmenter = load_checkpoint(segmenter_run / BEST).segmenter
    assert segmenter is not None
    assert json.loads(segmenter.metadata()) == json.loads(header["__metadata__"]["segmenter"])
    tensors = segmenter.tensors()
    again = Segmenter.load(segmenter.config, tensors, segmenter.metadata())  # the background trainer's way back
    assert again.metadata() == segmenter.metadata() and again.table.itos == segmenter.table.itos


def test_a_header_with_words_that_are_words_loads(segmenter_run, tmp_path):
    path = crafted(segmenter_run, tmp_path / "fine.safetensors", lexicon_word(["d\u00e9", "og\u200d"]))  # accents, a ZWJ: fine
    segmenter = load_checkpoint(path).segmenter
    assert segmenter is not None and segmenter.lexicon.expand("dog", False) == ["d\u00e9", "og\u200d"]


def test_a_huge_segmenter_is_refused_before_it_is_built(segmenter_run, tmp_path, monkeypatch):
    """64 layers x 512 units took 1.8 GB before the error; 16 x 512 (under the parameter limit, 400 MB) is
    refused by its tensors' shapes: neither network is built anywhere but on the meta device."""
    built = []

    class Recorded(network.SegmenterNet):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            built.append(next(self.parameters()).device.type)

    monkeypatch.setattr(network, "SegmenterNet", Recorded)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for layers in (64, 16):
        path = crafted(segmenter_run, tmp_path / f"{layers}.safetensors", tokenizer(num_layers=layers, hidden_dim=512))
        with pytest.raises(CheckpointError, match=DAMAGED):
            load_checkpoint(path)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 300_000  # KiB: nothing large was allocated
    assert built == ["meta", "meta"]
    load_checkpoint(segmenter_run / BEST)
    assert built == ["meta", "meta", "meta", "cpu"]  # planned, then built


def test_the_segmenter_limits_are_stated_in_limits():
    assert (limits.MAX_LEXICON_FORMS, limits.MAX_LEXICON_SUFFIXES) == (1_000_000, 10_000)
    assert (limits.MAX_MULTIWORD_WORDS, limits.MAX_MULTIWORD_CHARS, limits.MAX_SEGMENTER_SCORES) == (32, 1000, 16)
    assert limits.count_parameters({"a": (2, 3), "b": (4,), "c": ()}) == 11


def test_words_only_keeps_what_the_header_accepts():
    learned = Lexicon({"don't": ["do", "n't"], "a b": ["a", "b"], "du": ["de", "l\te"], "au": []}, ["don't", "a b", "du"], ["n't", "", "x\ny"])
    kept = words_only(learned)
    assert (kept.entries, kept.usual, kept.suffixes) == ({"don't": ["do", "n't"]}, {"don't"}, ["n't"])
    assert read_header(json.dumps({"chars": SPECIALS, "lexicon": kept.to_dict()})).lexicon.entries == kept.entries


MULTIWORD_WITH_A_SPACE = """# text = We don't stop.
1\tWe\twe\tPRON\t_\t_\t_\t_\t_\t_
2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_
2\tdo\tdo\tAUX\t_\t_\t_\t_\t_\t_
3\tn't\tnot\tPART\t_\t_\t_\t_\t_\t_
4\tstop\tstop\tVERB\t_\t_\t_\t_\t_\t_
5\t.\t.\tPUNCT\t_\t_\t_\t_\t_\t_

# text = Go au lit.
1\tGo\tgo\tVERB\t_\t_\t_\t_\t_\t_
2-3\tau\t_\t_\t_\t_\t_\t_\t_\t_
2\ta b\ta\tADP\t_\t_\t_\t_\t_\t_
3\tle\tle\tDET\t_\t_\t_\t_\t_\t_
4\tlit\tlit\tNOUN\t_\t_\t_\t_\t_\t_
5\t.\t.\tPUNCT\t_\t_\t_\t_\t_\t_

"""


def test_a_treebank_word_with_a_space_stays_out_of_the_lexicon_and_the_checkpoint_loads(tmp_path):
    """A treebank may hold what the header refuses: training leaves it out, rather than writing a
    checkpoint that would not load."""
    (tmp_path / "mw.conllu").write_text(MULTIWORD_WITH_A_SPACE, encoding="utf-8")
    path = tiny_config(tmp_path, tokenizer={"mode": "on", "epochs": 1, "hidden_dim": 8, "window": 16}, train={"epochs": 1})
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    config["data"] = {"train": "mw.conllu", "dev": "mw.conllu", "test": "mw.conllu"}
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    result = runner.invoke(app, ["train", str(path), "--output", str(tmp_path / "run"), "-q"])
    assert result.exit_code == 0, result.output
    segmenter = load_checkpoint(tmp_path / "run" / BEST).segmenter
    assert segmenter is not None and segmenter.lexicon.entries == {"don't": ["do", "n't"]}


@pytest.mark.parametrize(
    "sizes, expected",
    [
        ({"hidden_dim": 10**5, "num_layers": 1}, "the tokenizer would have 80,034,600,861 parameters, above the limit of 200,000,000"),
        ({"num_layers": 10**7}, "tokenizer.num_layers: must be <= 64, got 10000000"),
    ],
)
def test_training_a_huge_segmenter_is_refused_before_it_is_built(tmp_path, sizes, expected):
    path = tiny_config(tmp_path, tokenizer={"mode": "on", **sizes}, train={"epochs": 1})
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = runner.invoke(app, ["train", str(path), "--output", str(tmp_path / "run")])
    assert_one_line_error(result, expected)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 300_000  # KiB: nothing large was allocated
