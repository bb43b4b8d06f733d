"""MLPLM (Bengio et al. 2003): the vectorised windows equal a per-position loop; logits at t read only
x[t−K+1..t]; stepping equals the full forward; cached and recomputed generation agree; the loss
ignores −1 targets; the settings are checked."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from seqlab.errors import ConfigError
from seqlab.generate import generate
from seqlab.models.contract import LanguageModel
from seqlab.models.mlp import MLPLM, MLPConfig

VOCAB = 11

VARIANTS = {
    "bengio": dict(),
    "deep-relu-layernorm": dict(n_layer=3, activation="relu", norm="layernorm"),
    "direct-no-bias": dict(direct=True, bias=False),
    "one-token": dict(context=1),
}


def make_model(seed: int, **changes) -> MLPLM:
    torch.manual_seed(seed)
    config = MLPConfig(**{"context": 4, "d_embed": 5, "d_hidden": 16, **changes})
    return MLPLM(config, VOCAB).double().eval()


def slow_logits(model: MLPLM, idx: torch.Tensor) -> torch.Tensor:
    """The reference: one position at a time, the window built by hand, zeros before the start."""
    B, T = idx.shape
    K, E = model.context, model.config.d_embed
    rows = []
    for t in range(T):
        parts = []
        for s in range(t - K + 1, t + 1):
            if s < 0:
                parts.append(torch.zeros(B, E, dtype=torch.float64))
            else:
                parts.append(model.tok_emb.weight[idx[:, s]])  # (B, E)
        x = torch.cat(parts, dim=1)  # (B, K·E)
        h = x
        for layer in model.hidden:
            h = layer.activation(layer.norm(layer.linear(h)))
        logits = model.lm_head(h)
        if model.direct is not None:
            logits = logits + x @ model.direct.weight.T
        rows.append(logits)
    return torch.stack(rows, dim=1)  # (B, T, V)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("seed", [0, 1])
def test_forward_equals_the_per_position_loop(variant, seed):
    model = make_model(seed, **VARIANTS[variant])
    idx = torch.randint(VOCAB, (3, 9), generator=torch.Generator().manual_seed(seed))
    logits, _ = model(idx)
    assert logits.shape == (3, 9, VOCAB)
    with torch.no_grad():
        torch.testing.assert_close(logits, slow_logits(model, idx), rtol=0, atol=1e-10,
                                   msg=lambda m: f"seed {seed}, {variant}: {m}")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_logits_at_t_read_exactly_the_last_k_tokens(seed):
    model = make_model(seed, direct=True)
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(VOCAB, (2, 12), generator=g)
    logits, _ = model(idx)
    K = model.context
    for t in range(12):
        changed = idx.clone()
        outside = [s for s in range(12) if not t - K + 1 <= s <= t]
        if outside:
            changed[:, outside] = (idx[:, outside] + 1 + torch.randint(VOCAB - 1, (1,), generator=g)) % VOCAB
        inside = [s for s in range(max(0, t - K + 1), t + 1)]
        other = idx.clone()
        other[:, inside[0]] = (idx[:, inside[0]] + 1) % VOCAB
        assert torch.equal(model(changed)[0][:, t], logits[:, t]), f"seed {seed}, t {t}: reads outside its window"
        assert not torch.equal(model(other)[0][:, t], logits[:, t]), f"seed {seed}, t {t}: ignores its window"


@pytest.mark.parametrize("variant", VARIANTS)
def test_step_equals_forward_at_every_position(variant):
    model = make_model(3, **VARIANTS[variant])
    idx = torch.randint(VOCAB, (2, 10), generator=torch.Generator().manual_seed(3))
    full, _ = model(idx)  # (B, T, V)
    state = model.new_state(2)
    assert state.shape == (2, model.context) and state.dtype == torch.long
    for t in range(10):
        stepped, state = model.step(idx[:, t:t + 1], state)
        torch.testing.assert_close(stepped, full[:, t], rtol=0, atol=1e-10, msg=lambda m: f"{variant}, t {t}: {m}")
        recomputed, none = model.step(idx[:, : t + 1], None)
        assert none is None
        torch.testing.assert_close(recomputed, full[:, t], rtol=0, atol=1e-10)
    # A prefill of several tokens continues the same way.
    prefilled, state = model.step(idx[:, :6], model.new_state(2))
    torch.testing.assert_close(prefilled, full[:, 5], rtol=0, atol=1e-10)
    assert torch.equal(state, idx[:, 6 - model.context:6])


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("prompt_len", [1, 7])
def test_cached_generation_equals_recompute(variant, prompt_len):
    model = make_model(4, **VARIANTS[variant])
    prompt = torch.randint(VOCAB, (3, prompt_len), generator=torch.Generator().manual_seed(4))
    cached = generate(model, prompt, 20, temperature=0, use_cache=True)
    recomputed = generate(model, prompt, 20, temperature=0, use_cache=False)
    assert cached.shape == (3, prompt_len + 20)
    assert torch.equal(cached, recomputed), variant
    assert torch.equal(model.generate(prompt, 20, temperature=0), cached)


def test_score_is_the_log_probability_of_each_next_token():
    model = make_model(5)
    idx = torch.randint(VOCAB, (2, 8), generator=torch.Generator().manual_seed(5))
    scores = model.token_log_probs(idx)
    assert scores.shape == (2, 7)
    logits, _ = model(idx)
    for t in range(7):
        expected = logits[:, t].log_softmax(-1).gather(-1, idx[:, t + 1:t + 2]).squeeze(-1)
        torch.testing.assert_close(scores[:, t], expected, rtol=0, atol=1e-12)


def test_loss_ignores_minus_one_targets():
    model = make_model(6)
    g = torch.Generator().manual_seed(6)
    idx = torch.randint(VOCAB, (2, 6), generator=g)
    targets = torch.randint(VOCAB, (2, 6), generator=g)
    targets[0, :2] = -1
    targets[1, 4:] = -1
    logits, loss = model(idx, targets)
    keep = targets != -1
    expected = F.cross_entropy(logits[keep], targets[keep])
    torch.testing.assert_close(loss, expected, rtol=0, atol=1e-12)
    other = targets.clone()
    other[0, :2] = -1
    _, same = model(idx, other)
    assert torch.equal(loss, same)


def test_learns_a_pattern_with_falling_loss():
    torch.manual_seed(7)
    model = MLPLM(MLPConfig(context=2, d_embed=4, d_hidden=32, dropout=0.1), VOCAB)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-2)
    pattern = torch.tensor([1, 4, 2, 6, 5])
    g = torch.Generator().manual_seed(7)
    losses = []
    for _ in range(40):
        starts = torch.randint(5, (8,), generator=g)
        idx = torch.stack([pattern[(s + torch.arange(9)) % 5] for s in starts])  # (B, T+1)
        _, loss = model(idx[:, :-1], idx[:, 1:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-3:]) < 0.3 * sum(losses[:3]), losses[::5]


def test_zero_padding_gets_no_gradient():
    model = make_model(8)
    idx = torch.tensor([[3, 5]])
    _, loss = model(idx, torch.tensor([[5, 7]]))
    loss.backward()
    grad = model.tok_emb.weight.grad
    assert grad[0].abs().sum() == 0  # id 0 appears nowhere: the padding must not reach its row
    assert grad[3].abs().sum() > 0 and grad[5].abs().sum() > 0


def test_fulfils_the_contract():
    model = make_model(9, direct=True)
    assert isinstance(model, LanguageModel)
    assert model.block_size is None and model.context == 4
    keys = set(model.state_dict())
    assert {"tok_emb.weight", "hidden.0.linear.weight", "hidden.0.linear.bias", "lm_head.weight",
            "lm_head.bias", "direct.weight"} <= keys
    assert "direct.bias" not in keys
    layernorm = make_model(9, norm="layernorm", n_layer=2)
    assert {"hidden.1.norm.weight", "hidden.1.norm.bias"} <= set(layernorm.state_dict())


@pytest.mark.parametrize("key, value", [
    ("context", 0), ("block_size", 0), ("d_embed", 0), ("d_hidden", -1), ("n_layer", 0),
    ("dropout", 1.0), ("dropout", -0.1), ("activation", "gelu"), ("norm", "rmsnorm"), ("family", "rnn"),
])
def test_config_errors_name_the_key(key, value):
    with pytest.raises(ConfigError, match=f"model.{key}"):
        MLPConfig(**{key: value})


def test_config_is_frozen():
    config = MLPConfig()
    assert (config.family, config.context, config.d_embed, config.d_hidden) == ("mlp", 3, 10, 200)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.context = 5
