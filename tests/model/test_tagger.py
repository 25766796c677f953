import pytest
import torch

from lstm_tagger.config import ModelConfig
from lstm_tagger.corpus.reader import TAG_PAD
from lstm_tagger.model.tagger import CELLS, Tagger


def make(bidirectional=True, num_layers=2, **extra) -> Tagger:
    torch.manual_seed(0)
    config = ModelConfig(embedding_dim=8, hidden_dim=6, num_layers=num_layers, bidirectional=bidirectional, **extra)
    return Tagger(config, num_words=30, num_tags=5).eval()


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_shapes_and_derived_output_size(cell):
    for bidirectional, width in ((True, 12), (False, 6)):
        model = make(bidirectional, cell=cell)
        assert model.output.in_features == width  # derived from hidden_dim and direction count
        words = torch.tensor([[2, 3, 4], [5, 6, 0]])
        out = model(words, torch.tensor([3, 2]))
        assert out.shape == (2, 3, 5)
        assert torch.allclose(out.exp().sum(-1), torch.ones(2, 3))  # log_softmax over tags


def test_pad_is_padding_idx_with_zero_vector():
    model = make()
    assert model.embed.embedding.padding_idx == 0
    assert torch.count_nonzero(model.embed.embedding.weight[0]) == 0


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_padding_invariance(cell):
    """A sentence tagged alone and inside a padded batch gets the same scores."""
    for bidirectional in (True, False):
        model = make(bidirectional, cell=cell)
        short = torch.tensor([7, 8, 9])
        alone = model(short.unsqueeze(0), torch.tensor([3]))[0]
        batch = torch.tensor([[2, 3, 4, 5, 6, 10, 11], [7, 8, 9, 0, 0, 0, 0]])
        inside = model(batch, torch.tensor([7, 3]))[1, :3]
        assert torch.allclose(alone, inside, atol=1e-6)


@pytest.mark.parametrize("hand, torch_cell", [("hand_lstm", "lstm"), ("hand_gru", "gru")])
def test_same_family_cells_share_weights_and_outputs(hand, torch_cell):
    ours, theirs = make(cell=hand), make(cell=torch_cell)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), theirs.state_dict().values()))  # same seed, same init
    words = torch.tensor([[2, 3, 4, 5], [6, 7, 0, 0]])
    lengths = torch.tensor([4, 2])
    assert torch.allclose(ours(words, lengths), theirs(words, lengths), atol=1e-5)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional,num_layers", [(False, 1), (True, 1), (True, 2)])
def test_fused_dense_encoder_equals_the_packed_module(cell, bidirectional, num_layers):
    """The encoder runs nn.LSTM/GRU's weights direction by direction on the dense batch; the
    result must be what the module itself gives over a PackedSequence (padding filled with 3.0)."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    from lstm_tagger.model.tagger import RecurrentEncoder

    torch.manual_seed(0)
    encoder = RecurrentEncoder(cell, 6, 5, num_layers, bidirectional, dropout=0.0).eval()
    lengths = torch.tensor([7, 3, 5, 1])
    inputs = torch.randn(4, 7, 6)
    for row, n in enumerate(lengths.tolist()):
        inputs[row, n:] = 3.0
    packed = pack_padded_sequence(inputs, lengths, batch_first=True, enforce_sorted=False)
    expected, _ = pad_packed_sequence(encoder.rnn(packed)[0], batch_first=True, total_length=7)
    assert torch.allclose(encoder(inputs, lengths), expected, atol=1e-5)


def test_one_head_per_column_and_the_loss_is_their_weighted_sum():
    torch.manual_seed(0)
    config = ModelConfig(embedding_dim=8, hidden_dim=6, output="crf", output_per_column={"feats": "softmax"})
    model = Tagger(config, num_words=30, num_tags={"upos": 4, "xpos": 5, "feats": 3}, loss_weights={"xpos": 2.0}).eval()
    assert list(model.heads) == ["upos", "xpos", "feats"] and model.loss_weights == [1.0, 2.0, 1.0]
    assert model.heads["upos"].crf is not None and model.heads["feats"].crf is None
    assert model.output is model.heads["upos"].output  # the first column's, as a one-column model has it
    words = torch.tensor([[2, 3, 4], [5, 6, 0]])
    lengths = torch.tensor([3, 2])
    tags = torch.stack([torch.tensor([[0, 1, 2], [3, 0, TAG_PAD]]), torch.tensor([[4, 1, 2], [3, 0, TAG_PAD]]),
                        torch.tensor([[0, 1, 2], [2, 0, TAG_PAD]])], dim=-1)
    features = model.features(words, lengths)
    expected = sum(
        weight * model.heads[c].loss(model.heads[c].output(features), lengths, tags[..., i])
        for i, (c, weight) in enumerate(zip(["upos", "xpos", "feats"], [1.0, 2.0, 1.0]))
    )
    assert torch.allclose(model.loss(words, lengths, tags), expected)
    predicted = model.predict_columns(words, lengths, scores=True)
    assert [predicted[c][1].shape[-1] for c in model.heads] == [4, 5, 3]
