"""Our CoNLL 2018 metrics against the official script, on crafted gold/system pairs."""

from __future__ import annotations


import pytest

from lstm_tagger.evaluation.conll18 import METRICS, evaluate
from lstm_tagger.errors import DataError
from lstm_tagger.corpus.rawtext import read_treebank

from conftest import needs_script, official



def block(*rows: str, text: str | None = None) -> str:
    """A CoNLL-U sentence from rows ``ID FORM UPOS [XPOS FEATS MISC]`` (space-separated)."""
    lines = [f"# text = {text}"] if text else []
    for row in rows:
        parts = row.split(" ")
        parts += ["_"] * (6 - len(parts))
        token_id, form, upos, xpos, feats, misc = parts
        lines.append("\t".join([token_id, form, "_", upos, xpos, feats, "_", "_", "_", misc]))
    return "\n".join(lines) + "\n\n"


GOLD = (
    block("1-2 Don't _", "1 Do AUX VBP Mood=Imp|VerbForm=Fin", "2 n't PART RB Polarity=Neg", "3 stop VERB VB VerbForm=Inf SpaceAfter=No",
          "4 . PUNCT .")
    + block("1 I PRON PRP Case=Nom|Number=Sing|Person=1", "2-3 can't _", "2 ca AUX MD VerbForm=Fin", "3 n't PART RB Polarity=Neg",
            "4 go VERB VB VerbForm=Inf", "5 to ADP IN", "6 the DET DT Definite=Def|PronType=Art", "7 U.S. PROPN NNP Number=Sing",
            "8 today NOUN NN Number=Sing SpaceAfter=No", "9 . PUNCT .")
    + block("1 Thanks NOUN NNS Number=Plur", "2 a DET DT Definite=Ind", "3 lot NOUN NN Number=Sing")
)

CASES = {
    "identical": GOLD,
    # tokenisation errors: "Don't" as one plain token, "U.S." cut in two, "stop." glued
    "tokens": (
        block("1 Don't VERB VB", "2 stop. VERB VB")
        + block("1 I PRON PRP Case=Nom|Number=Sing|Person=1", "2-3 can't _", "2 ca AUX MD VerbForm=Fin", "3 n't PART RB",
                "4 go VERB VB", "5 to ADP IN", "6 the DET DT", "7 U. PROPN NNP", "8 S. PROPN NNP", "9 today NOUN NN", "10 . PUNCT .")
        + block("1 Thanks NOUN NNS Number=Plur", "2 a DET DT Definite=Ind", "3 lot NOUN NN Number=Sing")
    ),
    # sentence errors: the first two sentences as one, the last one cut in two; one feature language-specific
    "sentences": (
        block("1-2 Don't _", "1 Do AUX VBP Mood=Imp|VerbForm=Fin|Foo=Bar", "2 n't PART RB Polarity=Neg", "3 stop VERB VB",
              "4 . PUNCT .", "5 I PRON PRP", "6-7 can't _", "6 ca AUX MD", "7 n't PART RB", "8 go VERB VB", "9 to ADP IN",
              "10 the DET DT", "11 U.S. PROPN NNP", "12 today NOUN NN", "13 . PUNCT .")
        + block("1 Thanks NOUN NNS Number=Plur") + block("1 a DET DT Definite=Ind", "2 lot NOUN NN")
    ),
    # multiword tokens: wrong words in a correct MWT, an MWT where gold has two tokens, split of "can't" as tokens
    "multiword": (
        block("1-2 Don't _", "1 Don AUX VBP", "2 't PART RB", "3-4 stop. _", "3 stop VERB VB", "4 . PUNCT .")
        + block("1 I PRON PRP", "2 ca AUX MD", "3 n't PART RB", "4 go VERB VB", "5-6 tothe _", "5 to ADP IN", "6 the DET DT",
                "7 U.S. PROPN NNP", "8 today NOUN NN", "9 . PUNCT .")
        + block("1-2 Thanksa _", "1 Thanks NOUN NNS", "2 A DET DT", "3 lot NOUN NN")
    ),
}


@needs_script
@pytest.mark.parametrize("case", sorted(CASES))
def test_our_metrics_equal_the_official_script(case, tmp_path):
    gold, system = tmp_path / "gold.conllu", tmp_path / "system.conllu"
    gold.write_text(GOLD, encoding="utf-8")
    system.write_text(CASES[case], encoding="utf-8")
    ours = evaluate(read_treebank(gold), read_treebank(system))
    table, counts = official(gold, system, False), official(gold, system, True)
    for metric in METRICS:
        score = ours[metric]
        assert [f"{100 * score.precision:.2f}", f"{100 * score.recall:.2f}", f"{100 * score.f1:.2f}"] == table[metric][:3], metric
        correct, gold_total, system_total, aligned = counts[metric]
        assert (score.correct, score.gold, score.system) == (int(correct), int(gold_total), int(system_total)), metric
        if metric not in ("Tokens", "Sentences", "Words"):
            assert score.aligned == int(aligned), metric


def test_crafted_cases_are_not_all_perfect(tmp_path):
    """The pairs exercise errors: each non-identical case loses on tokens, sentences or words."""
    gold_path = tmp_path / "gold.conllu"
    gold_path.write_text(GOLD, encoding="utf-8")
    gold = read_treebank(gold_path)
    for case, text in CASES.items():
        path = tmp_path / f"{case}.conllu"
        path.write_text(text, encoding="utf-8")
        scores = evaluate(gold, read_treebank(path))
        assert (scores["AllTags"].f1 == 1.0) == (case == "identical"), case
    assert evaluate(gold, read_treebank(tmp_path / "sentences.conllu"))["Sentences"].correct == 0
    words = evaluate(gold, read_treebank(tmp_path / "multiword.conllu"))["Words"]
    assert (words.correct, words.gold, words.system) == (14, 16, 16)  # as the official script counts them


def test_different_text_is_an_error(tmp_path):
    gold, system = tmp_path / "gold.conllu", tmp_path / "system.conllu"
    gold.write_text(block("1 The DET", "2 dog NOUN"), encoding="utf-8")
    system.write_text(block("1 The DET", "2 cat NOUN"), encoding="utf-8")
    with pytest.raises(DataError, match="gold and system text differ at character 3: 'dog' vs 'cat'"):
        evaluate(read_treebank(gold), read_treebank(system))


FEATS_GOLD = block(
    "1 I PRON PRP Case=Nom|Number=Sing|Person=1|PronType=Prs", "2 saw VERB VBD Mood=Ind|Tense=Past|VerbForm=Fin",
    "3 2 NUM CD NumForm=Digit|NumType=Card", "4 u PRON PRP Case=Acc|Person=2|PronType=Prs|Typo=Yes",
    "5 at ADP IN ExtPos=ADP", "6 home NOUN NN Number=Sing",
)
FEATS_SYSTEM = block(  # wrong in a language-specific feature only (words 3, 4, 5), in a universal one (2), or right
    "1 I PRON PRP Case=Nom|Number=Sing|Person=1|PronType=Prs", "2 saw VERB VBD Mood=Ind|Tense=Pres|VerbForm=Fin",
    "3 2 NUM CD NumType=Card", "4 u PRON PRP Case=Acc|Person=2|PronType=Prs",
    "5 at ADP IN _", "6 home NOUN NN Number=Sing",
)


@needs_script
def test_ufeats_on_gold_tokens_is_the_official_figure(tmp_path, monkeypatch):
    """``evaluate.evaluate``'s ``ufeats`` is the official script's UFeats on the same predictions;
    the ``feats`` column's own accuracy compares whole strings and is lower here."""
    from types import SimpleNamespace

    from lstm_tagger.corpus.reader import read_conllu
    from lstm_tagger.evaluation import evaluate as evaluation
    from lstm_tagger.tagging.predict import Tagged

    gold_path, system_path = tmp_path / "gold.conllu", tmp_path / "system.conllu"
    gold_path.write_text(FEATS_GOLD * 2, encoding="utf-8")
    system_path.write_text(FEATS_SYSTEM + FEATS_GOLD, encoding="utf-8")
    columns = ["upos", "feats"]
    gold, system = read_conllu(gold_path, columns), read_conllu(system_path, columns)
    monkeypatch.setattr(evaluation, "tag", lambda checkpoint, words, batch_size: [
        Tagged(list(s.words), {c: list(s.columns[c]) for c in columns}) for s in system
    ])
    checkpoint = SimpleNamespace(words=SimpleNamespace(seen_in_training=lambda word: True), model=SimpleNamespace(columns=columns))
    scores = evaluation.evaluate(checkpoint, gold)
    correct, gold_words, system_words, aligned = official(gold_path, system_path, True)["UFeats"]
    assert scores["ufeats"] == {"accuracy": int(correct) / int(gold_words), "tokens": 12, "correct": 11}
    assert (int(correct), int(gold_words), int(system_words), int(aligned)) == (11, 12, 12, 12)
    assert f"{100 * scores['ufeats']['accuracy']:.2f}" == official(gold_path, system_path, False)["UFeats"][2] == "91.67"
    assert scores["columns"]["feats"]["accuracy"] == 8 / 12  # whole strings: words 2 to 5 of the first copy
