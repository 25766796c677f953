"""Scoring a model from raw text: the gold file's text (``# text``, paragraphs from ``# newpar`` and
``# newdoc``) rebuilt, segmented and tagged by the model's pipeline (``lstm_tagger.load``), and
scored with the CoNLL 2018 metrics (``conll18.py``) against the gold sentences: ``eval --raw``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from lstm_tagger.checkpoint import find_checkpoint
from lstm_tagger.corpus.rawtext import Token, TreebankSentence, Word, raw_text, read_treebank, token_spans
from lstm_tagger.errors import DataError
from lstm_tagger.evaluation.conll18 import METRICS, evaluate
from lstm_tagger.tagging.pipeline import load

_METRIC_OF = {"upos": "UPOS", "xpos": "XPOS", "feats": "UFeats"}
"""A tag column -> its CoNLL 2018 metric (AllTags too when all three are learnt)."""


def with_tags(sentence: TreebankSentence, columns: Mapping[str, list[str]]) -> TreebankSentence:
    """``sentence`` with its words' tag columns (any of ``upos``, ``xpos``, ``feats``) set, in order."""
    values = {column: iter(tags) for column, tags in columns.items()}
    tokens = [
        Token(t.form, tuple(Word(w.form, **{c: next(v) for c, v in values.items()}) for w in t.words), t.space_after, t.multiword)
        for t in sentence.tokens
    ]
    return TreebankSentence(tokens, sentence.text, sentence.new_paragraph, sentence.new_document)


def evaluate_raw(
    model: str | Path | None = None,
    data: str | Path | None = None,
    runs_dir: str | Path = "runs",
    cell: str | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Segment and tag the raw text of gold ``data`` (default: the model's test set) and score it
    with the CoNLL 2018 metrics; returns ``{"model", "data", "segmenter", "raw": {metric: scores}}``.
    ``device`` as in ``evaluate.evaluate_model`` (the tagger runs there, the segmenter on the CPU)."""
    path = find_checkpoint(model, runs_dir)
    tagger = load(path, device=device, cell=cell)
    checkpoint = tagger.checkpoint
    data = data if data is not None else checkpoint.config.data.test
    if data is None:
        raise DataError(f"{path}: its training config names no test set; pass --data FILE")
    gold = read_treebank(data)
    if not gold:
        raise DataError(f"{data}: no sentences to evaluate")
    columns = checkpoint.config.data.columns
    system = [with_tags(s.sentence(), t.columns) for s, t in tagger(raw_text(gold)).records]
    scores = evaluate(gold, system)
    learnt = {_METRIC_OF[column] for column in columns} | ({"AllTags"} if len(columns) == 3 else set())
    shown = [m for m in METRICS if m in ("Tokens", "Sentences", "Words") or m in learnt]
    return {
        "model": str(path),
        "data": str(data),
        "segmenter": "trained" if checkpoint.segmenter is not None else "Unicode categories (no trained segmenter)",
        "sentences": len(gold),
        "text_rebuilt": rebuilt_texts(gold),
        "raw": {m: scores[m].to_dict() for m in shown},
    }


def rebuilt_texts(gold: Sequence[TreebankSentence]) -> int:
    """How many gold sentences' raw text comes from their tokens: no ``# text``, or one their
    forms do not spell (then ``raw_text`` joins the forms, ``TreebankSentence.joined``)."""
    return sum(1 for sentence in gold if token_spans(sentence)[0] != sentence.text)


def raw_scores_table(result: dict[str, Any]) -> str:
    """The raw-text scores as a small table, in percent: precision, recall, F1 and, for tags,
    accuracy on the aligned words (the official script's ``-v`` table)."""
    lines = [f"raw text of {result['data']} (segmenter: {result['segmenter']})"]
    if result["text_rebuilt"]:
        lines.append(f"note: {result['text_rebuilt']:,} of {result['sentences']:,} sentences have no # text their forms "
                     "spell: their raw text is rebuilt from the tokens")
    lines.append(f"{'metric':<10} {'precision':>9} {'recall':>9} {'F1':>9} {'aligned':>9}")
    for name, s in result["raw"].items():
        aligned = "" if s["aligned_accuracy"] is None else f"{100 * s['aligned_accuracy']:.2f}"
        lines.append(f"{name:<10} {100 * s['precision']:9.2f} {100 * s['recall']:9.2f} {100 * s['f1']:9.2f} {aligned:>9}")
    return "\n".join(lines)
