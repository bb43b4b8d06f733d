"""The linear-chain CRF against brute-force enumeration of every tag sequence: log Z, the
probability of the gold tags, and the Viterbi path (decoded by the HMM's compiled kernel)."""

from __future__ import annotations

import itertools

import pytest
import torch

from seqlab.models.crf import LinearChainCRF


def random_crf(seed: int, K: int = 3) -> LinearChainCRF:
    crf = LinearChainCRF(K).double()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in crf.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator, dtype=torch.float64))
    return crf


def brute_force(crf: LinearChainCRF, emissions: torch.Tensor) -> tuple[torch.Tensor, list[int], dict]:
    """log Z, the best path and every path's score for one sequence's emissions (T, K)."""
    T, K = emissions.shape
    scores = {}
    for path in itertools.product(range(K), repeat=T):
        tags = torch.tensor([path])
        mask = torch.ones(1, T, dtype=torch.bool)
        scores[path] = crf.score(emissions[None], tags, mask)[0]
    values = torch.stack(list(scores.values()))
    best = max(scores, key=lambda path: scores[path].item())
    return torch.logsumexp(values, 0), list(best), scores


@pytest.mark.parametrize("seed", [0, 1])
def test_log_partition_and_viterbi_equal_enumeration(seed):
    crf = random_crf(seed)
    generator = torch.Generator().manual_seed(100 + seed)
    lengths = [4, 2, 5]
    emissions = torch.randn(3, 5, 3, generator=generator, dtype=torch.float64)
    mask = torch.arange(5)[None, :] < torch.tensor(lengths)[:, None]
    log_z = crf.log_partition(emissions, mask)
    before = emissions.clone()
    decoded = crf.decode(emissions, mask)
    assert torch.equal(emissions, before)  # decoding leaves the caller's scores alone
    for b, n in enumerate(lengths):
        expected_z, best, scores = brute_force(crf, emissions[b, :n])
        torch.testing.assert_close(log_z[b], expected_z)
        assert decoded[b] == best
        # the padding beyond a row's length changes nothing
        assert len(decoded[b]) == n


def test_probabilities_sum_to_one_and_nll_is_positive():
    crf = random_crf(3)
    emissions = torch.randn(1, 4, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    mask = torch.ones(1, 4, dtype=torch.bool)
    log_z, _, scores = brute_force(crf, emissions[0])
    total = sum(torch.exp(score - log_z) for score in scores.values())
    torch.testing.assert_close(total, torch.tensor(1.0, dtype=torch.float64))
    tags = torch.tensor([[0, 2, 1, 1]])
    nll = crf.nll(emissions, tags, mask)
    torch.testing.assert_close(nll[0], log_z - scores[(0, 2, 1, 1)])
    assert nll.item() > 0


def test_training_the_transitions_learns_a_forbidden_move():
    """Tags that never follow each other in the data get a low transition score."""
    torch.manual_seed(0)
    crf = LinearChainCRF(2)
    emissions = torch.zeros(8, 6, 2)
    tags = torch.tensor([[0, 0, 1, 1, 1, 1]] * 8)  # 1 is never followed by 0
    mask = torch.ones(8, 6, dtype=torch.bool)
    optimizer = torch.optim.Adam(crf.parameters(), lr=0.1)
    for _ in range(100):
        optimizer.zero_grad()
        crf.nll(emissions, tags, mask).mean().backward()
        optimizer.step()
    assert crf.transitions[1, 0] < crf.transitions[1, 1] - 1.0
    assert crf.decode(emissions[:1], mask[:1])[0] in ([0, 0, 1, 1, 1, 1], [0, 0, 0, 1, 1, 1], [0, 1, 1, 1, 1, 1],
                                                      [0, 0, 0, 0, 1, 1], [0, 0, 0, 0, 0, 1], [1] * 6, [0] * 6)
