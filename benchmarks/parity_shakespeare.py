"""Validation loss of the `shakespeare-char` preset after 2000 steps, seqlab against the
nanoGPT-style reference, for several seeds, both scored on the whole validation split.

    .venv/bin/python benchmarks/parity_shakespeare.py --seeds 1337 1 2

Each model trains with its own loop (seqlab's Trainer; the reference's plain loop with the same
schedule), then both are scored by the same full-split evaluation (non-overlapping 64-token windows,
every validation token predicted once). About 2-3 minutes per model on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import print_table, save  # noqa: E402
from benchmarks.nanogpt_reference import ReferenceGPT, get_batch  # noqa: E402
from seqlab import api  # noqa: E402
from seqlab.config import load_config  # noqa: E402
from seqlab.data import load_corpus, prepare_tokens  # noqa: E402
from seqlab.training import learning_rate  # noqa: E402


def full_split_loss(model: torch.nn.Module, tokens: np.ndarray, block_size: int) -> float:
    """Mean cross-entropy over every predicted token of `tokens`, scored by seqlab's evaluation loop."""
    model.eval()
    logits_of = (lambda x: _reference_logits(model, x)) if isinstance(model, ReferenceGPT) else (lambda x: model(x)[0])
    total, count = api.stream_nats(logits_of, tokens, block_size)
    return total / count


def _reference_logits(model: ReferenceGPT, x: torch.Tensor) -> torch.Tensor:
    h = model.wte(x) + model.wpe(torch.arange(x.shape[1]))
    for block in model.h:
        h = block(h)
    return model.lm_head(model.ln_f(h))  # (B, T, V)


def train_reference(seed: int, train: np.ndarray, vocab: int) -> tuple[ReferenceGPT, float]:
    config = load_config("shakespeare-char")
    m, t = config.model, config.train
    torch.manual_seed(seed)
    model = ReferenceGPT(vocab, m.block_size, m.n_layer, m.n_head, m.d_model)
    optimizer = model.optimizer(t.lr, t.weight_decay, (t.beta1, t.beta2))
    start = time.perf_counter()
    for step in range(t.max_steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, t)
        x, y = get_batch(train, t.batch_size, m.block_size)
        _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return model, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1337])
    seeds = parser.parse_args().seeds
    config = load_config("shakespeare-char", ["train.device=cpu"])
    corpus = load_corpus(config.data.corpus)
    rows, results = [], []
    for seed in seeds:
        with tempfile.TemporaryDirectory() as tmp:
            run_dir = api.train(config, out=Path(tmp) / "run", overrides=[f"train.seed={seed}"], progress=False)
            model, tokenizer = api.load(run_dir)
            data = prepare_tokens(corpus.text, tokenizer, config.data.val_fraction)
            ours = full_split_loss(model, np.asarray(data.val), config.model.block_size)
        reference, _ = train_reference(seed, np.asarray(data.train), tokenizer.vocab_size)
        theirs = full_split_loss(reference, np.asarray(data.val), config.model.block_size)
        results.append({"seed": seed, "seqlab": ours, "nanogpt_style": theirs})
        rows.append([str(seed), f"{ours:.4f}", f"{theirs:.4f}", f"{ours / math.log(2):.4f}"])
        print_table("val loss after 2000 steps, whole validation split", rows,
                    ["seed", "seqlab", "nanogpt-style", "seqlab bits/char"])
    save("parity_shakespeare", {"results": results})


if __name__ == "__main__":
    main()
