"""Data-parallel training under torchrun: 2 gloo processes on the CPU compute, step by step, the
losses of one process training on the same global batch, also through gradient accumulation
(no_sync), truncated BPTT (each process its own streams) and a resume."""

import csv
import os
import subprocess
import sys

import pytest

STEPS = 20


def _config(tmp_path, corpus, family: str) -> "os.PathLike":
    model = ('family = "transformer"\nn_layer = 2\nn_head = 2\nd_model = 32\nblock_size = 16\ndropout = 0.0\n'
             if family == "transformer" else
             'family = "lstm"\nn_layer = 1\nd_model = 32\nblock_size = 16\ndropout = 0.0\n')
    path = tmp_path / f"{family}.toml"
    path.write_text(
        f'[data]\ncorpus = "{corpus}"\nval_fraction = 0.1\n\n[tokenizer]\nkind = "char"\n\n[model]\n{model}\n'
        f'[train]\nbatch_size = 8\nmax_steps = {STEPS}\nlr_decay_steps = {STEPS}\ngrad_accum_steps = 2\nlr = 3e-3\nwarmup_steps = 2\n'
        'eval_every = 10\neval_steps = 2\ncheckpoint_every = 10\nlog_every = 1\nsample_tokens = 0\n'
        'device = "cpu"\ndtype = "float32"\ncompile = false\nthreads = 1\n', encoding="utf-8")
    return path


def _seqlab(*args: str, processes: int = 1) -> None:
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
                 "-m", "seqlab"] if processes > 1 else [sys.executable, "-m", "seqlab"])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*launcher, "-q", *args], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def _losses(run_dir, split: str = "batch") -> dict[int, float]:
    with open(run_dir / "metrics.csv", encoding="utf-8", newline="") as handle:
        return {int(row["step"]): float(row["loss"]) for row in csv.DictReader(handle) if row["split"] == split}


@pytest.mark.parametrize("family", ["transformer", "lstm"])
def test_two_processes_equal_one(tmp_path, word_corpus, family):
    corpus = word_corpus(tmp_path / "corpus.txt", size=6000)
    config = _config(tmp_path, corpus, family)
    _seqlab("train", str(config), "--out", str(tmp_path / "one"), "--no-progress")
    _seqlab("train", str(config), "--out", str(tmp_path / "two"), "--no-progress", processes=2)
    one, two = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert sorted(one) == sorted(two) == list(range(1, STEPS + 1))
    assert max(abs(one[s] - two[s]) for s in one) < 1e-5
    # the evaluation estimates are averaged over the processes' shares of each eval batch
    one_val, two_val = _losses(tmp_path / "one", "val"), _losses(tmp_path / "two", "val")
    assert max(abs(one_val[s] - two_val[s]) for s in one_val) < 1e-5
    # only rank 0 wrote the run, whose checkpoint loads like any other
    assert (tmp_path / "two" / "model.safetensors").is_file()
    _seqlab("sample", str(tmp_path / "two"), "--max-new-tokens", "5")


def test_resume_under_ddp(tmp_path, word_corpus):
    corpus = word_corpus(tmp_path / "corpus.txt", size=6000)
    config = _config(tmp_path, corpus, "transformer")
    _seqlab("train", str(config), "--out", str(tmp_path / "whole"), "--no-progress")
    _seqlab("train", str(config), "--out", str(tmp_path / "parts"), "--no-progress", "--train.max_steps=10",
            processes=2)
    _seqlab("train", "--out", str(tmp_path / "parts"), "--resume", "--no-progress", f"--train.max_steps={STEPS}",
            processes=2)
    whole, parts = _losses(tmp_path / "whole"), _losses(tmp_path / "parts")
    assert sorted(parts) == list(range(1, STEPS + 1))
    assert max(abs(whole[s] - parts[s]) for s in whole) < 1e-5


def test_batch_must_split_over_processes(tmp_path, word_corpus):
    corpus = word_corpus(tmp_path / "corpus.txt", size=6000)
    config = _config(tmp_path, corpus, "transformer")
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "seqlab"]
    done = subprocess.run([*launcher, "train", str(config), "--out", str(tmp_path / "odd"), "--no-progress",
                           "--train.batch_size=7"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode != 0
    assert "does not split over 2 processes" in done.stderr
