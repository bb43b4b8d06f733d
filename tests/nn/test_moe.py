"""The mixture of experts (`seqlab.nn.moe`) against a slow dense reference, its routing, its
load-balancing loss by hand, and the Transformer with `n_experts`: causality, the training loss,
cached decoding, and `n_experts = 0` as the dense model."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from seqlab.config.schema import EncoderDecoderConfig, ModelConfig
from seqlab.errors import ConfigError
from seqlab.models.encoder_decoder import EncoderDecoder
from seqlab.models.parts import build_feed_forward, build_mlp
from seqlab.models.transformer import TransformerLM
from seqlab.nn.feedforward import FeedForward, GatedFeedForward
from seqlab.nn.moe import (
    MixtureOfExperts,
    active_parameters,
    load_balancing_loss,
    recorded_router_logits,
    route,
)

V = 11
TINY = dict(n_layer=2, n_head=2, d_model=16, block_size=12)


def moe_config(**overrides) -> ModelConfig:
    return ModelConfig(**{**TINY, "n_experts": 4, "experts_per_token": 2, "activation": "swiglu", **overrides})


def reference(layer: MixtureOfExperts, x):
    """Every expert on every token, weighted by the renormalised probability of the k best experts
    of that token and 0 for the others: the slow dense loop the grouped computation replaces."""
    h = x.reshape(-1, x.shape[-1])
    probs = torch.softmax(layer.router(h).float(), dim=-1)  # (N, E)
    out = torch.zeros_like(h)
    for n in range(h.shape[0]):
        best = sorted(range(layer.n_experts), key=lambda e: -probs[n, e].item())[:layer.top_k]
        total = sum(probs[n, e] for e in best)
        for e, expert in enumerate(layer.experts):
            weight = probs[n, e] / total if e in best else 0.0
            out[n] += weight * expert(h[n:n + 1])[0]
    return out.view(x.shape)


ACTIVATIONS = ("relu", "gelu", "gelu_tanh", "swiglu", "geglu")


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("top_k", [1, 2, 3])
def test_grouped_experts_equal_the_dense_reference_loop(activation, top_k):
    seed = 10 * ACTIVATIONS.index(activation) + top_k
    torch.manual_seed(seed)
    config = ModelConfig(**TINY, n_experts=5, experts_per_token=top_k, activation=activation, bias=True)
    layer = build_mlp(config).double()
    assert isinstance(layer, MixtureOfExperts)
    assert type(layer.experts[0]) is type(build_feed_forward(config))
    with torch.no_grad():  # unit-scale router logits, so that the routing varies from token to token
        layer.router.weight.normal_(0.0, 1.0)
    x = torch.randn(3, 7, 16, dtype=torch.float64)
    torch.testing.assert_close(layer(x), reference(layer, x), atol=1e-6, rtol=1e-6, msg=lambda m: f"seed {seed}: {m}")


def test_each_expert_runs_once_on_the_tokens_routed_to_it():
    torch.manual_seed(1)
    layer = build_mlp(moe_config(n_experts=6, experts_per_token=2))
    with torch.no_grad():
        layer.router.weight.normal_(0.0, 1.0)
    x = torch.randn(4, 9, 16)
    seen = {}
    for e, expert in enumerate(layer.experts):
        expert.register_forward_hook(lambda _m, args, _out, e=e: seen.setdefault(e, []).append(args[0].shape[0]))
    ids, _ = route(layer.router(x.reshape(-1, 16)), 2)
    layer(x)
    counts = torch.bincount(ids.reshape(-1), minlength=6).tolist()
    assert {e: rows for e, rows in seen.items()} == {e: [c] for e, c in enumerate(counts) if c}
    assert sum(counts) == 4 * 9 * 2  # k rows per token, not E


@pytest.mark.parametrize("top_k", [1, 2, 4])
def test_route_keeps_the_k_most_probable_with_gates_summing_to_one(top_k):
    logits = torch.randn(50, 6, generator=torch.Generator().manual_seed(top_k)) * 3
    ids, gates = route(logits, top_k)
    assert ids.shape == gates.shape == (50, top_k) and gates.dtype == torch.float32
    torch.testing.assert_close(gates.sum(-1), torch.ones(50))
    assert (gates > 0).all() and (gates[:, :-1] >= gates[:, 1:]).all()
    assert all(len(set(row)) == top_k for row in ids.tolist())
    probs = torch.softmax(logits, dim=-1)
    chosen = probs.gather(-1, ids)  # every chosen expert at least as probable as every other one
    others = probs.masked_fill(torch.zeros_like(probs, dtype=torch.bool).scatter(-1, ids, True), -1.0)
    assert (chosen.min(-1).values >= others.max(-1).values).all()
    torch.testing.assert_close(gates, chosen / chosen.sum(-1, keepdim=True))


def test_load_balancing_loss_by_hand():
    ln3 = math.log(3.0)
    # Layer A: token 1 → probabilities (1/4, 3/4), picks expert 1; token 2 → (3/4, 1/4), picks 0.
    a = torch.tensor([[0.0, ln3], [ln3, 0.0]])
    # Layer B: both tokens (1/4, 3/4), both pick expert 1.
    b = torch.tensor([[0.0, ln3], [0.0, ln3]])
    # E · Σ f·P: A: f = (1/2, 1/2), P = (1/2, 1/2) → 2 · 1/2 = 1. B: f = (0, 1), P = (1/4, 3/4) → 3/2.
    torch.testing.assert_close(load_balancing_loss([a], 1), torch.tensor(1.0))
    torch.testing.assert_close(load_balancing_loss([b], 1), torch.tensor(1.5))
    # Pooled over both layers: f = (1/4, 3/4), P = (3/8, 5/8) → 2 · (3/32 + 15/32) = 9/8.
    torch.testing.assert_close(load_balancing_loss([a, b], 1), torch.tensor(9 / 8))
    # k = E: every token picks every expert, f = (1, 1), Σ P = 1 → E · 1 = 2 whatever the probabilities.
    torch.testing.assert_close(load_balancing_loss([a, b], 2), torch.tensor(2.0))


def test_training_loss_adds_the_weighted_aux_loss_and_evaluation_does_not():
    torch.manual_seed(2)
    model = TransformerLM(moe_config(router_aux_loss=0.05), V)
    x, y = torch.randint(0, V, (3, 12)), torch.randint(0, V, (3, 12))
    model.eval()
    lm = model(x, y)[1]
    torch.testing.assert_close(lm, F.cross_entropy(model(x)[0].reshape(-1, V), y.reshape(-1)))
    model.train()
    with recorded_router_logits(model) as logits:
        model(x)
    assert len(logits) == 2
    loss = model(x, y)[1]
    torch.testing.assert_close(loss, lm + 0.05 * load_balancing_loss(logits, 2))
    loss.backward()
    assert all(b.mlp.router.weight.grad.abs().sum() > 0 for b in model.blocks)
    assert not any(b.mlp.router._forward_hooks for b in model.blocks)  # the loss's hooks are gone
    no_aux = TransformerLM(moe_config(router_aux_loss=0.0), V).train()
    no_aux.load_state_dict(model.state_dict())
    torch.testing.assert_close(no_aux(x, y)[1], lm)


def test_causality_is_unchanged():
    torch.manual_seed(3)
    model = TransformerLM(moe_config(position="rope", norm="rmsnorm"), V).eval()
    with torch.no_grad():
        for b in model.blocks:
            b.mlp.router.weight.normal_(0.0, 1.0)
        x = torch.randint(0, V, (2, 12))
        changed = x.clone()
        changed[:, 7:] = (x[:, 7:] + 1) % V
        torch.testing.assert_close(model(x)[0][:, :7], model(changed)[0][:, :7])
        assert not torch.allclose(model(x)[0][:, 7:], model(changed)[0][:, 7:])


def test_cached_decoding_equals_recompute_and_falls_back_to_the_module_path():
    torch.manual_seed(4)
    model = TransformerLM(moe_config(position="rope", norm="rmsnorm", bias=False), V).eval()
    with torch.no_grad():
        for b in model.blocks:
            b.mlp.router.weight.normal_(0.0, 1.0)
    assert model.stepper() is model  # FunctionalStepper declares n_experts > 0 unhandled
    prompt = torch.randint(0, V, (2, 3))
    with torch.no_grad():
        state = model.new_state(2, "cpu")
        logits, state = model.step(prompt, state)
        seq = prompt
        while seq.shape[1] < model.block_size:
            torch.testing.assert_close(logits, model.step(seq, None)[0], atol=1e-5, rtol=1e-5)
            token = logits.argmax(-1, keepdim=True)
            seq = torch.cat([seq, token], dim=1)
            logits, state = model.step(token, state)
    cached = model.generate(prompt, 9, temperature=0)
    assert torch.equal(cached, seq)


def test_n_experts_zero_is_the_dense_model():
    dense, explicit = ModelConfig(**TINY), ModelConfig(**TINY, n_experts=0, experts_per_token=3, router_aux_loss=1.0)
    torch.manual_seed(5)
    a = TransformerLM(dense, V).train()
    torch.manual_seed(5)
    b = TransformerLM(explicit, V).train()
    assert type(a.blocks[0].mlp) is FeedForward and a.compiles_well
    assert list(a.state_dict()) == list(b.state_dict())
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    x = torch.randint(0, V, (2, 12))
    logits, loss = b(x, x)  # train mode, and no aux term however large its weight
    torch.testing.assert_close(loss, F.cross_entropy(logits.reshape(-1, V), x.reshape(-1)), atol=0, rtol=0)
    assert active_parameters(b) == sum(p.numel() for p in b.parameters())


def test_active_parameters_count_k_experts_per_layer():
    model = TransformerLM(moe_config(n_experts=8, experts_per_token=2, bias=False), V)
    per_expert = sum(p.numel() for p in model.blocks[0].mlp.experts[0].parameters())
    total = sum(p.numel() for p in model.parameters())
    assert active_parameters(model) == total - 2 * 6 * per_expert
    assert isinstance(model.blocks[0].mlp.experts[0], GatedFeedForward) and not model.compiles_well


def test_encoder_decoder_blocks_take_experts_too():
    torch.manual_seed(6)
    config = EncoderDecoderConfig(**TINY, n_experts=3, experts_per_token=1)
    model = EncoderDecoder(config, V, V)
    assert all(isinstance(b.mlp, MixtureOfExperts) for b in model.blocks)
    assert any(isinstance(m, MixtureOfExperts) for m in model.encoder.modules())
    src, tgt = torch.randint(0, V, (2, 6)), torch.randint(0, V, (2, 5))
    model.eval()
    logits, lm = model(src, tgt, targets=tgt)
    assert logits.shape == (2, 5, V)
    with recorded_router_logits(model) as router_logits:
        model(src, tgt)
    assert len(router_logits) == 2 * 2  # encoder and decoder layers
    model.train()
    torch.testing.assert_close(model(src, tgt, targets=tgt)[1],
                               lm + config.router_aux_loss * load_balancing_loss(router_logits, 1))


@pytest.mark.parametrize("overrides, message", [
    ({"n_experts": 4, "experts_per_token": 5}, r"model\.experts_per_token = 5 .* from 1 to model\.n_experts = 4"),
    ({"n_experts": 4, "experts_per_token": 0}, r"model\.experts_per_token = 0"),
    ({"n_experts": -1}, r"model\.n_experts = -1 .* at least 0"),
    ({"router_aux_loss": -0.1}, r"model\.router_aux_loss = -0\.1"),
])
def test_bad_settings_are_refused(overrides, message):
    with pytest.raises(ConfigError, match=message):
        ModelConfig(**TINY, **overrides)


def test_router_choices_are_observable_and_nothing_stays_hooked():
    torch.manual_seed(7)
    model = TransformerLM(moe_config(), V).eval()
    x = torch.randint(0, V, (2, 12))
    with torch.no_grad(), recorded_router_logits(model) as logits:
        model(x)
    ids, gates = route(logits[0], 2)
    assert ids.shape == (2 * 12, 2) and logits[0].shape == (24, 4)
    assert not any(m._forward_hooks for m in model.modules())
