"""The CRF layer against brute-force enumeration of every tag path, plus padding,
gradients, the d log Z / d E = marginals identity, and a tiny training run."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from lstm_tagger.model.crf import CRF

K = 3
# (lengths, T): mixed lengths, extra padding past the longest sentence, a single token.
CASES = [([4, 1, 3], 4), ([3, 1, 2], 5), ([2, 2], 2), ([1], 1)]
FILLS = [1e4, -1e4, math.inf, math.nan, "random"]


def real_mask(lengths: list[int], total: int) -> torch.Tensor:
    """-> (B, T) bool, True at real tokens."""
    return torch.arange(total).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)


def make_case(lengths: list[int], total: int, seed: int = 0):
    """A float64 CRF with random (non-zero) scores, emissions (B, T, K) with random
    padding, tags (B, T) with -100 at padding, lengths (B,) int64."""
    torch.manual_seed(seed)
    crf = CRF(K).double()
    with torch.no_grad():
        for parameter in (crf.transitions, crf.start, crf.end):
            parameter.normal_()
    emissions = torch.randn(len(lengths), total, K, dtype=torch.float64)
    tags = torch.randint(K, (len(lengths), total))
    tags[~real_mask(lengths, total)] = -100
    return crf, emissions, tags, torch.tensor(lengths)


def fill_padding(emissions: torch.Tensor, lengths: list[int], fill) -> torch.Tensor:
    filled = emissions.clone()
    pad = ~real_mask(lengths, emissions.size(1))
    filled[pad] = torch.randn_like(filled[pad]) * 100 if fill == "random" else fill
    return filled


def brute_force(crf: CRF, emissions: torch.Tensor, n: int):
    """One sentence's emissions (T, K), length n -> every path of length n and its score,
    written straight from the formula s(y) with Python loops."""
    A, start, end = crf.transitions.tolist(), crf.start.tolist(), crf.end.tolist()
    E = emissions.tolist()
    paths = list(itertools.product(range(K), repeat=n))
    scores = []
    for y in paths:
        s = start[y[0]] + end[y[-1]] + sum(E[t][y[t]] for t in range(n))
        s += sum(A[y[t - 1]][y[t]] for t in range(1, n))
        scores.append(s)
    return paths, torch.tensor(scores, dtype=torch.float64)


@pytest.mark.parametrize("lengths, total", CASES)
def test_against_brute_force(lengths, total):
    crf, emissions, tags, lengths_t = make_case(lengths, total)
    with torch.no_grad():
        log_z = crf.log_partition(emissions, lengths_t)
        nll = crf.nll(emissions, tags, lengths_t)
        best = crf.decode(emissions, lengths_t)
        log_marginals = crf.marginals(emissions, lengths_t)
    expected_nll = 0.0
    for b, n in enumerate(lengths):
        paths, scores = brute_force(crf, emissions[b], n)
        expected_log_z = torch.logsumexp(scores, 0)
        assert abs(log_z[b].item() - expected_log_z.item()) < 1e-8
        gold = paths.index(tuple(tags[b, :n].tolist()))
        expected_nll += (expected_log_z - scores[gold]).item()
        assert best[b].tolist() == list(paths[scores.argmax()]) + [0] * (total - n)
        for t in range(n):
            for k in range(K):
                with_k = scores[[y[t] == k for y in paths]]
                expected = (torch.logsumexp(with_k, 0) - expected_log_z).item()
                assert abs(log_marginals[b, t, k].item() - expected) < 1e-8
        assert torch.allclose(log_marginals[b, n:], torch.full((total - n, K), -math.log(K),
                                                                dtype=torch.float64))
    assert abs(nll.item() - expected_nll / sum(lengths)) < 1e-8


@pytest.mark.parametrize("fill", FILLS)
def test_padding_changes_nothing(fill):
    lengths = [4, 1, 3]
    crf, emissions, tags, lengths_t = make_case(lengths, 6, seed=1)
    mask = real_mask(lengths, 6)

    def run(em):
        em = em.clone().requires_grad_(True)
        nll = crf.nll(em, tags, lengths_t)
        (grad,) = torch.autograd.grad(nll, em)
        with torch.no_grad():
            return nll, grad, crf.decode(em, lengths_t), crf.marginals(em, lengths_t)

    nll, grad, best, log_marginals = run(emissions)
    nll_f, grad_f, best_f, log_marginals_f = run(fill_padding(emissions, lengths, fill))
    assert torch.isfinite(nll_f) and abs(nll.item() - nll_f.item()) < 1e-12
    assert torch.allclose(grad, grad_f, atol=1e-12, rtol=0)
    assert torch.count_nonzero(grad_f[~mask]) == 0
    assert torch.equal(best, best_f)
    assert torch.allclose(log_marginals, log_marginals_f, atol=1e-12, rtol=0)
    # Each sentence alone (no padding at all) gives the same answers as in the batch.
    for b, n in enumerate(lengths):
        alone = emissions[b:b + 1, :n]
        one = torch.tensor([n])
        with torch.no_grad():
            assert torch.equal(crf.decode(alone, one)[0], best_f[b, :n])
            assert torch.allclose(crf.marginals(alone, one)[0], log_marginals_f[b, :n],
                                  atol=1e-12, rtol=0)
            assert abs(crf.nll(alone, tags[b:b + 1, :n], one).item() * n
                       - crf.nll(emissions[b:b + 1], tags[b:b + 1], one).item() * n) < 1e-12


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("scale", [1.0, 1000.0])
def test_marginal_rows_sum_to_one(dtype, scale):
    """Also at scores so large that log Z is in the tens of thousands, where float32
    without per-step rescaling loses about 1e-3 of each probability."""
    lengths = [20, 7, 1, 13]
    crf, emissions, _, lengths_t = make_case(lengths, 20, seed=2)
    emissions = emissions * scale
    with torch.no_grad():
        reference = crf.marginals(emissions, lengths_t).exp()
        log_marginals = crf.to(dtype).marginals(emissions.to(dtype), lengths_t)
    assert log_marginals.dtype == dtype and torch.isfinite(log_marginals).all()
    probabilities = log_marginals.double().exp()
    sums = probabilities.sum(-1)
    mask = real_mask(lengths, 20)
    tolerance = 1e-12 if dtype == torch.float64 else 1e-6
    assert torch.allclose(sums[mask], torch.ones_like(sums[mask]), atol=tolerance, rtol=0)
    assert torch.allclose(probabilities, reference, atol=tolerance, rtol=0)
    # Padding rows hold log(1/K).
    assert torch.allclose(probabilities[~mask], torch.full_like(probabilities[~mask], 1 / K))


def test_large_scores_stay_finite_in_float32():
    crf, emissions, tags, lengths_t = make_case([20, 7, 1, 13], 20, seed=3)
    crf = crf.float()
    emissions = (emissions * 1e4).float()
    with torch.no_grad():
        assert torch.isfinite(crf.log_partition(emissions, lengths_t)).all()
        nll = crf.nll(emissions, tags, lengths_t)
    assert torch.isfinite(nll) and nll >= 0


def test_gradcheck_nll():
    crf, emissions, tags, lengths_t = make_case([4, 1, 3], 4, seed=4)
    emissions.requires_grad_(True)
    # gradcheck perturbs its inputs in place, so passing the Parameters themselves checks
    # the gradient with respect to them; the lambda reads them through the module.
    assert torch.autograd.gradcheck(
        lambda em, transitions, start, end: crf.nll(em, tags, lengths_t),
        (emissions, crf.transitions, crf.start, crf.end), eps=1e-6, atol=1e-7)


def test_log_partition_gradient_is_the_marginals():
    lengths = [4, 1, 3]
    crf, emissions, _, lengths_t = make_case(lengths, 5, seed=5)
    emissions.requires_grad_(True)
    (grad,) = torch.autograd.grad(crf.log_partition(emissions, lengths_t).sum(), emissions)
    mask = real_mask(lengths, 5)
    with torch.no_grad():
        probabilities = crf.marginals(emissions, lengths_t).exp()
    assert torch.allclose(grad[mask], probabilities[mask], atol=1e-10, rtol=0)
    assert torch.count_nonzero(grad[~mask]) == 0


def test_inference_mode_gives_the_same_answers():
    crf, emissions, tags, lengths_t = make_case([4, 1, 3], 4, seed=6)
    nll = crf.nll(emissions, tags, lengths_t)
    best, log_marginals = crf.decode(emissions, lengths_t), crf.marginals(emissions, lengths_t)
    with torch.inference_mode():
        assert torch.equal(crf.nll(emissions, tags, lengths_t), nll.detach())
        assert torch.equal(crf.decode(emissions, lengths_t), best)
        assert torch.equal(crf.marginals(emissions, lengths_t), log_marginals.detach())
    assert best.dtype == torch.int64 and best.shape == (3, 4)


def test_fresh_crf_decodes_like_argmax():
    torch.manual_seed(7)
    crf = CRF(5)
    emissions = torch.randn(2, 6, 5)
    lengths = torch.tensor([6, 4])
    best = crf.decode(emissions, lengths)
    assert torch.equal(best[0], emissions[0].argmax(-1))
    assert torch.equal(best[1, :4], emissions[1, :4].argmax(-1))
    assert best[1, 4:].tolist() == [0, 0]
    assert set(dict(crf.named_parameters())) == {"transitions", "start", "end"}


def test_training_learns_transitions():
    """Word 1 is tagged 1 after tag 0, 2 after tag 1, 0 after tag 2: a per-token model of
    the word alone cannot get it right, a CRF must learn the transitions."""
    torch.manual_seed(8)
    words = torch.tensor([[0, 1, 1], [2, 1, 0]])
    gold = torch.tensor([[0, 1, 2], [2, 0, -100]])
    lengths = torch.tensor([3, 2])
    emitter, crf = nn.Embedding(3, K), CRF(K)  # emissions (B, T, K): one free row per word
    optimizer = torch.optim.Adam([*emitter.parameters(), *crf.parameters()], lr=0.1)
    for _ in range(150):
        optimizer.zero_grad()
        loss = crf.nll(emitter(words), gold, lengths)
        loss.backward()
        optimizer.step()
    with torch.inference_mode():
        emissions = emitter(words)
        best = crf.decode(emissions, lengths)
    assert loss.item() < 0.05
    assert best.tolist() == [[0, 1, 2], [2, 0, 0]]
    per_token = emissions.argmax(-1)
    assert (per_token[0, 1:] == per_token[0, 1]).all()  # word 1 always gets the same tag
