import pytest
import torch
from torch import nn

from seqlab.config.schema import ModelConfig
from seqlab.models.encoder import SequenceClassifier, TransformerEncoder, pool

V = 11


def make_encoder(seed: int, **axes) -> TransformerEncoder:
    torch.manual_seed(seed)
    config = ModelConfig(n_layer=2, n_head=4, d_model=16, block_size=12, **axes)
    return TransformerEncoder(config, V).double().eval()


AXES = [
    dict(),
    dict(position="rope", norm="rmsnorm", activation="swiglu", bias=False, n_kv_head=2),
    dict(position="alibi", norm_position="post"),
    dict(position="relative", norm="rmsnorm", activation="relu", n_kv_head=1),
    dict(position="sinusoidal", norm_position="deepnorm", activation="geglu"),
    dict(position="none", parallel_block=True),
]


@pytest.mark.parametrize("axes", AXES, ids=str)
@pytest.mark.parametrize("seed", [0, 1])
def test_padding_does_not_change_real_positions(seed, axes):
    encoder = make_encoder(seed, **axes)
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(V, (3, 9), generator=g)
    lengths = [9, 6, 3]
    mask = torch.arange(9)[None, :] < torch.tensor(lengths)[:, None]  # (B, T)
    states = encoder(idx, mask)
    for row, n in enumerate(lengths):
        alone = encoder(idx[row:row + 1, :n])  # the same sequence without any padding
        torch.testing.assert_close(states[row:row + 1, :n], alone)
        other = idx[row:row + 1].clone()
        other[:, n:] = (other[:, n:] + 1) % V  # different padding contents
        torch.testing.assert_close(encoder(other, mask[row:row + 1])[:, :n], alone)


@pytest.mark.parametrize("seed", [0, 1])
def test_encoder_is_bidirectional(seed):
    encoder = make_encoder(seed)
    idx = torch.randint(V, (1, 8), generator=torch.Generator().manual_seed(seed))
    changed = idx.clone()
    changed[0, -1] = (changed[0, -1] + 1) % V
    # The first position sees the last one: changing it changes the first state.
    assert not torch.allclose(encoder(idx)[0, 0], encoder(changed)[0, 0])


def test_encoder_layer_matches_torch_transformer_encoder_layer():
    """A post-LayerNorm ReLU block equals torch.nn.TransformerEncoderLayer with the same weights."""
    torch.manual_seed(0)
    encoder = make_encoder(0, norm_position="post", activation="relu", position="none")
    block = encoder.blocks[0]
    ref = nn.TransformerEncoderLayer(16, 4, dim_feedforward=64, dropout=0.0, activation="relu", batch_first=True,
                                     norm_first=False, dtype=torch.float64).eval()
    with torch.no_grad():
        ref.self_attn.in_proj_weight.copy_(block.attn.qkv.weight)
        ref.self_attn.in_proj_bias.copy_(block.attn.qkv.bias)
        ref.self_attn.out_proj.weight.copy_(block.attn.out.weight)
        ref.self_attn.out_proj.bias.copy_(block.attn.out.bias)
        ref.linear1.weight.copy_(block.mlp.up.weight)
        ref.linear1.bias.copy_(block.mlp.up.bias)
        ref.linear2.weight.copy_(block.mlp.down.weight)
        ref.linear2.bias.copy_(block.mlp.down.bias)
        for ours, theirs in ((block.norm1, ref.norm1), (block.norm2, ref.norm2)):
            theirs.weight.copy_(torch.randn(16).double())
            theirs.bias.copy_(torch.randn(16).double())
            ours.weight.copy_(theirs.weight)
            ours.bias.copy_(theirs.bias)
    x = torch.randn(2, 7, 16, dtype=torch.float64)
    mask = torch.tensor([[True] * 7, [True] * 4 + [False] * 3])
    from seqlab.nn.attention import attention_inputs
    inputs = attention_inputs(encoder.pos_emb, start=0, n_query=7, causal=False, padding_mask=mask,
                              device=x.device, dtype=x.dtype)
    expected = ref(x, src_key_padding_mask=~mask)  # torch: True = padding
    torch.testing.assert_close(block(x, inputs)[0, :], expected[0, :])
    torch.testing.assert_close(block(x, inputs)[1, :4], expected[1, :4])


def test_mean_pooling_ignores_padding_and_first_pooling_takes_position_zero():
    states = torch.arange(24, dtype=torch.float64).view(2, 3, 4)
    mask = torch.tensor([[True, True, False], [True, True, True]])
    torch.testing.assert_close(pool(states, mask, "mean"), torch.stack([states[0, :2].mean(0), states[1].mean(0)]))
    torch.testing.assert_close(pool(states, mask, "first"), states[:, 0])


@pytest.mark.parametrize("pooling", ["mean", "first"])
def test_classifier_learns_a_position_dependent_rule(pooling):
    """Class = whether token 1 occurs before token 2: needs order and attention across positions."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    config = ModelConfig(n_layer=2, n_head=2, d_model=32, block_size=8, position="learned")
    model = SequenceClassifier(TransformerEncoder(config, 5), 2, pooling=pooling)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)

    def batch(n: int):
        idx = torch.randint(3, 5, (n, 8), generator=g)
        first, second = torch.rand(n, generator=g).argsort(), None
        pos = torch.stack([torch.randperm(8, generator=g)[:2] for _ in range(n)])  # two distinct positions
        idx[torch.arange(n), pos[:, 0]] = 1
        idx[torch.arange(n), pos[:, 1]] = 2
        del first, second
        return idx, (pos[:, 0] < pos[:, 1]).long()

    x_test, y_test = batch(256)
    with torch.no_grad():
        before = (model.predict(x_test) == y_test).float().mean().item()
    for _ in range(150):
        x, y = batch(64)
        _, loss = model(x, targets=y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = (model.predict(x_test) == y_test).float().mean().item()
    assert after > 0.9 > before + 0.2 or after > 0.9, (before, after)


def test_classifier_rejects_bad_arguments():
    encoder = make_encoder(0)
    with pytest.raises(ValueError, match="classes"):
        SequenceClassifier(encoder, 1)
    with pytest.raises(ValueError, match="pooling"):
        SequenceClassifier(encoder, 2, pooling="max")
