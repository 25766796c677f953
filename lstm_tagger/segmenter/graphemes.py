"""Extended grapheme clusters (Unicode UAX #29): no token, and so no sentence, starts or ends
inside one (a letter and its combining marks, an emoji with its skin tone or a ZWJ family, a
flag).

``glued`` finds where two characters stay together and ``outside_clusters`` drops a token end
that falls inside a cluster: the one rule that the training labels (``labels``), the rules
without a model (``labels.rule_labels``), the windows (``windows``) and the decoder all go
through, kept apart so that each of them reads it from one place.
"""

from __future__ import annotations

from typing import Sequence

import regex

_CLUSTER = regex.compile(r"\X")
"""One extended grapheme cluster (UAX #29), as the ``regex`` package finds it."""
_BEFORE_MARK = regex.compile(r"\S(?=\p{M})")
_JOINER = regex.compile(r"[\p{M}\p{GCB=Extend}\p{GCB=ZWJ}\p{GCB=SpacingMark}\p{GCB=Prepend}\p{GCB=Regional_Indicator}"
                        r"\p{GCB=L}\p{GCB=V}\p{GCB=T}]")
"""A character that two characters of one cluster need (one of them has it in each of UAX #29's
rules GB6 to GB13), or a combining mark: text without one (Chinese, precomposed Korean or
Vietnamese) is glued nowhere, and costs one search."""


def glued(text: str) -> list[int]:
    """The positions ``i``, in order, where ``text[i]`` and ``text[i + 1]`` stay in one token:
    they are one extended grapheme cluster, or ``text[i + 1]`` is a combining mark (which UAX #29
    lets start a cluster in a few cases, after a control character or in Myanmar), and neither is
    whitespace (a space with a mark is one cluster, but whitespace always separates tokens).

    ``text`` starts where a token may start (a cluster's start, or after whitespace): clusters
    are found from there on, and the last position has no next character to be glued to.
    """
    if text.isascii() or not _JOINER.search(text):  # (ASCII has no cluster but CR LF, whitespace)
        return []
    found = {match.start() for match in _BEFORE_MARK.finditer(text)}
    position = 0
    for cluster in _CLUSTER.findall(text):
        if len(cluster) > 1:
            found.update(range(position, position + len(cluster) - 1))
        position += len(cluster)
    return sorted(i for i in found if not text[i].isspace() and not text[i + 1].isspace())


def outside_clusters(positions: list[int], labels: list[int], joins: Sequence[int]) -> tuple[list[int], list[int]]:
    """Labelled positions (in order) without those inside a grapheme cluster (``joins``, from
    ``glued``): a token ends only where its cluster ends. The segmenter's label inside a cluster
    is dropped rather than moved to the cluster's end: a model that never saw a character (a
    combining mark of NFD text) often ends a token just before it, and the label at the
    cluster's own end is the one to trust."""
    if not joins:
        return positions, labels
    inside = set(joins)
    kept = [k for k, position in enumerate(positions) if position not in inside]
    return [positions[k] for k in kept], [labels[k] for k in kept]
