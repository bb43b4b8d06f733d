"""train.dtype, train.compile and the CPU thread policy: each fast setting trains the model the
float32 eager run trains (bfloat16 to its rounding, compile to float rounding), and bad settings
fail with one clear line."""

import csv
import json
import logging
import os

import pytest
import torch
from safetensors.torch import load_file

from seqlab.config import ModelConfig, TrainConfig
from seqlab.models.rnn import RecurrentConfig
from seqlab.data import Batches
from seqlab.errors import ConfigError, SeqlabError
from seqlab.families import build_model
from seqlab.nn.attention import sdpa
from seqlab.training import Trainer, precision, threads

VOCAB, T = 13, 16


class RandomWindows(Batches):
    tokens_per_char = {"train": 1.0, "val": 1.0}

    def __init__(self):
        g = torch.Generator().manual_seed(0)
        # a learnable stream: each token mostly follows from the previous one
        steps = torch.randint(1, 3, (2000,), generator=g)
        self.tokens = torch.cumsum(steps, 0) % VOCAB

    def sample(self, split, generator):
        starts = torch.randint(len(self.tokens) - T - 1, (4,), generator=generator)
        x = torch.stack([self.tokens[s:s + T] for s in starts])
        return x, torch.stack([self.tokens[s + 1:s + T + 1] for s in starts])


def _train(run_dir, resume=False, **changes):
    torch.manual_seed(0)
    model = build_model(ModelConfig(n_layer=2, n_head=2, d_model=32, block_size=T, dropout=0.0), VOCAB)
    config = TrainConfig(**{"max_steps": 30, "lr": 1e-2, "warmup_steps": 2, "eval_every": 0, "eval_steps": 2,
                            "checkpoint_every": 30, "log_every": 1, "sample_tokens": 0, "device": "cpu",
                            **changes})
    Trainer(model, RandomWindows(), config, run_dir, device=torch.device("cpu"), progress=False).fit(resume=resume)
    with open(run_dir / "metrics.csv") as handle:
        return [float(r["loss"]) for r in csv.DictReader(handle) if r["split"] == "batch"]


def test_bfloat16_trains_like_float32(tmp_path):
    full = _train(tmp_path / "fp32")
    half = _train(tmp_path / "bf16", dtype="bfloat16")
    assert half != full  # the arithmetic did change ...
    assert abs(half[0] - full[0]) < 0.02  # ... by bfloat16's rounding at the start,
    assert half[-1] < full[0] - 0.5 and abs(half[-1] - full[-1]) < 0.15  # and it learns as much
    # the weights and the optimizer stay float32
    weights = load_file(tmp_path / "bf16" / "model.safetensors")
    assert {w.dtype for w in weights.values()} == {torch.float32}


def test_compiled_training_equals_eager(tmp_path):
    eager = _train(tmp_path / "eager", max_steps=5, checkpoint_every=5)
    compiled = _train(tmp_path / "compiled", max_steps=5, checkpoint_every=5, compile=True)
    assert max(abs(a - b) for a, b in zip(eager, compiled)) < 1e-4


def test_a_compiler_failure_falls_back_to_eager(tmp_path, monkeypatch, caplog):
    class Broken(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, *args, **kwargs):
            raise RuntimeError("inductor: no C++ compiler found")

    monkeypatch.setattr(precision, "compile_model", Broken)
    eager = _train(tmp_path / "eager", max_steps=5, checkpoint_every=5)
    with caplog.at_level(logging.WARNING, logger="seqlab"):
        fallback = _train(tmp_path / "fallback", max_steps=5, checkpoint_every=5, compile=True)
    assert fallback == eager
    assert "torch.compile failed (RuntimeError: inductor: no C++ compiler found)" in caplog.text


def test_float16_gradient_scaler_path(tmp_path, monkeypatch):
    """The float16 path (a GPU setting) run on the CPU, whose autocast also computes in float16, so
    CI exercises the scaler: scaled backward, unscale before clipping, step and update, the scaler's
    state in the checkpoint, and a resume that goes on exactly as the whole run."""
    monkeypatch.setattr(precision, "resolve_dtype", lambda name, device: precision.DTYPES[name])
    full = _train(tmp_path / "fp32", max_steps=12, checkpoint_every=12)
    half = _train(tmp_path / "fp16", dtype="float16", max_steps=12, checkpoint_every=6)
    assert half != full and abs(half[0] - full[0]) < 0.02 and abs(half[-1] - full[-1]) < 0.1
    scaler = _scaler_state(tmp_path / "fp16")
    assert scaler["scale"] > 0 and scaler["_growth_tracker"] == 12  # no overflow: 12 good steps in a row
    _train(tmp_path / "parts", dtype="float16", max_steps=6, checkpoint_every=6, lr_decay_steps=12)
    assert _train(tmp_path / "parts", dtype="float16", max_steps=12, checkpoint_every=6, lr_decay_steps=12,
                  resume=True) == half
    assert _scaler_state(tmp_path / "parts") == scaler  # restored at step 6, not started afresh


def _scaler_state(run_dir) -> dict:
    (checkpoint,) = (run_dir / "state").glob("ckpt-*")
    return json.loads((checkpoint / "trainer.json").read_text(encoding="utf-8"))["grad_scaler"]


def test_compile_auto_is_for_long_runs_of_models_that_trace_whole():
    gpt = build_model(ModelConfig(n_layer=1, n_head=2, d_model=16, block_size=8), VOCAB)
    lstm = build_model(RecurrentConfig(family="lstm", n_layer=1, d_model=16, block_size=8), VOCAB)
    assert precision.wants_compile("auto", model=gpt, steps=2000)
    assert not precision.wants_compile("auto", model=gpt, steps=20)  # compiling would not pay
    assert not precision.wants_compile("auto", model=lstm, steps=2000)  # its loop would unroll
    assert precision.wants_compile(True, model=lstm, steps=1)
    assert not precision.wants_compile(False, model=gpt, steps=2000)


def test_dtype_choices():
    cpu = torch.device("cpu")
    assert precision.resolve_dtype("float32", cpu) == torch.float32
    assert precision.resolve_dtype("bfloat16", cpu) == torch.bfloat16
    expected = torch.bfloat16 if precision.native_bfloat16(cpu) else torch.float32
    assert precision.resolve_dtype("auto", cpu) == expected
    with pytest.raises(SeqlabError, match="float16.*needs a CUDA device"):
        precision.resolve_dtype("float16", cpu)


def test_bad_settings_are_one_line_errors():
    from seqlab.config import load_config
    with pytest.raises(ConfigError, match="train.dtype = 'half' is not allowed: expected one of float32"):
        load_config("shakespeare-char", ["train.dtype=half"])
    with pytest.raises(ConfigError, match="train.compile = 'maybe' is not allowed: expected true or false or one of auto"):
        load_config("shakespeare-char", ["train.compile=maybe"])
    with pytest.raises(ConfigError, match="train.threads"):
        load_config("shakespeare-char", ["train.threads=-1"])


def test_half_precision_attention_runs_in_float32_on_cpu():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 2, 5, 8, generator=g) for _ in range(3))
    exact = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    half = sdpa(q.bfloat16(), k.bfloat16(), v.bfloat16(), is_causal=True)
    assert half.dtype == torch.bfloat16
    assert torch.allclose(half.float(), exact, atol=3e-2)


def test_thread_policy(monkeypatch):
    monkeypatch.setattr(threads, "available_cores", lambda: 8)
    monkeypatch.setattr(threads, "busy_cores", lambda: 3.2)
    assert threads.choose_threads(3) == 3  # asked for
    assert threads.choose_threads(params=800_000, tokens=1) == 1  # decoding a small model
    assert threads.choose_threads(params=800_000, tokens=768) == 5  # the cores others leave free
    assert threads.choose_threads(params=800_000, tokens=768, processes=2) == 4  # shared evenly
    monkeypatch.setattr(threads, "busy_cores", lambda: 8.0)
    assert threads.choose_threads(params=800_000, tokens=768) == 1  # never fewer than one
    threads.set_command_line_threads(2)
    try:
        assert threads.choose_threads(6, params=1, tokens=1) == 2  # the command line wins
    finally:
        threads.set_command_line_threads(0)


def test_busy_cores_reads_the_machine():
    assert 0.0 <= threads.busy_cores(window=0.02) <= os.cpu_count() + 1e-6


def test_threads_flag_is_checked(capsys):
    from seqlab.cli import main
    assert main(["--threads", "0", "presets"]) == 2
    assert "--threads '0': expected a positive number of CPU threads" in capsys.readouterr().err
    assert main(["presets", "--threads=1"]) == 0
    threads.set_command_line_threads(0)


def test_thread_governor_follows_other_processes(monkeypatch):
    clock = {"t": 0.0}
    # /proc/stat: user nice system idle iowait irq softirq (jiffies summed over the cores); own ticks
    machine = {"stat": [0, 0, 0, 0, 0, 0, 0], "own": 0}
    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(threads.time, "monotonic", lambda: clock["t"])
    monkeypatch.setattr(threads, "_cpu_times", lambda: list(machine["stat"]))
    monkeypatch.setattr(threads, "_own_ticks", lambda: machine["own"])
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        governor = threads.ThreadGovernor(params=800_000, tokens=768, interval=5.0)

        def elapse(own: int, others: int, idle: int) -> int | None:
            clock["t"] += 5.0
            machine["stat"][0] += own + others
            machine["stat"][3] += idle
            machine["own"] += own
            return governor.check()

        assert elapse(own=1000, others=0, idle=0) is None  # alone on both cores: keeps 2
        assert elapse(own=500, others=500, idle=0) == 1 and torch.get_num_threads() == 1  # a neighbour came
        assert elapse(own=500, others=0, idle=500) == 2  # it left
        clock["t"] += 1.0
        assert governor.check() is None  # not due yet
        assert not threads.ThreadGovernor(3, params=800_000, tokens=768).active  # asked for: fixed
        assert not threads.ThreadGovernor(params=1000, tokens=1).active  # small work: one thread
    finally:
        torch.set_num_threads(before)
