"""Pooling for sequence classification: each way against a per-row loop that slices the real
positions, padding never changes the result, and attention weights are a distribution."""

from __future__ import annotations

import pytest
import torch

from seqlab.nn.pooling import AttentionPooling, build_pooling


def batch(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    h = torch.randn(3, 6, 5, generator=generator, dtype=torch.float64)
    lengths = torch.tensor([6, 2, 4])
    mask = torch.arange(6)[None] < lengths[:, None]
    return h, mask, lengths


@pytest.mark.parametrize("kind", ["last", "mean", "first", "attention"])
def test_pooling_equals_a_loop_over_real_positions_and_ignores_padding(kind):
    torch.manual_seed(0)
    pool = build_pooling(kind, 5).double()
    h, mask, lengths = batch()
    pooled = pool(h, mask)
    for b, n in enumerate(lengths.tolist()):
        alone = pool(h[b:b + 1, :n], torch.ones(1, n, dtype=torch.bool))[0]
        torch.testing.assert_close(pooled[b], alone)
    noisy = h.clone()
    noisy[~mask] = 1e3  # garbage in the padding
    torch.testing.assert_close(pool(noisy, mask), pooled)


def test_reference_values_of_last_mean_first():
    h, mask, _ = batch(1)
    torch.testing.assert_close(build_pooling("last", 5)(h, mask)[1], h[1, 1])
    torch.testing.assert_close(build_pooling("mean", 5)(h, mask)[2], h[2, :4].mean(0))
    torch.testing.assert_close(build_pooling("first", 5)(h, mask), h[:, 0])


def test_attention_weights_are_a_distribution_over_real_positions():
    torch.manual_seed(1)
    pool = AttentionPooling(5).double()
    h, mask, _ = batch(2)
    weights = pool.weights(h, mask)
    torch.testing.assert_close(weights.sum(1), torch.ones(3, dtype=torch.float64))
    assert (weights[~mask] == 0).all() and (weights[mask] > 0).all()
