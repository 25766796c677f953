"""Raw text through the whole pipeline: segment, expand multiword tokens, tag (written by ``formats.py``,
scored by ``evaluation/raw.py``).

``tag_text`` streams: sentences are tagged in chunks as the segmenter produces them, so
memory stays bounded on any input.
"""

from __future__ import annotations

from itertools import tee
from typing import BinaryIO, Iterable, Iterator

from lstm_tagger.checkpoint import Checkpoint
from lstm_tagger.errors import DataError
from lstm_tagger.files import bounded_blocks, open_input
from lstm_tagger.limits import MAX_LINE_BYTES
from lstm_tagger.model.chars import FormCache
from lstm_tagger.tagging.predict import DEFAULT_BATCH_SIZE, Tagged, tag_stream
from lstm_tagger.segmenter.decoder import segmented
from lstm_tagger.segmenter.forked import segmented_beside
from lstm_tagger.corpus.rawtext import Segmented

CHUNK_CHARS = 1 << 16
"""The most characters ``read_text_chunks`` gives at a time: ``windows.text_windows`` copies what
it holds once per window, so a 1 MiB line is fed to it in pieces."""
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
    checkpoint: Checkpoint, chunks: Iterable[str], batch_size: int = DEFAULT_BATCH_SIZE, scores: bool = False, workers: int = 1,
    cache: FormCache | None = None, beside: bool = True,
) -> Iterator[tuple[Segmented, Tagged]]:
    """Raw text -> (segmented sentence, its tagged words), in order; the tagger runs in
    ``predict.tag_stream``'s ``workers`` threads while a child process segments the next
    sentences (``forked``). Closing it (the reader stopped early: ``predict | head``) stops
    the child at once, then waits for the chunks being tagged. ``cache``: as ``tag_stream``'s. ``beside=False`` segments in this thread instead (a short
    text: forking a child costs more than segmenting it)."""
    sentences = segmented_beside(checkpoint.segmenter, chunks) if beside else segmented(checkpoint.segmenter, chunks)
    ahead, behind = tee(sentences)  # tee keeps what the tagger read ahead: a few chunks
    tagged = tag_stream(checkpoint, (sentence.words for sentence in ahead), batch_size, scores, workers, cache)
    try:
        yield from zip(behind, tagged)
    finally:
        sentences.close()
        tagged.close()
