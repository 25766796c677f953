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


def log_probs(model: Tagger, word_ids: Sequence[torch.Tensor], batch_size: int = DEFAULT_BATCH_SIZE) -> list[torch.Tensor]:
    """Run ``model`` in eval mode over 1-D id tensors; returns one (len_i, K) tensor each, in order."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    num_tags = model.output.out_features
    results: list[torch.Tensor] = [torch.empty(0, num_tags)] * len(word_ids)
    lengths = [len(ids) for ids in word_ids]
    nonempty = [i for i, n in enumerate(lengths) if n > 0]
    try:
        with torch.inference_mode():
            for group in bucket_order([lengths[i] for i in nonempty], batch_size, rng=None):
                index = [nonempty[j] for j in group]
                ids = [word_ids[i] for i in index]
                words = pad_sequence(ids, batch_first=True, padding_value=PAD_ID).to(device)
                batch_lengths = torch.tensor([lengths[i] for i in index], dtype=torch.long)
                scores = model(words, batch_lengths).cpu()
                for row, i in enumerate(index):
                    results[i] = scores[row, : lengths[i]]
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
    word_ids = [checkpoint.words.encode(words) for words in sentences]
    results = []
    for words, logp in zip(sentences, log_probs(checkpoint.model, word_ids, batch_size)):
        tags = checkpoint.tags.decode(logp.argmax(dim=-1).tolist())
        results.append(Tagged(list(words), tags, logp.exp() if scores else None))
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
