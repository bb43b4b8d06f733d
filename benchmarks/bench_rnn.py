"""Training tokens/s of the `shakespeare-char-lstm` model: seqlab's LSTM (fast path) against the same
RNNLM with its recurrent stack swapped for `torch.nn.LSTM` (same weights, same truncated-BPTT batches,
same optimizer), interleaved on the same machine. The bar: seqlab at least 0.9x torch.nn. Also the
peak memory of a few training steps for each, above the built model (`common.peak_memory`).

The same for the `shakespeare-10min` model, which has dropout between its layers: there torch.nn's
kernel draws its masks one Bernoulli variable at a time, seqlab's stack with `seqlab.nn.dropout`
(both models' output dropout is the RNNLM's own, the same in both). Both in float32."""

from __future__ import annotations

import time

import torch
from torch import nn

from benchmarks.common import (
    interleave,
    memory_cell,
    peak_memory,
    print_table,
    rate_rows,
    save,
    summary,
)
from seqlab.api import fit_tokenizer
from seqlab.config import load_config
from seqlab.data import TBPTTBatches, load_corpus, prepare_tokens
from seqlab.families import build_model


def train_steps(model: nn.Module, batches: TBPTTBatches, steps: int, lr: float) -> int:
    """`steps` truncated-BPTT steps (AdamW, state carried); returns the tokens trained on."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, fused=True)
    generator = torch.Generator().manual_seed(0)
    tokens = 0
    for _ in range(steps):
        inputs, y = batches.sample("train", generator)
        output = model(**inputs, targets=y)
        batches.carry(output)
        output[1].backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        tokens += y.numel()
    return tokens


PRESETS = ("shakespeare-char-lstm", "shakespeare-10min")


def setup(preset: str):
    """The preset's config (float32, on the CPU) and its tokenized corpus: (config, data, vocab_size)."""
    config = load_config(preset, ["train.device=cpu", "train.dtype=float32"])
    corpus = load_corpus(config.data.corpus)
    tokenizer = fit_tokenizer(config, corpus.text)
    return config, prepare_tokens(corpus.text, tokenizer, config.data.val_fraction), tokenizer.vocab_size


def make(config, vocab_size: int, reference: bool) -> nn.Module:
    """The preset's RNNLM in training mode; with `reference`, its recurrent stack is torch.nn.LSTM."""
    m = config.model
    torch.manual_seed(0)
    model = build_model(m, vocab_size)
    if reference:  # torch.nn.LSTM takes our state dict as is (same names and gate layout)
        lstm = nn.LSTM(m.d_model, m.d_model, m.n_layer, batch_first=True, dropout=m.dropout)
        lstm.load_state_dict(model.rnn.state_dict())
        model.rnn = lstm
    return model.train()


def prepare_training(preset: str, reference: bool, steps: int):
    """In a `peak_memory` child: build, warm up; return the work of `steps` steps (a fresh optimizer,
    so its state counts)."""
    config, data, vocab_size = setup(preset)
    model = make(config, vocab_size, reference)
    batches = TBPTTBatches(data, config.train.batch_size, config.model.block_size)
    train_steps(model, batches, 2, config.train.lr)  # first-step allocations
    return lambda: train_steps(model, batches, steps, config.train.lr)


def measure(preset: str, steps: int, repeats: int, memory_steps: int) -> dict:
    """The two implementations' rates and peak memory on `preset`'s model; prints its table."""
    config, data, vocab_size = setup(preset)
    m, t = config.model, config.train

    def rate(reference: bool) -> float:
        model = make(config, vocab_size, reference)
        batches = TBPTTBatches(data, t.batch_size, m.block_size)
        train_steps(model, batches, 2, t.lr)  # first-step allocations
        start = time.perf_counter()
        tokens = train_steps(model, batches, steps, t.lr)
        return tokens / (time.perf_counter() - start)

    rates = interleave({"seqlab": lambda: rate(False), "torch.nn.LSTM": lambda: rate(True)}, repeats)
    result = {name: summary(values) for name, values in rates.items()}
    memory = {name: peak_memory(prepare_training, preset, name == "torch.nn.LSTM", memory_steps) for name in result}
    rows = [row + [memory_cell(memory[row[0]])] for row in rate_rows(result, "torch.nn.LSTM")]
    print_table(f"training, {preset} ({m.n_layer}x{m.d_model} LSTM, dropout {m.dropout}, float32, {steps} steps x "
                f"{repeats} rounds, batch {t.batch_size}x{m.block_size}; peak MB of {memory_steps} steps, above "
                f"the model)", rows, ["implementation", "tokens/s median", "tokens/s p90", "vs torch.nn.LSTM", "peak MB"])
    return {"results": result, "peak_memory": memory,
            "ratio_seqlab_vs_torch": result["seqlab"]["median"] / result["torch.nn.LSTM"]["median"]}


def run(steps: int = 20, repeats: int = 5, memory_steps: int = 3) -> dict:
    plain, dropped = (measure(preset, steps, repeats, memory_steps) for preset in PRESETS)
    payload = {"steps": steps, "repeats": repeats, "memory_steps": memory_steps, **plain,
               "with_dropout": {"preset": PRESETS[1], **dropped},
               "ratio_seqlab_vs_torch_with_dropout": dropped["ratio_seqlab_vs_torch"]}
    save("rnn", payload)
    return payload


if __name__ == "__main__":
    run()
