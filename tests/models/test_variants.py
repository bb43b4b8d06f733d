"""Every variant axis of `ModelConfig` through the whole TransformerLM: invariants and fast/slow paths.

All 2160 combinations of the axes are too many; `VARIANTS` is an all-pairs covering design: every
value of every axis appears together with every value of every other axis in at least one
combination (so in particular every position × norm_position pair), in 30 combinations: the fewest
possible, since the 6 positions × 5 activations alone need 30.
"""

import itertools

import pytest
import torch
import torch.nn.functional as F

from seqlab.config.schema import ModelConfig
from seqlab.models.transformer import TransformerLM
from seqlab.nn.kv_cache import KVCache

V, BLOCK = 11, 12

AXES = {
    "position": ["learned", "sinusoidal", "rope", "alibi", "relative", "none"],
    "activation": ["relu", "gelu", "gelu_tanh", "swiglu", "geglu"],
    "norm_position": ["pre", "post", "deepnorm"],
    "n_kv_head": [0, 1, 2],
    "norm": ["layernorm", "rmsnorm"],
    "parallel_block": [False, True],
    "tie_embeddings": [True, False],
    "bias": [True, False],
}


def all_pairs(axes: dict[str, list]) -> list[dict]:
    """A deterministic greedy all-pairs design: start each combination from the first pair not yet
    covered, fill the other axes one by one with the value that covers the most new pairs (ties: the
    value used least so far), until every pair is covered."""
    names = list(axes)

    def pair(a, x, b, y):
        return ((a, x), (b, y)) if names.index(a) < names.index(b) else ((b, y), (a, x))

    uncovered = {pair(a, x, b, y) for a, b in itertools.combinations(names, 2) for x in axes[a] for y in axes[b]}
    used = {(name, value): 0 for name in names for value in axes[name]}
    design = []
    while uncovered:
        (a, x), (b, y) = min(uncovered, key=lambda p: (names.index(p[0][0]), names.index(p[1][0]), str(p)))
        combo = {a: x, b: y}
        for name in names:
            if name not in combo:
                combo[name] = max(axes[name], key=lambda v: (
                    sum(pair(n, combo[n], name, v) in uncovered for n in combo), -used[name, v]))
        design.append(combo)
        for name in names:
            used[name, combo[name]] += 1
        uncovered -= {pair(p, combo[p], q, combo[q]) for p, q in itertools.combinations(names, 2)}
    return design


VARIANTS = all_pairs(AXES)


def variant_id(v: dict) -> str:
    return "-".join([v["position"], v["activation"], v["norm"], v["norm_position"], f"kv{v['n_kv_head']}",
                     "par" if v["parallel_block"] else "seq", "tied" if v["tie_embeddings"] else "untied",
                     "bias" if v["bias"] else "nobias"])


def test_the_design_covers_every_pair():
    for (a, xs), (b, ys) in itertools.combinations(AXES.items(), 2):
        for x, y in itertools.product(xs, ys):
            assert any(v[a] == x and v[b] == y for v in VARIANTS), (a, x, b, y)
    assert len(VARIANTS) == 30
    for name, values in AXES.items():  # each value at least twice
        for value in values:
            assert sum(v[name] == value for v in VARIANTS) >= 2, (name, value)


def make_model(variant: dict, seed: int, *, dtype=torch.float64) -> TransformerLM:
    torch.manual_seed(seed)
    config = ModelConfig(n_layer=2, n_head=4, d_model=16, block_size=BLOCK, dropout=0.0, **variant)
    model = TransformerLM(config, vocab_size=V).to(dtype).eval()
    # Larger random weights than the initialisation: logits far from uniform, so that every path is tested
    # on a model whose outputs depend strongly on its inputs.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.normal_(0.0, 0.3)
            elif name.endswith("bias"):
                p.normal_(0.0, 0.1)
            else:  # norm gains
                p.normal_(1.0, 0.1)
    return model


CASES = [pytest.param(v, i % 2, id=f"{variant_id(v)}-seed{i % 2}") for i, v in enumerate(VARIANTS)]


def check_causal(model: TransformerLM, idx: torch.Tensor, times: list[int]) -> None:
    logits, _ = model(idx)
    T = idx.shape[1]
    for t in times:
        changed = idx.clone()
        changed[:, t + 1:] = (idx[:, t + 1:] + torch.randint(1, V, (idx.shape[0], T - t - 1))) % V  # all differ
        changed_logits, _ = model(changed)
        torch.testing.assert_close(changed_logits[:, :t + 1], logits[:, :t + 1])
        assert not torch.allclose(changed_logits[:, t + 1:], logits[:, t + 1:])


@pytest.mark.parametrize("variant,seed", CASES)
def test_causality(variant, seed):
    model = make_model(variant, seed)
    check_causal(model, torch.randint(0, V, (2, BLOCK)), [0, 4, BLOCK - 2])


@pytest.mark.parametrize("variant,seed", CASES)
def test_cached_chunks_equal_the_full_forward(variant, seed):
    model = make_model(variant, seed)
    idx = torch.randint(0, V, (2, BLOCK))
    with torch.no_grad():
        full, _ = model(idx)
        for chunks in [(1,) * BLOCK, (5, 3, 1, 3), (BLOCK,), (2, 10)]:
            cache = model.new_state(2, "cpu")
            pieces, start = [], 0
            for size in chunks:
                pieces.append(model(idx[:, start:start + size], cache=cache)[0])
                start += size
            assert cache.length == BLOCK
            torch.testing.assert_close(torch.cat(pieces, dim=1), full, msg=f"chunks {chunks}")


@pytest.mark.parametrize("variant,seed", CASES)
def test_greedy_generation_with_and_without_cache_is_identical(variant, seed):
    model = make_model(variant, seed)
    prompt = torch.randint(0, V, (2, 3))
    cached = model.generate(prompt, BLOCK - 3, temperature=0, use_cache=True)
    recomputed = model.generate(prompt, BLOCK - 3, temperature=0, use_cache=False)
    assert cached.shape == (2, BLOCK)
    assert torch.equal(cached, recomputed)
    # Greedy means the argmax of the full forward at each position.
    logits, _ = model(cached[:, :-1])
    assert torch.equal(logits[:, 2:].argmax(-1), cached[:, 3:])


@pytest.mark.parametrize("variant,seed", CASES)
def test_conditional_distributions_and_loss(variant, seed):
    model = make_model(variant, seed)
    idx, targets = torch.randint(0, V, (2, BLOCK)), torch.randint(0, V, (2, BLOCK))
    logits, loss = model(idx, targets)
    assert logits.shape == (2, BLOCK, V) and torch.isfinite(logits).all()
    log_probs = F.log_softmax(logits, dim=-1)
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(2, BLOCK, dtype=torch.float64))
    torch.testing.assert_close(loss, -log_probs.gather(-1, targets[..., None]).mean())


EXTRAPOLATING = [case for case in CASES if case.values[0]["position"] != "learned"]


@pytest.mark.parametrize("variant,seed", EXTRAPOLATING)
def test_sequences_beyond_block_size(variant, seed):
    model = make_model(variant, seed)
    assert model.max_context is None
    T = 3 * BLOCK
    idx = torch.randint(0, V, (1, T))
    check_causal(model, idx, [BLOCK + 3, 2 * BLOCK + 5])
    # A cache longer than block_size: chunked prefill still equals the one-shot forward.
    c = model.config
    cache = KVCache.empty(c.n_layer, 1, c.kv_heads, T, c.head_dim, dtype=torch.float64)
    with torch.no_grad():
        full, _ = model(idx)
        pieces = [model(idx[:, a:b], cache=cache)[0] for a, b in [(0, 7), (7, 30), (30, 31), (31, T)]]
    torch.testing.assert_close(torch.cat(pieces, dim=1), full)


@pytest.mark.parametrize("variant,seed", [c for c in CASES if c.values[0]["position"] == "learned"])
def test_learned_positions_refuse_sequences_beyond_block_size(variant, seed):
    model = make_model(variant, seed)
    assert model.max_context == BLOCK
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros(1, BLOCK + 1, dtype=torch.long))


TRAINED = {  # GPT-2's defaults train in tests/models/test_transformer.py
    "llama": {"position": "rope", "activation": "swiglu", "norm": "rmsnorm", "n_kv_head": 2, "bias": False,
              "tie_embeddings": False},
    "bloom_parallel": {"position": "alibi", "activation": "gelu", "parallel_block": True},
    "t5_post": {"position": "relative", "activation": "geglu", "norm": "rmsnorm", "norm_position": "post",
                "n_kv_head": 1},
    "deepnorm_nope": {"position": "none", "activation": "relu", "norm_position": "deepnorm"},
    "sinusoidal_mqa": {"position": "sinusoidal", "activation": "gelu_tanh", "norm": "rmsnorm", "n_kv_head": 1},
}


@pytest.mark.parametrize("name", list(TRAINED))
def test_a_few_steps_of_training_lower_the_loss(name):
    torch.manual_seed(0)
    config = ModelConfig(n_layer=2, n_head=4, d_model=32, block_size=16, dropout=0.0, **TRAINED[name])
    model = TransformerLM(config, vocab_size=V).train()
    pattern = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6])  # period 8: predictable after the first period
    stream = pattern.repeat(8)  # (64,)
    starts = torch.arange(0, 48, 3)  # 16 windows at different phases
    x = torch.stack([stream[s:s + 16] for s in starts])  # (16, 16)
    y = torch.stack([stream[s + 1:s + 17] for s in starts])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    losses = []
    for _ in range(30):
        _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], (name, losses[0], losses[-1])
