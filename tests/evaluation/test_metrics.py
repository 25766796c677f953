import pytest

from lstm_tagger.evaluation.metrics import score


def test_scores_by_hand():
    gold = [["DET", "NOUN"], ["PRON", "VERB", "NOUN"]]
    pred = [["DET", "NOUN"], ["PRON", "NOUN", "NOUN"]]
    known = [[True, True], [True, False, True]]
    result = score(gold, pred, known)
    assert result["accuracy"] == pytest.approx(4 / 5)
    assert result["tokens"] == 5
    assert result["sentence_accuracy"] == pytest.approx(1 / 2)
    assert result["oov_tokens"] == 1 and result["oov_accuracy"] == 0.0
    assert result["known_accuracy"] == 1.0
    noun = result["per_tag"]["NOUN"]
    assert noun["precision"] == pytest.approx(2 / 3) and noun["recall"] == 1.0 and noun["support"] == 2
    assert noun["f1"] == pytest.approx(0.8)
    assert result["per_tag"]["VERB"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert result["confusions"] == [{"gold": "VERB", "predicted": "NOUN", "count": 1}]


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError):
        score([["DET"]], [["DET", "NOUN"]], [[True]])


def test_confusion_matrix_by_hand():
    gold = [["DET", "NOUN", "VERB"], ["NOUN", "NOUN"], ["PRON"]]
    pred = [["DET", "VERB", "VERB"], ["NOUN", "PROPN"], ["DET"]]
    matrix = score(gold, pred, [[True] * len(s) for s in gold])["confusion_matrix"]
    # gold frequency: NOUN 3, DET 1, PRON 1, VERB 1 (ties by name), PROPN only predicted
    assert matrix["labels"] == ["NOUN", "DET", "PRON", "VERB", "PROPN"]
    assert matrix["counts"] == [
        [1, 0, 0, 1, 1],  # NOUN -> NOUN, VERB, PROPN
        [0, 1, 0, 0, 0],  # DET -> DET
        [0, 1, 0, 0, 0],  # PRON -> DET
        [0, 0, 0, 1, 0],  # VERB -> VERB
        [0, 0, 0, 0, 0],  # PROPN never gold
    ]
