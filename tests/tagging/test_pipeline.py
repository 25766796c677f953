"""The Python pipeline (``lstm_tagger.load``) against ``lstm-tag predict``: the same words, tags,
scores and bytes for raw text, pre-split tokens and CoNLL-U, and the same errors."""

from __future__ import annotations

import doctest
import io
import json
import os
import tracemalloc
from pathlib import Path

import pytest
from typer.testing import CliRunner

import lstm_tagger
from lstm_tagger.rundir import BEST
from lstm_tagger.cli import app
from lstm_tagger.errors import UserError
from lstm_tagger.tagging import pipeline, rawtag

from conftest import ROOT

runner = CliRunner()
TEXT = "Don't stop. The dog ate the apple\n\nEverybody read that book. We can't stop now!"
TEST_CONLLU = ROOT / "data" / "demo" / "test.conllu"
CONLLU = (
    "\ufeff# newdoc id = d1\r\n# sent_id = a\r\n# text = Don't stop\r\n"
    "1-2\tDon't\t_\t_\t_\t_\t_\t_\t_\t_\r\n1\tDo\tdo\tX\tY\t_\t0\troot\t_\t_\r\n2\tn't\tnot\t_\t_\t_\t1\tadvmod\t_\tKeep=1\r\n"
    "2.1\tghost\t_\t_\t_\t_\t_\t_\t_\t_\r\n3\tstop\t_\t_\t_\t_\t1\tdep\t_\tSpaceAfter=No\r\n\r\n"
    "\r\n# sent_id = b\n1\tThe\t_\t_\t_\t_\t_\t_\t_\t_\n2\tdog\t_\t_\t_\t_\t_\t_\t_\t_\n\n# a comment at the end\n"
)
"""CoNLL-U with a BOM, CRLF, a multiword token, an empty node, MISC values, an extra blank line,
a sentence without ``# text`` and a trailing comment: every byte but the tags comes back."""


@pytest.fixture(scope="module")
def tagger(demo_run) -> pipeline.Pipeline:
    return lstm_tagger.load(demo_run)


def predict(run: Path, *args: str) -> str:
    result = runner.invoke(app, ["predict", "--model", str(run), *args])
    assert result.exit_code == 0, result.output
    return result.stdout_bytes.decode("utf-8")  # the bytes: ``stdout`` turns CRLF into LF


def words_and_tags(text_output: str) -> list[list[tuple[str, str]]]:
    """``predict``'s text output (``Do/AUX n't/PART``) as (word, tag) pairs per sentence."""
    return [[tuple(item.rsplit("/", 1)) for item in line.split()] for line in text_output.splitlines()]


def test_raw_text_gives_the_words_and_upos_of_predict(tagger, demo_run):
    doc = tagger("Don't stop.")
    expected = words_and_tags(predict(demo_run, "Don't stop."))
    assert [[(w.form, w.upos) for w in s.words] for s in doc.sentences] == expected
    assert [w.form for w in doc.sentences[0].words] == ["Do", "n't", "stop", "."]


def test_raw_text_to_conllu_json_and_text_are_predicts_bytes(tagger, demo_run):
    doc = tagger(TEXT)
    assert doc.to_conllu() == predict(demo_run, TEXT, "--format", "conllu")
    assert doc.to_json() == predict(demo_run, TEXT, "--format", "json")
    assert doc.to_text() == predict(demo_run, TEXT)
    assert doc.to_dict() == {"sentences": [json.loads(line) for line in doc.to_json().splitlines()]}


def test_document_has_stanzas_shape(tagger):
    doc = tagger(TEXT)
    first = doc.sentences[0]
    assert first.id == 1 and first.text == "Don't stop." and doc.text == TEXT
    token = first.tokens[0]
    assert (token.id, token.text, token.multiword, [w.form for w in token.words]) == ((1, 2), "Don't", True, ["Do", "n't"])
    assert [t.id for t in first.tokens] == [(1, 2), (3,), (4,)]
    assert [t.space_after for t in first.tokens] == [True, False, True]
    assert [w.id for w in first.words] == [1, 2, 3, 4]
    assert [s.text for s in doc.sentences] == ["Don't stop.", "The dog ate the apple", "Everybody read that book.", "We can't stop now!"]
    word = first.words[0]
    assert word.text == word.form == "Do" and word.xpos is None and word.feats is None and word.scores is None


def test_tokens_input_is_predict_input_format_tokens(tagger, demo_run):
    sentences = [["The", "dog", "ate", "the", "apple"], ["Everybody", "read", "that", "book"]]
    doc = tagger.tag_tokens(sentences)
    lines = "\n".join(" ".join(words) for words in sentences)
    for format, written in (("text", doc.to_text()), ("json", doc.to_json()), ("conllu", doc.to_conllu())):
        assert written == predict(demo_run, lines, "--input-format", "tokens", "--format", format), format
    assert [[w.form for w in s.words] for s in doc.sentences] == sentences
    assert [s.text for s in doc.sentences] == ["The dog ate the apple", "Everybody read that book"]
    assert [len(s.tokens) for s in doc.sentences] == [5, 4]


def test_a_blank_tokens_line_is_no_sentence_but_is_written_as_predict_writes_it(tagger, demo_run):
    doc = tagger.tag_tokens([["The", "dog"], [], ["A", "book"]])
    assert [s.id for s in doc.sentences] == [1, 2]
    for format, written in (("text", doc.to_text()), ("json", doc.to_json()), ("conllu", doc.to_conllu())):
        assert written == predict(demo_run, "The dog\n\nA book", "--input-format", "tokens", "--format", format), format


def test_tag_tokens_refuses_strings(tagger):
    with pytest.raises(UserError, match=r"tag_tokens takes lists of words, e\.g\. \[\['The', 'dog'\]\], not strings: got 'The dog'"):
        tagger.tag_tokens(["The dog"])


def test_conllu_file_to_conllu_is_predicts_bytes(tagger, demo_run):
    doc = tagger.tag_conllu(TEST_CONLLU)
    assert doc.to_conllu() == predict(demo_run, "--file", str(TEST_CONLLU), "--format", "conllu")
    assert tagger.tag_conllu(str(TEST_CONLLU)).to_conllu() == doc.to_conllu()
    assert doc.to_json() == predict(demo_run, "--file", str(TEST_CONLLU), "--format", "json")
    assert doc.sentences[0].text == "Our yoga class starts at 8:30 every morning, so I get up early."


def test_conllu_text_keeps_every_byte_predict_keeps(tagger, demo_run, tmp_path):
    doc = tagger.tag_conllu(CONLLU)
    (tmp_path / "in.conllu").write_bytes(CONLLU.encode("utf-8"))
    assert doc.to_conllu() == predict(demo_run, "--file", str(tmp_path / "in.conllu"), "--format", "conllu")
    first, second = doc.sentences
    assert [w.id for w in first.words] == [1, 2, 3] and [t.id for t in first.tokens] == [(1, 2), (3,)]
    assert first.tokens[0].text == "Don't" and first.text == "Don't stop"
    assert second.text == "The dog" and [w.form for w in second.words] == ["The", "dog"]
    expected = words_and_tags(predict(demo_run, "--file", str(tmp_path / "in.conllu")))
    assert [[(w.form, w.upos) for w in s.words] for s in doc.sentences] == expected


def test_scores_are_predicts_scores(tagger, demo_run):
    doc = tagger(TEXT, scores=True)
    assert doc.to_json() == predict(demo_run, TEXT, "--format", "json", "--scores")
    assert doc.to_conllu() == predict(demo_run, TEXT, "--format", "conllu", "--scores")
    for sentence, line in zip(doc.sentences, doc.to_json().splitlines()):
        assert [w.scores["upos"] for w in sentence.words] == json.loads(line)["scores"]["upos"]
    word = doc.sentences[1].words[1]
    assert set(word.scores) == {"upos"} and max(word.scores["upos"], key=word.scores["upos"].get) == word.upos
    tokens = tagger.tag_tokens([["The", "dog"]], scores=True)
    assert tokens.to_conllu() == predict(demo_run, "The dog", "--input-format", "tokens", "--format", "conllu", "--scores")


def test_a_model_without_a_segmenter_splits_raw_text_as_predict_does(tiny_run):
    tagger = lstm_tagger.load(tiny_run)
    assert not tagger.has_segmenter and tagger.columns == ["upos"]
    text = "The dog ate the apple. Everybody read that book!"
    result = runner.invoke(app, ["predict", "--model", str(tiny_run), text, "--input-format", "text", "--format", "conllu"])
    assert result.exit_code == 0, result.output
    assert tagger(text).to_conllu() == result.stdout
    assert [[w.form for w in s.words] for s in tagger(text).sentences] == [
        ["The", "dog", "ate", "the", "apple", "."], ["Everybody", "read", "that", "book", "!"]]
    assert tagger.input_format_of(io.StringIO(text)) == "tokens"  # predict's default without a segmenter


def test_loads_once_and_tags_many_times_printing_nothing(demo_run, capfd):
    tagger = lstm_tagger.load(demo_run / BEST)
    first = tagger(TEXT).to_conllu()
    assert [tagger(TEXT).to_conllu() for _ in range(2)] == [first, first]
    assert capfd.readouterr() == ("", "")


def test_stream_reads_a_file_and_lines_as_the_documents_do(tagger, demo_run, tmp_path):
    raw = tmp_path / "raw.txt"
    raw.write_text(TEXT, encoding="utf-8")
    streamed = list(tagger.stream(raw))
    assert [s.to_dict() for s in streamed] == tagger(TEXT).to_dict()["sentences"]
    assert [s.id for s in streamed] == [1, 2, 3, 4]
    lines = ["The dog ate the apple", "Everybody read that book"]
    by_lines = tagger.stream(lines, input_format="tokens")
    assert [s.to_dict() for s in by_lines] == tagger.tag_tokens([line.split() for line in lines]).to_dict()["sentences"]
    with open(TEST_CONLLU, "rb") as handle:
        assert [s.to_dict() for s in tagger.stream(handle)] == tagger.tag_conllu(TEST_CONLLU).to_dict()["sentences"]


@pytest.mark.parametrize("format", ["text", "json", "conllu"])
def test_write_is_predict_on_a_file(tagger, demo_run, tmp_path, format):
    raw = tmp_path / "raw.txt"
    raw.write_text(TEXT, encoding="utf-8")
    for source, args in ((raw, ["--file", str(raw)]), (TEST_CONLLU, ["--file", str(TEST_CONLLU)]), (io.StringIO(TEXT), [TEXT])):
        out = io.StringIO()
        tagger.write(source, out, format)
        assert out.getvalue() == predict(demo_run, *args, "--format", format), source


def cli_error(*args: str) -> str:
    result = runner.invoke(app, ["predict", *args])
    assert result.exit_code == 2 and result.stderr.startswith("lstm-tag: error: "), result.output
    return result.stderr.removeprefix("lstm-tag: error: ").rstrip("\n")


def test_a_missing_path_is_the_same_error_as_predicts(tmp_path):
    for missing in (tmp_path / "nope", tmp_path / "nope.safetensors"):
        with pytest.raises(UserError) as caught:
            lstm_tagger.load(missing)
        assert caught.value.for_cli() == str(caught.value) == cli_error("--model", str(missing), "x")
    (tmp_path / "empty-run").mkdir()
    with pytest.raises(UserError) as caught:
        lstm_tagger.load(tmp_path / "empty-run")
    assert str(caught.value) == cli_error("--model", str(tmp_path / "empty-run"), "x")


def test_a_missing_input_file_is_the_same_error_as_predicts(tagger, demo_run, tmp_path):
    missing = str(tmp_path / "nope.txt")
    for input_format in ("text", "tokens"):
        with pytest.raises(UserError) as caught:
            list(tagger.stream(missing, input_format=input_format))
        assert str(caught.value) == cli_error("--model", str(demo_run), "--file", missing, "--input-format", input_format)


def test_bad_arguments_are_user_errors(tagger, demo_run):
    with pytest.raises(UserError, match=r"^threads: must be 'auto' or a whole number > 0, got 'many'$"):
        lstm_tagger.load(demo_run, threads="many")
    with pytest.raises(UserError) as caught:
        tagger.write(io.StringIO("x"), io.StringIO(), "xml")
    assert caught.value.for_cli() == "--format xml: expected text, json, conllu"
    with pytest.raises(UserError, match="raw text is a str, not list: pre-split sentences go to tag_tokens"):
        tagger([["The", "dog"]])


def test_threads_tag_in_worker_threads_with_the_same_result(demo_run):
    one, two = lstm_tagger.load(demo_run), lstm_tagger.load(demo_run, threads=2)
    assert (one.workers, two.workers) == (1, 2)
    assert two(TEXT * 20).to_conllu() == one(TEXT * 20).to_conllu()


def test_the_public_names_are_lazy_exports():
    assert lstm_tagger.load is pipeline.load and lstm_tagger.Pipeline is pipeline.Pipeline
    assert lstm_tagger.Document.__module__ == "lstm_tagger.tagging.document"
    assert {"load", "Pipeline", "Document"} <= set(lstm_tagger.__all__)


def test_the_module_docstring_example_runs(demo_run, tmp_path, monkeypatch):
    """The example in ``pipeline``'s docstring (the one the docs show), run as written in a
    folder whose ``runs/demo`` is the trained demo run."""
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "demo").symlink_to(demo_run, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(pipeline, optionflags=flags, raise_on_error=False, report=True)
    assert result.attempted >= 10 and result.failed == 0, result


def _peak_bytes(tagger: pipeline.Pipeline, sentences: int, input_format: str) -> int:
    """Python's peak allocation while ``write`` tags ``sentences`` sentences read from a generator."""
    if input_format == "tokens":
        lines = ("The dog ate the apple and everybody read that book\n" for _ in range(sentences))
    else:
        block = ["# sent_id = x\n", "1\tThe\t_\t_\t_\t_\t_\t_\t_\t_\n", "2\tdog\t_\t_\t_\t_\t_\t_\t_\t_\n", "\n"]
        lines = (line for _ in range(sentences) for line in block)
    with open(os.devnull, "w", encoding="utf-8") as nowhere:
        tracemalloc.start()
        try:
            tagger.write(lines, nowhere, "conllu", input_format)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()


@pytest.mark.parametrize("input_format", ["tokens", "conllu"])
def test_write_streams_in_constant_memory(tiny_run, input_format):
    """Four times the sentences, the same peak: nothing read is kept once written (a tee whose
    copy is never read would keep every sentence: 4 and 9 MB more here)."""
    tagger = lstm_tagger.load(tiny_run, batch_size=16)  # chunks of 128 sentences: many of them
    _peak_bytes(tagger, 2000, input_format)  # the first run's one-off allocations
    small, large = _peak_bytes(tagger, 2000, input_format), _peak_bytes(tagger, 8000, input_format)
    assert large - small < 1_000_000, (small, large)


def test_a_pipeline_encodes_each_forms_characters_once_across_calls(trained_run, monkeypatch):
    tagger = lstm_tagger.load(trained_run("tiny", "model.char_encoder=lstm", "train.epochs=1"))
    first = tagger.tag_tokens([["The", "dog", "ate"]]).to_conllu()
    encoded: list[int] = []
    real = tagger.checkpoint.model.chars.encode
    monkeypatch.setattr(tagger.checkpoint.model.chars, "encode", lambda forms, lengths: encoded.append(len(forms)) or real(forms, lengths))
    assert tagger.tag_tokens([["The", "dog", "ate"]]).to_conllu() == first
    assert encoded == []
    tagger.tag_tokens([["The", "apple"]])
    assert encoded == [1]  # only the new form


def test_a_short_text_is_segmented_without_a_child_a_long_one_with(tagger, monkeypatch):
    forks: list[str] = []
    real = rawtag.segmented_beside
    monkeypatch.setattr(rawtag, "segmented_beside", lambda segmenter, chunks: forks.append("fork") or real(segmenter, chunks))
    short = tagger(TEXT).to_conllu()
    assert forks == []
    monkeypatch.setattr(pipeline, "INLINE_TEXT_CHARS", 5)
    assert tagger(TEXT).to_conllu() == short
    assert forks == ["fork"]
