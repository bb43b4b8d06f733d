"""Sampling tokens/s at 500 new tokens from the `shakespeare-char` model shape: seqlab with its KV
cache, seqlab recomputing the context, and the nanoGPT-style sampler (no cache), interleaved; and the
peak memory of one such generation for each, above the built model (`common.peak_memory`)."""

from __future__ import annotations

import torch

from benchmarks.common import (
    interleave,
    memory_cell,
    peak_memory,
    print_table,
    rate_rows,
    save,
    summary,
    timed,
)
from benchmarks.nanogpt_reference import ReferenceGPT
from seqlab.config import load_config
from seqlab.families import build_model

VOCAB = 65  # tiny Shakespeare's characters; speed does not depend on the weights' values
CONTENDERS = ("seqlab, KV cache", "seqlab, recompute", "nanogpt-style, recompute")
SAMPLING = {"temperature": 0.8, "top_k": 200}


def sampler(contender: str, new_tokens: int):
    """A callable that samples `new_tokens` tokens after a one-token prompt with `contender`."""
    m = load_config("shakespeare-char").model
    torch.manual_seed(0)
    start = torch.zeros((1, 1), dtype=torch.long)
    if contender == "nanogpt-style, recompute":
        reference = ReferenceGPT(VOCAB, m.block_size, m.n_layer, m.n_head, m.d_model).eval()
        return lambda: reference.generate(start, new_tokens, **SAMPLING)
    model = build_model(m, VOCAB).eval()
    use_cache = contender == "seqlab, KV cache"
    return lambda: model.generate(start, new_tokens, use_cache=use_cache, seed=0, **SAMPLING)


def prepare_sampling(contender: str, new_tokens: int):
    """In a `peak_memory` child: build and warm up; return the work of one generation."""
    sampler(contender, 2)()
    return sampler(contender, new_tokens)


def run(new_tokens: int = 500, repeats: int = 5) -> dict:
    """The table twice: at one thread, what seqlab's policy gives decoding (seqlab.training.threads),
    and at torch's default; every contender runs at the same count in each."""
    default = torch.get_num_threads()
    memory = {name: peak_memory(prepare_sampling, name, new_tokens) for name in CONTENDERS}
    tables = {}
    for threads in sorted({1, default}):
        torch.set_num_threads(threads)
        tables[threads] = result = _measure(new_tokens, repeats)
        rows = [row + [memory_cell(memory[row[0]])] for row in rate_rows(result, "seqlab, recompute")]
        print_table(f"sampling {new_tokens} new tokens, batch 1, {threads} thread(s) ({repeats} rounds; peak MB "
                    f"of one generation, above the model)", rows,
                    ["implementation", "tokens/s median", "tokens/s p90", "vs recompute", "peak MB"])
    torch.set_num_threads(default)
    policy = tables[1]
    payload = {"new_tokens": new_tokens, "repeats": repeats, "results_by_threads": tables, "results": policy,
               "peak_memory": memory,
               "cache_speedup": policy["seqlab, KV cache"]["median"] / policy["seqlab, recompute"]["median"],
               "cache_vs_nanogpt_style": policy["seqlab, KV cache"]["median"]
               / policy["nanogpt-style, recompute"]["median"],
               "cache_vs_nanogpt_style_default_threads": tables[default]["seqlab, KV cache"]["median"]
               / tables[default]["nanogpt-style, recompute"]["median"]}
    save("sample", payload)
    return payload


def _measure(new_tokens: int, repeats: int) -> dict:
    def rate(contender: str):
        sample = sampler(contender, new_tokens)

        def go() -> int:
            sample()
            return new_tokens
        return lambda: timed(go)

    contenders = {name: rate(name) for name in CONTENDERS}
    for run_once in contenders.values():  # warm-up
        run_once()
    rates = interleave(contenders, repeats)
    return {name: summary(values) for name, values in rates.items()}


if __name__ == "__main__":
    run()
