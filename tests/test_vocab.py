from lstm_tagger.vocab import PAD_ID, UNK_ID, Vocab, build_tag_vocab, build_word_vocab


def test_word_vocab_reserved_ids_and_min_freq():
    vocab = build_word_vocab([["a", "b", "a"], ["c", "a", "b"]], min_freq=2)
    assert vocab.itos[:2] == ["<pad>", "<unk>"]
    assert (PAD_ID, UNK_ID) == (0, 1)
    assert vocab.itos[2:] == ["a", "b"]  # most frequent first; "c" is below min_freq
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


def test_round_trip_through_dict():
    vocab = build_word_vocab([["x", "y"]])
    again = Vocab.from_dict(vocab.to_dict())
    assert again.itos == vocab.itos and again.unk == vocab.unk
