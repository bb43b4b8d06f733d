"""Callbacks: the hooks come in order with the right steps, the default set writes the metrics.csv rows
the trainer always wrote, a run without a CheckpointCallback writes no checkpoint, and every batch
source that seqlab ships fulfils the BatchSource protocol the trainer relies on."""

import csv
import importlib
import inspect
import math
import os
import pkgutil
import signal

import numpy as np
import pytest
import torch
from torch import nn

import seqlab.data
from seqlab.config import TrainConfig
from seqlab.data import Batches, BatchSource, LMBatches, TBPTTBatches, TokenData
from seqlab.data.parens import ParensBatches, make_parens_dataset
from seqlab.data.seq2seq import Seq2SeqBatches, encode_pairs, generate_task
from seqlab.training import (Callback, CheckpointCallback, MetricsCallback, Trainer, default_callbacks,
                             latest_checkpoint, learning_rate)
from seqlab.training.metrics import COLUMNS

SEED, VOCAB, T = 3, 11, 8


class TinyLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(VOCAB, 16)
        self.drop = nn.Dropout(0.2)  # consumes torch's RNG, as a sampler would
        self.head = nn.Linear(16, VOCAB)

    def forward(self, x, y):
        logits = self.head(self.drop(self.emb(x)))
        return logits, nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())


class CycleBatches(Batches):
    tokens_per_char = {"train": 1.0, "val": 1.0}

    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.data = {"train": torch.randint(VOCAB, (400,), generator=g),
                     "val": torch.randint(VOCAB, (100,), generator=g)}

    def sample(self, split, generator):
        tokens = self.data[split]
        starts = torch.randint(len(tokens) - T, (4,), generator=generator)
        return torch.stack([tokens[s:s + T] for s in starts]), torch.stack([tokens[s + 1:s + T + 1] for s in starts])


def train_config(**changes):
    return TrainConfig(**{"max_steps": 4, "lr": 1e-2, "min_lr": 1e-3, "warmup_steps": 2, "eval_every": 2,
                          "eval_steps": 2, "checkpoint_every": 2, "log_every": 2, "seed": SEED, **changes})


def make_trainer(run_dir, callbacks=None, sampler=None, **changes):
    torch.manual_seed(SEED)
    return Trainer(TinyLM(), CycleBatches(), train_config(**changes), run_dir, device=torch.device("cpu"),
                   progress=False, callbacks=callbacks, sampler=sampler)


class Recorder(Callback):
    """Every hook call as (hook, step, what it was given)."""

    def __init__(self):
        self.calls = []

    def on_fit_start(self, trainer, resumed):
        self.calls.append(("fit_start", trainer.step, resumed))

    def on_evaluate(self, trainer, losses, accuracies):
        assert list(losses) == list(accuracies) == ["train", "val"]
        self.calls.append(("evaluate", trainer.step, losses["val"]))

    def on_log(self, trainer, loss):
        assert isinstance(loss, float)
        self.calls.append(("log", trainer.step, loss))

    def on_step_end(self, trainer, loss):
        assert isinstance(loss, torch.Tensor) and loss.ndim == 0 and loss.grad_fn is None
        self.calls.append(("step_end", trainer.step, None))

    def on_checkpoint(self, trainer):
        self.calls.append(("checkpoint", trainer.step, latest_checkpoint(trainer.run_dir).step))

    def on_fit_end(self, trainer, result):
        self.calls.append(("fit_end", trainer.step, result.interrupted))


def hooks(recorder):
    return [(hook, step) for hook, step, _ in recorder.calls]


def interrupt_at(trainer, step):
    original = trainer._train_step

    def step_then_interrupt():
        loss = original()
        if trainer.step == step:
            os.kill(os.getpid(), signal.SIGINT)
        return loss
    trainer._train_step = step_then_interrupt


def test_hooks_come_in_order_with_their_steps(tmp_path):
    recorder = Recorder()
    make_trainer(tmp_path, callbacks=[recorder, CheckpointCallback(every=2)]).fit()
    assert hooks(recorder) == [
        ("fit_start", 0), ("evaluate", 0),
        ("step_end", 1),
        ("log", 2), ("evaluate", 2), ("step_end", 2), ("checkpoint", 2),
        ("step_end", 3),
        ("log", 4), ("evaluate", 4), ("step_end", 4), ("checkpoint", 4),
        ("fit_end", 4),
    ]
    assert recorder.calls[0][2] is False and recorder.calls[-1][2] is False  # not resumed, not interrupted
    assert [saved for hook, step, saved in recorder.calls if hook == "checkpoint"] == [2, 4]  # written first

    resumed = Recorder()  # on from the checkpoint at step 4: no evaluation of the restored step
    make_trainer(tmp_path, callbacks=[resumed, CheckpointCallback(every=2)], max_steps=6).fit(resume=True)
    assert resumed.calls[0] == ("fit_start", 4, True)
    assert hooks(resumed)[1:] == [("step_end", 5), ("log", 6), ("evaluate", 6), ("step_end", 6), ("checkpoint", 6),
                                  ("fit_end", 6)]


def test_an_interrupt_checkpoints_once_at_the_step_it_stopped(tmp_path):
    recorder = Recorder()
    trainer = make_trainer(tmp_path, callbacks=[recorder, CheckpointCallback(every=2)], max_steps=100)
    interrupt_at(trainer, 3)
    assert trainer.fit().interrupted
    assert hooks(recorder)[-3:] == [("step_end", 3), ("fit_end", 3), ("checkpoint", 3)]
    assert recorder.calls[-2][2] is True

    on_a_due_step = Recorder()  # stopped at a step that checkpoints anyway: written once
    trainer = make_trainer(tmp_path / "due", callbacks=[on_a_due_step, CheckpointCallback(every=2)], max_steps=100)
    interrupt_at(trainer, 4)
    trainer.fit()
    assert hooks(on_a_due_step)[-3:] == [("step_end", 4), ("checkpoint", 4), ("fit_end", 4)]


def read_rows(run_dir):
    with open(run_dir / "metrics.csv", encoding="utf-8", newline="") as handle:
        header = handle.readline().strip().split(",")
        return header, list(csv.DictReader(handle, fieldnames=header))


def test_default_callbacks_write_the_metrics_rows_of_before(tmp_path):
    recorder = Recorder()
    config_changes = {"max_steps": 20, "eval_every": 10, "log_every": 3, "checkpoint_every": 10}
    trainer = make_trainer(tmp_path / "run", callbacks=[*default_callbacks(train_config(**config_changes)), recorder],
                           **config_changes)
    trainer.fit()
    header, rows = read_rows(tmp_path / "run")
    assert header == list(COLUMNS)
    # batch rows every log_every steps and at the last, train and val rows at 0, 10 and 20
    assert [(int(r["step"]), r["split"]) for r in rows] == [
        (0, "train"), (0, "val"), (3, "batch"), (6, "batch"), (9, "batch"), (10, "train"), (10, "val"),
        (12, "batch"), (15, "batch"), (18, "batch"), (20, "batch"), (20, "train"), (20, "val")]
    logged = iter(loss for hook, _, loss in recorder.calls if hook == "log")
    evaluated = iter(loss for hook, _, loss in recorder.calls if hook == "evaluate")
    for row in rows:
        step, loss = int(row["step"]), float(row["loss"])
        if row["split"] == "batch":
            assert row["loss"] == f"{next(logged):.6f}" and row["accuracy"] == ""
        else:
            assert 0 <= float(row["accuracy"]) <= 1
            if row["split"] == "val":
                assert row["loss"] == f"{next(evaluated):.6f}"
        assert math.isclose(float(row["perplexity"]), math.exp(loss), rel_tol=1e-4)
        assert math.isclose(float(row["bits_per_char"]), loss / math.log(2), rel_tol=1e-5)  # 1 token per char
        assert row["lr"] == f"{learning_rate(max(step - 1, 0), trainer.config):.6g}"
        assert float(row["elapsed_s"]) >= 0 and float(row["tokens_per_sec"]) >= 0
    assert rows[-1]["loss"] == f"{trainer.estimate('val')[0]:.6f}"  # the same fixed batches every time
    assert (tmp_path / "run" / "loss.png").read_bytes()[:4] == b"\x89PNG"
    assert latest_checkpoint(tmp_path / "run").step == 20

    # Files or none, the same training: the losses a bare run hands its callbacks are the rows'.
    bare = Recorder()
    make_trainer(tmp_path / "bare", callbacks=[bare], **config_changes).fit()
    assert [(h, s, f"{v:.6f}") for h, s, v in bare.calls if h in ("log", "evaluate")] == \
           [(h, s, f"{v:.6f}") for h, s, v in recorder.calls if h in ("log", "evaluate")]
    assert not (tmp_path / "bare").exists()


def test_no_callbacks_argument_gives_the_default_files(tmp_path):
    make_trainer(tmp_path, sampler=lambda model: "the sample").fit()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loss.png", "metrics.csv", "model.safetensors",
                                                         "samples.txt", "state"]
    assert (tmp_path / "samples.txt").read_text(encoding="utf-8") == "".join(
        f"==== step {step} ====\nthe sample\n\n" for step in (0, 2, 4))
    with pytest.raises(ValueError, match="SampleCallback"):
        make_trainer(tmp_path, sampler=lambda model: "", callbacks=[])


def test_without_a_checkpoint_callback_no_checkpoint_is_written(tmp_path):
    make_trainer(tmp_path, callbacks=[MetricsCallback()]).fit()
    assert latest_checkpoint(tmp_path) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.csv"]
    interrupted = make_trainer(tmp_path / "stopped", callbacks=[MetricsCallback()], max_steps=100)
    interrupt_at(interrupted, 3)
    assert interrupted.fit().interrupted
    assert latest_checkpoint(tmp_path / "stopped") is None


# ---- the batch-source protocol -------------------------------------------------------------------


def token_data(n=203):
    tokens = (np.arange(n) % 7).astype(np.uint16)
    return TokenData(train=tokens, val=tokens[:60], train_chars=n, val_chars=60)


def shipped_sources():
    parens = make_parens_dataset(8, min_len=2, max_len=6, seed=0)
    train, val = generate_task("reverse", 20, seed=0, max_len=4)
    encoded = encode_pairs(train + val, lambda text: [ord(c) for c in text], block_size=8)
    return {LMBatches: LMBatches(token_data(), 4, 10), TBPTTBatches: TBPTTBatches(token_data(), 4, 10),
            Seq2SeqBatches: Seq2SeqBatches(encoded, encoded, 4), ParensBatches: ParensBatches(parens, parens, 2)}


def test_every_shipped_batch_source_is_a_batch_source():
    sources = shipped_sources()
    for cls, source in sources.items():
        assert isinstance(source, BatchSource), cls
        assert source.shards_rows is (cls is TBPTTBatches)  # only truncated BPTT draws its own rows
        inputs, targets = source.sample_eval("val", torch.Generator().manual_seed(SEED))
        assert isinstance(targets, torch.Tensor)
    # Every batch source class in seqlab.data is one of them or, like them, a Batches.
    for module in pkgutil.iter_modules(seqlab.data.__path__, "seqlab.data."):
        for _, cls in inspect.getmembers(importlib.import_module(module.name), inspect.isclass):
            if cls.__module__ == module.name and hasattr(cls, "sample") and hasattr(cls, "tokens_per_char"):
                assert cls in sources or issubclass(cls, Batches), cls


def test_a_source_without_the_protocol_is_a_clear_error(tmp_path):
    class Bare:  # an older source: no sample_eval, carry or shards_rows
        tokens_per_char = {"train": 1.0, "val": 1.0}

        def sample(self, split, generator):
            return CycleBatches().sample(split, generator)

    with pytest.raises(TypeError, match="Bare is not a batch source.*sample_eval"):
        Trainer(TinyLM(), Bare(), TrainConfig(), tmp_path, device=torch.device("cpu"), progress=False)
