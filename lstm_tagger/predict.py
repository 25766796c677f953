"""Tagging with a trained model: lists of words in, tags (and tag probabilities) out.

Sentences are batched by length for speed and returned in the order given. Words
outside the vocabulary become ``<unk>``; an empty sentence gets no tags.
"""

from __future__ import annotations

import json
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence, TextIO

import torch
from torch.nn.utils.rnn import pad_sequence

from .checkpoint import Checkpoint
from .chars import CharBatch, FormTable
from .data import bucket_order
from .model import Tagger
from .vocab import PAD_ID, Vocab

DEFAULT_BATCH_SIZE = 256


@dataclass
class Tagged:
    """One tagged sentence; ``probs`` is (T, K) tag probabilities when asked for."""

    words: list[str]
    tags: list[str]
    probs: torch.Tensor | None = None


@dataclass
class _Prepared:
    """A list of sentences turned into model inputs, batched by length (the Python half of tagging)."""

    lengths: list[int]
    batches: list[tuple[list[int], torch.Tensor, torch.Tensor, CharBatch | None]]
    """(sentence positions, words (B, T), lengths (B,), characters) per batch."""


def prepare(source: Checkpoint | Any, sentences: Sequence[Sequence[str]], batch_size: int) -> _Prepared:
    """Encode ``sentences`` with ``source``'s ``words`` and ``chars`` vocabularies (a ``Checkpoint``,
    or an exported model) and batch them by length."""
    lengths = [len(words) for words in sentences]
    nonempty = [i for i, n in enumerate(lengths) if n > 0]
    encode = source.words.encode
    word_ids = [encode(words) if words else None for words in sentences]
    forms = FormTable(source.chars, sentences) if source.chars is not None else None
    batches = []
    for group in bucket_order([lengths[i] for i in nonempty], batch_size, rng=None):
        index = [nonempty[j] for j in group]
        words = pad_sequence([word_ids[i] for i in index], batch_first=True, padding_value=PAD_ID)
        batch_lengths = torch.tensor([lengths[i] for i in index], dtype=torch.long)
        batches.append((index, words, batch_lengths, forms.batch(index) if forms is not None else None))
    return _Prepared(lengths, batches)


def per_sentence(prepared: _Prepared, run: Callable[..., tuple], empty: tuple) -> list[tuple]:
    """``run(words, lengths, chars)`` -> a tuple of (B, T, ...) tensors (or None) on every batch;
    returns each sentence's tuple, in order, every tensor cut to its length (``empty`` when it has none)."""
    results = [empty] * len(prepared.lengths)
    for index, words, lengths, chars in prepared.batches:
        outputs = run(words, lengths, chars)
        for row, i in enumerate(index):
            n = prepared.lengths[i]
            results[i] = tuple(output[row, :n] if output is not None else None for output in outputs)
    return results


def _compute(model: Tagger, prepared: _Prepared, scores: bool) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """Run the model over prepared batches (the torch half of tagging; safe in a worker thread)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    empty = (torch.empty(0, dtype=torch.long), torch.empty(0, model.output.out_features) if scores else None)

    def run(words: torch.Tensor, lengths: torch.Tensor, chars: CharBatch | None) -> tuple:
        best, logp = model.predict(words.to(device), lengths, chars.to(device) if chars else None, scores=scores)
        return best.cpu(), logp.cpu() if logp is not None else None

    try:
        with torch.inference_mode():
            return per_sentence(prepared, run, empty)
    finally:
        model.train(was_training)


def run_model(
    checkpoint: Checkpoint, sentences: Sequence[Sequence[str]], batch_size: int = DEFAULT_BATCH_SIZE, scores: bool = False
) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """Tag id tensors (len_i,) and, when ``scores``, log-probabilities (len_i, K) for each sentence, in order.

    The model runs in eval and inference mode on batches of similar length.
    """
    return _compute(checkpoint.model, prepare(checkpoint, sentences, batch_size), scores)


def _tagged(
    checkpoint: Checkpoint, sentences: Sequence[Sequence[str]], results: list[tuple[torch.Tensor, torch.Tensor | None]]
) -> list[Tagged]:
    decode = checkpoint.tags.decode
    return [
        Tagged(list(words), decode(best.tolist()), logp.exp() if logp is not None else None)
        for words, (best, logp) in zip(sentences, results)
    ]


def tag(
    checkpoint: Checkpoint,
    sentences: Sequence[Sequence[str]],
    batch_size: int = DEFAULT_BATCH_SIZE,
    scores: bool = False,
) -> list[Tagged]:
    """Tag each sentence (a list of words); ``scores=True`` also returns the probabilities."""
    return _tagged(checkpoint, sentences, run_model(checkpoint, sentences, batch_size, scores))


def line_chunks(lines: Iterable[str], size: int) -> Iterator[list[list[str]]]:
    chunk: list[list[str]] = []
    for line in lines:
        chunk.append(line.split())
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def tag_lines(
    checkpoint: Checkpoint, lines: Iterable[str], batch_size: int = DEFAULT_BATCH_SIZE, scores: bool = False
) -> Iterator[Tagged]:
    """Tag whitespace-tokenised lines (one sentence each) in chunks of ``8 * batch_size``, in order.

    A pipeline of two stages: while a worker thread runs the model on one chunk (torch
    releases the GIL inside its kernels), this thread reads and encodes the next chunk
    and the caller formats and writes the previous one. At most two chunks are in
    flight, so memory stays bounded whatever the length of ``lines``.
    """
    with ThreadPoolExecutor(max_workers=1) as worker:
        pending: deque[tuple[list[list[str]], Future]] = deque()
        for chunk in line_chunks(lines, batch_size * 8):
            prepared = prepare(checkpoint, chunk, batch_size)
            pending.append((chunk, worker.submit(_compute, checkpoint.model, prepared, scores)))
            if len(pending) > 1:
                done, future = pending.popleft()
                yield from _tagged(checkpoint, done, future.result())
        while pending:
            done, future = pending.popleft()
            yield from _tagged(checkpoint, done, future.result())


def _prob_dict(probs: torch.Tensor, tags: Vocab) -> dict[str, float]:
    return {tag: round(float(p), 4) for tag, p in sorted(zip(tags.itos, probs.tolist()), key=lambda x: -x[1])}


def format_text(sentence: Tagged, tags: Vocab) -> str:
    """``The/DET dog/NOUN``; with probabilities, the chosen tag's: ``The/DET:0.998``."""
    if sentence.probs is None:
        return " ".join(f"{w}/{t}" for w, t in zip(sentence.words, sentence.tags))
    chosen = torch.tensor([tags.stoi[t] for t in sentence.tags], dtype=torch.long)
    best = sentence.probs.gather(1, chosen.unsqueeze(1)).squeeze(1).tolist()  # a CRF's tag need not be the most probable
    return " ".join(f"{w}/{t}:{p:.3f}" for w, t, p in zip(sentence.words, sentence.tags, best))


def format_json(sentence: Tagged, tags: Vocab) -> str:
    """One JSON object: ``{"words": [...], "tags": [...]}`` plus ``"scores"`` (every tag's probability)."""
    record: dict[str, object] = {"words": sentence.words, "tags": sentence.tags}
    if sentence.probs is not None:
        record["scores"] = [_prob_dict(row, tags) for row in sentence.probs]
    return json.dumps(record, ensure_ascii=False)


def format_conllu(sentence: Tagged, tags: Vocab) -> str:
    """A CoNLL-U block (tag in UPOS; probabilities in MISC as ``TagProbs=DET:0.9900,NOUN:0.0100``)."""
    lines = [f"# text = {' '.join(sentence.words)}"]
    for i, (word, tag_) in enumerate(zip(sentence.words, sentence.tags), start=1):
        misc = "_"
        if sentence.probs is not None:
            probs = _prob_dict(sentence.probs[i - 1], tags)
            misc = "TagProbs=" + ",".join(f"{t}:{p:.4f}" for t, p in probs.items() if p >= 0.0001)
        lines.append(f"{i}\t{word}\t_\t{tag_}\t_\t_\t_\t_\t_\t{misc}")
    return "\n".join(lines) + "\n"


FORMATTERS = {"text": format_text, "json": format_json, "conllu": format_conllu}


def write_tagged(sentences: Iterable[Tagged], tags: Vocab, format: str, out: TextIO) -> int:
    """Write each tagged sentence in ``format``; returns the number of sentences."""
    formatter = FORMATTERS[format]
    count = 0
    for sentence in sentences:
        out.write(formatter(sentence, tags) + "\n")
        count += 1
    return count
