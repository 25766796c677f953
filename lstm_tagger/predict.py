"""Tagging with a trained model: lists of words in, tags (and tag probabilities) out.

Sentences are batched by length for speed and returned in the order given. Words
outside the vocabulary become ``<unk>``; an empty sentence gets no tags.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence, TextIO

import torch
from torch.nn.utils.rnn import pad_sequence

from .checkpoint import Checkpoint
from .chars import FormTable
from .data import bucket_order
from .vocab import PAD_ID, Vocab

DEFAULT_BATCH_SIZE = 256


@dataclass
class Tagged:
    """One tagged sentence; ``probs`` is (T, K) tag probabilities when asked for."""

    words: list[str]
    tags: list[str]
    probs: torch.Tensor | None = None


def run_model(
    checkpoint: Checkpoint, sentences: Sequence[Sequence[str]], batch_size: int = DEFAULT_BATCH_SIZE, scores: bool = False
) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """Tag id tensors (len_i,) and, when ``scores``, log-probabilities (len_i, K) for each sentence, in order.

    The model runs in eval and inference mode on batches of similar length.
    """
    model = checkpoint.model
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    num_tags = model.output.out_features
    empty = (torch.empty(0, dtype=torch.long), torch.empty(0, num_tags) if scores else None)
    results: list[tuple[torch.Tensor, torch.Tensor | None]] = [empty] * len(sentences)
    lengths = [len(words) for words in sentences]
    nonempty = [i for i, n in enumerate(lengths) if n > 0]
    word_ids = [checkpoint.words.encode(words) if words else None for words in sentences]
    forms = FormTable(checkpoint.chars, sentences) if model.chars is not None and checkpoint.chars is not None else None
    try:
        with torch.inference_mode():
            for group in bucket_order([lengths[i] for i in nonempty], batch_size, rng=None):
                index = [nonempty[j] for j in group]
                words = pad_sequence([word_ids[i] for i in index], batch_first=True, padding_value=PAD_ID).to(device)
                batch_lengths = torch.tensor([lengths[i] for i in index], dtype=torch.long)
                chars = forms.batch(index).to(device) if forms is not None else None
                best, logp = model.predict(words, batch_lengths, chars, scores=scores)
                best = best.cpu()
                logp = logp.cpu() if logp is not None else None
                for row, i in enumerate(index):
                    results[i] = (best[row, : lengths[i]], logp[row, : lengths[i]] if logp is not None else None)
    finally:
        model.train(was_training)
    return results


def tag(
    checkpoint: Checkpoint,
    sentences: Sequence[Sequence[str]],
    batch_size: int = DEFAULT_BATCH_SIZE,
    scores: bool = False,
) -> list[Tagged]:
    """Tag each sentence (a list of words); ``scores=True`` also returns the probabilities."""
    results = []
    for words, (best, logp) in zip(sentences, run_model(checkpoint, sentences, batch_size, scores)):
        tags = checkpoint.tags.decode(best.tolist())
        results.append(Tagged(list(words), tags, logp.exp() if logp is not None else None))
    return results


def tag_lines(
    checkpoint: Checkpoint, lines: Iterable[str], batch_size: int = DEFAULT_BATCH_SIZE, scores: bool = False
) -> Iterator[Tagged]:
    """Tag whitespace-tokenised lines (one sentence each) in chunks, in order.

    Memory stays bounded by the chunk size whatever the length of ``lines``.
    """
    chunk: list[list[str]] = []
    for line in lines:
        chunk.append(line.split())
        if len(chunk) >= batch_size * 8:
            yield from tag(checkpoint, chunk, batch_size, scores)
            chunk = []
    if chunk:
        yield from tag(checkpoint, chunk, batch_size, scores)


def _prob_dict(probs: torch.Tensor, tags: Vocab) -> dict[str, float]:
    return {tag: round(float(p), 4) for tag, p in sorted(zip(tags.itos, probs.tolist()), key=lambda x: -x[1])}


def format_text(sentence: Tagged, tags: Vocab) -> str:
    """``The/DET dog/NOUN``; with probabilities, the chosen tag's: ``The/DET:0.998``."""
    if sentence.probs is None:
        return " ".join(f"{w}/{t}" for w, t in zip(sentence.words, sentence.tags))
    best = sentence.probs.max(dim=-1).values.tolist()
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
