"""Tagging's memory is bounded at its sources: the padded size of a batch, the number of new
forms the character encoder runs on at once, and the forms the cache keeps; none of the
three changes a tag."""

from __future__ import annotations

import random
from functools import partial

import pytest
import torch

from lstm_tagger import load_checkpoint
from lstm_tagger.checkpoint import find_checkpoint
from lstm_tagger.model import chars as chars_module
from lstm_tagger.model.chars import CharEncoder, FormCache, FormTable, build_char_vocab
from lstm_tagger.tagging import predict
from lstm_tagger.tagging.predict import capped, prepare, tag_stream


def test_capped_cuts_sorted_sentences_at_the_position_budget():
    lengths = [9, 1, 2, 3, 4, 10]  # positions 1..5 in ascending order of length
    assert list(capped([1, 2, 3, 4, 5], lengths, 8)) == [[1, 2], [3, 4], [5]]  # 2*2, 2*4; 10 alone
    assert list(capped([1, 2, 3, 4, 5], lengths, 50)) == [[1, 2, 3, 4, 5]]
    assert list(capped([], lengths, 8)) == []


@pytest.fixture(scope="module")
def chars_run(trained_run):
    """A tiny model with a character BiLSTM (accuracy does not matter here, only equal outputs)."""
    return load_checkpoint(find_checkpoint(trained_run("tiny", "model.char_encoder=lstm", "train.epochs=1")))


def sentences(count: int, seed: int) -> list[list[str]]:
    """``count`` sentences of 1 to 40 words, mostly forms the model never saw (each distinct)."""
    rng = random.Random(seed)
    known = ["The", "dog", "ate", "the", "apple", "book"]
    return [
        [rng.choice(known) if rng.random() < 0.5 else f"w{rng.randrange(10**6)}x" for _ in range(rng.randint(1, 40))]
        for _ in range(count)
    ]


def test_a_tagging_batch_holds_at_most_its_positions(chars_run, monkeypatch):
    monkeypatch.setattr(predict, "TAGGING_POSITIONS_PER_SENTENCE", 4)
    text = sentences(100, seed=1) + [["long"] * 50]
    prepared = prepare(chars_run, text, batch_size=8)
    shapes = [tuple(words.shape) for _, words, _, _ in prepared.batches]
    assert all(b * t <= 8 * 4 or b == 1 for b, t in shapes)
    assert (1, 50) in shapes  # the 50-word sentence alone
    assert sorted(i for index, _, _, _ in prepared.batches for i in index) == list(range(len(text)))


def tagged(checkpoint, text):
    return [(t.words, t.columns) for t in tag_stream(checkpoint, text, batch_size=4, workers=2)]  # chunks of 32


def test_tags_do_not_depend_on_the_batch_cap_the_cache_or_the_encoder_slices(chars_run, monkeypatch):
    text = sentences(150, seed=2)
    expected = tagged(chars_run, text)
    monkeypatch.setattr(predict, "TAGGING_POSITIONS_PER_SENTENCE", 1)  # every sentence a batch of its own
    monkeypatch.setattr(predict, "FormCache", partial(FormCache, capacity=1))  # afresh at every chunk
    monkeypatch.setattr(chars_module, "ENCODE_FORMS", 1)  # one new form at a time
    assert tagged(chars_run, text) == expected


def form_cache(capacity: int) -> tuple[FormCache, list[int]]:
    """A cache over a small random encoder, and the list of the row counts it encodes."""
    torch.manual_seed(0)
    encoder = CharEncoder("lstm", 40, 8, 16, 0.5).eval()
    encoded: list[int] = []
    real = encoder.encode
    encoder.encode = lambda forms, lengths: encoded.append(forms.size(0)) or real(forms, lengths)
    return FormCache(encoder, capacity), encoded


def test_the_encoder_runs_on_at_most_encode_forms_new_forms_at_once(monkeypatch):
    monkeypatch.setattr(chars_module, "ENCODE_FORMS", 2)
    chars = build_char_vocab([["abcdefgh"]])
    cache, encoded = form_cache(100)
    table = FormTable(chars, [["a", "b", "c"], ["d", "e"]])
    with torch.inference_mode():
        vectors = cache.vectors(table)
        assert encoded == [1, 2, 2, 1]  # the padding form, then 5 new forms 2 at a time
        torch.testing.assert_close(vectors, cache.encoder.encode(table.forms, table.lengths), rtol=1e-5, atol=1e-6)


def test_the_form_cache_never_holds_more_than_its_capacity():
    chars = build_char_vocab([["abcdefghij"]])
    cache, _ = form_cache(50)
    letters = "abcdefghij"
    with torch.inference_mode():
        for chunk in range(20):  # 20 chunks of 20 distinct new forms each: 400 forms through a cache of 50
            forms = [letters[chunk % 10] + letters[i % 10] + letters[i // 10] * (chunk + 1) for i in range(20)]
            table = FormTable(chars, [forms[:10], forms[10:]])
            vectors = cache.vectors(table)
            assert len(cache._rows) <= 50 and cache._table.size(0) <= 51
            torch.testing.assert_close(vectors, cache.encoder.encode(table.forms, table.lengths), rtol=1e-5, atol=1e-6)
