"""The segmenter's multiword lexicon: the multiword tokens of the training data, to expand
``Don't`` into ``Do n't``.

It is learned from the treebank beside the network, stored in the checkpoint's header (checked
by ``header``), and used by the decoder on every token the network marks as multiword.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any, Iterable, Sequence

from lstm_tagger.corpus.rawtext import TreebankSentence


def _restore_case(form: str, words: Sequence[str]) -> list[str]:
    """``words`` (as learned, lower case) written in ``form``'s case.

    When the words spell the form (``do`` + ``n't`` = ``don't``), the form itself is cut at
    the same places, so ``DON'T`` gives ``DO`` + ``N'T``; otherwise all capitals stay all
    capitals and a capital first letter goes to the first word.
    """
    if "".join(words) == form.lower() and len(form.lower()) == len(form):
        pieces, start = [], 0
        for word in words:
            pieces.append(form[start : start + len(word)])
            start += len(word)
        return pieces
    if form.isupper():
        return [w.upper() for w in words]
    if form[:1].isupper():
        return [words[0][:1].upper() + words[0][1:], *words[1:]]
    return list(words)


class Lexicon:
    """Multiword tokens of the training data: lower-cased form -> its most frequent words.

    ``usual`` are the forms that were multiword in most of their training occurrences
    (``don't``, not ``its``): they are expanded wherever they occur; the others only where the
    segmenter says so. ``suffixes`` are the last words of two-word tokens that spell their
    token (``n't``, ``'s``), to split a multiword token never seen in training (``Zlatko's``).
    """

    def __init__(self, entries: dict[str, list[str]], usual: Iterable[str], suffixes: Sequence[str]):
        self.entries = entries
        self.usual = set(usual)
        self.suffixes = sorted(suffixes, key=lambda s: (-len(s), s))

    @classmethod
    def learn(cls, sentences: Iterable[TreebankSentence]) -> "Lexicon":
        counts: dict[str, Counter[tuple[str, ...]]] = defaultdict(Counter)
        tokens: Counter[str] = Counter()
        suffixes: Counter[str] = Counter()
        for sentence in sentences:
            for token in sentence.tokens:
                tokens[token.form.lower()] += 1
                if token.multiword and token.words:
                    words = tuple(w.form.lower() for w in token.words)
                    counts[token.form.lower()][words] += 1
                    if len(words) == 2 and "".join(words) == token.form.lower():
                        suffixes[words[1]] += 1
        entries = {form: list(c.most_common(1)[0][0]) for form, c in counts.items()}
        usual = [form for form, c in counts.items() if 2 * sum(c.values()) > tokens[form]]
        return cls(entries, usual, [s for s, n in suffixes.items() if n >= 2])

    def expand(self, form: str, flagged: bool = True) -> list[str]:
        """The words of token ``form`` (``[form]`` when it stays one word). ``flagged``: the
        segmenter marked it as multiword; otherwise only a usual multiword form is expanded."""
        lower = form.lower()
        words = self.entries.get(lower)
        if words is not None and (flagged or lower in self.usual):
            return _restore_case(form, words)
        if not flagged:
            return [form]
        for suffix in self.suffixes:
            if lower.endswith(suffix) and len(lower) > len(suffix) and len(lower) == len(form):
                cut = len(form) - len(suffix)
                return [form[:cut], form[cut:]]
        return [form]

    def to_dict(self) -> dict[str, Any]:
        return {"entries": self.entries, "usual": sorted(self.usual), "suffixes": self.suffixes}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Lexicon":
        entries = {str(k): [str(w) for w in v] for k, v in data["entries"].items()}
        return cls(entries, [str(f) for f in data.get("usual", [])], [str(s) for s in data["suffixes"]])
