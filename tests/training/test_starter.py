"""What ``lstm-tag init`` tells a user of a new language before training: tokens with spaces,
dev or test tags that training never has, sentences without ``# text``."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from lstm_tagger.cli import app
from lstm_tagger.training.starter import write_starter_config

from conftest import shared_path

runner = CliRunner()


def sentence(rows: list[tuple[str, str, str]], text: bool = True) -> str:
    """A CoNLL-U sentence of (FORM, UPOS, XPOS) rows, with ``# text`` unless told otherwise."""
    lines = [f"# text = {' '.join(form for form, _, _ in rows)}"] if text else []
    lines += [f"{i}\t{form}\t_\t{upos}\t{xpos}\t_\t_\t_\t_\t_" for i, (form, upos, xpos) in enumerate(rows, start=1)]
    return "\n".join(lines) + "\n\n"


VI = [("Tôi", "PRON", "P"), ("xem", "VERB", "V"), ("danh sách", "NOUN", "N")]
VI_OTHER_SPELLING = [("Tôi", "PRON", "PRO"), ("xem", "VERB", "VERB"), ("danh sách", "NOUN", "N")]


def corpus(tmp_path: Path, train: str, dev: str, test: str) -> list[Path]:
    paths = [tmp_path / f"{name}.conllu" for name in ("train", "dev", "test")]
    for path, text in zip(paths, (train, dev, test)):
        path.write_text(text, encoding="utf-8")
    return paths


def test_init_warns_of_spaces_in_tokens_other_tag_spellings_and_missing_text(tmp_path):
    train, dev, test = corpus(tmp_path, sentence(VI) * 3, sentence(VI_OTHER_SPELLING), sentence(VI, text=False) + sentence(VI))
    out = tmp_path / "vi.yaml"
    result = runner.invoke(app, ["init", "--train", str(train), "--dev", str(dev), "--test", str(test), "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        "lstm-tag: warning: 3 of 9 training tokens (33.3%) contain a space (e.g. 'danh sách'); the segmenter learns "
        "where a space is inside a token; predict --input-format tokens splits at every space: give such tokens as CoNLL-U",
        f"lstm-tag: warning: {test}: 1 of 2 sentences (50.0%) have no # text: raw-text scores on it (eval --raw, the "
        "segmenter's dev scores) are taken on text rebuilt from its tokens",
        f"lstm-tag: warning: {dev}: the XPOS tags of 2 of 3 words (66.7%) never occur in the training file (2 tags, "
        "e.g. PRO, VERB): the tagger cannot predict them; check that both files spell the tags alike",
    ]
    assert out.is_file() and "wrote" in result.stdout  # warnings only: the config is written
    starter = write_starter_config(tmp_path / "again.yaml", train, dev, test)  # the library returns them, prints nothing
    assert starter.warnings == [line.removeprefix("lstm-tag: warning: ") for line in result.stderr.splitlines()]


def test_init_warns_that_training_text_without_text_lines_trains_no_segmenter(tmp_path):
    train, dev, _ = corpus(tmp_path, sentence(VI, text=False) + sentence(VI), sentence(VI), "")
    starter = write_starter_config(tmp_path / "vi.yaml", train, dev)
    assert starter.warnings == [
        "2 of 6 training tokens (33.3%) contain a space (e.g. 'danh sách'); predict --input-format tokens splits at "
        "every space: give such tokens as CoNLL-U",
        f"{train}: 1 of 2 sentences (50.0%) have no # text: no segmenter is trained (tokenizer.mode auto needs it on "
        "every training sentence): the model tags tokens, not raw text",
    ]


def test_init_says_nothing_of_a_corpus_without_surprises(tmp_path):
    english = [("The", "DET", "DT"), ("dog", "NOUN", "NN"), ("barks", "VERB", "VBZ")]
    train, dev, _ = corpus(tmp_path, sentence(english) * 2, sentence(english[:2]), "")
    result = runner.invoke(app, ["init", "--train", str(train), "--dev", str(dev), "--output", str(tmp_path / "en.yaml")])
    assert result.exit_code == 0 and result.stderr == ""


VTB = shared_path("data", "ud_vietnamese_vtb")


@pytest.mark.skipif(not VTB.is_dir(), reason=f"UD Vietnamese VTB is not at {VTB}")
def test_init_on_vietnamese_vtb(tmp_path):
    """The treebank that showed the need: a fifth of its tokens have a space, its dev XPOS are spelled otherwise."""
    files = [VTB / f"vi_vtb-ud-{split}.conllu" for split in ("train", "dev", "test")]
    starter = write_starter_config(tmp_path / "vi.yaml", *files)
    assert starter.warnings == [
        "4,535 of 20,215 training tokens (22.4%) contain a space (e.g. 'thám tử'); the segmenter learns where a space "
        "is inside a token; predict --input-format tokens splits at every space: give such tokens as CoNLL-U",
        f"{files[1]}: the XPOS tags of 11,583 of 26,162 words (44.3%) never occur in the training file (19 tags, "
        "e.g. PUNCT, ADV, ADJ): the tagger cannot predict them; check that both files spell the tags alike",
    ]


def test_a_small_corpus_gets_a_smaller_more_regularised_model_and_nothing_else_changes():
    from lstm_tagger.training.starter import RECIPE, SMALL_CORPUS_MODEL, small_corpus_model

    recipe = RECIPE.read_text(encoding="utf-8")
    adapted = small_corpus_model(recipe, 20_215)
    changed = [(old, new) for old, new in zip(recipe.splitlines(), adapted.splitlines()) if old != new]
    assert len(adapted.splitlines()) == len(recipe.splitlines()) and len(changed) == len(SMALL_CORPUS_MODEL)
    for old, new in changed:
        key = old.split(":")[0].strip()
        assert new.startswith(f"  {key}: {SMALL_CORPUS_MODEL[key]} ")  # the model section's key, not the tokenizer's
        assert f"the recipe has {old.split(':')[1].split('#')[0].strip()}" in new and "20,215 training words" in new


@pytest.mark.parametrize("words, small", [(49_999, True), (50_000, False)])
def test_the_model_is_adapted_below_the_small_corpus_size_only(tmp_path, words, small):
    from lstm_tagger.configfile import load_config
    from lstm_tagger.training.starter import RECIPE, SMALL_CORPUS_WORDS

    assert SMALL_CORPUS_WORDS == 50_000
    train = tmp_path / "train.tsv"
    train.write_text("".join(f"w{i % 97}\t{'NOUN' if i % 2 else 'VERB'}\n" + ("\n" if i % 10 == 9 else "") for i in range(words)))
    dev = tmp_path / "dev.tsv"
    dev.write_text("w1\tNOUN\n\n")
    starter = write_starter_config(tmp_path / "c.yaml", train, dev)
    recipe = load_config(RECIPE, [f"data.train={train}", f"data.dev={dev}", "data.test=null"]).model
    assert starter.train_words == words
    assert (starter.config.model.hidden_dim, starter.config.model.dropout) == ((128, 0.5) if small else (256, 0.33))
    rest = {"hidden_dim", "dropout", "output_per_column"}  # the last: the recipe's FEATS entry, for a column not learnt
    assert starter.config.model.model_dump(exclude=rest) == recipe.model_dump(exclude=rest)
