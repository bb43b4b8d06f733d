"""Trainer: resume repeats the uninterrupted run exactly, checkpoints survive kills, the schedule and
the weight-decay groups are right. A tiny model with dropout stands in for a real one: the trainer
knows nothing about model families."""

import csv
import math
import os
import signal
import threading

import pytest
import torch
from torch import nn

from seqlab.config import TrainConfig
from seqlab.data import Batches
from seqlab.errors import CheckpointError
from seqlab.training import Trainer, latest_checkpoint, learning_rate, param_groups
from seqlab.training import checkpoint as checkpoint_module
from seqlab.training.metrics import MetricsLog

VOCAB, T = 11, 8


class TinyLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(VOCAB, 16)
        self.norm = nn.LayerNorm(16)
        self.hidden = nn.Linear(16, 16)
        self.drop = nn.Dropout(0.2)  # consumes torch's RNG: resume must restore it
        self.head = nn.Linear(16, VOCAB, bias=False)
        self.head.weight = self.emb.weight  # tied, as in the Transformer

    def forward(self, x, y=None):
        logits = self.head(self.drop(torch.relu(self.hidden(self.norm(self.emb(x))))))
        loss = None if y is None else nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
        return logits, loss


class CycleBatches(Batches):
    tokens_per_char = {"train": 1.0, "val": 1.0}

    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.data = {"train": torch.randint(VOCAB, (400,), generator=g), "val": torch.randint(VOCAB, (100,), generator=g)}

    def sample(self, split, generator):
        tokens = self.data[split]
        starts = torch.randint(len(tokens) - T, (4,), generator=generator)
        x = torch.stack([tokens[s:s + T] for s in starts])
        y = torch.stack([tokens[s + 1:s + T + 1] for s in starts])
        return x, y


def make_trainer(run_dir, **changes):
    torch.manual_seed(0)
    config = TrainConfig(**{"max_steps": 30, "lr": 1e-2, "min_lr": 1e-3, "warmup_steps": 5, "eval_every": 10,
                            "eval_steps": 2, "checkpoint_every": 10, "log_every": 1, "seed": 3, **changes})
    return Trainer(TinyLM(), CycleBatches(), config, run_dir, device=torch.device("cpu"), progress=False)


def batch_losses(run_dir):
    with open(run_dir / "metrics.csv") as handle:
        return {int(r["step"]): r["loss"] for r in csv.DictReader(handle) if r["split"] == "batch"}


def interrupt_at(trainer, step):
    original = trainer._train_step

    def step_then_interrupt():
        loss = original()
        if trainer.step == step:
            os.kill(os.getpid(), signal.SIGINT)
        return loss
    trainer._train_step = step_then_interrupt


def test_resume_repeats_the_uninterrupted_losses_exactly(tmp_path):
    whole = tmp_path / "whole"
    make_trainer(whole).fit()

    parts = tmp_path / "parts"
    first = make_trainer(parts)
    interrupt_at(first, 15)  # Ctrl-C: checkpoint at 15 and stop
    assert first.fit().interrupted
    assert latest_checkpoint(parts).step == 15
    second = make_trainer(parts)
    result = second.fit(resume=True)

    assert result.step == 30 and not result.interrupted
    assert batch_losses(parts) == batch_losses(whole)
    uninterrupted = make_trainer(whole)
    assert uninterrupted.restore() and uninterrupted.step == 30
    for a, b in zip(second.model.parameters(), uninterrupted.model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_resume_restores_weights_optimizer_and_rng(tmp_path):
    trainer = make_trainer(tmp_path, max_steps=10)
    trainer.fit()
    fresh = make_trainer(tmp_path, max_steps=10)
    assert fresh.restore()
    for a, b in zip(trainer.model.parameters(), fresh.model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for p, q in zip(trainer.optimizer.state.values(), fresh.optimizer.state.values()):
        for key in p:
            torch.testing.assert_close(p[key], q[key], rtol=0, atol=0)
    assert torch.equal(trainer.generator.get_state(), fresh.generator.get_state())
    assert fresh.step == 10


def test_kill_during_checkpoint_write_leaves_the_previous_one_loadable(tmp_path, monkeypatch):
    trainer = make_trainer(tmp_path, max_steps=10)
    trainer.fit()
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer._train_step()

    def die(*args, **kwargs):
        raise KeyboardInterrupt  # the process is killed half way through writing
    monkeypatch.setattr(checkpoint_module, "save_file", die)
    with pytest.raises(KeyboardInterrupt):
        trainer.save()
    monkeypatch.undo()

    checkpoint = latest_checkpoint(tmp_path)
    assert checkpoint.step == 10
    restored = make_trainer(tmp_path)
    assert restored.restore()
    for key, value in restored.model.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)
    # The top-level weights file is whole and equal to the checkpoint's.
    restored_top = make_trainer(tmp_path)
    checkpoint_module.load_weights(restored_top.model, tmp_path / "model.safetensors")


def test_damaged_checkpoint_is_a_clear_error(tmp_path):
    make_trainer(tmp_path, max_steps=10).fit()
    folder = latest_checkpoint(tmp_path).folder
    (folder / "model.safetensors").write_bytes(b"not a safetensors file at all")
    with pytest.raises(CheckpointError, match="damaged"):
        make_trainer(tmp_path).restore()
    (tmp_path / "state" / "latest.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="damaged"):
        latest_checkpoint(tmp_path)


def test_checkpoint_of_another_shape_is_a_clear_error(tmp_path):
    make_trainer(tmp_path, max_steps=10).fit()

    class Wider(TinyLM):
        def __init__(self):
            super().__init__()
            self.hidden = nn.Linear(16, 32)
    with pytest.raises(CheckpointError, match="does not fit"):
        checkpoint_module.load_weights(Wider(), tmp_path / "model.safetensors")


def test_interrupt_saves_and_stops_cleanly(tmp_path):
    trainer = make_trainer(tmp_path, max_steps=10_000, checkpoint_every=0, eval_every=0)
    interrupt_at(trainer, 7)
    assert threading.current_thread() is threading.main_thread()
    result = trainer.fit()
    assert result.interrupted and result.step == 7
    assert latest_checkpoint(tmp_path).step == 7


def test_metrics_and_plot_are_written(tmp_path):
    make_trainer(tmp_path, max_steps=20).fit()
    with open(tmp_path / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert {"step", "split", "loss", "perplexity", "bits_per_char"} <= set(rows[0])
    val = [r for r in rows if r["split"] == "val"]
    assert [int(r["step"]) for r in val] == [0, 10, 20]
    assert math.isclose(float(val[-1]["perplexity"]), math.exp(float(val[-1]["loss"])), rel_tol=1e-3)
    assert (tmp_path / "loss.png").read_bytes()[:4] == b"\x89PNG"


def test_warmup_then_cosine_to_min_lr():
    config = TrainConfig(lr=1.0, min_lr=0.1, warmup_steps=10, max_steps=110)
    assert learning_rate(0, config) == pytest.approx(1 / 11)
    assert learning_rate(9, config) == pytest.approx(10 / 11)
    assert learning_rate(10, config) == pytest.approx(1.0)
    assert learning_rate(60, config) == pytest.approx(0.55)
    assert learning_rate(110, config) == pytest.approx(0.1)
    assert learning_rate(500, config) == pytest.approx(0.1)
    lrs = [learning_rate(s, config) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))


def test_weight_decay_only_on_linear_weights_not_tied_embeddings():
    model = TinyLM()
    decay, rest = param_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and rest["weight_decay"] == 0.0
    assert {id(p) for p in decay["params"]} == {id(model.hidden.weight)}
    assert {id(p) for p in rest["params"]} == {id(model.emb.weight), id(model.norm.weight), id(model.norm.bias),
                                               id(model.hidden.bias)}


def test_resume_without_a_checkpoint_starts_over_cleanly(tmp_path):
    trainer = make_trainer(tmp_path, max_steps=5, checkpoint_every=0)
    MetricsLog(tmp_path / "metrics.csv").add(step=3, split="batch", loss=9.0, bits_per_char=1.0, tokens_per_sec=1.0,
                                             lr=1.0, elapsed_s=1.0)  # logged by a run killed before any checkpoint
    assert latest_checkpoint(tmp_path) is None
    assert trainer.fit(resume=True).step == 5
    assert "9.000000" not in batch_losses(tmp_path).values()


class Classifier(nn.Module):
    """Many-to-one: the label is whether the first token is below VOCAB // 2."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(VOCAB, 16)
        self.head = nn.Linear(16, 2)

    def forward(self, x, y=None):
        logits = self.head(self.emb(x).mean(dim=1))
        return logits, None if y is None else nn.functional.cross_entropy(logits, y)


class LabelBatches(CycleBatches):
    def sample(self, split, generator):
        x, _ = super().sample(split, generator)
        return x, (x[:, 0] < VOCAB // 2).long()


def test_accuracy_is_estimated_for_classifiers_and_language_models(tmp_path):
    config = TrainConfig(max_steps=2, eval_every=1, eval_steps=3, checkpoint_every=0, log_every=1, seed=3)
    trainer = Trainer(Classifier(), LabelBatches(), config, tmp_path / "clf", device=torch.device("cpu"),
                      progress=False)
    loss, accuracy = trainer.estimate("val")
    generator = torch.Generator().manual_seed(config.seed + 1)  # the evaluation's batches, drawn by hand
    hits = total = 0
    with torch.no_grad():
        for _ in range(config.eval_steps):
            x, y = trainer.batches.sample("val", generator)
            hits += int((trainer.model(x)[0].argmax(-1) == y).sum())
            total += len(y)
    assert accuracy == pytest.approx(hits / total) and math.isfinite(loss)
    trainer.fit()
    with open(tmp_path / "clf" / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert all(0 <= float(r["accuracy"]) <= 1 for r in rows if r["split"] in ("train", "val"))
    assert all(r["accuracy"] == "" for r in rows if r["split"] == "batch")
    lm = make_trainer(tmp_path / "lm", max_steps=1)  # per-token accuracy of a language model
    assert 0 <= lm.estimate("val")[1] <= 1


def test_padding_targets_are_left_out_of_the_accuracy(tmp_path):
    class PaddedBatches(CycleBatches):
        def sample(self, split, generator):
            x, y = super().sample(split, generator)
            return x, torch.where(torch.arange(T) < 2, y, torch.full_like(y, -1))  # two real targets a row

    model = TinyLM()
    config = TrainConfig(max_steps=1, eval_steps=1, seed=0)
    trainer = Trainer(model, PaddedBatches(), config, tmp_path, device=torch.device("cpu"), progress=False)
    model.forward = lambda x, y: (nn.functional.one_hot(x.roll(-1, dims=1), VOCAB).float(), torch.zeros(()))
    x, y = trainer.batches.sample("val", torch.Generator().manual_seed(1))
    expected = float((x.roll(-1, dims=1)[:, :2] == y[:, :2]).float().mean())  # real targets only
    assert trainer.estimate("val")[1] == pytest.approx(expected)


def test_an_older_metrics_file_gains_the_accuracy_column(tmp_path):
    old = "step,split,loss,perplexity,bits_per_char,tokens_per_sec,lr,elapsed_s\n0,val,2.0,7.3891,2.9,0.0,0.001,0.00\n"
    (tmp_path / "metrics.csv").write_text(old)
    make_trainer(tmp_path, max_steps=10).fit(resume=True)
    with open(tmp_path / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert all(r["accuracy"] for r in rows if r["split"] == "val")  # rewritten from step 0: no checkpoint
