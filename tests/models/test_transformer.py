import contextlib

import pytest
import torch
import torch.nn.functional as F

from seqlab.config.schema import ModelConfig
from seqlab.models.transformer import TransformerLM

V = 11


def make_model(seed: int, *, dtype=torch.float64, **overrides) -> TransformerLM:
    torch.manual_seed(seed)
    fields = {"n_layer": 2, "n_head": 2, "d_model": 16, "block_size": 16, "dropout": 0.0, "bias": True} | overrides
    model = TransformerLM(ModelConfig(**fields), vocab_size=V).to(dtype).eval()
    if fields["bias"]:  # GPT-2 init zeroes biases; random ones make the parity tests see them
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith("bias"):
                    p.normal_(0.0, 0.1)
    return model


@contextlib.contextmanager
def explicit_attention(model: TransformerLM):
    """Force every attention layer onto its explicit path, the way inspection does: with hooks."""
    def force(module, args, kwargs):
        return args, {**kwargs, "need_weights": True}

    handles = [block.attn.register_forward_pre_hook(force, with_kwargs=True) for block in model.blocks]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@pytest.mark.parametrize("seed", [0, 1])
def test_causality(seed):
    model = make_model(seed)
    idx = torch.randint(0, V, (2, 12))
    logits, _ = model(idx)
    for t in (0, 5, 10):
        changed = idx.clone()
        changed[:, t + 1:] = torch.randint(0, V, (2, 11 - t))
        changed_logits, _ = model(changed)
        torch.testing.assert_close(changed_logits[:, :t + 1], logits[:, :t + 1])
    assert not torch.allclose(changed_logits[:, 11:], logits[:, 11:])


@pytest.mark.parametrize("seed", [0, 1])
def test_fast_path_equals_explicit_path_float32(seed):
    model = make_model(seed, dtype=torch.float32)
    idx = torch.randint(0, V, (3, 16))
    fast, _ = model(idx)
    with explicit_attention(model):
        explicit, _ = model(idx)
    torch.testing.assert_close(fast, explicit, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("seed", [0, 1])
def test_loss_is_mean_cross_entropy_with_ignored_positions(seed):
    model = make_model(seed)
    idx, targets = torch.randint(0, V, (2, 8)), torch.randint(0, V, (2, 8))
    targets[0, :3] = -1
    logits, loss = model(idx, targets)
    keep = targets != -1
    torch.testing.assert_close(loss, F.cross_entropy(logits[keep], targets[keep]))


def test_last_only_equals_the_last_position():
    model = make_model(0)
    idx = torch.randint(0, V, (2, 9))
    full, _ = model(idx)
    last, loss = model(idx, last_only=True)
    assert last.shape == (2, 1, V) and loss is None
    torch.testing.assert_close(last, full[:, -1:])
    with pytest.raises(ValueError, match="last_only"):
        model(idx, idx, last_only=True)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("chunks", [(1,) * 16, (5, 3, 1, 1, 4, 2), (16,), (8, 8)])
def test_cached_chunks_equal_full_sequence_logits(seed, chunks):
    model = make_model(seed)
    idx = torch.randint(0, V, (2, 16))
    full, _ = model(idx)
    cache = model.new_state(2, "cpu")
    pieces, start = [], 0
    for size in chunks:
        logits, _ = model(idx[:, start:start + size], cache=cache)
        start += size
        assert cache.length == start
        pieces.append(logits)
    torch.testing.assert_close(torch.cat(pieces, dim=1), full)


def test_step_protocol_returns_last_logits_and_advances_the_state():
    model = make_model(0)
    idx = torch.randint(0, V, (1, 7))
    full, _ = model(idx)
    state = model.new_state(1, "cpu")
    logits, state = model.step(idx[:, :6], state)
    torch.testing.assert_close(logits, full[:, 5])
    logits, state = model.step(idx[:, 6:], state)
    torch.testing.assert_close(logits, full[:, 6])
    assert state.length == 7
    stateless, none = model.step(idx, None)
    assert none is None
    torch.testing.assert_close(stateless, full[:, 6])


def test_context_beyond_block_size_is_an_error():
    model = make_model(0)
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros(1, 17, dtype=torch.long))
    cache = model.new_state(1, "cpu")
    model(torch.zeros(1, 10, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros(1, 7, dtype=torch.long), cache=cache)


def test_overfits_a_tiny_batch():
    torch.manual_seed(0)
    model = TransformerLM(ModelConfig(n_layer=2, n_head=2, d_model=32, block_size=16, bias=False), vocab_size=V)
    idx = torch.randint(0, V, (4, 17))
    x, y = idx[:, :-1], idx[:, 1:]
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    model.train()
    for _ in range(200):
        _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05, loss.item()


def test_token_embedding_and_output_layer_share_storage():
    model = make_model(0)
    assert model.lm_head.weight is model.tok_emb.weight
    state = model.state_dict()
    assert state["lm_head.weight"].data_ptr() == state["tok_emb.weight"].data_ptr()


@pytest.mark.parametrize("bias", [True, False])
def test_parameter_count_matches_the_formula(bias):
    L, D, T = 3, 24, 10
    model = TransformerLM(ModelConfig(n_layer=L, n_head=4, d_model=D, block_size=T, bias=bias), vocab_size=V)
    b = 1 if bias else 0
    per_block = (
        2 * (D + b * D)  # two LayerNorms
        + 3 * D * D + b * 3 * D  # qkv
        + D * D + b * D  # attention output
        + 4 * D * D + b * 4 * D  # mlp up
        + 4 * D * D + b * D  # mlp down
    )
    expected = V * D + T * D + L * per_block + (D + b * D)  # lm_head is tok_emb
    assert model.num_parameters() == expected
    assert model.num_parameters(non_embedding=True) == expected - T * D


def test_state_dict_keys_are_the_documented_api():
    model = make_model(0, n_layer=1)
    expected = {
        "tok_emb.weight", "pos_emb.weight", "norm_f.weight", "norm_f.bias", "lm_head.weight",
        "blocks.0.norm1.weight", "blocks.0.norm1.bias", "blocks.0.norm2.weight", "blocks.0.norm2.bias",
        "blocks.0.attn.qkv.weight", "blocks.0.attn.qkv.bias", "blocks.0.attn.out.weight", "blocks.0.attn.out.bias",
        "blocks.0.mlp.up.weight", "blocks.0.mlp.up.bias", "blocks.0.mlp.down.weight", "blocks.0.mlp.down.bias",
    }
    assert set(model.state_dict()) == expected


def test_gpt2_initialisation():
    torch.manual_seed(0)
    L = 4
    model = TransformerLM(ModelConfig(n_layer=L, n_head=4, d_model=128, block_size=64, bias=True), vocab_size=500)
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            assert torch.all(p == 0), name
        elif ".norm" in name or name.startswith("norm_f"):
            assert torch.all(p == 1), name
        else:
            residual = name.endswith(("attn.out.weight", "mlp.down.weight"))
            std = 0.02 / (2 * L) ** 0.5 if residual else 0.02
            assert abs(p.std().item() - std) < 0.1 * std, name
            assert abs(p.mean().item()) < 0.1 * std, name


def test_dropout_is_active_only_in_training():
    model = make_model(0, dtype=torch.float32, dropout=0.3)
    idx = torch.randint(0, V, (2, 8))
    torch.testing.assert_close(model(idx)[0], model(idx)[0])
    model.train()
    assert not torch.equal(model(idx)[0], model(idx)[0])
