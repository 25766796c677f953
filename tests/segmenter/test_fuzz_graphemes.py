"""Fuzz: on random Unicode text, in windows of random sizes, no token starts or ends inside an
extended grapheme cluster (the ``regex`` package's ``\\X`` over the whole text), and the tokens'
characters are the text's without its whitespace (see ``tests/segmenter/test_graphemes.py``)."""

from __future__ import annotations


import pytest

pytest.importorskip("hypothesis")  # in the ``test`` extra; skip where someone runs without it

import regex  # noqa: E402
from hypothesis import example, given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from lstm_tagger.segmenter import decoder  # noqa: E402
from lstm_tagger.segmenter.labels import SENTENCE  # noqa: E402

from fuzzing import fuzz  # noqa: E402
from test_graphemes import FAMILY, eager  # noqa: E402

SEGMENTERS = {"rules": None, "every character ends a token": eager(), "every character ends a sentence": eager(label=SENTENCE)}

SPECIAL = [
    "a", "e", ".", "!", " ", "\n", "\r", "\t", "\u00a0", "\x01",
    "\u0301", "\u0308", "\u093f", "\u102b",  # combining marks: Mn, Mn, Mc (a spacing mark), Mc that UAX #29 lets start a cluster
    "\u200d", "\u200c", "\U0001F468", "\U0001F469", "\U0001F3FD", "\u2764", "\ufe0f",  # ZWJ, ZWNJ, emoji, skin tone, VS16
    "\U0001F1FA", "\U0001F1F8", "\U0001F1EC",  # regional indicators (flags are pairs)
    "\u1100", "\u1161", "\u11a8", "\uac00",  # Hangul jamo L, V, T and a syllable LV
    "\u0600", "\u0915", "\u094d", "\u0937",  # a prepended mark; Devanagari KA, VIRAMA, SSA (a conjunct)
]
texts = st.text(alphabet=st.one_of(st.sampled_from(SPECIAL), st.characters()), max_size=60)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def cluster_edges(text: str) -> set[int]:
    edges, position = {0}, 0
    for cluster in regex.findall(r"\X", text):
        position += len(cluster)
        edges.add(position)
    return edges


def token_spans(text: str, forms: list[str]) -> list[tuple[int, int]]:
    """Where each token is in ``text``: in order, only whitespace between them."""
    spans, position = [], 0
    for form in forms:
        while text[position].isspace():
            position += 1
        assert text.startswith(form, position), (form, text[position:])
        spans.append((position, position + len(form)))
        position += len(form)
    assert not text[position:].strip()
    return spans


@fuzz(300)
@given(text=texts, window=st.integers(1, 40), context=st.integers(1, 8))
@example(text=f"a {FAMILY}\u0301\U0001F1FA\U0001F1F8\U0001F1EC\u0600 \u0301x", window=2, context=1)
def test_no_token_boundary_falls_inside_a_grapheme_cluster(text, window, context):
    """The guarantee holds for clusters no longer than a window's core (256 characters in use):
    a longer one is cut between windows, which ends no token but lets rules that look back past
    the window (an emoji after a ZWJ, regional indicator pairs) start afresh."""
    edges = cluster_edges(text)
    window = max(window, *(b - a for a, b in zip(sorted(edges), sorted(edges)[1:])), 1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(decoder, "WINDOW", window)
        patch.setattr(decoder, "CONTEXT", context)
        for name, segmenter in SEGMENTERS.items():
            forms = [t.form for s in decoder.segment(segmenter, [text]) for t in s.tokens]
            assert "".join(forms) == "".join(text.split()), name
            for start, end in token_spans(text, forms):
                for edge in (start, end):  # a cluster's edge, or whitespace (which always separates)
                    assert edge in edges or text[edge - 1].isspace() or text[edge].isspace(), (name, forms, edge)
                if segmenter is not None:  # and the network's every end is kept where a cluster ends
                    assert all(p not in edges or regex.match(r"\p{M}", text[p]) for p in range(start + 1, end)), (name, forms)
