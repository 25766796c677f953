"""A linear-chain CRF output layer: scores whole tag sequences, not single tags.

A per-token softmax picks each tag from its own emission scores, independently of its
neighbours, so nothing stops it from predicting a sequence that never occurs (``DET``
followed by ``VERB`` ...). The CRF adds a ``(K, K)`` table of transition scores (and
scores for the first and last tag), trains by the probability of the whole gold
sequence among all ``K ** n`` sequences, and decodes the single best sequence.

For one sentence of ``n`` tokens with emissions ``E`` (n, K) (the encoder's scores),
transitions ``A``, and a tag path ``y_1 .. y_n``::

    s(y)        = start[y_1] + sum_{t=1..n} E[t, y_t] + sum_{t=2..n} A[y_{t-1}, y_t] + end[y_n]
    p(y | x)    = exp(s(y)) / Z,          Z = sum over all paths y' of exp(s(y'))

``log Z`` by the forward algorithm, in log space so that nothing overflows::

    alpha_1[k]  = start[k] + E[1, k]
    alpha_t[k]  = E[t, k] + logsumexp_j (alpha_{t-1}[j] + A[j, k])
    log Z       = logsumexp_k (alpha_n[k] + end[k])

Viterbi is the same recursion with ``max`` in place of ``logsumexp``,
``delta_t[k] = E[t, k] + max_j (delta_{t-1}[j] + A[j, k])``, keeping the arg-max ``j``
of every step as a back-pointer; the best path ends at ``argmax_k (delta_n[k] + end[k])``
and is read back through the pointers.

Marginals by forward-backward, with ``beta_n[k] = end[k]`` and
``beta_t[j] = logsumexp_k (A[j, k] + E[t+1, k] + beta_{t+1}[k])``::

    p(y_t = k | x) = exp(alpha_t[k] + beta_t[k] - log Z)

which is also ``d log Z / d E[t, k]``. The code subtracts each ``alpha_t`` and ``beta_t``
row's own logsumexp as it goes (adding the alpha shifts back into ``log Z``), and
normalises ``alpha_t + beta_t`` over the tags instead of subtracting ``log Z``: the
values stay near 0 even when ``log Z`` runs into the thousands, so float32 marginals
keep their precision.

Batches hold sentences of different lengths, padded to ``T``. Every method masks with
``torch.where`` (never by multiplying), emissions at padded positions are replaced by 0
before any arithmetic, and at a padded step the recursions keep the previous value, so
padding (whatever it holds, even ``inf``) never changes a real sentence's result.
Cost is ``O(B T K^2)``; the only Python loop runs over the ``T`` time steps. In training's
forward algorithm each step's ``logsumexp_j`` is one ``(B, K) @ (K, K)`` matrix product of
``exp(alpha_{t-1})`` (a distribution, since alpha is normalised) with ``exp(A)`` shifted per
column (see ``_forward``): half the time of the broadcast ``(B, K, K)`` logsumexp at EWT's 49
XPOS tags.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lstm_tagger.model.cells import length_mask


class CRF(nn.Module):
    """Transition, start and end scores over ``num_tags`` tags, plus the CRF algorithms.

    ``transitions[i, j]`` is the score of tag ``i`` followed by tag ``j``; ``start[k]``
    the score of a sentence starting with tag ``k``; ``end[k]`` of one ending with it.
    All three start at zero, so an untrained CRF decodes like a per-token argmax.
    """

    def __init__(self, num_tags: int):
        super().__init__()
        self.num_tags = num_tags
        self.transitions = nn.Parameter(torch.zeros(num_tags, num_tags))
        self.start = nn.Parameter(torch.zeros(num_tags))
        self.end = nn.Parameter(torch.zeros(num_tags))

    def _prepare(self, emissions: torch.Tensor, lengths: torch.Tensor):
        """emissions (B, T, K), lengths (B,) -> emissions with padding set to 0, mask (B, T)
        bool, transitions (K, K), start (K,), end (K,), all in one common float dtype."""
        dtype = torch.promote_types(emissions.dtype, self.transitions.dtype)
        lengths = lengths.to(emissions.device)
        mask = length_mask(lengths, emissions.size(1))
        emissions = torch.where(mask.unsqueeze(2), emissions.to(dtype), 0.0)
        return (emissions, mask, self.transitions.to(dtype), self.start.to(dtype),
                self.end.to(dtype))

    def _forward(self, emissions, mask, transitions, start):
        """Prepared inputs -> (alphas, log_scale): alphas is T tensors (B, K), alpha_t minus
        its own logsumexp (carried unchanged through padding), and log_scale (B,) is the sum
        of what was subtracted, so log Z = log_scale + logsumexp(alphas[-1] + end)."""
        alpha = start + emissions[:, 0]
        log_scale = torch.logsumexp(alpha, dim=1)
        alpha = alpha - log_scale.unsqueeze(1)
        alphas = [alpha]
        # logsumexp_j (alpha[j] + A[j, k]) as a matrix product in probability space: exp(alpha)
        # is a distribution (alpha is normalised), and each column of A is shifted by its
        # maximum so that exp(A - shift) <= 1 (one (B, K) @ (K, K) product per step instead of a
        # (B, K, K) tensor). A column sum underflows only if a column's scores spread by ~80;
        # the clamp then keeps its log finite.
        shift = transitions.detach().amax(dim=0)  # (K,)
        weights = torch.exp(transitions - shift)  # (K, K)
        tiny = torch.finfo(weights.dtype).tiny
        for t in range(1, emissions.size(1)):
            step = torch.log((alpha.exp() @ weights).clamp_min(tiny)) + shift
            step = step + emissions[:, t]
            norm = torch.logsumexp(step, dim=1)  # (B,)
            real = mask[:, t]
            alpha = torch.where(real.unsqueeze(1), step - norm.unsqueeze(1), alpha)
            log_scale = log_scale + torch.where(real, norm, 0.0)
            alphas.append(alpha)
        return alphas, log_scale

    def log_partition(self, emissions: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """emissions (B, T, K), lengths (B,) int64 -> (B,) log Z of each sentence."""
        emissions, mask, transitions, start, end = self._prepare(emissions, lengths)
        alphas, log_scale = self._forward(emissions, mask, transitions, start)
        return log_scale + torch.logsumexp(alphas[-1] + end, dim=1)

    def path_score(self, emissions: torch.Tensor, tags: torch.Tensor,
                   lengths: torch.Tensor) -> torch.Tensor:
        """emissions (B, T, K), tags (B, T) int64 (any value past the length), lengths (B,)
        -> (B,) score s(y) of each sentence's tag path."""
        emissions, mask, transitions, start, end = self._prepare(emissions, lengths)
        tags = torch.where(mask, tags.to(emissions.device), 0)
        emitted = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)  # (B, T); 0 at padding
        moves = transitions[tags[:, :-1], tags[:, 1:]]  # (B, T - 1)
        moves = torch.where(mask[:, 1:], moves, 0.0)
        last = tags.gather(1, (mask.sum(1) - 1).unsqueeze(1)).squeeze(1)  # (B,)
        return start[tags[:, 0]] + emitted.sum(1) + moves.sum(1) + end[last]

    def nll(self, emissions: torch.Tensor, tags: torch.Tensor,
            lengths: torch.Tensor) -> torch.Tensor:
        """emissions (B, T, K) float, tags (B, T) int64 (-100 past the length), lengths (B,)
        int64, all >= 1 -> scalar: sum over sentences of (log Z - s(gold)) divided by the
        number of real tokens, on the scale of a per-token NLLLoss mean."""
        lengths = lengths.to(emissions.device)
        loss = self.log_partition(emissions, lengths) - self.path_score(emissions, tags, lengths)
        return loss.sum() / lengths.sum()

    def decode(self, emissions: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Viterbi. emissions (B, T, K), lengths (B,) -> (B, T) int64 best path; 0 past
        the length."""
        emissions, mask, transitions, start, end = self._prepare(emissions, lengths)
        batch, total, num_tags = emissions.shape
        identity = torch.arange(num_tags, device=emissions.device).expand(batch, num_tags)
        score = start + emissions[:, 0]
        pointers = []  # pointers[t - 1][b, k]: best tag at t - 1 given tag k at t
        for t in range(1, total):
            best, previous = (score.unsqueeze(2) + transitions.unsqueeze(0)).max(dim=1)
            real = mask[:, t].unsqueeze(1)
            score = torch.where(real, best + emissions[:, t], score)
            # At padding the pointer is the identity, so the final tag walks back unchanged
            # to the sentence's last real position.
            pointers.append(torch.where(real, previous, identity))
        tag = (score + end).argmax(dim=1)  # (B,)
        path = [tag]
        for previous in reversed(pointers):
            tag = previous.gather(1, tag.unsqueeze(1)).squeeze(1)
            path.append(tag)
        path = torch.stack(path[::-1], dim=1)  # (B, T)
        return torch.where(mask, path, 0)

    def marginals(self, emissions: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Forward-backward. emissions (B, T, K), lengths (B,) -> (B, T, K) log p(y_t = k | x).

        Each real row logsumexps to 0. Rows past the length hold log(1/K) (a uniform
        distribution), so every row is a valid log distribution and nothing is -inf.
        """
        emissions, mask, transitions, start, end = self._prepare(emissions, lengths)
        alphas, _ = self._forward(emissions, mask, transitions, start)
        beta = end.expand_as(alphas[-1])
        betas = [beta]
        for t in range(emissions.size(1) - 2, -1, -1):
            # (1, K, K) + (B, 1, K) -> (B, K, K), then sum out the next tag (dim 2).
            ahead = (emissions[:, t + 1] + beta).unsqueeze(1)
            step = torch.logsumexp(transitions.unsqueeze(0) + ahead, dim=2)
            step = step - torch.logsumexp(step, dim=1, keepdim=True)
            # Position t is the last real one (or padding) when t + 1 is padding.
            beta = torch.where(mask[:, t + 1].unsqueeze(1), step, end)
            betas.append(beta)
        # alpha_t and beta_t are each off by a constant per sentence and step, so normalise
        # the sum over tags instead of subtracting log Z.
        log_marginals = torch.stack(alphas, dim=1) + torch.stack(betas[::-1], dim=1)
        log_marginals = log_marginals - torch.logsumexp(log_marginals, dim=2, keepdim=True)
        return torch.where(mask.unsqueeze(2), log_marginals, -math.log(self.num_tags))


def decode_tags(
    emissions: torch.Tensor, lengths: torch.Tensor, crf: CRF | None, scores: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """emissions (B, T, K), lengths (B,) -> (B, T) int64 best tags (argmax per token, or Viterbi
    with ``crf``) and, when ``scores``, (B, T, K) log-probabilities (log_softmax, or ``crf``'s
    marginals; else None). The one decoder of the tagger and of exported files."""
    if crf is not None:
        return crf.decode(emissions, lengths), crf.marginals(emissions, lengths) if scores else None
    return emissions.argmax(dim=-1), torch.log_softmax(emissions, dim=-1) if scores else None
