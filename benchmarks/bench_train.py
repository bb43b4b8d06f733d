"""Training tokens/s of the `shakespeare-char` preset: seqlab's Trainer as the preset configures a
2000-step run (bfloat16 autocast where the CPU computes bfloat16 natively, torch.compile), seqlab
eager in bfloat16 and in float32, and the nanoGPT-style reference (same shapes, float32, eager, its
plain loop), interleaved on the same machine and thread count; then each one's peak memory, in a
fresh process. Every contender's first `WARMUP_STEPS` steps (allocations, compilation) are left out
of its rate and their time is reported apart."""

from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import interleave, memory_cell, peak_memory, print_table, rate_rows, save, summary
from benchmarks.nanogpt_reference import ReferenceGPT, train_steps
from seqlab.api import fit_tokenizer
from seqlab.data import LMBatches
from seqlab.config import load_config
from seqlab.data import load_corpus, prepare_tokens
from seqlab.families import build_model
from seqlab.training import Trainer
from seqlab.training.precision import resolve_dtype, wants_compile

PRESET = "shakespeare-char"
WARMUP_STEPS = 2
CPU = torch.device("cpu")


def preset_settings() -> tuple[str, bool]:
    """(dtype, compile) that the preset's own run gets on this machine."""
    config = load_config(PRESET)
    dtype = str(resolve_dtype(config.train.dtype, CPU)).removeprefix("torch.")
    model = build_model(config.model, 65)
    return dtype, wants_compile(config.train.compile, model=model, steps=config.train.max_steps)


def _setup(steps: int):
    overrides = [f"train.max_steps={steps}", "train.eval_every=0", "train.checkpoint_every=0",
                 "train.sample_tokens=0", "train.eval_steps=1", "train.device=cpu"]
    config = load_config(PRESET, overrides)
    corpus = load_corpus(config.data.corpus)
    tokenizer = fit_tokenizer(config, corpus.text)
    return config, tokenizer, prepare_tokens(corpus.text, tokenizer, config.data.val_fraction)


def prepare_seqlab(steps: int, dtype: str, compile: bool, warmups: list[float] | None = None):
    """seqlab's Trainer for `steps` steps after the warm-up, as a callable returning tokens/s."""
    config, tokenizer, data = _setup(steps + WARMUP_STEPS)
    m, t = config.model, replace(config.train, dtype=dtype, compile=compile)

    def run() -> float:
        torch.manual_seed(0)
        model = build_model(m, tokenizer.vocab_size)
        with tempfile.TemporaryDirectory() as tmp:
            trainer = Trainer(model, LMBatches(data, t.batch_size, m.block_size), t, Path(tmp),
                              device=CPU, progress=False)
            start = time.perf_counter()
            for _ in range(WARMUP_STEPS):
                trainer._train_step()
            if warmups is not None:
                warmups.append(time.perf_counter() - start)
            trainer.tokens_seen = 0
            return trainer.fit().tokens_per_sec
    return run


def prepare_reference(steps: int, warmups: list[float] | None = None):
    """The nanoGPT-style loop on the same shapes, as a callable returning tokens/s."""
    config, tokenizer, data = _setup(steps)
    m, t = config.model, config.train
    train_array = np.asarray(data.train)

    def run() -> float:
        torch.manual_seed(0)
        model = ReferenceGPT(tokenizer.vocab_size, m.block_size, m.n_layer, m.n_head, m.d_model)
        optimizer = model.optimizer(t.lr)
        start = time.perf_counter()
        train_steps(model, optimizer, train_array, WARMUP_STEPS, t.batch_size, m.block_size)
        if warmups is not None:
            warmups.append(time.perf_counter() - start)
        start = time.perf_counter()
        tokens = train_steps(model, optimizer, train_array, steps, t.batch_size, m.block_size)
        return tokens / (time.perf_counter() - start)
    return run


def run(steps: int = 100, repeats: int = 7) -> dict:
    m, t = load_config(PRESET).model, load_config(PRESET).train
    dtype, compiles = preset_settings()
    preset = f"seqlab, preset ({dtype}{', compiled' if compiles else ''})"
    reference = "nanogpt-style, float32"
    plans = {preset: (prepare_seqlab, (steps, dtype, compiles)),
             "seqlab, bfloat16 eager": (prepare_seqlab, (steps, "bfloat16", False)),
             "seqlab, float32 eager": (prepare_seqlab, (steps, "float32", False)),
             reference: (prepare_reference, (steps,))}
    if (dtype, compiles) in (("bfloat16", False), ("float32", False)):  # the preset is one of the others
        del plans[preset]
        preset = f"seqlab, {dtype} eager"
    warmups = {name: [] for name in plans}
    contenders = {name: prepare(*args, warmups=warmups[name]) for name, (prepare, args) in plans.items()}
    rates = interleave(contenders, repeats)
    result = {name: summary(values) for name, values in rates.items()}
    memory = {name: peak_memory(_prepare_short, prepare, args) for name, (prepare, args) in plans.items()}
    rows = [row + [f"{max(warmups[row[0]]):.1f}", memory_cell(memory[row[0]])]
            for row in rate_rows(result, reference)]
    print_table(f"training, {PRESET} preset ({steps} steps x {repeats} rounds after {WARMUP_STEPS} warm-up steps, "
                f"batch {t.batch_size}x{m.block_size}, {torch.get_num_threads()} threads)", rows,
                ["implementation", "tokens/s median", "tokens/s p90", "vs nanogpt-style", "warm-up s (max)",
                 "peak MB (20 steps)"])
    payload = {"steps": steps, "repeats": repeats, "threads": torch.get_num_threads(), "results": result,
               "warmup_seconds": warmups, "peak_memory": memory, "preset": preset,
               "ratio_seqlab_vs_reference": result[preset]["median"] / result[reference]["median"],
               "ratio_float32_vs_reference": result["seqlab, float32 eager"]["median"] / result[reference]["median"]}
    save("train", payload)
    return payload


def _prepare_short(prepare, args):
    """For `peak_memory`, in the child: the contender set up for 20 steps."""
    return prepare(20, *args[1:])


if __name__ == "__main__":
    run()
