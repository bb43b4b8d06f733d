"""Data-parallel training under torchrun: 2 gloo processes on the CPU compute, step by step, the
losses of one process training on the same global batch, also through gradient accumulation
(no_sync), truncated BPTT (each process its own streams) and a resume; Ctrl-C stops every process
at one step with a checkpoint."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

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


def test_ctrl_c_stops_every_rank_at_one_step_with_a_checkpoint(tmp_path, word_corpus):
    """A terminal's Ctrl-C reaches torchrun, which forwards it to the workers (each in a session of
    its own) and waits 30 s before killing them. Both ranks must stop at the same step, and rank 0
    checkpoint it."""
    corpus = word_corpus(tmp_path / "corpus.txt", size=6000)
    config = _config(tmp_path, corpus, "transformer")
    run_dir = tmp_path / "stopped"
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "seqlab"]
    process = subprocess.Popen([*launcher, "train", str(config), "--out", str(run_dir), "--no-progress",
                                "--train.max_steps=100000", "--train.checkpoint_every=0", "--train.eval_every=0"],
                               start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(_logged(run_dir)) < 5:
            time.sleep(0.2)
        os.killpg(process.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    steps = _logged(run_dir)
    assert len(steps) >= 5, err[-3000:]
    latest = json.loads((run_dir / "state" / "latest.json").read_text(encoding="utf-8"))
    assert latest["step"] == steps[-1] < 100000  # stopped, and the checkpoint is of the last step taken
    assert err.count("SIGINT: saving a checkpoint") == 1  # rank 0 speaks for both
    assert err.count(f"interrupted by SIGINT at step {steps[-1]}, checkpoint saved; continue with: seqlab train "
                     f"--out {run_dir} --resume") == 1
    assert "run saved in" not in out  # not finished
    # the run goes on from there, under torchrun again
    _seqlab("train", "--out", str(run_dir), "--resume", "--no-progress", f"--train.max_steps={steps[-1] + 3}",
            processes=2)
    assert _logged(run_dir)[-1] == steps[-1] + 3


def _logged(run_dir) -> list[int]:
    try:
        return sorted(_losses(run_dir))
    except (OSError, KeyError, ValueError):  # not written yet, or a row being written
        return []
