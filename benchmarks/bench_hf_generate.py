"""Greedy generation tokens/s of the same GPT-2 weights in Hugging Face `transformers` and in seqlab.

A GPT-2 of the `shakespeare-char` preset's shape (4 layers, 4 heads, width 128, 65 tokens, 256
positions) is made with `transformers`, saved, and imported with `seqlab.interop.from_hf`. Both then
continue a one-token prompt greedily with their KV caches: `GPT2LMHeadModel.generate(do_sample=False,
use_cache=True)` and `seqlab.generate.generate(temperature=0)` (which drives the `FunctionalStepper`
for GPT-2-shaped models). Rounds are interleaved; medians are reported. The two must produce the same
tokens, or the comparison means nothing; the result records it. The peak memory of one generation
for each, above the built models, is measured in a fresh process (`common.peak_memory`).

    python -m benchmarks.bench_hf_generate
"""

from __future__ import annotations

import tempfile

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
from seqlab.generate import generate
from seqlab.interop import from_hf

VOCAB, N_POSITIONS, N_LAYER, N_HEAD, N_EMBD = 65, 256, 4, 4, 128


def _models():
    try:
        from transformers import GPT2Config, GPT2LMHeadModel
    except ImportError:
        raise SystemExit("bench_hf_generate needs transformers: pip install -e '.[test]'") from None
    config = GPT2Config(vocab_size=VOCAB, n_positions=N_POSITIONS, n_layer=N_LAYER, n_head=N_HEAD, n_embd=N_EMBD,
                        bos_token_id=None, eos_token_id=None)
    torch.manual_seed(0)
    hf = GPT2LMHeadModel(config).eval()
    with tempfile.TemporaryDirectory() as folder:
        hf.save_pretrained(folder)
        ours, _ = from_hf(folder)
    return hf, ours


def _generators(hf, ours, new_tokens: int) -> dict:
    """Callables that continue a one-token prompt greedily by `new_tokens` tokens, by contender."""
    start = torch.zeros((1, 1), dtype=torch.long)

    def hf_generate() -> torch.Tensor:
        with torch.inference_mode():
            return hf.generate(start, do_sample=False, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                               use_cache=True, pad_token_id=0)

    def seqlab_generate() -> torch.Tensor:
        return generate(ours, start, new_tokens, temperature=0, use_cache=True)

    return {"transformers generate, KV cache": hf_generate, "seqlab generate, KV cache": seqlab_generate}


def prepare_generation(contender: str, new_tokens: int):
    """In a `peak_memory` child: build, warm up; return the work of one generation by `contender`."""
    hf, ours = _models()
    _generators(hf, ours, 2)[contender]()
    return _generators(hf, ours, new_tokens)[contender]


def run(new_tokens: int = 250, repeats: int = 5) -> dict:
    hf, ours = _models()
    generators = _generators(hf, ours, new_tokens)
    outputs: dict[str, torch.Tensor] = {}

    def rate(name: str):
        def go() -> int:
            outputs[name] = generators[name]()
            return new_tokens
        return lambda: timed(go)

    contenders = {name: rate(name) for name in generators}
    for run_once in contenders.values():  # warm-up
        run_once()
    same_tokens = (outputs["transformers generate, KV cache"].tolist()
                   == outputs["seqlab generate, KV cache"].tolist())
    rates = interleave(contenders, repeats)
    result = {name: summary(values) for name, values in rates.items()}
    memory = {name: peak_memory(prepare_generation, name, new_tokens) for name in result}
    base = result["transformers generate, KV cache"]["median"]
    rows = [row + [memory_cell(memory[row[0]])] for row in rate_rows(result, "transformers generate, KV cache")]
    print_table(f"greedy generation of {new_tokens} tokens, GPT-2 {N_LAYER}x{N_EMBD}, batch 1 ({repeats} rounds; "
                f"peak MB of one generation, above the models); same tokens: {same_tokens}",
                rows, ["implementation", "tokens/s median", "tokens/s p90", "vs transformers", "peak MB"])
    payload = {"new_tokens": new_tokens, "repeats": repeats, "same_tokens": same_tokens, "results": result,
               "peak_memory": memory,
               "ratio_seqlab_vs_hf": result["seqlab generate, KV cache"]["median"] / base}
    save("hf_generate", payload)
    return payload


if __name__ == "__main__":
    run()
