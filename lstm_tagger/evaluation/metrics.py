"""Pure scoring functions over gold and predicted tag sequences (no torch, no I/O)."""

from __future__ import annotations

from collections import Counter
from typing import Any, Sequence


def _ratio(num: int, den: int) -> float:
    return num / den if den else 0.0


def score(
    gold: Sequence[Sequence[str]],
    pred: Sequence[Sequence[str]],
    known: Sequence[Sequence[bool]],
    top_confusions: int = 10,
) -> dict[str, Any]:
    """Tagging scores of ``pred`` against ``gold``.

    ``known[s][i]`` says whether word i of sentence s is in the training vocabulary;
    the others are the out-of-vocabulary (OOV) tokens. Returns a JSON-ready dict with
    ``accuracy`` (a fraction), ``macro_f1`` (the mean of the per-tag F1 over the gold tags),
    ``tokens``, ``sentences``, ``sentence_accuracy``,
    ``known_accuracy``, ``oov_accuracy``, ``oov_tokens``, ``per_tag`` (precision,
    recall, f1, support per gold tag), ``confusions`` (most frequent gold -> predicted) and
    ``confusion_matrix`` (``labels``, most frequent gold tag first, ties by name, and
    ``counts[i][j]``: tokens of gold ``labels[i]`` predicted as ``labels[j]``).
    """
    if not (len(gold) == len(pred) == len(known)):
        raise ValueError("gold, pred and known must have one entry per sentence")
    correct = tokens = exact = 0
    known_total = known_correct = oov_total = oov_correct = 0
    gold_count: Counter[str] = Counter()
    pred_count: Counter[str] = Counter()
    hits: Counter[str] = Counter()
    confusions: Counter[tuple[str, str]] = Counter()
    for g_sent, p_sent, k_sent in zip(gold, pred, known):
        if not (len(g_sent) == len(p_sent) == len(k_sent)):
            raise ValueError("a predicted sentence differs in length from its gold sentence")
        sentence_ok = True
        for g, p, k in zip(g_sent, p_sent, k_sent):
            ok = g == p
            tokens += 1
            correct += ok
            gold_count[g] += 1
            pred_count[p] += 1
            if ok:
                hits[g] += 1
            else:
                confusions[(g, p)] += 1
                sentence_ok = False
            if k:
                known_total += 1
                known_correct += ok
            else:
                oov_total += 1
                oov_correct += ok
        exact += sentence_ok
    per_tag = {}
    for tag in sorted(gold_count, key=lambda t: (-gold_count[t], t)):
        precision = _ratio(hits[tag], pred_count[tag])
        recall = _ratio(hits[tag], gold_count[tag])
        f1 = _ratio(2 * precision * recall, precision + recall) if precision + recall else 0.0
        per_tag[tag] = {"precision": precision, "recall": recall, "f1": f1, "support": gold_count[tag]}
    macro_f1 = _ratio(sum(s["f1"] for s in per_tag.values()), len(per_tag))
    labels = sorted(set(gold_count) | set(pred_count), key=lambda t: (-gold_count[t], t))
    matrix = [[hits[g] if g == p else confusions[(g, p)] for p in labels] for g in labels]
    return {
        "accuracy": _ratio(correct, tokens),
        "macro_f1": macro_f1,
        "tokens": tokens,
        "correct": correct,
        "sentences": len(gold),
        "sentence_accuracy": _ratio(exact, len(gold)),
        "known_tokens": known_total,
        "known_accuracy": _ratio(known_correct, known_total),
        "oov_tokens": oov_total,
        "oov_accuracy": _ratio(oov_correct, oov_total),
        "per_tag": per_tag,
        "confusions": [
            {"gold": g, "predicted": p, "count": c}
            for (g, p), c in sorted(confusions.items(), key=lambda item: (-item[1], item[0]))[:top_confusions]
        ],
        "confusion_matrix": {"labels": labels, "counts": matrix},
    }


def all_tags(gold: Sequence[Sequence[Sequence[str]]], pred: Sequence[Sequence[Sequence[str]]]) -> dict[str, Any]:
    """The share of tokens whose every column is right, on gold tokens. Each tag is compared
    whole, a FEATS string too: CoNLL 2018's AllTags compares only the universal features.

    ``gold[c][s][i]``: column c's tag of word i of sentence s (``pred`` the same); returns
    ``accuracy``, ``tokens`` and ``correct``.
    """
    tokens = correct = 0
    for g_sents, p_sents in zip(zip(*gold), zip(*pred)):  # one sentence, every column
        for g_token, p_token in zip(zip(*g_sents), zip(*p_sents)):
            tokens += 1
            correct += g_token == p_token
    return {"accuracy": _ratio(correct, tokens), "tokens": tokens, "correct": correct}
