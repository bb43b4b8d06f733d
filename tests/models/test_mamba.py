"""Mamba (seqlab.models.mamba): the chunked selective scan and its hand-written backward equal the
step-by-step recurrence through autograd, the parallel forward equals step-by-step decoding (logits
and greedy tokens), a step of several tokens equals one token at a time, causality, the decoding
state's size, and the settings' checks."""

import pytest
import torch

from seqlab.errors import ConfigError
from seqlab.models.contract import LanguageModel
from seqlab.models.mamba import MambaConfig, MambaLM, reference_scan, selective_scan

TINY = dict(n_layer=2, d_model=16, d_state=4, d_conv=3, expand=2, chunk_size=4)


def tiny(seed: int = 0, dtype=torch.float32, **overrides) -> MambaLM:
    torch.manual_seed(seed)
    return MambaLM(MambaConfig(**{**TINY, **overrides}), vocab_size=11).to(dtype).eval()


def tokens(seed: int, shape=(2, 19)) -> torch.Tensor:
    return torch.randint(0, 11, shape, generator=torch.Generator().manual_seed(seed))


def scan_inputs(seed: int, dtype, T: int = 37):
    """Inputs of the selective scan (B 3, E 5, N 4) with Mamba's ranges: Δ > 0, A < 0 (so that Δ·A
    reaches about -4 per step), B, C, u and h0 of both signs; every one requires a gradient."""
    g = torch.Generator().manual_seed(seed)
    delta = torch.rand(3, T, 5, generator=g, dtype=dtype)
    A = -4 * torch.rand(5, 4, generator=g, dtype=dtype)
    B, C = (torch.randn(3, T, 4, generator=g, dtype=dtype) for _ in range(2))
    u = torch.randn(3, T, 5, generator=g, dtype=dtype)
    h0 = torch.randn(3, 5, 4, generator=g, dtype=dtype)
    return [t.requires_grad_() for t in (delta, A, B, C, u, h0)]


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
@pytest.mark.parametrize("chunk", [1, 4, 8, 37, 64])
def test_chunked_scan_equals_the_reference(dtype, tol, chunk):
    inputs = scan_inputs(chunk, dtype)
    for ours, reference in zip(selective_scan(*inputs, chunk), reference_scan(*inputs)):
        torch.testing.assert_close(ours, reference, atol=tol, rtol=tol, msg=lambda m: f"seed {chunk}: {m}")


@pytest.mark.parametrize("T, chunk", [(13, 1), (13, 4), (12, 4), (13, 13), (13, 64), (1, 4)])
def test_chunked_scan_gradients_equal_the_reference(T, chunk):
    """The hand-written backward against autograd through the step-by-step reference, for every
    input, with a loss on both the outputs and the final state; T a multiple of the chunk or not."""
    inputs = scan_inputs(T, torch.float64, T=T)
    g = torch.Generator().manual_seed(2)
    w_y, w_h = torch.randn(3, T, 5, generator=g, dtype=torch.float64), torch.randn(3, 5, 4, generator=g,
                                                                                  dtype=torch.float64)
    grads = []
    for scan in (lambda *a: selective_scan(*a, chunk), reference_scan):
        y, h = scan(*inputs)
        grads.append(torch.autograd.grad((y * w_y).sum() + (h * w_h).sum(), inputs))
    for name, ours, reference in zip(("delta", "A", "B", "C", "u", "h0"), *grads):
        torch.testing.assert_close(ours, reference, atol=1e-10, rtol=1e-10, msg=lambda m: f"d{name}: {m}")


def test_chunk_size_does_not_change_the_model():
    x = tokens(3)
    with torch.no_grad():
        reference = tiny(3, torch.float64, chunk_size=1)(x)[0]
        for chunk in (3, 8, 64):
            torch.testing.assert_close(tiny(3, torch.float64, chunk_size=chunk)(x)[0], reference,
                                       atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("seed", [0, 1])
def test_parallel_forward_equals_step_by_step_decoding(seed):
    model, x = tiny(seed), tokens(seed)
    with torch.no_grad():
        full = model(x)[0]  # (B, T, V)
        state, steps = model.new_state(x.shape[0]), []
        for t in range(x.shape[1]):
            logits, state = model.step(x[:, t:t + 1], state)
            steps.append(logits)
    torch.testing.assert_close(torch.stack(steps, dim=1), full, atol=1e-5, rtol=1e-5)


def test_a_step_of_several_tokens_equals_one_at_a_time():
    model, x = tiny(4, torch.float64), tokens(4)
    with torch.no_grad():
        prefill, state = model.step(x[:, :11], model.new_state(2))
        logits, state = model.step(x[:, 11:], state)  # the prefill's state continued by 8 tokens
        one = model.new_state(2)
        for t in range(x.shape[1]):
            expected, one = model.step(x[:, t:t + 1], one)
    torch.testing.assert_close(logits, expected, atol=1e-10, rtol=1e-10)
    for ours, reference in zip(state, one):
        torch.testing.assert_close(ours, reference, atol=1e-10, rtol=1e-10)


def test_greedy_decoding_with_state_equals_recompute():
    model, prompt = tiny(5), tokens(5, (2, 4))
    cached = model.generate(prompt, 24, temperature=0)
    recomputed = model.generate(prompt, 24, temperature=0, use_cache=False)
    assert cached.shape == (2, 28) and torch.equal(cached, recomputed)


def test_causal():
    model, x = tiny(6), tokens(6)
    changed = x.clone()
    changed[:, 12:] = (changed[:, 12:] + 1) % 11
    with torch.no_grad():
        a, b = model(x)[0], model(changed)[0]
    torch.testing.assert_close(a[:, :12], b[:, :12], atol=0, rtol=0)
    assert not torch.allclose(a[:, 12:], b[:, 12:])


def test_the_state_carries_across_windows():
    """Two windows with the state carried give the logits of one window over both."""
    model, x = tiny(7, torch.float64), tokens(7)
    with torch.no_grad():
        first, _, state = model(x[:, :8], return_state=True)
        second = model(x[:, 8:], state=state)[0]
        torch.testing.assert_close(torch.cat([first, second], dim=1), model(x)[0], atol=1e-10, rtol=1e-10)


def test_contract_and_state_size():
    model = tiny(8)
    assert isinstance(model, LanguageModel) and model.block_size is None
    window, ssm = model.new_state(3)
    assert window.shape == (2, 3, 32, 3) and ssm.shape == (2, 3, 32, 4)
    x = tokens(8, (3, 40))
    with torch.no_grad():
        _, state = model.step(x, model.new_state(3))  # the state does not grow with the tokens read
    assert [tuple(s.shape) for s in state] == [(2, 3, 32, 3), (2, 3, 32, 4)]
    log_probs = model.token_log_probs(x)
    assert log_probs.shape == (3, 39) and bool((log_probs <= 0).all())


def test_training_reduces_the_loss():
    torch.manual_seed(9)
    model = MambaLM(MambaConfig(**TINY), vocab_size=11).train()
    x = torch.arange(40).remainder(11)[None].repeat(4, 1)  # a pattern a few steps learn
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = model(x[:, :-1], x[:, 1:])[1]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_tied_and_untied_heads():
    tied, untied = tiny(tie_embeddings=True), tiny(tie_embeddings=False)
    assert tied.lm_head.weight is tied.tok_emb.weight
    assert untied.lm_head.weight is not untied.tok_emb.weight
    assert "lm_head.weight" in untied.state_dict()


def test_dt_rank_auto_and_given():
    assert MambaConfig(d_model=40).time_step_rank == 3 and MambaConfig(d_model=40, dt_rank=5).time_step_rank == 5
    assert tiny(dt_rank=7).layers[0].mixer.x_proj.weight.shape == (7 + 2 * 4, 32)


@pytest.mark.parametrize("key, value", [("d_state", 0), ("d_conv", 0), ("expand", 0), ("dt_rank", 0),
                                        ("dt_rank", "big"), ("chunk_size", 0), ("dt_min", 0.5), ("norm_eps", 0.0)])
def test_bad_settings_are_refused(key, value):
    with pytest.raises(ConfigError, match=f"model.{key} = "):
        MambaConfig(**{key: value})
