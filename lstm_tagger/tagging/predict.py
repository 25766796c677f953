"""Tagging with a trained model: lists of words in, the tags of every tag column (and their
probabilities) out; reading pre-split tokens or CoNLL-U input (the output formats are ``formats.py``).

Sentences are batched by length for speed and returned in the order given. Words
outside the vocabulary become ``<unk>``; an empty sentence gets no tags.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import accumulate, chain, islice
from typing import Any, Callable, Iterable, Iterator, Sequence

import torch

from lstm_tagger.checkpoint import Checkpoint
from lstm_tagger.model.chars import CharBatch, FormCache, FormTable
from lstm_tagger.corpus.conllu import Block, decode_lines, read_blocks
from lstm_tagger.corpus.reader import bucket_order, padded_rows
from lstm_tagger.model.tagger import Tagger
from lstm_tagger.corpus.vocab import PAD_ID
from lstm_tagger.limits import MAX_CHUNK_WORDS, TAGGING_POSITIONS_PER_SENTENCE

DEFAULT_BATCH_SIZE = 256


@dataclass
class Tagged:
    """One tagged sentence: each column's tags (``data.columns`` order) and, when asked for,
    each column's (T, K) tag probabilities."""

    words: list[str]
    columns: dict[str, list[str]]
    probs: dict[str, torch.Tensor] | None = None

    @property
    def tags(self) -> list[str]:
        """The first column's tags."""
        return next(iter(self.columns.values()))


@dataclass
class _Prepared:
    """A list of sentences turned into model inputs, batched by length (the Python half of tagging)."""

    lengths: list[int]
    batches: list[tuple[list[int], torch.Tensor, torch.Tensor, torch.Tensor | None]]
    """(sentence positions, words (B, T), lengths (B,), form ids (B, T) into ``forms``) per batch."""
    forms: FormTable | None
    """The distinct forms of the sentences, for a model that reads characters."""

    def chars(self, rows: torch.Tensor | None) -> CharBatch | None:
        """The ``CharBatch`` of a batch's form ids (None for a model without characters)."""
        return self.forms.char_batch(rows) if self.forms is not None and rows is not None else None


def prepare(source: Checkpoint | Any, sentences: Sequence[Sequence[str]], batch_size: int) -> _Prepared:
    """Encode ``sentences`` with ``source``'s ``words`` and ``chars`` vocabularies (a ``Checkpoint``,
    or an exported model) and batch them by length.

    The words of all the sentences are looked up in one call, and each batch is cut from
    that one tensor: a tensor per sentence would cost more than the lookups. A batch holds at
    most ``batch_size`` sentences and ``batch_size * TAGGING_POSITIONS_PER_SENTENCE`` padded
    word positions (``capped``).
    """
    lengths = [len(words) for words in sentences]
    nonempty = [i for i, n in enumerate(lengths) if n > 0]
    flat = source.words.encode([word for words in sentences for word in words])  # (N,)
    starts = torch.tensor(list(accumulate(lengths, initial=0))[:-1], dtype=torch.long)
    forms = FormTable(source.chars, sentences) if source.chars is not None else None
    batches = []
    positions = batch_size * TAGGING_POSITIONS_PER_SENTENCE
    groups = bucket_order([lengths[i] for i in nonempty], batch_size, rng=None)
    for index in (part for group in groups for part in capped([nonempty[j] for j in group], lengths, positions)):
        batch_lengths = torch.tensor([lengths[i] for i in index], dtype=torch.long)
        words = padded_rows(flat, starts[index], batch_lengths, PAD_ID)
        batches.append((index, words, batch_lengths, forms.rows(index) if forms is not None else None))
    return _Prepared(lengths, batches, forms)


def capped(index: list[int], lengths: Sequence[int], positions: int) -> Iterator[list[int]]:
    """``index`` (sentence positions in ascending order of length) cut into consecutive
    batches of at most ``positions`` padded word positions each (a longer sentence alone).

    A batch costs memory in proportion to its sentences times its longest one: without a
    cap, the batch of a chunk's longest sentences (EWT: 256 sentences padded to 159 words)
    held several times what a typical batch does, in each worker at once."""
    start = 0
    for end, i in enumerate(index):
        if end > start and (end + 1 - start) * lengths[i] > positions:
            yield index[start:end]
            start = end
    if index:
        yield index[start:]


Results = dict[str, tuple[torch.Tensor, torch.Tensor | None]]
"""One sentence's output: column -> (tag ids (len,), log-probabilities (len, K) or None)."""

BatchOutputs = list[tuple[torch.Tensor | None, ...]]
"""What a run gives for each batch of a ``_Prepared``, in order: (B, T, ...) tensors (or None)."""


def run_batches(
    prepared: _Prepared, run: Callable[..., tuple], chars: Callable[[torch.Tensor | None], Any] | None = None
) -> BatchOutputs:
    """``run(words, lengths, chars)`` -> a tuple of (B, T, ...) tensors (or None), on every batch;
    ``chars`` is what ``chars(form ids)`` gives for the batch, by default its ``CharBatch``
    (None for a model without characters)."""
    chars = prepared.chars if chars is None else chars
    return [run(words, lengths, chars(rows)) for _, words, lengths, rows in prepared.batches]


def cut(prepared: _Prepared, outputs: BatchOutputs, empty: tuple) -> list[tuple]:
    """Each sentence's tuple of the batch ``outputs``, in order, every tensor cut to its length
    (``empty`` when it has none)."""
    results = [empty] * len(prepared.lengths)
    for (index, _, _, _), batch in zip(prepared.batches, outputs):
        for row, i in enumerate(index):
            n = prepared.lengths[i]
            results[i] = tuple(output[row, :n] if output is not None else None for output in batch)
    return results


def per_sentence(prepared: _Prepared, run: Callable[..., tuple], empty: tuple) -> list[tuple]:
    """``run(words, lengths, chars)`` -> a tuple of (B, T, ...) tensors (or None) on every batch;
    returns each sentence's tuple, in order, every tensor cut to its length (``empty`` when it has none)."""
    return cut(prepared, run_batches(prepared, run), empty)


def _compute(model: Tagger, prepared: _Prepared, scores: bool, cache: FormCache | None = None) -> BatchOutputs:
    """Run the model over prepared batches (the torch half of tagging; safe in a worker thread):
    per batch, each column's (B, T) tag ids and (B, T, K) log-probabilities (or None) in turn.

    A model that reads characters takes each form's vector from ``cache``, computed once per
    distinct form instead of once per batch; without one, a new cache serves several batches
    and a single batch encodes its own forms (a cache would only add work)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    columns = model.columns

    def run(words: torch.Tensor, lengths: torch.Tensor, chars: CharBatch | torch.Tensor | None) -> tuple:
        heads = model.predict_columns(words.to(device), lengths, chars, scores=scores)
        return tuple(t.cpu() if t is not None else None for column in columns for t in heads[column])

    def batch_chars(rows: torch.Tensor | None) -> CharBatch | None:
        batch = prepared.chars(rows)
        return batch.to(device) if batch is not None else None

    try:
        with torch.inference_mode():
            if model.chars is None or prepared.forms is None or (cache is None and len(prepared.batches) <= 1):
                return run_batches(prepared, run, batch_chars)
            vectors = (cache if cache is not None else FormCache(model.chars)).vectors(prepared.forms)  # (1 + U, D)
            return run_batches(prepared, run, lambda rows: vectors[rows.to(vectors.device)])  # (B, T, D) each
    finally:
        model.train(was_training)


def run_columns(
    checkpoint: Checkpoint, sentences: Sequence[Sequence[str]], batch_size: int = DEFAULT_BATCH_SIZE, scores: bool = False
) -> list[Results]:
    """For each sentence, in order, each column's tag ids and (with ``scores``) log-probabilities.

    The model runs in eval and inference mode on batches of similar length.
    """
    model = checkpoint.model
    prepared = prepare(checkpoint, sentences, batch_size)
    empty = tuple(
        t for column in model.columns
        for t in (torch.empty(0, dtype=torch.long), torch.empty(0, len(checkpoint.vocabs[column])) if scores else None)
    )
    flat = cut(prepared, _compute(model, prepared, scores), empty)  # (tags, log-probabilities) of each column in turn
    return [{column: (result[2 * k], result[2 * k + 1]) for k, column in enumerate(model.columns)} for result in flat]


def run_model(
    checkpoint: Checkpoint, sentences: Sequence[Sequence[str]], batch_size: int = DEFAULT_BATCH_SIZE, scores: bool = False
) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """The first column's tag ids (len_i,) and, when ``scores``, log-probabilities (len_i, K) for each sentence."""
    first = checkpoint.model.columns[0]
    return [result[first] for result in run_columns(checkpoint, sentences, batch_size, scores)]


def _tagged(
    checkpoint: Checkpoint, sentences: Sequence[Sequence[str]], prepared: _Prepared, outputs: BatchOutputs, scores: bool
) -> list[Tagged]:
    """The ``Tagged`` sentences of ``_compute``'s outputs. Tag ids become strings a batch at a
    time (one ``tolist`` per batch and column, then list slices): a tensor per sentence would
    cost more than the model does on a small one."""
    columns = checkpoint.model.columns
    itos = [checkpoint.vocabs[column].itos for column in columns]
    tags: list[dict[str, list[str]]] = [{column: [] for column in columns} for _ in sentences]
    probs: list[dict[str, torch.Tensor]] = [
        {column: torch.empty(0, len(names)) for column, names in zip(columns, itos)} for _ in sentences
    ] if scores else []
    for (index, _, _, _), batch in zip(prepared.batches, outputs):
        for k, column in enumerate(columns):
            best, logp, name = batch[2 * k], batch[2 * k + 1], itos[k].__getitem__
            for row, (i, ids) in enumerate(zip(index, best.tolist())):
                n = prepared.lengths[i]
                tags[i][column] = list(map(name, ids[:n]))
                if logp is not None:
                    probs[i][column] = logp[row, :n].exp()
    return [Tagged(list(words), by_column, probs[j] if scores else None) for j, (words, by_column) in enumerate(zip(sentences, tags))]


def tag(
    checkpoint: Checkpoint,
    sentences: Sequence[Sequence[str]],
    batch_size: int = DEFAULT_BATCH_SIZE,
    scores: bool = False,
) -> list[Tagged]:
    """Tag each sentence (a list of words); ``scores=True`` also returns the probabilities."""
    prepared = prepare(checkpoint, sentences, batch_size)
    return _tagged(checkpoint, sentences, prepared, _compute(checkpoint.model, prepared, scores), scores)


def chunks(sentences: Iterable[Sequence[str]], size: int, max_words: int = MAX_CHUNK_WORDS) -> Iterator[list[Sequence[str]]]:
    """Consecutive lists of ``size`` sentences, or fewer once they hold ``max_words`` words (the
    last one shorter): what a chunk costs to tag grows with its words, not its sentences."""
    chunk: list[Sequence[str]] = []
    words_in = 0
    for words in sentences:
        chunk.append(words)
        words_in += len(words)
        if len(chunk) >= size or words_in >= max_words:
            yield chunk
            chunk, words_in = [], 0
    if chunk:
        yield chunk


def tag_stream(
    checkpoint: Checkpoint,
    sentences: Iterable[Sequence[str]],
    batch_size: int = DEFAULT_BATCH_SIZE,
    scores: bool = False,
    workers: int = 1,
    cache: FormCache | None = None,
) -> Iterator[Tagged]:
    """Tag sentences (lists of words) in chunks of ``8 * batch_size`` (at most ``MAX_CHUNK_WORDS`` words), in order.

    A pipeline: while ``workers`` threads run the model on one chunk each (torch releases
    the GIL inside its kernels), this thread reads and encodes the next chunk and the caller
    formats and writes the previous one. At most ``workers + 1`` chunks are in flight, so
    memory stays bounded whatever the length of ``sentences``. Input of one chunk is tagged in
    this thread (no pipeline to fill). ``cache``: the character vectors of forms already seen
    (a ``Pipeline`` keeps one across calls); by default one for this stream.
    """
    model = checkpoint.model
    if cache is None and model.chars is not None:
        cache = FormCache(model.chars)  # shared by the chunks
    pieces = chunks(sentences, batch_size * 8)
    first = list(islice(pieces, 2))
    if len(first) < 2:
        for chunk in first:
            prepared = prepare(checkpoint, chunk, batch_size)
            yield from _tagged(checkpoint, chunk, prepared, _compute(model, prepared, scores, cache), scores)
        return
    yield from _pipelined(checkpoint, chain(first, pieces), batch_size, scores, workers, cache)


def _pipelined(
    checkpoint: Checkpoint, pieces: Iterable[list[Sequence[str]]], batch_size: int, scores: bool, workers: int,
    cache: FormCache | None,
) -> Iterator[Tagged]:
    """``tag_stream``'s pipeline over chunks: ``workers`` threads compute while this one prepares."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque[tuple[list[Sequence[str]], _Prepared, Future]] = deque()
        for chunk in pieces:
            prepared = prepare(checkpoint, chunk, batch_size)
            pending.append((chunk, prepared, pool.submit(_compute, checkpoint.model, prepared, scores, cache)))
            if len(pending) > workers:
                done, done_prepared, future = pending.popleft()
                yield from _tagged(checkpoint, done, done_prepared, future.result(), scores)
        while pending:
            done, done_prepared, future = pending.popleft()
            yield from _tagged(checkpoint, done, done_prepared, future.result(), scores)


def _tokens_input(raw_lines: Iterable[bytes], name: str) -> Iterator[tuple[list[str], Block | None]]:
    """Whitespace-tokenised words, one sentence per line."""
    for _, line in decode_lines(raw_lines, name):
        yield line.split(), None


def _conllu_input(raw_lines: Iterable[bytes], name: str) -> Iterator[tuple[list[str], Block | None]]:
    """The FORMs of each CoNLL-U sentence, with the sentence as read."""
    for block in read_blocks(raw_lines, name):
        yield block.forms, block


INPUT_FORMATS = {"tokens": _tokens_input, "conllu": _conllu_input}
"""``--input-format`` -> its reader: byte lines and their name -> ``(words, block)`` per sentence,
streaming; ``block`` is the CoNLL-U sentence as read (``None`` for a format that makes new
sentences), and a block without words stands for lines to copy. A new input format is one
more entry here (and in the CLI's choices); raw text (``text``) goes through the segmenter
instead (``rawtag.tag_text``)."""


def input_format_for(file: str | None, chosen: str | None) -> str:
    """The input format of ``read_input``: ``chosen``, else ``conllu`` for a ``.conllu`` file, else ``tokens``."""
    if chosen is not None:
        return chosen
    return "conllu" if file is not None and file.endswith(".conllu") else "tokens"


def read_input(raw_lines: Iterable[bytes], name: str, input_format: str) -> Iterator[tuple[list[str], Block | None]]:
    """Input byte lines -> ``(words, block)`` per sentence in ``input_format`` (see ``INPUT_FORMATS``)."""
    return INPUT_FORMATS[input_format](raw_lines, name)
