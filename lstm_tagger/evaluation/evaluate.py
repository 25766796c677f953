"""Scoring a model on a corpus, and the tag-score matrices of example sentences."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from lstm_tagger.checkpoint import Checkpoint, find_checkpoint
from lstm_tagger.config import DataConfig
from lstm_tagger.corpus.rawtext import Token, TreebankSentence, Word
from lstm_tagger.corpus.reader import Sentence, read_corpus
from lstm_tagger.evaluation import conll18
from lstm_tagger.errors import DataError
from lstm_tagger.files import check_output
from lstm_tagger.tagging.predict import DEFAULT_BATCH_SIZE, run_model, tag
from lstm_tagger.evaluation.metrics import all_tags, score
from lstm_tagger.evaluation.report import write_report
from lstm_tagger.rundir import REPORTS
from lstm_tagger.tagging.pipeline import load


def evaluate(checkpoint: Checkpoint, sentences: Sequence[Sentence], batch_size: int = DEFAULT_BATCH_SIZE) -> dict[str, Any]:
    """Tag ``sentences`` and score each tag column against its gold tags (see ``metrics.score``).

    Returns the first column's scores, and ``columns``: every column's scores by name; with
    more than one column also ``all_tags`` (every column right at once, FEATS as a whole
    string); with ``feats``, also ``ufeats``, the CoNLL 2018 UFeats (``universal_features``).
    The ``feats`` column's own accuracy compares whole FEATS strings. A word counts as
    known when it has its own id in the model's vocabulary learned from the training data
    (seen there at least ``data.min_word_freq`` times); the rest, words that only a
    pretrained resource (vectors, clusters) brought in among them, are OOV.
    """
    tagged = tag(checkpoint, [s.words for s in sentences], batch_size)
    known = [[checkpoint.words.seen_in_training(word) for word in s.words] for s in sentences]
    columns = checkpoint.model.columns
    gold = {c: [s.columns[c] for s in sentences] for c in columns}
    pred = {c: [t.columns[c] for t in tagged] for c in columns}
    per_column = {c: score(gold[c], pred[c], known) for c in columns}
    result = {**per_column[columns[0]], "columns": per_column}
    if len(columns) > 1:
        result["all_tags"] = all_tags([gold[c] for c in columns], [pred[c] for c in columns])
    if "feats" in columns:
        result["ufeats"] = universal_features(sentences, gold["feats"], pred["feats"])
    return result


def universal_features(
    sentences: Sequence[Sentence], gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]
) -> dict[str, Any]:
    """The official CoNLL 2018 UFeats on gold tokens, by ``conll18.evaluate``: a word counts when
    its universal features agree (language-specific ones, such as ``Style`` or ``ExtPos``, and
    their order are ignored), so it is at least the whole-string FEATS accuracy. Returns
    ``accuracy``, ``tokens`` and ``correct``, as ``metrics.all_tags``."""
    def treebank(feats: Sequence[Sequence[str]]) -> list[TreebankSentence]:
        return [
            TreebankSentence([Token(form, (Word(form, feats=tag),)) for form, tag in zip(s.words, tags)])
            for s, tags in zip(sentences, feats)
        ]

    score = conll18.evaluate(treebank(gold), treebank(pred))["UFeats"]
    return {"accuracy": score.aligned_accuracy or 0.0, "tokens": score.gold, "correct": score.correct}


def tag_score_matrix(checkpoint: Checkpoint, words: Sequence[str], stage: str) -> dict[str, Any]:
    """Every tag's probability for each word of one sentence, as in the PyTorch tutorial (the first column's)."""
    ((_, logp),) = run_model(checkpoint, [list(words)], scores=True)
    return {
        "stage": stage,
        "words": list(words),
        "tags": list(checkpoint.tags.itos),
        "probs": [[round(p, 4) for p in row] for row in logp.exp().tolist()],
    }


def split_name(data: str | Path, config: DataConfig) -> str:
    """What a report calls the scored file: ``dev`` or ``test`` when it is that file of the
    training config, otherwise the file's name."""
    for name in ("dev", "test"):
        named = getattr(config, name)
        try:
            if named is not None and os.path.samefile(data, named):
                return name
        except (OSError, ValueError):
            pass  # the training machine's file is not here
    return Path(data).name


def evaluate_model(
    model: str | Path | None = None,
    data: str | Path | None = None,
    output: str | Path | None = None,
    runs_dir: str | Path = "runs",
    cell: str | None = None,
    format: str | None = None,
    device: str = "cpu",
    force: bool = False,
) -> dict[str, Any]:
    """Score a trained model on ``data`` (default: the test set of its training config).

    ``format`` (``conllu`` or ``tsv``) is how ``data`` is read, by default as the training
    data was. Returns the scores with ``model``, ``data`` and ``split`` (``dev``, ``test`` or
    the file name, see ``split_name``) added; with ``output``, also writes ``report.md``,
    ``report.json`` and the confusion plot there (an existing report there is replaced only
    with ``force``). ``cell`` as in ``load_checkpoint``; ``device``: ``cpu``, ``cuda``,
    ``cuda:N`` or ``auto``.
    """
    if output is not None:
        for name in REPORTS:  # what write_report writes, checked before the work
            check_output(Path(output) / name, force)
    path = find_checkpoint(model, runs_dir)
    checkpoint = load(path, device=device, cell=cell).checkpoint  # loaded as predict and eval --raw load it
    data_config = checkpoint.config.data
    if data is None:
        if data_config.test is None:
            raise DataError(f"{path}: its training config names no test set; pass data=FILE", {"data=FILE": "--data FILE"})
        data = data_config.test
    sentences = read_corpus(data, format or data_config.format, data_config.columns)
    if not sentences:
        raise DataError(f"{data}: no sentences to evaluate")
    split = split_name(data, data_config)
    result = {"model": str(path), "data": str(data), "split": split, **evaluate(checkpoint, sentences)}
    if output is not None:
        write_report(Path(output), {"title": f"Evaluation of {path}", "results": {split: result}})
    return result
