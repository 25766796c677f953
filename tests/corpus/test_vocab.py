import torch

from lstm_tagger.training.session import WordDropout
from lstm_tagger.corpus.vocab import PAD_ID, SHAPES, UNK_ID, WordVocab, build_tag_vocab, build_word_vocab, shape_of


def test_word_vocab_reserved_ids_and_min_freq():
    vocab, counts = build_word_vocab([["a", "b", "a"], ["c", "a", "b"]], min_freq=2)
    assert vocab.itos[:2] == ["<pad>", "<unk>"]
    assert (PAD_ID, UNK_ID) == (0, 1)
    assert vocab.itos[2:] == ["a", "b"]  # most frequent first; "c" is below min_freq
    assert counts["a"] == 3 and counts["c"] == 1
    assert vocab.index("c") == UNK_ID
    assert vocab.index("never seen") == UNK_ID
    assert vocab.encode(["a", "b", "zzz"]).tolist() == [2, 3, 1]


def test_tag_vocab_has_no_pad_or_unk():
    tags = build_tag_vocab([["NOUN", "DET", "NOUN"], ["VERB"]])
    assert tags.itos == ["NOUN", "DET", "VERB"]
    assert tags.unk is None
    try:
        tags.index("ADJ")
    except KeyError:
        pass
    else:
        raise AssertionError("an unknown tag must not get an id")


def test_shapes_and_lowercase_fallback():
    assert [shape_of(w) for w in ("Zyzzyva", "NASA", "3.14", "quux", "--", "I")] == [
        "<unk:Aa>", "<unk:AA>", "<unk:9>", "<unk:a>", "<unk:.>", "<unk:Aa>"
    ]
    vocab, _ = build_word_vocab([["each", "day"]], shapes=True, lowercase_fallback=True)
    assert vocab.itos[:7] == ["<pad>", "<unk>", *SHAPES]
    assert vocab.index("Each") == vocab.index("each")  # lower-case fallback
    assert vocab.index("Zyzzyva") == vocab.stoi["<unk:Aa>"]
    assert vocab.index("1999") == vocab.stoi["<unk:9>"]
    assert vocab.unknown_id("each") == vocab.stoi["<unk:a>"]
    plain, _ = build_word_vocab([["each", "day"]])
    assert plain.index("Each") == UNK_ID and plain.index("1999") == UNK_ID


def test_round_trip_through_dict():
    vocab, _ = build_word_vocab([["x", "y"]], shapes=True, lowercase_fallback=True)
    again = WordVocab.from_dict(vocab.to_dict())
    assert again.itos == vocab.itos and (again.shapes, again.lowercase_fallback) == (True, True)
    assert again.index("X") == vocab.index("X") == vocab.index("x")


def test_word_dropout_is_frequency_scaled_and_keeps_padding():
    vocab, counts = build_word_vocab([["the"] * 999 + ["Zyzzyva"]], shapes=True)
    dropout = WordDropout(vocab, counts, alpha=1.0)
    the, rare = vocab.index("the"), vocab.index("Zyzzyva")
    assert dropout.probability[the] == 1 / 1000 and dropout.probability[rare] == 1 / 2
    assert dropout.probability[PAD_ID] == 0
    torch.manual_seed(0)
    words = torch.tensor([[rare] * 2000 + [PAD_ID] * 10])
    out = dropout(words)
    dropped = out[0, :2000] == vocab.stoi["<unk:Aa>"]  # replaced by its own shape class
    assert 0.45 < dropped.float().mean() < 0.55
    assert torch.all((out[0, :2000] == rare) | dropped)
    assert torch.all(out[0, 2000:] == PAD_ID)


def test_words_from_a_vectors_file_are_not_counted_as_seen_in_training():
    vocab, _ = build_word_vocab([["the", "dog"]], extra=["cat", "the"], shapes=True)
    assert vocab.itos[-1] == "cat" and vocab.itos.count("the") == 1
    assert vocab.seen_in_training("dog") and vocab.seen_in_training("the")
    assert not vocab.seen_in_training("cat")  # has a vector, but evaluation counts it as OOV
    assert not vocab.seen_in_training("zebra")
    again = WordVocab.from_dict(vocab.to_dict())
    assert again.seen_in_training("dog") and not again.seen_in_training("cat")
