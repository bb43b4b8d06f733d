"""Training tokens/s of the `mamba` preset (7 blocks of width 128, 825k parameters; on the CPU its
scan and convolution run as the fused numba kernels of `seqlab.models.mamba_kernels`) against the
same-size `shakespeare-char` Transformer (4 layers of width 128, 804k parameters), on the same
batches of 12 x 64 tokens with the same optimizer, interleaved on the same machine. The bar: Mamba
at least 0.5x the Transformer.

Both run eagerly in float32 (`train.compile` and bfloat16 autocast off), so the figure compares the
models and not the compiler; Mamba carries its state from one batch to the next as its training does
(truncated BPTT), the Transformer reads independent windows. A second table times Mamba's scan
alone: the fused kernels, and the chunked torch scan (the path of other devices and dtypes) at a
few chunk lengths, against the step-by-step recurrence through autograd, forward and backward, on
one layer's tensors (B 12, T 64, E 256, N 16).

    nice -n 10 python -m benchmarks.bench_mamba     # about a minute on two quiet cores
"""

from __future__ import annotations

import argparse
import time

import torch

from benchmarks.common import interleave, print_table, rate_rows, save, summary
from seqlab.config import load_config
from seqlab.families import build_model
from seqlab.models.mamba import chunked_scan, reference_scan
from seqlab.models.mamba_kernels import fused_selective_scan

VOCAB = 65  # tiny Shakespeare's characters; speed does not depend on the tokens' values
PRESETS = {"Transformer (shakespeare-char)": "shakespeare-char", "Mamba (mamba)": "mamba"}
SCAN_SHAPE = (12, 64, 256, 16)  # B, T, E, N of one layer of the mamba preset's training step
CHUNKS = (8, 16, 64)


def trainer(preset: str, steps: int):
    """The preset's model (train mode) and a function that makes `steps` AdamW steps on random
    batches of the preset's shape and returns the tokens trained on."""
    config = load_config(preset, ["train.device=cpu"])
    torch.manual_seed(0)
    model = build_model(config.model, VOCAB).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.train.lr)
    B, T = config.train.batch_size, config.model.block_size
    generator = torch.Generator().manual_seed(0)
    carried = model.new_state(B) if model.block_size is None else None  # a state the batches carry

    def run() -> int:
        nonlocal carried
        for _ in range(steps):
            x = torch.randint(0, VOCAB, (B, T + 1), generator=generator)
            if carried is None:
                loss = model(x[:, :-1], x[:, 1:])[1]
            else:
                _, loss, state = model(x[:, :-1], x[:, 1:], state=carried, return_state=True)
                carried = tuple(s.detach() for s in state)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return steps * B * T

    return model, run


def rate(run) -> float:
    start = time.perf_counter()
    tokens = run()
    return tokens / (time.perf_counter() - start)


def scan_rates(repeats: int) -> dict[str, dict]:
    """Forward and backward of one layer's selective scan, tokens (B·T) per second, by implementation."""
    B, T, E, N = SCAN_SHAPE
    generator = torch.Generator().manual_seed(0)
    inputs = [torch.rand(B, T, E, generator=generator), -torch.rand(E, N, generator=generator),
              torch.randn(B, T, N, generator=generator), torch.randn(B, T, N, generator=generator),
              torch.randn(B, T, E, generator=generator), torch.zeros(B, E, N)]
    inputs = [t.requires_grad_() for t in inputs]
    scans = {"fused (numba)": lambda: fused_selective_scan(*inputs)}
    scans.update({f"chunked, chunk {c}": (lambda c=c: chunked_scan(*inputs, c)) for c in CHUNKS})
    scans["step by step, autograd"] = lambda: reference_scan(*inputs)

    def timed(scan):
        def go() -> float:
            start = time.perf_counter()
            scan()[0].sum().backward()
            return B * T / (time.perf_counter() - start)
        return go

    contenders = {name: timed(scan) for name, scan in scans.items()}
    interleave(contenders, 1)  # warm-up
    return {name: summary(r) for name, r in interleave(contenders, repeats).items()}


def run(steps: int = 5, repeats: int = 5) -> dict:
    models = {name: trainer(preset, steps) for name, preset in PRESETS.items()}
    parameters = {name: sum(p.numel() for p in model.parameters()) for name, (model, _) in models.items()}
    contenders = {name: (lambda work=work: rate(work)) for name, (_, work) in models.items()}
    interleave(contenders, 1)  # warm-up: first-step allocations
    result = {name: summary(r) for name, r in interleave(contenders, repeats).items()}
    reference, ours = PRESETS
    ratio = result[ours]["median"] / result[reference]["median"]
    rows = [[*row, f"{parameters[row[0]]:,}"] for row in rate_rows(result, reference)]
    print_table(f"training tokens/s, float32 eager, batches of 12 x 64, {steps} steps a round, median of "
                f"{repeats} interleaved rounds", rows, ["model", "median", "p90", "vs Transformer", "parameters"])
    scans = scan_rates(repeats)
    print_table(f"the selective scan alone, forward + backward, (B, T, E, N) = {SCAN_SHAPE}, tokens/s, median of "
                f"{repeats} rounds", rate_rows(scans, "step by step, autograd"),
                ["scan", "median", "p90", "vs step by step"])
    print(f"\nMamba / Transformer training tokens/s: {ratio:.2f}x (bar: >= 0.5x)")
    payload = {"steps": steps, "repeats": repeats, "results": result, "parameters": parameters,
               "ratio_mamba_vs_transformer": ratio, "scan": scans, "scan_shape": SCAN_SHAPE}
    save("mamba", payload)
    return payload


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    run(args.steps, args.repeats)


if __name__ == "__main__":
    main()
