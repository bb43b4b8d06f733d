"""Greedy decoding tokens/s of a WaveNet with a receptive field of 257 tokens (8 layers of width 2,
dilations 1 … 128): cached (the per-layer queues of Paine et al. 2016, one step per token) against
recompute (`forward` over the last receptive field at every token), interleaved, at one thread. Each
generation continues a 256-token prompt by 300 tokens; the cached figure includes its prefill. The
bar: cached at least 5x recompute."""

from __future__ import annotations

import torch

from benchmarks.common import interleave, print_table, rate_rows, save, summary, timed
from seqlab.models.wavenet import WaveNetConfig, WaveNetLM

VOCAB = 65  # tiny Shakespeare's characters; speed does not depend on the weights' values
CONFIG = WaveNetConfig(n_layer=8, kernel_size=2, dilation_cycle=8)  # receptive field 257
CONTENDERS = {"cached (queues)": True, "recompute": False}  # name → use_cache


def generator(use_cache: bool, prompt_tokens: int, new_tokens: int):
    """A callable that greedily continues a seeded random prompt by `new_tokens` tokens."""
    torch.manual_seed(0)
    model = WaveNetLM(CONFIG, VOCAB).eval()
    prompt = torch.randint(VOCAB, (1, prompt_tokens))
    return lambda: model.generate(prompt, new_tokens, temperature=0, use_cache=use_cache)


def run(prompt_tokens: int = 256, new_tokens: int = 300, repeats: int = 5) -> dict:
    """Median tokens/s of each contender over `repeats` interleaved rounds, at one thread."""
    default = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        contenders = {}
        for name, use_cache in CONTENDERS.items():
            generate = generator(use_cache, prompt_tokens, new_tokens)
            contenders[name] = lambda generate=generate: timed(lambda: generate().shape[1] - prompt_tokens)
        for run_once in contenders.values():  # warm-up
            run_once()
        result = {name: summary(rates) for name, rates in interleave(contenders, repeats).items()}
        print_table(f"WaveNet greedy decoding, receptive field {CONFIG.receptive_field}, {prompt_tokens}-token "
                    f"prompt + {new_tokens} new tokens, batch 1, 1 thread ({repeats} rounds)",
                    rate_rows(result, "recompute"), ["path", "tokens/s median", "tokens/s p90", "vs recompute"])
    finally:
        torch.set_num_threads(default)
    speedup = result["cached (queues)"]["median"] / result["recompute"]["median"]
    print(f"cached / recompute: {speedup:.1f}x (bar: 5x)")
    payload = {"receptive_field": CONFIG.receptive_field, "prompt_tokens": prompt_tokens, "new_tokens": new_tokens,
               "repeats": repeats, "results": result, "cache_speedup": speedup}
    save("wavenet", payload)
    return payload


def main() -> None:
    run()


if __name__ == "__main__":
    main()
