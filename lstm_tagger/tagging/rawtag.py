"""Raw text through the whole pipeline: segment, expand multiword tokens, tag, score (written by ``formats.py``).

``tag_text`` streams: sentences are tagged in chunks as the segmenter produces them, so
memory stays bounded on any input. ``evaluate_raw`` rebuilds a gold file's raw text,
runs the pipeline on it and scores the result with the CoNLL 2018 metrics (``conll18``).
"""

from __future__ import annotations

from itertools import tee
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator, Mapping

from lstm_tagger.checkpoint import Checkpoint, find_checkpoint, load_checkpoint, serving_device
from lstm_tagger.evaluation.conll18 import METRICS, evaluate
from lstm_tagger.errors import DataError
from lstm_tagger.files import bounded_blocks, open_input
from lstm_tagger.limits import MAX_LINE_BYTES
from lstm_tagger.tagging.predict import DEFAULT_BATCH_SIZE, Tagged, tag_stream
from lstm_tagger.segmenter.forked import segmented_beside
from lstm_tagger.corpus.rawtext import Segmented, Token, TreebankSentence, Word, raw_text, read_treebank

CHUNK_CHARS = 1 << 16
"""The most characters ``read_text_chunks`` gives at a time: ``windows.text_windows`` copies what
it holds once per window, so a 1 MiB line is fed to it in pieces."""
_METRIC_OF = {"upos": "UPOS", "xpos": "XPOS", "feats": "UFeats"}
"""A tag column -> its CoNLL 2018 metric (AllTags too when all three are learnt)."""
FALLBACK_NOTE = "lstm-tag: this model has no segmenter: splitting on whitespace and punctuation (Unicode categories)"


def read_text_chunks(handle: BinaryIO, name: str, limit: int = MAX_LINE_BYTES) -> Iterator[str]:
    """A binary stream decoded as UTF-8 (a BOM at the start dropped) in pieces of at most
    ``CHUNK_CHARS`` characters. It is read in blocks of whole lines (``files.bounded_blocks``),
    so a line longer than ``limit`` bytes is a ``DataError`` naming ``name`` and the line before
    any of it is segmented; a decoding error is one naming the byte offset."""
    offset = 0
    for block in bounded_blocks(handle, name, DataError, limit):
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"{name}: not UTF-8 (byte {offset + exc.start + 1})") from None
        if offset == 0:
            text = text.removeprefix("\ufeff")
        offset += len(block)
        for start in range(0, len(text), CHUNK_CHARS):  # a long line: pieces the segmenter reads fast
            yield text[start : start + CHUNK_CHARS]


def file_chunks(file: str) -> Iterator[str]:
    """The text of ``file`` (``-``: stdin) in decoded blocks (see ``read_text_chunks``)."""
    with open_input(file, DataError) as (handle, name):
        yield from read_text_chunks(handle, name)


def tag_text(
    checkpoint: Checkpoint, chunks: Iterable[str], batch_size: int = DEFAULT_BATCH_SIZE, scores: bool = False, workers: int = 1
) -> Iterator[tuple[Segmented, Tagged]]:
    """Raw text -> (segmented sentence, its tagged words), in order; the tagger runs in
    ``predict.tag_stream``'s ``workers`` threads while a child process segments the next
    sentences (``forked``). Closing it (the reader stopped early: ``predict | head``) stops
    the child at once, then waits for the chunks being tagged."""
    sentences = segmented_beside(checkpoint.segmenter, chunks)
    ahead, behind = tee(sentences)  # tee keeps what the tagger read ahead: a few chunks
    tagged = tag_stream(checkpoint, (sentence.words for sentence in ahead), batch_size, scores, workers)
    try:
        yield from zip(behind, tagged)
    finally:
        sentences.close()
        tagged.close()


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
    checkpoint = load_checkpoint(path, device=serving_device(device), cell=cell)
    data = data if data is not None else checkpoint.config.data.test
    if data is None:
        raise DataError(f"{path}: its training config names no test set; pass --data FILE")
    gold = read_treebank(data)
    if not gold:
        raise DataError(f"{data}: no sentences to evaluate")
    columns = checkpoint.config.data.columns
    system = [with_tags(s.sentence(), t.columns) for s, t in tag_text(checkpoint, [raw_text(gold)])]
    scores = evaluate(gold, system)
    learnt = {_METRIC_OF[column] for column in columns} | ({"AllTags"} if len(columns) == 3 else set())
    shown = [m for m in METRICS if m in ("Tokens", "Sentences", "Words") or m in learnt]
    return {
        "model": str(path),
        "data": str(data),
        "segmenter": "trained" if checkpoint.segmenter is not None else "Unicode categories (no trained segmenter)",
        "raw": {m: scores[m].to_dict() for m in shown},
    }


def raw_scores_table(result: dict[str, Any]) -> str:
    """The raw-text scores as a small table, in percent: precision, recall, F1 and, for tags,
    accuracy on the aligned words (the official script's ``-v`` table)."""
    lines = [f"raw text of {result['data']} (segmenter: {result['segmenter']})",
             f"{'metric':<10} {'precision':>9} {'recall':>9} {'F1':>9} {'aligned':>9}"]
    for name, s in result["raw"].items():
        aligned = "" if s["aligned_accuracy"] is None else f"{100 * s['aligned_accuracy']:.2f}"
        lines.append(f"{name:<10} {100 * s['precision']:9.2f} {100 * s['recall']:9.2f} {100 * s['f1']:9.2f} {aligned:>9}")
    return "\n".join(lines)
