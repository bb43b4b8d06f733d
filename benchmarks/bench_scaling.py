"""Decoding cost against context length: cached Transformer decoding, recomputing Transformer
decoding, an LSTM carrying its hidden state and Mamba carrying its convolution window and SSM state,
at contexts of 64 to 4096 tokens.

The lectures' claim, per new token at context n: the KV cache runs one position through the weights
and attends over n cached keys, O(n); recomputing runs all n positions through the weights and
attention over n x n pairs, O(n²); a recurrent model carries a fixed-size state, O(1), and so does
Mamba (Gu & Dao 2023), whose bar is a time per token growing as n^e with e < 0.05 over 64 to 4096.

For each context length n, each contender is measured on its last few decode steps before the
context reaches n (`steps` = 32; `recompute_steps` = 8 for recompute), not on a whole generation of n
tokens: that is time-boxing, as recomputing all 4096 tokens would take many minutes.

  tokens/s   a prompt of n - steps random tokens is continued by `steps` tokens with
             `seqlab.generate.iter_generate` (temperature 0.8, top-k 200, as the presets sample); the
             clock runs from the first new token to the last (steps - 1 tokens), so the cached
             prefill is left out. The median and p90 of `repeats` rounds, each round going through
             every length and contender (interleaved).
  peak MB    in a fresh process (`common.peak_memory`), above the built and warmed-up model:
             cache and LSTM generate n - 1 tokens from a one-token prompt (real decoding, no long
             prefill); recompute makes its last `memory_steps` steps before n (a step keeps nothing
             from the step before, and the last is the largest, so this is the peak of generating
             all n tokens). Attention runs in a fused kernel that never holds the n x n scores, so
             recompute's memory grows as O(n) activations, not O(n²).

Models: the `shakespeare-char` Transformer shape (4 layers, 4 heads, width 128, 65 tokens) with
`block_size = n`, so its learned positions reach n and its KV cache, preallocated for block_size
positions, is sized for the context (the weights are otherwise the same for every n); the
`shakespeare-char-lstm` model (2 layers of width 256); the `mamba` preset (7 blocks of width 128,
the Transformer's parameter count). The slopes of log(seconds per token) and
log(peak MB) against log(n) are fitted over the longer half of the lengths and printed beside the
slopes of a count of multiply-adds per token (`flops_per_token`), which shows where the O(n) and
O(n²) terms overtake the per-position cost of the weights at these sizes. Mamba's slope is also
fitted over every length, 64 to 4096: the issue's bar.

    python -m benchmarks.bench_scaling            # a few minutes on two busy cores
                                                  # table; benchmarks/results/scaling.{json,png}
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from benchmarks.common import (
    RESULTS,
    interleave,
    memory_cell,
    peak_memory,
    print_table,
    save,
    summary,
)
from seqlab.config import load_config
from seqlab.generate import iter_generate
from seqlab.families import build_model
from seqlab.plots import pyplot, save_png

VOCAB = 65  # tiny Shakespeare's characters; speed does not depend on the weights' values
LENGTHS = (64, 128, 256, 512, 1024, 2048, 4096)
CONTENDERS = ("Transformer, KV cache", "Transformer, recompute", "LSTM, carried state", "Mamba, carried state")
CARRIED = {"LSTM, carried state": "shakespeare-char-lstm", "Mamba, carried state": "mamba"}  # fixed-size states
SAMPLING = {"temperature": 0.8, "top_k": 200, "seed": 0}


def build(contender: str, n: int, device: str) -> torch.nn.Module:
    """The contender's model, eval mode, on `device`; Transformers get block_size = n."""
    torch.manual_seed(0)
    if contender in CARRIED:
        model_config = load_config(CARRIED[contender]).model
    else:
        model_config = load_config("shakespeare-char", [f"model.block_size={n}"]).model
    return build_model(model_config, VOCAB).to(device).eval()


def timed_steps(model: torch.nn.Module, prompt: torch.Tensor, steps: int, use_cache: bool) -> float:
    """Tokens/s of the decode steps after the first new token of continuing `prompt` by `steps`."""
    cuda = prompt.device.type == "cuda"
    stamps = []
    for _ in iter_generate(model, prompt, steps, use_cache=use_cache, **SAMPLING):
        if cuda:
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())
    return (steps - 1) / (stamps[-1] - stamps[0])


def _prompt(length: int, device: str) -> torch.Tensor:
    generator = torch.Generator().manual_seed(length)
    return torch.randint(0, VOCAB, (1, length), generator=generator).to(device)  # (1, T)


def prepare_decode(contender: str, n: int, memory_steps: int, device: str):
    """In a `peak_memory` child: build and warm up; return the work of decoding up to length n."""
    model = build(contender, n, device)
    use_cache = contender != "Transformer, recompute"
    warm = _prompt(1, device)
    model.generate(warm, 2, use_cache=use_cache, **SAMPLING)  # first calls of the prefill and decode paths
    if use_cache:  # real decoding from one token: the cache (or hidden state) grows to n
        prompt, new = warm, n - 1
    else:  # the last steps: each holds only its own forward over about n positions
        prompt, new = _prompt(n - memory_steps, device), memory_steps
    return lambda: model.generate(prompt, new, use_cache=use_cache, **SAMPLING)


def flops_per_token(contender: str, n: int) -> float:
    """Multiply-adds of one decode step at context n (weights and attention scores; norms, softmax
    and sampling left out). Causal attention over n positions costs n²/2 query-key pairs."""
    if contender == "LSTM, carried state":
        m = load_config("shakespeare-char-lstm").model
        return m.n_layer * 8 * m.d_model ** 2 + m.d_model * VOCAB  # 4 gates x (W_ih, W_hh); head
    if contender == "Mamba, carried state":
        m = load_config("mamba").model
        E, N, R = m.d_inner, m.d_state, m.time_step_rank
        # in_proj, conv, x_proj, dt_proj, out_proj; the state update and readout (3 per state element)
        per_layer = 2 * E * m.d_model + E * m.d_conv + E * (R + 2 * N) + R * E + E * m.d_model + 3 * E * N
        return m.n_layer * per_layer + m.d_model * VOCAB
    m = load_config("shakespeare-char").model
    per_position = m.n_layer * 12 * m.d_model ** 2  # qkv 3D², out D², MLP 8D²
    attention = m.n_layer * 2 * m.d_model  # q·k and weights·v, per query-key pair
    head = m.d_model * VOCAB  # the last position only
    if contender == "Transformer, KV cache":
        return per_position + attention * n + head
    return per_position * n + attention * n * n / 2 + head


def slope(lengths: list[int], values: list[float]) -> float:
    """Least-squares slope of log(values) against log(lengths)."""
    xs, ys = [math.log(x) for x in lengths], [math.log(max(y, 1e-12)) for y in values]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def rounds(lengths: tuple[int, ...], step_counts: dict[str, int], repeats: int,
           device: str) -> dict[tuple[str, int], list[float]]:
    """Tokens/s by (contender, n): one warm-up round, then `repeats` rounds, each round going through
    every length and contender in turn, so a change of load during the run touches all lengths alike
    (the slopes compare lengths)."""
    carried = {name: build(name, 0, device) for name in CARRIED}
    transformers = {n: build("Transformer, KV cache", n, device) for n in lengths}

    def contender(name: str, n: int):
        model = carried[name] if name in CARRIED else transformers[n]
        prompt = _prompt(n - step_counts[name], device)
        use_cache = name != "Transformer, recompute"
        return lambda: timed_steps(model, prompt, step_counts[name], use_cache)

    contenders = {(name, n): contender(name, n) for n in lengths for name in CONTENDERS}
    interleave(contenders, 1)  # warm-up
    return interleave(contenders, repeats)


def run(lengths: tuple[int, ...] = LENGTHS, steps: int = 32, recompute_steps: int = 8, memory_steps: int = 2,
        repeats: int = 7, device: str = "cpu") -> dict:
    step_counts = {"Transformer, KV cache": steps, "Transformer, recompute": recompute_steps,
                   "LSTM, carried state": steps, "Mamba, carried state": steps}
    if min(lengths) <= max(step_counts.values()):
        raise ValueError(f"every length must exceed the steps timed ({max(step_counts.values())}), got {lengths}")
    results: dict[str, dict[int, dict]] = {c: {} for c in CONTENDERS}
    for (name, n), rates in rounds(lengths, step_counts, repeats, device).items():
        results[name][n] = {"tokens_per_s": summary(rates)}
    for name in CONTENDERS:  # after the timings: the children do not share the cores with them
        for n in lengths:
            results[name][n]["peak"] = peak_memory(prepare_decode, name, n, memory_steps, device)
    payload = _payload(results, lengths, step_counts, memory_steps, repeats, device)
    _print(payload, results, lengths)
    plot_path = RESULTS / "scaling.png"
    plot(payload, results, lengths, plot_path)
    payload["plot"] = str(plot_path)
    save("scaling", payload)
    return payload


def _payload(results: dict, lengths: tuple[int, ...], step_counts: dict, memory_steps: int, repeats: int,
             device: str) -> dict:
    fit = list(lengths[len(lengths) // 2:]) if len(lengths) >= 4 else list(lengths)  # the longer half
    slopes = {}
    for name in CONTENDERS:
        seconds = [1 / results[name][n]["tokens_per_s"]["median"] for n in fit]
        memory = [results[name][n]["peak"]["peak_mb"] for n in fit]
        slopes[name] = {"seconds_per_token": slope(fit, seconds), "peak_mb": slope(fit, memory),
                        "flops_per_token_model": slope(fit, [flops_per_token(name, n) for n in fit])}
    table = {name: {str(n): results[name][n] for n in lengths} for name in CONTENDERS}
    mamba = [1 / results["Mamba, carried state"][n]["tokens_per_s"]["median"] for n in lengths]
    return {"lengths": list(lengths), "device": device, "steps_timed": step_counts, "memory_steps": memory_steps,
            "repeats": repeats, "fit_lengths": fit, "results": table, "slopes": slopes,
            "mamba_exponent_all_lengths": slope(list(lengths), mamba),
            "cache_speedup_at_longest": results["Transformer, KV cache"][lengths[-1]]["tokens_per_s"]["median"]
            / results["Transformer, recompute"][lengths[-1]]["tokens_per_s"]["median"]}


def _print(payload: dict, results: dict, lengths: tuple[int, ...]) -> None:
    rows = []
    for n in lengths:
        base = results["Transformer, recompute"][n]["tokens_per_s"]["median"]
        for name in CONTENDERS:
            s = results[name][n]["tokens_per_s"]
            rows.append([str(n), name, f"{s['median']:,.1f}", f"{s['p90']:,.1f}", f"{s['median'] / base:.2f}x",
                         memory_cell(results[name][n]["peak"])])
    steps = payload["steps_timed"]
    print_table(f"decoding at context n, batch 1, {payload['device']}: tokens/s of the last {steps['Transformer, KV cache']} "
                f"steps before n ({steps['Transformer, recompute']} for recompute), median of {payload['repeats']} "
                f"interleaved rounds; peak MB of decoding up to n, above the model", rows,
                ["n", "contender", "tokens/s median", "tokens/s p90", "vs recompute", "peak MB"])
    rows = [[name, f"{s['seconds_per_token']:.2f}", f"{s['flops_per_token_model']:.2f}", f"{s['peak_mb']:.2f}"]
            for name, s in payload["slopes"].items()]
    print_table(f"log-log slopes against n, fitted over n = {', '.join(map(str, payload['fit_lengths']))}", rows,
                ["contender", "seconds/token (measured)", "multiply-adds/token (counted)", "peak MB"])
    print(f"\nMamba decode seconds/token ∝ n^{payload['mamba_exponent_all_lengths']:.3f} over n = {lengths[0]} to "
          f"{lengths[-1]} (bar: < 0.05); Transformer, KV cache: n^"
          f"{payload['slopes']['Transformer, KV cache']['seconds_per_token']:.3f} over the longer half")


def plot(payload: dict, results: dict, lengths: tuple[int, ...], path) -> None:
    """Two log-log panels against context length: tokens/s and peak MB, with the fitted slopes."""
    plt = pyplot()
    fig, (rate_ax, memory_ax) = plt.subplots(1, 2, figsize=(12, 5))
    xs = list(lengths)
    for name, marker in zip(CONTENDERS, "osD^"):
        s = payload["slopes"][name]
        rates = [results[name][n]["tokens_per_s"]["median"] for n in xs]
        memory = [max(results[name][n]["peak"]["peak_mb"], 1e-2) for n in xs]
        rate_ax.plot(xs, rates, marker=marker, label=f"{name}: time/token ∝ n^{s['seconds_per_token']:.2f} "
                     f"(multiply-adds ∝ n^{s['flops_per_token_model']:.2f})")
        memory_ax.plot(xs, memory, marker=marker, label=f"{name}: ∝ n^{s['peak_mb']:.2f}")
    fit = payload["fit_lengths"]
    start = results["Transformer, recompute"][fit[0]]["tokens_per_s"]["median"]
    for power, style in ((1, ":"), (2, "--")):  # guides through recompute's first fitted point
        guide = [start * (fit[0] / n) ** power for n in fit]
        rate_ax.plot(fit, guide, style, color="grey", linewidth=1, label=f"guide: tokens/s ∝ 1/n{'²' if power == 2 else ''}")
    steps = payload["steps_timed"]
    rate_ax.set_title(f"decode tokens/s at context n (last {steps['Transformer, KV cache']} steps before n; "
                      f"{steps['Transformer, recompute']} for recompute)", fontsize=9)
    rate_ax.set_ylabel("tokens/s (median)")
    memory_ax.set_title("peak memory of decoding up to n, above the model "
                        f"(recompute: its last {payload['memory_steps']} steps)", fontsize=9)
    memory_ax.set_ylabel("peak MB (resident set)" if payload["device"] == "cpu" else "peak MB (host resident set)")
    for ax in (rate_ax, memory_ax):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(xs, [str(n) for n in xs])
        ax.set_xlabel("context length n (tokens)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"shakespeare-char Transformer (4x128), shakespeare-char-lstm (2x256), mamba (7x128), batch 1, "
                 f"{payload['device']}, {torch.get_num_threads()} thread(s); slopes fitted over n ≥ "
                 f"{payload['fit_lengths'][0]}", fontsize=10)
    fig.tight_layout()
    save_png(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=list(LENGTHS))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    run(tuple(args.lengths), repeats=args.repeats, device=args.device)


if __name__ == "__main__":
    main()
