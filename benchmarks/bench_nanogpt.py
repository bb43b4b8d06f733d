"""seqlab's `shakespeare-char` preset against nanoGPT's own `train.py`, when a nanoGPT checkout is
given (`NANOGPT=path make bench`, or `python -m benchmarks.bench_nanogpt PATH`).

Both train the same shapes (4 layers, 4 heads, width 128, context 64, batch 12) on tiny Shakespeare
as whole processes, the way a user runs them: nanoGPT as its README's CPU command (float32, eager,
its own data loader and logging), seqlab as `seqlab train shakespeare-char` in float32 (compiled,
as the preset runs) and, where the CPU computes bfloat16 natively, in the preset's bfloat16. A step
costs the difference of the wall times of a SHORT and a LONG run over the difference of their steps:
start-up, compilation and the evaluations at both ends cancel. One untimed run of each comes first:
with inductor's cache cold, the first short run would compile what the long one then finds compiled
(a negative step time was measured so). The CPU model and whether it has native bfloat16 are printed
beside every ratio, and each step time is the median of interleaved rounds. nanoGPT's code is run
from the checkout, never copied.

nanoGPT reads `data/<dataset>/{train,val}.bin` and `meta.pkl` from its working directory: they are
written into a temporary folder (the characters' ids, 90/10 split, as its prepare.py makes them),
with train.py, model.py and configurator.py linked from the checkout.
"""

from __future__ import annotations

import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import cpu_model, interleave, print_table, save
from seqlab.data import load_corpus
from seqlab.training.precision import native_bfloat16

SHORT, LONG = 200, 1000  # steps of the two runs whose difference is timed
SHAPES = ["--block_size=64", "--batch_size=12", "--n_layer=4", "--n_head=4", "--n_embd=128", "--dropout=0.0",
          "--bias=False"]


def _prepare(checkout: Path, folder: Path) -> None:
    for name in ("train.py", "model.py", "configurator.py"):
        if not (checkout / name).is_file():
            raise SystemExit(f"NANOGPT={checkout}: no {name} there (give the folder of a nanoGPT checkout)")
        (folder / name).symlink_to((checkout / name).resolve())
    text = load_corpus("shakespeare").text
    chars = sorted(set(text))
    table = {c: i for i, c in enumerate(chars)}
    data = folder / "data" / "shakespeare_char"
    data.mkdir(parents=True)
    cut = int(len(text) * 0.9)
    for split, part in (("train", text[:cut]), ("val", text[cut:])):
        np.array([table[c] for c in part], dtype=np.uint16).tofile(data / f"{split}.bin")
    with open(data / "meta.pkl", "wb") as f:  # written for nanoGPT's train.py, which reads its vocab_size
        pickle.dump({"vocab_size": len(chars)}, f)


def _timed(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:3])} failed:\n{done.stderr[-2000:]}")
    return seconds


def _nanogpt(folder: Path, steps: int) -> list[str]:
    return [sys.executable, "train.py", "--dataset=shakespeare_char", "--device=cpu", "--compile=False",
            "--eval_iters=20", "--log_interval=1", f"--max_iters={steps}", "--lr_decay_iters=2000",
            "--eval_interval=100000", "--always_save_checkpoint=False", "--gradient_accumulation_steps=1",
            "--learning_rate=2e-3", "--beta2=0.99", "--warmup_iters=100", "--min_lr=1e-4", f"--out_dir={folder / 'out'}",
            *SHAPES]


def _seqlab(folder: Path, steps: int, dtype: str) -> list[str]:
    return [sys.executable, "-m", "seqlab", "train", "shakespeare-char", "--out", str(folder / f"run-{dtype}-{steps}"),
            "--overwrite", f"--train.max_steps={steps}", f"--train.dtype={dtype}", "--train.compile=true",
            "--train.eval_every=0", "--train.checkpoint_every=0", "--train.sample_tokens=0",
            "--train.lr_decay_steps=2000", "--train.device=cpu"]


def run(checkout: str | Path | None = None, rounds: int = 3) -> dict | None:
    checkout = checkout or os.environ.get("NANOGPT")
    if not checkout:
        print("\nnanoGPT's train.py: skipped (give a checkout: NANOGPT=path make bench)")
        return None
    bf16 = native_bfloat16(torch.device("cpu"))
    contenders = {"nanoGPT train.py (float32, eager)": _nanogpt,
                  "seqlab preset, float32 (compiled)": lambda folder, n: _seqlab(folder, n, "float32")}
    if bf16:
        contenders["seqlab preset, bfloat16 (compiled)"] = lambda folder, n: _seqlab(folder, n, "bfloat16")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _prepare(Path(checkout), folder)
        for command in contenders.values():  # untimed: fills inductor's cache, as a user's earlier run has
            _timed(command(folder, SHORT), folder)

        def step_ms(command) -> float:
            short, long = _timed(command(folder, SHORT), folder), _timed(command(folder, LONG), folder)
            return (long - short) / (LONG - SHORT) * 1000

        # Interleaved, so that a busy spell of the machine touches every contender.
        per_step = interleave({name: partial(step_ms, command) for name, command in contenders.items()}, rounds)
    # The median: a difference of two wall times errs both ways (a slow short run makes a step look
    # cheap), so the smallest is no better an estimate than the largest.
    median = {name: statistics.median(values) for name, values in per_step.items()}
    unusable = [name for name, ms in median.items() if ms <= 0]
    if unusable:  # the long run took no longer than the short one: the machine's load swamped the difference
        raise SystemExit(f"no usable step time for {', '.join(unusable)} ({per_step}): run it on a quieter machine")
    reference = median["nanoGPT train.py (float32, eager)"]
    cpu = f"{cpu_model()}, native bfloat16: {'yes' if bf16 else 'no'}"
    rows = [[name, f"{ms:.1f}", f"{reference / ms:.2f}x", cpu] for name, ms in median.items()]
    print_table(f"training step of the shakespeare-char shapes, whole processes: ({LONG} - {SHORT} steps), "
                f"median of {rounds} rounds", rows, ["implementation", "ms/step", "vs nanoGPT train.py", "CPU"])
    payload = {"cpu": cpu_model(), "native_bfloat16": bf16, "steps": [SHORT, LONG], "rounds": rounds,
               "ms_per_step": per_step, "median_ms_per_step": median,
               "ratios": {name: reference / ms for name, ms in median.items()}}
    save("nanogpt", payload)
    return payload


if __name__ == "__main__":
    run(sys.argv[1] if len(sys.argv) > 1 else None)
