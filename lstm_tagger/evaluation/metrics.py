"""Pure scoring functions over gold and predicted tag sequences (no torch, no I/O)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
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
    tally = _Tally()
    for g_sent, p_sent, k_sent in zip(gold, pred, known):
        tally.add_sentence(g_sent, p_sent, k_sent)
    per_tag = _per_tag(tally)
    labels = sorted(set(tally.gold) | set(tally.pred), key=lambda t: (-tally.gold[t], t))
    matrix = [[tally.hits[g] if g == p else tally.confusions[(g, p)] for p in labels] for g in labels]
    return {
        "accuracy": _ratio(tally.correct, tally.tokens),
        "macro_f1": _ratio(sum(s["f1"] for s in per_tag.values()), len(per_tag)),
        "tokens": tally.tokens,
        "correct": tally.correct,
        "sentences": len(gold),
        "sentence_accuracy": _ratio(tally.exact, len(gold)),
        "known_tokens": tally.known_total,
        "known_accuracy": _ratio(tally.known_correct, tally.known_total),
        "oov_tokens": tally.oov_total,
        "oov_accuracy": _ratio(tally.oov_correct, tally.oov_total),
        "per_tag": per_tag,
        "confusions": [
            {"gold": g, "predicted": p, "count": c}
            for (g, p), c in sorted(tally.confusions.items(), key=lambda item: (-item[1], item[0]))[:top_confusions]
        ],
        "confusion_matrix": {"labels": labels, "counts": matrix},
    }


@dataclass
class _Tally:
    """The counts behind ``score``: tokens right and wrong, by tag, by confusion, known or not."""

    tokens: int = 0
    correct: int = 0
    exact: int = 0
    known_total: int = 0
    known_correct: int = 0
    oov_total: int = 0
    oov_correct: int = 0
    gold: Counter[str] = field(default_factory=Counter)
    pred: Counter[str] = field(default_factory=Counter)
    hits: Counter[str] = field(default_factory=Counter)
    confusions: Counter[tuple[str, str]] = field(default_factory=Counter)

    def add_sentence(self, gold: Sequence[str], pred: Sequence[str], known: Sequence[bool]) -> None:
        if not (len(gold) == len(pred) == len(known)):
            raise ValueError("a predicted sentence differs in length from its gold sentence")
        for g, p, k in zip(gold, pred, known):
            self.add_token(g, p, k)
        self.exact += all(g == p for g, p in zip(gold, pred))

    def add_token(self, g: str, p: str, known: bool) -> None:
        ok = g == p
        self.tokens += 1
        self.correct += ok
        self.gold[g] += 1
        self.pred[p] += 1
        if ok:
            self.hits[g] += 1
        else:
            self.confusions[(g, p)] += 1
        if known:
            self.known_total += 1
            self.known_correct += ok
        else:
            self.oov_total += 1
            self.oov_correct += ok


def _per_tag(tally: _Tally) -> dict[str, dict[str, Any]]:
    """Precision, recall, F1 and support of each gold tag, most frequent first (ties by name)."""
    per_tag = {}
    for tag in sorted(tally.gold, key=lambda t: (-tally.gold[t], t)):
        precision = _ratio(tally.hits[tag], tally.pred[tag])
        recall = _ratio(tally.hits[tag], tally.gold[tag])
        f1 = _ratio(2 * precision * recall, precision + recall) if precision + recall else 0.0
        per_tag[tag] = {"precision": precision, "recall": recall, "f1": f1, "support": tally.gold[tag]}
    return per_tag


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
