"""HandLSTM / HandGRU against nn.LSTM / nn.GRU and against autograd: names, outputs, gradients, padding."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from lstm_tagger.model.cells import GRUDirection, HandGRU, HandLSTM, LSTMDirection, reverse_index, run_layers

PAIRS = {"lstm": (HandLSTM, nn.LSTM), "gru": (HandGRU, nn.GRU)}
LENGTHS = torch.tensor([7, 3, 5, 1])
INPUT, HIDDEN = 5, 4
TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-10}


def run_torch(rnn: nn.Module, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The reference: inputs (B, T, D) through pack_padded_sequence -> (B, T, H * directions)."""
    packed = pack_padded_sequence(inputs, lengths, batch_first=True, enforce_sorted=False)
    output, _ = rnn(packed)
    output, _ = pad_packed_sequence(output, batch_first=True, total_length=inputs.size(1))
    return output


def real_mask(lengths: torch.Tensor, total: int) -> torch.Tensor:
    """(B,) -> (B, T, 1) bool, True at real tokens."""
    return (torch.arange(total).unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(2)


def build(kind: str, bidirectional: bool, num_layers: int, hand_first: bool, dtype: torch.dtype):
    """A hand module and a torch module with the same weights, copied one way or the other."""
    hand_class, torch_class = PAIRS[kind]
    torch.manual_seed(0)
    hand = hand_class(INPUT, HIDDEN, num_layers=num_layers, bidirectional=bidirectional)
    ref = torch_class(INPUT, HIDDEN, num_layers=num_layers, bidirectional=bidirectional, batch_first=True)
    if hand_first:
        ref.load_state_dict(hand.state_dict())
    else:
        hand.load_state_dict(ref.state_dict())
    return hand.to(dtype), ref.to(dtype)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("hand_first", [False, True])
def test_equal_to_pytorch(kind, bidirectional, num_layers, dtype, hand_first):
    hand, ref = build(kind, bidirectional, num_layers, hand_first, dtype)
    total = int(LENGTHS.max()) + 2  # trailing all-padding columns as well (total_length)
    inputs = torch.randn(len(LENGTHS), total, INPUT, dtype=dtype)
    inputs[~real_mask(LENGTHS, total).expand_as(inputs)] = 3.0  # padding that would show if it leaked
    hand_inputs = inputs.clone().requires_grad_()
    ref_inputs = inputs.clone().requires_grad_()

    hand_out = hand(hand_inputs, LENGTHS)
    ref_out = run_torch(ref, ref_inputs, LENGTHS)
    width = HIDDEN * (2 if bidirectional else 1)
    assert hand_out.shape == (len(LENGTHS), total, width)
    mask = real_mask(LENGTHS, total)
    tol = TOLERANCE[dtype]
    torch.testing.assert_close(hand_out * mask, ref_out * mask, atol=tol, rtol=tol)
    assert torch.count_nonzero(hand_out.masked_select(~mask)) == 0

    weights = torch.randn(hand_out.shape, dtype=dtype) * mask
    (hand_out * weights).sum().backward()
    (ref_out * weights).sum().backward()
    torch.testing.assert_close(hand_inputs.grad, ref_inputs.grad, atol=tol, rtol=tol)
    ref_params = dict(ref.named_parameters())
    for name, parameter in hand.named_parameters():
        torch.testing.assert_close(parameter.grad, ref_params[name].grad, atol=tol, rtol=tol, msg=name)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("num_layers", [1, 3])
def test_parameter_names_shapes_and_init(kind, bidirectional, num_layers):
    hand_class, torch_class = PAIRS[kind]
    dropout = 0.5 if num_layers > 1 else 0.0  # nn.LSTM warns about dropout with one layer
    hand = hand_class(INPUT, HIDDEN, num_layers=num_layers, bidirectional=bidirectional, dropout=dropout)
    ref = torch_class(INPUT, HIDDEN, num_layers=num_layers, bidirectional=bidirectional, dropout=dropout, batch_first=True)
    assert [(n, p.shape) for n, p in hand.named_parameters()] == [(n, p.shape) for n, p in ref.named_parameters()]
    bound = HIDDEN**-0.5
    for parameter in hand.parameters():
        assert parameter.abs().max() <= bound
        assert parameter.std() > bound / 4  # uniform, not left at zero or a constant


@pytest.mark.parametrize("hand_class", [HandLSTM, HandGRU])
def test_padding_invariance(hand_class):
    """A sentence alone and inside a padded batch gets the same outputs."""
    torch.manual_seed(1)
    hand = hand_class(INPUT, HIDDEN, num_layers=2, bidirectional=True).eval()
    batch = torch.randn(3, 9, INPUT)
    lengths = torch.tensor([9, 4, 6])
    alone = hand(batch[1:2, :4], torch.tensor([4]))[0]
    inside = hand(batch, lengths)[1]
    torch.testing.assert_close(inside[:4], alone, atol=1e-6, rtol=0)
    assert torch.count_nonzero(inside[4:]) == 0


@pytest.mark.parametrize("hand_class", [HandLSTM, HandGRU])
def test_gradcheck(hand_class):
    torch.manual_seed(2)
    hand = hand_class(3, 2, bidirectional=True).double()
    lengths = torch.tensor([3, 2])
    names = [name for name, _ in hand.named_parameters()]
    inputs = torch.randn(2, 3, 3, dtype=torch.float64, requires_grad=True)
    params = [p.detach().clone().requires_grad_() for p in hand.parameters()]

    def run(inputs, *params):
        return torch.func.functional_call(hand, dict(zip(names, params)), (inputs, lengths))

    assert torch.autograd.gradcheck(run, (inputs, *params))


def test_dropout_between_layers_only():
    """With p = 1 a single layer is unaffected and the second of two layers reads zeros."""
    torch.manual_seed(3)
    inputs = torch.randn(2, 4, INPUT)
    lengths = torch.tensor([4, 2])
    single = HandLSTM(INPUT, HIDDEN, dropout=1.0).train()
    torch.testing.assert_close(single(inputs, lengths), single.eval()(inputs, lengths))
    two = HandLSTM(INPUT, HIDDEN, num_layers=2, dropout=1.0).train()
    second = HandLSTM(HIDDEN, HIDDEN)  # layer 1 of ``two`` on its own
    second.load_state_dict({k.replace("_l1", "_l0"): v for k, v in two.state_dict().items() if "_l1" in k})
    torch.testing.assert_close(two(inputs, lengths), second(torch.zeros(2, 4, HIDDEN), lengths))


def test_reverse_index_reverses_within_length():
    index = reverse_index(torch.tensor([3, 1, 0]), 4)
    assert index.tolist() == [[2, 1, 0, 3], [0, 1, 2, 3], [0, 1, 2, 3]]


def test_all_empty_and_too_long_lengths():
    hand = HandGRU(INPUT, HIDDEN, bidirectional=True)
    assert torch.count_nonzero(hand(torch.randn(2, 3, INPUT), torch.tensor([0, 0]))) == 0
    with pytest.raises(ValueError):
        hand(torch.randn(2, 3, INPUT), torch.tensor([4, 1]))


def autograd_lstm_direction(inputs, w_ih, w_hh, b_ih, b_hh):
    """The LSTM direction as HandLSTM ran it before its hand-written backward: plain ops, autograd's BPTT."""
    x_proj = torch.nn.functional.linear(inputs, w_ih, b_ih)
    h = x_proj.new_zeros(x_proj.size(0), w_hh.size(1))
    c = torch.zeros_like(h)
    outputs = []
    for x_t in x_proj.unbind(1):
        a_i, a_f, a_g, a_o = torch.addmm(b_hh, h, w_hh.t()).add_(x_t).chunk(4, 1)
        c = torch.sigmoid(a_f) * c + torch.sigmoid(a_i) * torch.tanh(a_g)
        h = torch.sigmoid(a_o) * torch.tanh(c)
        outputs.append(h)
    return torch.stack(outputs, 1)


def autograd_gru_direction(inputs, w_ih, w_hh, b_ih, b_hh):
    """The GRU direction as HandGRU ran it before its hand-written backward: plain ops, autograd's BPTT."""
    x_proj = torch.nn.functional.linear(inputs, w_ih, b_ih)
    h = x_proj.new_zeros(x_proj.size(0), w_hh.size(1))
    outputs = []
    for x_t in x_proj.unbind(1):
        x_r, x_z, x_n = x_t.chunk(3, 1)
        h_r, h_z, h_n = torch.addmm(b_hh, h, w_hh.t()).chunk(3, 1)
        r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
        h = (1 - z) * torch.tanh(x_n + r * h_n) + z * h
        outputs.append(h)
    return torch.stack(outputs, 1)


MIXED = torch.tensor([6, 1, 4, 6, 2])
HAND = {"lstm": (HandLSTM, LSTMDirection.apply, autograd_lstm_direction), "gru": (HandGRU, GRUDirection.apply, autograd_gru_direction)}


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_hand_backward_equals_autograd(kind, bidirectional, num_layers):
    """The Function's forward and hand-written backward against autograd through the plain ops, float64."""
    hand_class, function, reference = HAND[kind]
    torch.manual_seed(4)
    hand = hand_class(INPUT, HIDDEN, num_layers=num_layers, bidirectional=bidirectional).double()
    total = int(MIXED.max()) + 1
    inputs = torch.randn(len(MIXED), total, INPUT, dtype=torch.float64)
    weights = torch.randn(len(MIXED), total, hand.output_size, dtype=torch.float64)
    results = []
    for direction in (function, reference):
        hand.zero_grad()
        leaf = inputs.clone().requires_grad_()
        run = lambda x, layer, suffix: direction(  # noqa: E731
            x, *(getattr(hand, f"{n}_l{layer}{suffix}") for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
        )
        output = run_layers(run, leaf, MIXED, num_layers, bidirectional, HIDDEN, nn.Identity())
        (output * weights).sum().backward()
        results.append((output.detach(), leaf.grad, {n: p.grad.clone() for n, p in hand.named_parameters()}))
    (out, grad_in, grads), (ref_out, ref_grad_in, ref_grads) = results
    torch.testing.assert_close(out, ref_out, atol=1e-12, rtol=0)
    torch.testing.assert_close(grad_in, ref_grad_in, atol=1e-6, rtol=0)
    for name, grad in grads.items():
        torch.testing.assert_close(grad, ref_grads[name], atol=1e-6, rtol=0, msg=name)
        assert grad.abs().max() > 0, name
    real = real_mask(MIXED, total)
    assert torch.count_nonzero(out.masked_select(~real)) == 0


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_hand_backward_gradcheck(kind, bidirectional, num_layers):
    """gradcheck of the hand-written cell (so of its Function's backward) on mixed lengths, every parameter and the input."""
    torch.manual_seed(5)
    hand = HAND[kind][0](3, 2, num_layers=num_layers, bidirectional=bidirectional).double()
    lengths = torch.tensor([4, 1, 3])
    names = [name for name, _ in hand.named_parameters()]
    inputs = torch.randn(3, 5, 3, dtype=torch.float64, requires_grad=True)
    params = [p.detach().clone().requires_grad_() for p in hand.parameters()]

    def run(inputs, *params):
        return torch.func.functional_call(hand, dict(zip(names, params)), (inputs, lengths))

    assert torch.autograd.gradcheck(run, (inputs, *params))


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_hand_direction_gradcheck_alone(kind):
    """gradcheck of the Function itself, every position of the output carrying a gradient."""
    torch.manual_seed(6)
    gates = {"lstm": 8, "gru": 6}[kind]
    shapes = ((2, 4, 3), (gates, 3), (gates, 2), (gates,), (gates,))
    args = [torch.randn(*shape, dtype=torch.float64, requires_grad=True) for shape in shapes]
    assert torch.autograd.gradcheck(HAND[kind][1], args)
