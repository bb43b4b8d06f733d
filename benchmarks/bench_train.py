"""Training tokens/s of the `shakespeare-char` preset: seqlab's Trainer as the preset configures it
(bfloat16 autocast where the CPU computes bfloat16 natively), seqlab in float32, and the nanoGPT-style
reference (same shapes, float32, eager, its plain loop), interleaved on the same machine and the
same thread count; then each one's peak memory, in a fresh process."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import interleave, memory_cell, peak_memory, print_table, rate_rows, save, summary
from benchmarks.nanogpt_reference import ReferenceGPT, train_steps
from seqlab.api import LMBatches, fit_tokenizer
from seqlab.config import load_config
from seqlab.data import load_corpus, prepare_tokens
from seqlab.models import build_model
from seqlab.training import Trainer
from seqlab.training.precision import resolve_dtype

PRESET = "shakespeare-char"


def _setup(steps: int, dtype: str | None):
    overrides = [f"train.max_steps={steps}", "train.eval_every=0", "train.checkpoint_every=0",
                 "train.sample_tokens=0", "train.eval_steps=1", "train.device=cpu"]
    config = load_config(PRESET, overrides + ([f"train.dtype={dtype}"] if dtype else []))
    corpus = load_corpus(config.data.corpus)
    tokenizer = fit_tokenizer(config, corpus.text)
    return config, tokenizer, prepare_tokens(corpus.text, tokenizer, config.data.val_fraction)


def prepare_seqlab(steps: int, dtype: str | None = None):
    """A seqlab training run of `steps` steps as a callable returning tokens/s (dtype None: the preset's)."""
    config, tokenizer, data = _setup(steps, dtype)
    m, t = config.model, config.train

    def run() -> float:
        torch.manual_seed(0)
        model = build_model(m, tokenizer.vocab_size)
        with tempfile.TemporaryDirectory() as tmp:
            trainer = Trainer(model, LMBatches(data, t.batch_size, m.block_size), t, Path(tmp),
                              device=torch.device("cpu"), progress=False)
            return trainer.fit().tokens_per_sec
    return run


def prepare_reference(steps: int):
    """The nanoGPT-style loop on the same shapes, as a callable returning tokens/s."""
    config, tokenizer, data = _setup(steps, None)
    m, t = config.model, config.train
    train_array = np.asarray(data.train)

    def run() -> float:
        torch.manual_seed(0)
        model = ReferenceGPT(tokenizer.vocab_size, m.block_size, m.n_layer, m.n_head, m.d_model)
        optimizer = model.optimizer(t.lr)
        train_steps(model, optimizer, train_array, 2, t.batch_size, m.block_size)  # first-step allocations
        start = time.perf_counter()
        tokens = train_steps(model, optimizer, train_array, steps, t.batch_size, m.block_size)
        return tokens / (time.perf_counter() - start)
    return run


def run(steps: int = 100, repeats: int = 7) -> dict:
    config = load_config(PRESET)
    m, t = config.model, config.train
    preset_dtype = str(resolve_dtype(t.dtype, torch.device("cpu"))).removeprefix("torch.")
    names = {f"seqlab, preset ({preset_dtype})": (prepare_seqlab, (steps,)),
             "seqlab, float32": (prepare_seqlab, (steps, "float32")),
             "nanogpt-style, float32": (prepare_reference, (steps,))}
    if preset_dtype == "float32":
        del names["seqlab, float32"]
    contenders = {name: prepare(*args) for name, (prepare, args) in names.items()}
    rates = interleave(contenders, repeats)
    result = {name: summary(values) for name, values in rates.items()}
    memory = {name: peak_memory(_prepare_once, prepare, args) for name, (prepare, args) in names.items()}
    reference = "nanogpt-style, float32"
    rows = [row + [memory_cell(memory[row[0]])] for row in rate_rows(result, reference)]
    print_table(f"training, {PRESET} preset ({steps} steps x {repeats} rounds, batch {t.batch_size}x{m.block_size}, "
                f"{torch.get_num_threads()} threads)", rows,
                ["implementation", "tokens/s median", "tokens/s p90", "vs nanogpt-style", "peak MB (20 steps)"])
    preset_name = next(iter(names))
    payload = {"steps": steps, "repeats": repeats, "threads": torch.get_num_threads(), "results": result,
               "peak_memory": memory, "preset_dtype": preset_dtype,
               "ratio_seqlab_vs_reference": result[preset_name]["median"] / result[reference]["median"]}
    if "seqlab, float32" in result:
        payload["ratio_float32_vs_reference"] = result["seqlab, float32"]["median"] / result[reference]["median"]
    save("train", payload)
    return payload


def _prepare_once(prepare, args):
    """For `peak_memory`: the contender set up for 20 steps, run by the child once."""
    work = prepare(20, *args[1:])
    return work


if __name__ == "__main__":
    run()
