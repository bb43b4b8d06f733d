"""Mamba (seqlab.models.mamba): the chunked selective scan and its hand-written backward, and the
fused numba kernels (seqlab.models.mamba_kernels: the scan with its skip and gate, the convolution
with its SiLU), equal the step-by-step recurrence through autograd (values, gradients, gradcheck);
the model's fused path equals its torch path; the parallel forward equals step-by-step decoding
(logits and greedy tokens), a step of several tokens equals one token at a time, causality, the
decoding state's size, and the settings' checks."""

import os

import pytest
import torch
import torch.nn.functional as F

from seqlab.errors import ConfigError
from seqlab.models import mamba as mamba_module
from seqlab.models.contract import LanguageModel
from seqlab.models.mamba import MambaConfig, MambaLM, chunked_scan, reference_scan, selective_scan
from seqlab.models.mamba_kernels import CHECKPOINT_STEPS, CausalConvSiLU, fused_selective_scan

TINY = dict(n_layer=2, d_model=16, d_state=4, d_conv=3, expand=2, chunk_size=4)


def tiny(seed: int = 0, dtype=torch.float32, **overrides) -> MambaLM:
    torch.manual_seed(seed)
    return MambaLM(MambaConfig(**{**TINY, **overrides}), vocab_size=11).to(dtype).eval()


def tokens(seed: int, shape=(2, 19)) -> torch.Tensor:
    return torch.randint(0, 11, shape, generator=torch.Generator().manual_seed(seed))


def scan_inputs(seed: int, dtype, T: int = 37, batch: int = 3, E: int = 5, N: int = 4, gate: bool = False):
    """Inputs of the selective scan (B 3, E 5, N 4 unless given) with Mamba's ranges: Δ > 0, A < 0
    (so that Δ·A reaches about -4 per step), B, C, u and h0 of both signs, and with `gate` the
    skip D (E) and the gate z (B, T, E); every one requires a gradient."""
    g = torch.Generator().manual_seed(seed)
    delta = torch.rand(batch, T, E, generator=g, dtype=dtype)
    A = -4 * torch.rand(E, N, generator=g, dtype=dtype)
    B, C = (torch.randn(batch, T, N, generator=g, dtype=dtype) for _ in range(2))
    u = torch.randn(batch, T, E, generator=g, dtype=dtype)
    h0 = torch.randn(batch, E, N, generator=g, dtype=dtype)
    gated = ((torch.randn(E, generator=g, dtype=dtype), torch.randn(batch, T, E, generator=g, dtype=dtype))
             if gate else ())
    return [t.requires_grad_() for t in (delta, A, B, C, u, h0, *gated)]


def gated_reference(delta, A, B, C, u, h0, D, z):
    """`reference_scan` with the mixer's skip and gate: (y + D u) ⊙ SiLU(z)."""
    y, h = reference_scan(delta, A, B, C, u, h0)
    return (y + u * D) * F.silu(z), h


def loss_weights(inputs, seed: int = 2):
    """Random weights of a loss on both outputs of a scan of these inputs: (B, T, E), (B, E, N)."""
    g = torch.Generator().manual_seed(seed)
    (batch, T, E), N, dtype = inputs[0].shape, inputs[1].shape[1], inputs[0].dtype
    return torch.randn(batch, T, E, generator=g, dtype=dtype), torch.randn(batch, E, N, generator=g, dtype=dtype)


def scan_gradients(scan, inputs, weights):
    y, h = scan(*inputs)
    return torch.autograd.grad((y * weights[0]).sum() + (h * weights[1]).sum(), inputs)


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
@pytest.mark.parametrize("chunk", [1, 4, 8, 37, 64])
def test_chunked_scan_equals_the_reference(dtype, tol, chunk):
    inputs = scan_inputs(chunk, dtype)
    for ours, reference in zip(chunked_scan(*inputs, chunk), reference_scan(*inputs)):
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
    for scan in (lambda *a: chunked_scan(*a, chunk), reference_scan):
        y, h = scan(*inputs)
        grads.append(torch.autograd.grad((y * w_y).sum() + (h * w_h).sum(), inputs))
    for name, ours, reference in zip(("delta", "A", "B", "C", "u", "h0"), *grads):
        torch.testing.assert_close(ours, reference, atol=1e-10, rtol=1e-10, msg=lambda m: f"d{name}: {m}")


# --- the fused kernels (seqlab.models.mamba_kernels) -----------------------------------------------

FUSED_LENGTHS = [1, 13, CHECKPOINT_STEPS, 2 * CHECKPOINT_STEPS + 5]  # within, at and across checkpoints


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
@pytest.mark.parametrize("T", FUSED_LENGTHS)
@pytest.mark.parametrize("gate", [False, True])
def test_fused_scan_equals_the_reference(dtype, tol, T, gate):
    """Values: y and h_T, with h0 nonzero, batch 3, odd lengths, with and without the skip and gate."""
    inputs = scan_inputs(T, dtype, T=T, gate=gate)
    reference = gated_reference if gate else reference_scan
    for ours, expected in zip(fused_selective_scan(*inputs), reference(*inputs)):
        torch.testing.assert_close(ours, expected, atol=tol, rtol=tol)


def test_fused_scan_on_wide_inputs_equals_the_reference():
    """float32 at the preset's widths (E 256, N 16): the kernels' own exponential over many decays."""
    inputs = scan_inputs(5, torch.float32, T=40, batch=2, E=256, N=16, gate=True)
    for ours, expected in zip(fused_selective_scan(*inputs), gated_reference(*inputs)):
        torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("T", FUSED_LENGTHS)
@pytest.mark.parametrize("gate", [False, True])
def test_fused_scan_gradients_equal_the_reference(T, gate):
    """The kernels' backward against autograd through the step-by-step reference, for every input
    (D and z too, with the gate), with a loss on both the outputs and the final state."""
    inputs = scan_inputs(T + 100, torch.float64, T=T, gate=gate)
    weights = loss_weights(inputs)
    ours = scan_gradients(fused_selective_scan, inputs, weights)
    expected = scan_gradients(gated_reference if gate else reference_scan, inputs, weights)
    for name, a, b in zip(("delta", "A", "B", "C", "u", "h0", "D", "z"), ours, expected):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10, msg=lambda m: f"d{name}: {m}")


def test_fused_scan_gradcheck():
    """Finite differences (float64) on a tiny case across a checkpoint: B 2, T past Lc, E 3, N 2."""
    inputs = scan_inputs(7, torch.float64, T=CHECKPOINT_STEPS + 3, batch=2, E=3, N=2, gate=True)
    assert torch.autograd.gradcheck(fused_selective_scan, inputs)


def test_fused_scan_float32_gradients_are_close_to_float64():
    inputs = scan_inputs(9, torch.float64, T=37, gate=True)
    weights = loss_weights(inputs)
    expected = scan_gradients(fused_selective_scan, inputs, weights)
    single = [t.detach().float().requires_grad_() for t in inputs]
    ours = scan_gradients(fused_selective_scan, single, [w.float() for w in weights])
    for a, b in zip(ours, expected):
        torch.testing.assert_close(a.double(), b, atol=1e-4, rtol=1e-4)


def test_selective_scan_picks_the_fused_path_on_cpu_and_torch_otherwise():
    """CPU float32/float64 go through the kernels; a dtype they do not take (bfloat16) through the
    chunked torch scan and the torch gate, with the same result."""
    inputs = scan_inputs(11, torch.float32, T=9, gate=True)
    *scan, D, z = inputs
    fused = selective_scan(*scan, 4, D=D, z=z)
    assert fused[0].grad_fn.name() == "FusedSelectiveScanBackward"
    torch.testing.assert_close(fused[0], gated_reference(*inputs)[0], atol=1e-5, rtol=1e-5)
    low = [t.detach().bfloat16() for t in inputs]
    y, h = selective_scan(*low[:6], 4, D=low[6], z=low[7])
    expected_y, expected_h = chunked_scan(*low[:6], 4)
    torch.testing.assert_close(y, (expected_y + low[4] * low[6]) * F.silu(low[7]), atol=0, rtol=0)
    torch.testing.assert_close(h, expected_h, atol=0, rtol=0)


def test_fused_kernels_give_the_same_on_one_thread_and_several():
    """The serial loops (one thread, forked children) and the parallel ones are the same per-sequence
    code: bitwise equal results, gradients included."""
    inputs = scan_inputs(15, torch.float32, T=21, batch=4, E=40, N=8, gate=True)
    weights = loss_weights(inputs)
    threads = torch.get_num_threads()
    results = []
    for n in (1, 2):
        torch.set_num_threads(n)
        try:
            y, h = fused_selective_scan(*inputs)
            results.append([y, h, *scan_gradients(fused_selective_scan, inputs, weights)])
        finally:
            torch.set_num_threads(threads)
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, atol=0, rtol=0)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_fused_kernels_run_in_a_forked_child():
    """GNU OpenMP does not survive a fork: a child forked after its parent ran the parallel kernels
    runs them serially, with the same results (numba would otherwise terminate it)."""
    inputs = scan_inputs(16, torch.float32, T=9, batch=4, gate=True)
    expected = fused_selective_scan(*inputs)[0].detach()  # the parent's OpenMP threads now exist
    pid = os.fork()
    if pid == 0:  # the child: exit status 0 when it computes the parent's result
        ok = False
        try:
            ok = torch.equal(fused_selective_scan(*inputs)[0].detach(), expected)
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def conv_inputs(seed: int, dtype, T: int = 11, K: int = 4, E: int = 6, batch: int = 2):
    g = torch.Generator().manual_seed(seed)
    tensors = (torch.randn(batch, K - 1, E, generator=g, dtype=dtype),  # context
               torch.randn(batch, T, E, generator=g, dtype=dtype),  # x
               torch.randn(K, E, generator=g, dtype=dtype), torch.randn(E, generator=g, dtype=dtype))  # weight, bias
    return [t.requires_grad_() for t in tensors]


def conv_reference(context, x, weight, bias):
    """SiLU(F.conv1d) over [context; x] in time: the mixer's torch path."""
    extended = torch.cat([context, x], dim=1).transpose(1, 2)  # (B, E, K − 1 + T)
    return F.silu(F.conv1d(extended, weight.t()[:, None, :], bias, groups=x.shape[-1])).transpose(1, 2)


@pytest.mark.parametrize("T", [1, 2, 11])
def test_fused_convolution_equals_conv1d(T):
    inputs = conv_inputs(T, torch.float64, T=T)
    torch.testing.assert_close(CausalConvSiLU.apply(*inputs), conv_reference(*inputs), atol=1e-12, rtol=1e-12)
    w = torch.randn(2, T, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    ours = torch.autograd.grad((CausalConvSiLU.apply(*inputs) * w).sum(), inputs)
    expected = torch.autograd.grad((conv_reference(*inputs) * w).sum(), inputs)
    for name, a, b in zip(("context", "x", "weight", "bias"), ours, expected):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12, msg=lambda m: f"d{name}: {m}")
    single = [t.detach().float() for t in inputs]
    torch.testing.assert_close(CausalConvSiLU.apply(*single), conv_reference(*single), atol=1e-5, rtol=1e-5)


def test_fused_convolution_gradcheck():
    assert torch.autograd.gradcheck(CausalConvSiLU.apply, conv_inputs(4, torch.float64, T=5, E=3))


@pytest.mark.parametrize("with_state", [False, True])
def test_fused_model_equals_the_torch_path(monkeypatch, with_state):
    """The model through the kernels and through torch alone (conv1d, chunked scan, torch gate):
    logits, final state and every parameter's gradient, float64, from the zero state or a given one."""
    x, targets = tokens(12), tokens(13)

    def run():
        model = tiny(12, torch.float64, conv_bias=False).train()
        state = None
        if with_state:
            g = torch.Generator().manual_seed(14)
            state = tuple(torch.randn(s.shape, generator=g, dtype=torch.float64) for s in model.new_state(2))
        logits, loss, final = model(x, targets, state=state, return_state=True)
        loss.backward()
        return [logits, *final, *(p.grad for p in model.parameters())]

    fused = run()
    monkeypatch.setattr(mamba_module, "_fused_supports", lambda *tensors: False)
    for ours, expected in zip(fused, run(), strict=True):
        torch.testing.assert_close(ours, expected, atol=1e-10, rtol=1e-10)


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
