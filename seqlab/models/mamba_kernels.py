"""The fused kernels of Mamba's mixer (Gu & Dao 2023) on the CPU, compiled by numba: the selective
scan with its skip and gate, and the causal depthwise convolution with its SiLU, forward and
backward, without the (B, T, E, N) tensors of `seqlab.models.mamba.chunked_scan`.

    h_t = exp(Δ_t A) ⊙ h_{t−1} + Δ_t B_t u_t      y_t = (C_t · h_t + D ⊙ u_t) ⊙ SiLU(z_t)

(the skip and gate as the reference CUDA kernel's `selective_scan_fn` takes them). Parity
references: `seqlab.models.mamba.reference_scan` and `F.conv1d` (tests/models/test_mamba.py:
values, gradients of every input, `torch.autograd.gradcheck`, and the whole model against its
torch path).

Dimensions: B batch · T time · E inner width · N state size · K conv taps · Lc steps between
checkpoints · S checkpoints (⌈T / Lc⌉). The state is kept flat and state-major, (N·E,) with
i = n·E + e: every inner loop then runs over the E channels (contiguous in the (B, T, E) inputs,
long enough to vectorise), and a step's exponentials are one loop of N·E.

Forward, per sequence: one pass over time keeps the state h (N·E,) in cache (16 KiB at E 256, N 16,
float32) and writes y_t as it goes. Only every Lc-th state is kept (the checkpoints, (B, S, N·E)),
and y before the gate (for the gate's backward). Backward, per sequence, from the end: the states
and decays of the last segment of Lc steps are recomputed from its checkpoint into (Lc + 1, N·E)
buffers (in the L2 cache), the reverse recurrence walks them back, then the segment before. With
g_t the gradient reaching h_t, ∂L/∂y_t from the gate's backward, and s_t = Σ_n g_t B_t:

    g_t = a_{t+1} ⊙ g_{t+1} + C_t ⊗ ∂L/∂y_t
    ∂L/∂C_t = Σ_e h_t ∂L/∂y_t · ∂L/∂B_t = Σ_e g_t Δ_t u_t · ∂L/∂u_t = s_t Δ_t + D ∂L/∂y_t
    ∂L/∂Δ_t = Σ_n g_t a_t h_{t−1} A + s_t u_t · ∂L/∂A = Σ_{b,t} Δ_t g_t a_t h_{t−1}

Recomputing forward from checkpoints, rather than running h_{t−1} = (h_t − b_t) / a_t backward,
stays exact when a_t underflows to 0. Memory: the checkpoints, y and the inputs; no (B, T, E, N)
tensor. The parameters' gradients (A, D, the convolution's) are summed per sequence, then over the
batch by torch.

Exponentials: numba has no vector exp here (no SVML), and libm's scalar expf takes about 2.4 ns,
twice per state element and step (the forward, the backward's recomputation): more than the rest
of the scan. So float32 uses its own, a vector loop of about 0.25 ns per element (measured: 0.8 ms
for 768 steps of 4096): exp(x) = 2^y, y = x log2(e) clamped to [−126, 126], 2^y = 2^k · 2^f with
k = round(y), f = y − k in [−1/2, 1/2], 2^f a degree-5 polynomial and 2^k written as the float's
exponent bits. Within 2e-7 relative of exp for |x| ≤ 1, 1.1e-6 for |x| ≤ 20 (the rounding of y),
and exact to rounding near x = 0, where the decays that sum the longest memories are. Below
−87, 1e-38 instead of a subnormal or 0: a decay that is 0 for every purpose. float64 keeps libm's
exp (for tests and references; not fast).

Threads: the sequences of a batch run in parallel (`parallel=True`, `prange` over the batch) on as
many of numba's threads as torch uses (seqlab's thread policy sets torch's). Numba picks its
threading layer: GNU OpenMP here (TBB is not installed). Measured on two cores (B 12, T 64, E 256,
N 16, float32, after a torch operation as in training): the forward took 0.9 ms on two OpenMP
threads, 1.8 ms on one, and 10 ms on two Python threads, which compete with the OpenMP workers
that torch's operations leave spinning (libgomp's default) for the second core. GNU OpenMP does
not survive a fork: numba terminates a forked child that runs a parallel kernel after its parent
did (why `seqlab.models.hmm_kernels` avoids `parallel=True`), so a forked child runs the same
per-sequence loops serially. The results do not depend on the thread count: each sequence is one
thread's, and the parameters' gradients are summed per sequence.

The first call of each kernel compiles it (seconds); `cache=True` keeps the machine code beside
this file (`__pycache__`), from which later processes load it.
"""

from __future__ import annotations

import math
import os

import numba
import numpy as np
import torch
from numba import types
from numba.extending import overload
from torch import Tensor
from torch.autograd.function import once_differentiable

CHECKPOINT_STEPS = 16  # Lc: the backward's buffers hold (2 Lc + 1) N E floats (0.5 MiB at E 256, N 16, float32)

# Fast math without `nnan`/`ninf`: a NaN input stays NaN in the outputs, as in the reference.
_FASTMATH = {"nsz", "arcp", "contract", "reassoc"}
_jit = numba.njit(nogil=True, cache=True, fastmath=_FASTMATH, error_model="numpy")
_jit_parallel = numba.njit(nogil=True, cache=True, fastmath=_FASTMATH, error_model="numpy", parallel=True)

_LOG2E = np.float32(1.4426950408889634)
# 2^f ≈ 1 + f (c_1 + c_2 f + … + c_5 f^4) on [−1/2, 1/2], within 9.2e-8 relative (near-minimax:
# Lawson's iterations on Chebyshev nodes), 1.9e-7 as float32 arithmetic evaluates it. The constant
# term is exactly 1 so that decays near 1 (Δ A near 0) are exact to rounding: a state sums about
# 1 / (1 − a) steps, which would multiply a bias there.
_EXP2_POLY = (np.float32(1.0), np.float32(0.6931470036506653), np.float32(0.24022242426872253),
              np.float32(0.05550733581185341), np.float32(0.009671512991189957), np.float32(0.001326472731307149))


# --------------------------------------------------------------------- exponentials


def exp_products_(out: np.ndarray, bits: np.ndarray, d: np.ndarray, A: np.ndarray) -> None:
    """out[n·E + e] ← exp(d[e] · A[n·E + e]) for d (E,) and out, A (N·E,); `bits` (int32, at least
    as long as out) is scratch. For numba kernels (the overload below); this Python body is never
    run by them."""
    np.exp(A.reshape(-1, d.shape[0]) * d, out=out.reshape(-1, d.shape[0]))


# Without `reassoc`: it would turn y − (m − 128) into (y + 128) − m, which loses f's low bits.
@overload(exp_products_, jit_options={"fastmath": {"nsz", "contract"}, "nogil": True})
def _exp_products_overload(out, bits, d, A):
    if out.dtype == types.float32:
        return _exp_products_float32
    return _exp_products_libm


def _exp_products_libm(out, bits, d, A):
    E = d.shape[0]
    for n in range(out.shape[0] // E):
        for e in range(E):
            out[n * E + e] = math.exp(d[e] * A[n * E + e])


def _exp_products_float32(out, bits, d, A):
    """2^k · 2^f as the module docstring says; two loops, each a vector loop."""
    f32, i32 = np.float32, np.int32
    E = d.shape[0]
    for n in range(out.shape[0] // E):
        for e in range(E):
            i = n * E + e
            y = min(max(d[e] * A[i] * _LOG2E, f32(-126.0)), f32(126.0))  # exp(x) = 2^y
            # k = round(y) as the truncation of a positive number, m = k + 128; kept in float32
            # (numba would widen int32 arithmetic to int64, at half the vector width)
            m = f32(i32(y + f32(128.5)))
            f = y - (m - f32(128.0))  # in [−1/2, 1/2]
            p = _EXP2_POLY[5]
            p = p * f + _EXP2_POLY[4]
            p = p * f + _EXP2_POLY[3]
            p = p * f + _EXP2_POLY[2]
            p = p * f + _EXP2_POLY[1]
            out[i] = p * f + _EXP2_POLY[0]
            bits[i] = i32((m - f32(1.0)) * f32(8388608.0))  # 2^k: exponent k + 127 (·2^23), mantissa 0
    scale = bits.view(np.float32)
    for i in range(out.shape[0]):
        out[i] *= scale[i]


@_jit
def _sigmoid(pre, sig, bits, minus_one):
    """sig ← σ(pre) = 1 / (1 + exp(−pre)), with the vector exp; pre, sig, minus_one (all −1)
    of one length, bits int32 scratch at least as long."""
    exp_products_(sig, bits, pre, minus_one)
    for e in range(pre.shape[0]):
        sig[e] = 1.0 / (1.0 + sig[e])


# --------------------------------------------------------------------- the kernels


@_jit
def _forward_step(h, a, du, A, bits, d_t, u_t, D, B_t, C_t, y_t):
    """h (N·E,) ← a_t ⊙ h + Δ_t u_t B_t, and y_t (E,) ← C_t · h + D u_t."""
    E = d_t.shape[0]
    exp_products_(a, bits, d_t, A)  # a_t
    for e in range(E):
        du[e] = d_t[e] * u_t[e]
        y_t[e] = D[e] * u_t[e]
    for n in range(B_t.shape[0]):
        B_n, C_n = B_t[n], C_t[n]
        for e in range(E):
            i = n * E + e
            h[i] = a[i] * h[i] + du[e] * B_n
            y_t[e] += C_n * h[i]


@_jit
def _forward_sequence(b, delta, A, B, C, u, h0, D, z, y, out, h_last, checkpoints, steps):
    """Sequence b: y = C·h + D u (B, T, E), out = y ⊙ SiLU(z) (B, T, E) where z has rows, h_last
    (B, N·E), and, where it has room, every `steps`-th state entering a step in checkpoints
    (B, S, N·E). delta, u (B, T, E) · A (N·E,) · B, C (B, T, N) · h0 (B, N·E) · D (E,) ·
    z (B, T, E) or (0, T, E)."""
    T, E, N = delta.shape[1], delta.shape[2], B.shape[2]
    keep, gated = checkpoints.shape[1] > 0, z.shape[0] > 0
    h, a = np.empty(N * E, delta.dtype), np.empty(N * E, delta.dtype)
    du, sig, bits = np.empty(E, delta.dtype), np.empty(E, delta.dtype), np.empty(N * E, np.int32)
    minus_one = np.full(E, -1.0, delta.dtype)
    h[:] = h0[b]
    for t in range(T):
        if keep and t % steps == 0:
            checkpoints[b, t // steps] = h
        _forward_step(h, a, du, A, bits, delta[b, t], u[b, t], D, B[b, t], C[b, t], y[b, t])
        if gated:
            _sigmoid(z[b, t], sig, bits, minus_one)
            for e in range(E):
                out[b, t, e] = y[b, t, e] * z[b, t, e] * sig[e]
    h_last[b] = h


@_jit
def _forward_serial(*args):
    for b in range(args[0].shape[0]):
        _forward_sequence(b, *args)


@_jit_parallel
def _forward_parallel(*args):
    for b in numba.prange(args[0].shape[0]):
        _forward_sequence(b, *args)


@_jit
def _recompute_segment(hs, As, dus, bits, A, delta_b, B_b, u_b, t0, t1):
    """hs[j + 1] = h_{t0 + j}, As[j] = a_{t0 + j} and dus[j] = Δ_{t0 + j} u_{t0 + j} for
    j < t1 − t0, from hs[0] = h_{t0 − 1}."""
    E, N = delta_b.shape[1], B_b.shape[1]
    for t in range(t0, t1):
        j = t - t0
        a, h_prev, h, du = As[j], hs[j], hs[j + 1], dus[j]
        d_t, u_t = delta_b[t], u_b[t]
        exp_products_(a, bits, d_t, A)  # a_t
        for e in range(E):
            du[e] = d_t[e] * u_t[e]
        for n in range(N):
            B_n = B_b[t, n]
            for e in range(E):
                i = n * E + e
                h[i] = a[i] * h_prev[i] + du[e] * B_n


@_jit
def _backward_step(g, a, h_prev, h, A, d_t, u_t, du_t, B_t, C_t, gy_t, gdelta_t, gu_t, gB_t, gC_t, gA, s_B):
    """One step back (see the module docstring): g (N·E,) enters as a_{t+1} ⊙ g_{t+1} and leaves
    as a_t ⊙ g_t; writes ∂L/∂Δ_t (E,), ∂L/∂B_t and ∂L/∂C_t (N,), adds to gu_t (E,) and gA (N·E,).
    s_B (E,) is scratch."""
    E, N = d_t.shape[0], B_t.shape[0]
    for e in range(E):
        gdelta_t[e] = 0.0  # Σ_n g a h_{t−1} A, then the rest
        s_B[e] = 0.0
    for n in range(N):
        B_n, C_n = B_t[n], C_t[n]
        sum_C = gC_t.dtype.type(0.0)
        sum_B = gC_t.dtype.type(0.0)
        for e in range(E):
            i = n * E + e
            gi = g[i] + C_n * gy_t[e]  # g_t
            sum_C += h[i] * gy_t[e]
            sum_B += gi * du_t[e]
            s_B[e] += gi * B_n
            gla = gi * a[i] * h_prev[i]  # ∂L/∂(Δ_t A) at (n, e)
            gA[i] += d_t[e] * gla
            gdelta_t[e] += gla * A[i]
            g[i] = gi * a[i]
        gC_t[n], gB_t[n] = sum_C, sum_B
    for e in range(E):
        gdelta_t[e] += s_B[e] * u_t[e]
        gu_t[e] += s_B[e] * d_t[e]


@_jit
def _backward_gate(gy, g_out_t, y_t, z_t, D, u_t, sig, bits, minus_one, gz_t, gD, gu_t, gated):
    """gy (E,) ← ∂L/∂y_t from ∂L/∂out_t (of y_t itself when not gated), and step t's share of the
    gate's and D's gradients: gz_t (E,), gD (E,) (added to), gu_t (E,) (the skip's part)."""
    if gated:
        _sigmoid(z_t, sig, bits, minus_one)
        for e in range(gy.shape[0]):  # SiLU(z) = z σ(z), SiLU'(z) = σ(z) (1 + z (1 − σ(z)))
            gy[e] = g_out_t[e] * z_t[e] * sig[e]
            gz_t[e] = g_out_t[e] * y_t[e] * sig[e] * (1.0 + z_t[e] * (1.0 - sig[e]))
    else:
        gy[:] = g_out_t
    for e in range(gy.shape[0]):
        gD[e] += gy[e] * u_t[e]
        gu_t[e] = gy[e] * D[e]


@_jit
def _backward_sequence(b, delta, A, B, C, u, D, z, y, checkpoints, steps, grad_out, grad_h_last,
                       grad_delta, grad_A, grad_B, grad_C, grad_u, grad_h0, grad_D, grad_z):
    """Sequence b: the gradients of the inputs of `_forward_sequence` from grad_out (B, T, E), of
    out where z has rows, else of y, and grad_h_last (B, N·E); grad_A (B, N·E) and grad_D (B, E)
    per sequence (summed over time)."""
    T, E, N = delta.shape[1], delta.shape[2], B.shape[2]
    gated = z.shape[0] > 0
    hs, As = np.empty((steps + 1, N * E), delta.dtype), np.empty((steps, N * E), delta.dtype)
    g, s_B, gy = np.empty(N * E, delta.dtype), np.empty(E, delta.dtype), np.empty(E, delta.dtype)
    sig, bits, dus = np.empty(E, delta.dtype), np.empty(N * E, np.int32), np.empty((steps, E), delta.dtype)
    minus_one = np.full(E, -1.0, delta.dtype)
    g[:] = grad_h_last[b]
    grad_A[b] = 0.0
    grad_D[b] = 0.0
    for s in range(checkpoints.shape[1] - 1, -1, -1):
        t0 = s * steps
        t1 = min(T, t0 + steps)
        hs[0] = checkpoints[b, s]
        _recompute_segment(hs, As, dus, bits, A, delta[b], B[b], u[b], t0, t1)
        for t in range(t1 - 1, t0 - 1, -1):
            j = t - t0
            _backward_gate(gy, grad_out[b, t], y[b, t], z[b, t] if gated else y[b, t], D, u[b, t], sig,
                           bits, minus_one, grad_z[b, t] if gated else s_B, grad_D[b], grad_u[b, t], gated)
            _backward_step(g, As[j], hs[j], hs[j + 1], A, delta[b, t], u[b, t], dus[j], B[b, t], C[b, t], gy,
                           grad_delta[b, t], grad_u[b, t], grad_B[b, t], grad_C[b, t], grad_A[b], s_B)
    grad_h0[b] = g


@_jit
def _backward_serial(*args):
    for b in range(args[0].shape[0]):
        _backward_sequence(b, *args)


@_jit_parallel
def _backward_parallel(*args):
    for b in numba.prange(args[0].shape[0]):
        _backward_sequence(b, *args)


# --------------------------------------------------------------------- the convolution


@_jit
def _conv_pre(context, x, weight, bias, b, pre):
    """pre (T·E,) ← bias + Σ_k weight[k] ⊙ ext[t + k] at every step t of sequence b, ext = [context; x]
    in time."""
    (T, E), K1 = x.shape[1:], context.shape[1]
    for t in range(T):
        for e in range(E):
            pre[t * E + e] = bias[e]
        for k in range(K1 + 1):
            j = t + k - K1  # ext[t + k] = x[j], or context[K1 + j] for j < 0
            row = x[b, j] if j >= 0 else context[b, K1 + j]
            for e in range(E):
                pre[t * E + e] += weight[k, e] * row[e]


@_jit
def _conv_forward_sequence(b, context, x, weight, bias, out):
    """out[b] (T, E) ← SiLU(causal depthwise convolution of x[b] (T, E)), context (B, K − 1, E) the
    inputs before x, weight (K, E), bias (E)."""
    T, E = x.shape[1], x.shape[2]
    pre, sig, bits = np.empty(T * E, x.dtype), np.empty(T * E, x.dtype), np.empty(T * E, np.int32)
    _conv_pre(context, x, weight, bias, b, pre)
    _sigmoid(pre, sig, bits, np.full(T * E, -1.0, x.dtype))
    out_b = out[b].reshape(T * E)
    for i in range(T * E):
        out_b[i] = pre[i] * sig[i]


@_jit
def _conv_backward_sequence(b, context, x, weight, bias, grad_out, grad_context, grad_x, grad_weight, grad_bias):
    """Sequence b's gradients of `_conv_forward_sequence`'s inputs from grad_out (B, T, E); its
    shares of the parameters' in grad_weight (B, K, E) and grad_bias (B, E). The pre-activations
    are recomputed."""
    (T, E), K1 = x.shape[1:], context.shape[1]
    pre, sig, bits = np.empty(T * E, x.dtype), np.empty(T * E, x.dtype), np.empty(T * E, np.int32)
    grad_x[b] = 0.0
    grad_context[b] = 0.0
    grad_weight[b] = 0.0
    grad_bias[b] = 0.0
    _conv_pre(context, x, weight, bias, b, pre)
    _sigmoid(pre, sig, bits, np.full(T * E, -1.0, x.dtype))
    g_b = grad_out[b].reshape(T * E)
    for i in range(T * E):  # ∂L/∂pre: SiLU'(s) = σ(s) (1 + s (1 − σ(s)))
        pre[i] = g_b[i] * sig[i] * (1.0 + pre[i] * (1.0 - sig[i]))
    for t in range(T):
        for e in range(E):
            grad_bias[b, e] += pre[t * E + e]
        for k in range(K1 + 1):
            j = t + k - K1
            row = x[b, j] if j >= 0 else context[b, K1 + j]
            grad_row = grad_x[b, j] if j >= 0 else grad_context[b, K1 + j]
            for e in range(E):
                grad_row[e] += weight[k, e] * pre[t * E + e]
                grad_weight[b, k, e] += row[e] * pre[t * E + e]


@_jit
def _conv_forward_serial(*args):
    for b in range(args[0].shape[0]):
        _conv_forward_sequence(b, *args)


@_jit_parallel
def _conv_forward_parallel(*args):
    for b in numba.prange(args[0].shape[0]):
        _conv_forward_sequence(b, *args)


@_jit
def _conv_backward_serial(*args):
    for b in range(args[0].shape[0]):
        _conv_backward_sequence(b, *args)


@_jit_parallel
def _conv_backward_parallel(*args):
    for b in numba.prange(args[0].shape[0]):
        _conv_backward_sequence(b, *args)


# --------------------------------------------------------------------- torch entry points


_forked = False  # set in a child process after a fork: GNU OpenMP does not survive one


def _after_fork_in_child() -> None:
    global _forked
    _forked = True


os.register_at_fork(after_in_child=_after_fork_in_child)


def _launch(serial, parallel, *args) -> None:
    """parallel(*args) on as many of numba's threads as torch uses (the seqlab thread policy sets
    torch's), or serial(*args): on one thread, or in a forked child (see the module docstring)."""
    threads = min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)
    if threads == 1 or _forked:
        serial(*args)
        return
    numba.set_num_threads(threads)
    parallel(*args)


class FusedSelectiveScan(torch.autograd.Function):
    """`seqlab.models.mamba.reference_scan`'s result from the kernels above, with the skip and the
    gate of Mamba's mixer applied when given (as the reference CUDA kernel's `selective_scan_fn`).

    delta, u (B, T, E) · A (E, N) · B, C (B, T, N) · h0 (B, E, N) · D (E) or None · z (B, T, E) or
    None, all of one dtype → y (B, T, E): C·h, plus D u with D, times SiLU(z) with z; h_T (B, E, N).
    """

    @staticmethod
    def forward(ctx, delta, A, B, C, u, h0, D, z):
        (Bsz, T, E), N = delta.shape, A.shape[1]
        delta, B, C, u = (t.detach().contiguous() for t in (delta, B, C, u))
        A_flat = A.detach().t().reshape(N * E)  # (N·E,): state-major, see the module docstring
        h0_flat = h0.detach().transpose(1, 2).reshape(Bsz, N * E)  # (B, N·E)
        D = delta.new_zeros(E) if D is None else D.detach().contiguous()
        z = delta.new_empty(0, T, E) if z is None else z.detach().contiguous()  # no rows: no gate
        y, h_last = delta.new_empty(Bsz, T, E), delta.new_empty(Bsz, N * E)
        out = torch.empty_like(y) if z.shape[0] else y
        keep = any(ctx.needs_input_grad)
        steps = CHECKPOINT_STEPS
        checkpoints = delta.new_empty(Bsz, -(-T // steps) if keep else 0, N * E)  # (B, S, N·E)
        _launch(_forward_serial, _forward_parallel,
                *_arrays(delta, A_flat, B, C, u, h0_flat, D, z, y, out, h_last, checkpoints), steps)
        if keep:
            ctx.save_for_backward(delta, A_flat, B, C, u, D, z, y, checkpoints)
            ctx.steps, ctx.N = steps, N
        return out, h_last.view(Bsz, N, E).transpose(1, 2)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out, grad_h_last):
        delta, A_flat, B, C, u, D, z, y, checkpoints = ctx.saved_tensors
        (Bsz, T, E), N = delta.shape, ctx.N
        grad_out = delta.new_zeros(Bsz, T, E) if grad_out is None else grad_out.contiguous()
        grad_h_last = (delta.new_zeros(Bsz, N * E) if grad_h_last is None
                       else grad_h_last.transpose(1, 2).reshape(Bsz, N * E))  # (B, N·E)
        grad_delta, grad_u, grad_z = torch.empty_like(delta), torch.empty_like(u), torch.empty_like(z)
        grad_B, grad_C = torch.empty_like(B), torch.empty_like(C)
        grad_A, grad_h0 = delta.new_empty(Bsz, N * E), delta.new_empty(Bsz, N * E)  # grad_A per sequence
        grad_D = delta.new_empty(Bsz, E)  # per sequence
        _launch(_backward_serial, _backward_parallel, *_arrays(delta, A_flat, B, C, u, D, z, y, checkpoints),
                ctx.steps, *_arrays(grad_out, grad_h_last, grad_delta, grad_A, grad_B, grad_C, grad_u, grad_h0,
                                    grad_D, grad_z))
        return (grad_delta, grad_A.sum(0).view(N, E).t(), grad_B, grad_C, grad_u,
                grad_h0.view(Bsz, N, E).transpose(1, 2), grad_D.sum(0) if ctx.needs_input_grad[6] else None,
                grad_z if ctx.needs_input_grad[7] else None)


class CausalConvSiLU(torch.autograd.Function):
    """SiLU of the causal depthwise convolution of Mamba's mixer, time-major per sequence.

    context (B, K − 1, E): the K − 1 inputs before x · x (B, T, E) · weight (K, E) · bias (E)
    → (B, T, E): out[t] = SiLU(bias + Σ_k weight[k] ⊙ [context; x][t + k]), as `F.conv1d` (a
    cross-correlation) on the inputs with the context on their left.
    """

    @staticmethod
    def forward(ctx, context, x, weight, bias):
        context, x, weight, bias = (t.detach().contiguous() for t in (context, x, weight, bias))
        out = torch.empty_like(x)
        _launch(_conv_forward_serial, _conv_forward_parallel, *_arrays(context, x, weight, bias, out))
        ctx.save_for_backward(context, x, weight, bias)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        context, x, weight, bias = ctx.saved_tensors
        Bsz, K, E = x.shape[0], weight.shape[0], x.shape[2]
        grad_context, grad_x = torch.empty_like(context), torch.empty_like(x)
        grad_weight, grad_bias = x.new_empty(Bsz, K, E), x.new_empty(Bsz, E)  # per sequence
        _launch(_conv_backward_serial, _conv_backward_parallel,
                *_arrays(context, x, weight, bias, grad_out.contiguous(), grad_context, grad_x, grad_weight,
                         grad_bias))
        return grad_context, grad_x, grad_weight.sum(0), grad_bias.sum(0)


def _arrays(*tensors: Tensor) -> list[np.ndarray]:
    return [t.numpy() for t in tensors]


def fused_selective_scan(delta: Tensor, A: Tensor, B: Tensor, C: Tensor, u: Tensor, h0: Tensor,
                         D: Tensor | None = None, z: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """The selective scan from the compiled kernels, with the skip D and the gate z when given
    (see `FusedSelectiveScan`): tensors on the CPU, all float32 or all float64
    (`seqlab.models.mamba.selective_scan` checks)."""
    return FusedSelectiveScan.apply(delta, A, B, C, u, h0, D, z)


__all__ = ["CHECKPOINT_STEPS", "CausalConvSiLU", "FusedSelectiveScan", "fused_selective_scan"]
