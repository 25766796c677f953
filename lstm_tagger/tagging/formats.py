"""Every output format of tagging, and the one path that writes them: ``text``, ``json`` and ``conllu``.

A tagged sentence is written from what it was read as (``Source``): a raw-text sentence from the
segmenter (CoNLL-U with ``# text``, multiword ranges and ``SpaceAfter=No``), a CoNLL-U block read
(written back with only the model's columns, and MISC with scores, changed; every other line kept),
or pre-split tokens (a new CoNLL-U block, ``# sent_id`` and ``# text``). ``text`` and ``json`` are
one line per sentence whatever the input. ``predict``, ``lstm_tagger.load(...).write`` and the
documents' ``to_conllu()``/``to_json()`` all write through ``write``.
"""

from __future__ import annotations

import json
from typing import Iterable, Mapping, TextIO, Union

import torch

from lstm_tagger.corpus.conllu import COLUMNS, Block, fresh_block
from lstm_tagger.corpus.rawtext import Segmented, TreebankSentence
from lstm_tagger.corpus.vocab import Vocab
from lstm_tagger.tagging.predict import Tagged

FORMATS = ("text", "json", "conllu")
Source = Union[Segmented, Block, None]
"""What a tagged sentence was read as: a ``Segmented`` sentence (raw text), a CoNLL-U ``Block``
(CoNLL-U input; a block without words stands for lines to copy), or None (pre-split tokens)."""
Record = tuple[Source, Tagged]


def write(records: Iterable[Record], vocabs: Mapping[str, Vocab], format: str, out: TextIO) -> int:
    """Write each tagged record in ``format``; returns the sentences written (``# sent_id`` counts them).

    ``text`` and ``json``: one line per sentence (an empty line of tokens gives an empty line).
    ``conllu``: see the module's docstring; a blank line of tokens gives nothing."""
    count = 0
    for source, tagged in records:
        text, counted = _render(source, tagged, vocabs, format, count + 1)
        out.write(text)
        count += counted
    return count


def _render(source: Source, tagged: Tagged, vocabs: Mapping[str, Vocab], format: str, sent_id: int) -> tuple[str, bool]:
    """One record's text in ``format``, and whether it is a sentence (lines copied from CoNLL-U are not)."""
    if isinstance(source, Block) and not source.words:
        return (source.filled(tagged.columns, None) if format == "conllu" else ""), False
    if format != "conllu":
        return (format_json if format == "json" else format_text)(tagged, vocabs) + "\n", True
    if isinstance(source, Segmented):
        return format_conllu_tokens(source.sentence(), tagged, sent_id, vocabs) + "\n", True
    if source is not None:
        return source.filled(tagged.columns, misc_items(tagged, vocabs)), True
    return (format_conllu(tagged, vocabs, sent_id), True) if tagged.words else ("", False)


def _prob_dict(probs: torch.Tensor, tags: Vocab) -> dict[str, float]:
    return {tag: round(float(p), 4) for tag, p in sorted(zip(tags.itos, probs.tolist()), key=lambda x: -x[1])}


def _chosen(sentence: Tagged, column: str, vocab: Vocab) -> list[float]:
    """The probability of each word's chosen tag in ``column`` (a CRF's tag need not be the most probable)."""
    chosen = torch.tensor([vocab.stoi[t] for t in sentence.columns[column]], dtype=torch.long)
    return sentence.probs[column].gather(1, chosen.unsqueeze(1)).squeeze(1).tolist()


def format_text(sentence: Tagged, vocabs: Mapping[str, Vocab]) -> str:
    """``The/DET/DT dog/NOUN/NN`` (one tag per column); with probabilities, each chosen tag's: ``The/DET:0.998/DT:0.990``."""
    columns = list(sentence.columns.values())
    if sentence.probs is None:
        return " ".join(map("/".join, zip(sentence.words, *columns)))
    chosen = [_chosen(sentence, column, vocabs[column]) for column in sentence.columns]
    parts = []
    for i, word in enumerate(sentence.words):
        parts.append("/".join([word, *(f"{tags[i]}:{probs[i]:.3f}" for tags, probs in zip(columns, chosen))]))
    return " ".join(parts)


def json_record(sentence: Tagged, vocabs: Mapping[str, Vocab]) -> dict[str, object]:
    """``format_json``'s object, not yet written: ``{"words": [...], "upos": [...], ...}`` (a key
    per column) plus ``"scores": {column: [every tag's probability, per word]}``."""
    record: dict[str, object] = {"words": list(sentence.words), **{c: list(tags) for c, tags in sentence.columns.items()}}
    if sentence.probs is not None:
        record["scores"] = {c: [_prob_dict(row, vocabs[c]) for row in probs] for c, probs in sentence.probs.items()}
    return record


def format_json(sentence: Tagged, vocabs: Mapping[str, Vocab]) -> str:
    """One JSON object: ``{"words": [...], "upos": [...], ...}`` (a key per column) plus
    ``"scores": {column: [every tag's probability, per word]}``."""
    return json.dumps(json_record(sentence, vocabs), ensure_ascii=False)


def misc_items(sentence: Tagged, vocabs: Mapping[str, Vocab]) -> list[str] | None:
    """Per word, ``UPOSProbs=DET:0.9900,NOUN:0.0100|XPOSProbs=...`` for MISC (FEATS values hold ``|``
    and ``=``, which MISC cannot carry: their probabilities are in the json output only)."""
    if sentence.probs is None:
        return None
    items: list[list[str]] = [[] for _ in sentence.words]
    for column, probs in sentence.probs.items():
        if column == "feats":
            continue
        for i, row in enumerate(probs):
            shown = ",".join(f"{t}:{p:.4f}" for t, p in _prob_dict(row, vocabs[column]).items() if p >= 0.0001)
            items[i].append(f"{column.upper()}Probs={shown}")
    return ["|".join(item) or "_" for item in items]


def format_conllu(sentence: Tagged, vocabs: Mapping[str, Vocab], sent_id: int = 1) -> str:
    """A new CoNLL-U sentence (``# sent_id``, ``# text``): each column's tags in its own CoNLL-U
    column (UPOS 4, XPOS 5, FEATS 6), ``_`` elsewhere; probabilities in MISC (see ``misc_items``)."""
    return fresh_block(sentence.words, sentence.columns, sent_id, misc_items(sentence, vocabs))


def format_conllu_tokens(sentence: TreebankSentence, tagged: Tagged, sent_id: int, vocabs: Mapping[str, Vocab]) -> str:
    """A CoNLL-U block with ``# sent_id``, ``# text``, multiword ranges and ``SpaceAfter=No``;
    each column's tags in its CoNLL-U column, probabilities in MISC (``predict.misc_items``)."""
    probs = misc_items(tagged, vocabs)
    lines = ["# newpar"] if sentence.new_paragraph else []
    lines += [f"# sent_id = {sent_id}", f"# text = {sentence.joined()}"]
    n = 0
    for token in sentence.tokens:
        misc = "_" if token.space_after else "SpaceAfter=No"
        if token.multiword:
            lines.append(f"{n + 1}-{n + len(token.words)}\t{token.form}\t_\t_\t_\t_\t_\t_\t_\t{misc}")
            misc = "_"
        for word in token.words:
            word_misc = misc
            if probs is not None and probs[n] != "_":
                word_misc = probs[n] if misc == "_" else f"{misc}|{probs[n]}"
            fields = [str(n + 1), word.form] + ["_"] * 7 + [word_misc]
            for column, tags in tagged.columns.items():
                fields[COLUMNS[column]] = tags[n]
            lines.append("\t".join(fields))
            n += 1
    return "\n".join(lines) + "\n"
