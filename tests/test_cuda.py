"""The CUDA paths, end to end through the CLI: float16 with its gradient scaler (and the scaler's
state across a resume), bfloat16 autocast, a compiled model, NCCL under torchrun, and cached
sampling on the GPU. Skipped where no GPU is present (CI has none); run on a GPU machine with
`pytest tests/test_cuda.py`."""

import csv
import json
import os
import subprocess
import sys

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

STEPS = 20


def _config(tmp_path, corpus, **train) -> str:
    settings = {"batch_size": 8, "max_steps": STEPS, "lr_decay_steps": STEPS, "lr": 3e-3, "warmup_steps": 2,
                "eval_every": 10, "eval_steps": 2, "checkpoint_every": 10, "log_every": 1, "sample_tokens": 0,
                "device": "cuda", "dtype": "float32", "compile": False, **train}
    lines = "\n".join(f"{key} = {json.dumps(value)}" for key, value in settings.items())
    path = tmp_path / "config.toml"
    path.write_text(
        f'[data]\ncorpus = "{corpus}"\nval_fraction = 0.1\n\n[tokenizer]\nkind = "char"\n\n'
        '[model]\nfamily = "transformer"\nn_layer = 2\nn_head = 2\nd_model = 64\nblock_size = 32\ndropout = 0.0\n\n'
        f"[train]\n{lines}\n", encoding="utf-8")
    return str(path)


def _seqlab(*args: str, processes: int = 0) -> str:
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
                 "-m", "seqlab"] if processes else [sys.executable, "-m", "seqlab"])
    done = subprocess.run([*launcher, "-q", *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _losses(run_dir) -> list[float]:
    with open(run_dir / "metrics.csv", encoding="utf-8", newline="") as handle:
        return [float(row["loss"]) for row in csv.DictReader(handle) if row["split"] == "batch"]


def _train(tmp_path, corpus, name: str, *extra: str, processes: int = 0, **train) -> list[float]:
    _seqlab("train", _config(tmp_path, corpus, **train), "--out", str(tmp_path / name), "--no-progress", *extra,
            processes=processes)
    return _losses(tmp_path / name)


def test_float16_trains_with_its_scaler_and_resumes_exactly(tmp_path, word_corpus):
    corpus = word_corpus(tmp_path / "corpus.txt", size=20000)
    full = _train(tmp_path, corpus, "fp32")
    half = _train(tmp_path, corpus, "fp16", dtype="float16")
    assert len(half) == STEPS and all(map(lambda loss: loss == loss, half))  # no NaN, no skipped step
    assert abs(half[0] - full[0]) < 0.02 and half[-1] < half[0] - 0.5 and abs(half[-1] - full[-1]) < 0.1
    # the scaler's state is part of the checkpoint ...
    (checkpoint,) = (tmp_path / "fp16" / "state").glob("ckpt-*")
    trainer_state = json.loads((checkpoint / "trainer.json").read_text(encoding="utf-8"))
    assert trainer_state["grad_scaler"]["scale"] > 0
    # ... so a run stopped at step 10 and resumed goes on as the whole run did
    _train(tmp_path, corpus, "parts", "--train.max_steps=10", dtype="float16")
    _seqlab("train", "--out", str(tmp_path / "parts"), "--resume", "--no-progress", f"--train.max_steps={STEPS}")
    parts = _losses(tmp_path / "parts")
    assert len(parts) == STEPS and max(abs(a - b) for a, b in zip(half, parts)) < 1e-3


def test_bfloat16_and_compile_on_cuda(tmp_path, word_corpus):
    corpus = word_corpus(tmp_path / "corpus.txt", size=20000)
    full = _train(tmp_path, corpus, "fp32")
    bf16 = _train(tmp_path, corpus, "bf16", dtype="bfloat16")
    assert abs(bf16[0] - full[0]) < 0.03 and abs(bf16[-1] - full[-1]) < 0.15
    compiled = _train(tmp_path, corpus, "compiled", compile=True)
    assert max(abs(a - b) for a, b in zip(full, compiled)) < 1e-3


def test_nccl_under_torchrun_equals_one_process(tmp_path, word_corpus):
    corpus = word_corpus(tmp_path / "corpus.txt", size=20000)
    alone = _train(tmp_path, corpus, "alone")
    ranked = _train(tmp_path, corpus, "ranked", processes=1)  # torchrun: world of 1, NCCL backend
    assert max(abs(a - b) for a, b in zip(alone, ranked)) < 1e-5


def test_cached_sampling_on_cuda_equals_recompute(tmp_path, word_corpus):
    from seqlab import api
    from seqlab.config import SampleConfig

    corpus = word_corpus(tmp_path / "corpus.txt", size=20000)
    _train(tmp_path, corpus, "run")
    model, tokenizer = api.load(tmp_path / "run", device="cuda")
    # 5 + 25 tokens stay inside block_size 32, where the cache and recomputing see the same context
    options = SampleConfig(prompt="To be", max_new_tokens=25, temperature=0.0, num_samples=3, seed=0)
    cached = api.sample_many(model, tokenizer, options)
    assert cached == api.sample_many(model, tokenizer, options, use_cache=False)
    assert len(cached) == 3 and all(len(text) > len("To be") for text in cached)
    # the command line samples on the GPU too
    assert _seqlab("sample", str(tmp_path / "run"), "--device", "cuda", "--max-new-tokens", "20").strip()
