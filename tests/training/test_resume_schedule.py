"""A resume says what it does: the learning-rate schedule is kept unless the run's end changes, and
then goes on from the resume step's rate without a jump; a finished run resumed trains nothing and
says so in one line."""

from __future__ import annotations

import csv
import logging
import math

import pytest
import torch

from seqlab.cli import main
from seqlab.config import TrainConfig
from seqlab.training import Trainer, learning_rate
from seqlab.training.optim import ScheduleAnchor, reaim
from tests.training.test_trainer import CycleBatches, TinyLM

BASE = dict(lr=1e-2, min_lr=1e-3, warmup_steps=5, eval_every=10, eval_steps=2, checkpoint_every=10, log_every=1,
            seed=3)


def rates(config, anchor, steps):
    return [learning_rate(s, config, anchor) for s in steps]


@pytest.mark.parametrize("new_end", [60, 200])
def test_reaimed_schedule_is_continuous_and_ends_at_min_lr(new_end):
    old, new = TrainConfig(max_steps=100, **BASE), TrainConfig(max_steps=new_end, **BASE)
    anchor = reaim(40, new, old.decay_steps)
    assert anchor == ScheduleAnchor(40, learning_rate(40, old))
    assert learning_rate(40, new, anchor) == learning_rate(40, old)  # at the resume step: no jump
    after = rates(new, anchor, range(40, new_end + 5))
    assert all(a >= b for a, b in zip(after, after[1:]))  # the cosine's shape: down, never up
    assert after[new_end - 40] == pytest.approx(new.min_lr) and after[-1] == new.min_lr
    # Half a cosine from the anchor: its first step is as small as a cosine's start.
    assert after[0] - after[1] < (after[0] - new.min_lr) * 5 / (new_end - 40) ** 2


def test_a_resume_during_the_warm_up_needs_no_anchor():
    new = TrainConfig(max_steps=200, **BASE)
    assert reaim(3, new, 100) is None
    assert learning_rate(3, new) == learning_rate(3, TrainConfig(max_steps=100, **BASE))


def make_trainer(run_dir, **changes):
    torch.manual_seed(0)
    config = TrainConfig(**{**BASE, "max_steps": 20, **changes})
    return Trainer(TinyLM(), CycleBatches(), config, run_dir, device=torch.device("cpu"), progress=False)


def logged_rates(run_dir):
    """metrics.csv's learning rate of each batch step (written to 6 significant digits: compare with
    rel=1e-5)."""
    with open(run_dir / "metrics.csv") as handle:
        return {int(r["step"]): float(r["lr"]) for r in csv.DictReader(handle) if r["split"] == "batch"}


def test_a_longer_resume_goes_on_from_the_rate_it_had_and_says_so(tmp_path, caplog, one_thread):
    make_trainer(tmp_path, max_steps=20).fit()
    before = logged_rates(tmp_path)
    with caplog.at_level(logging.INFO, logger="seqlab"):
        make_trainer(tmp_path, max_steps=40).fit(resume=True)
    said = [r.getMessage() for r in caplog.records if "schedule" in r.getMessage()]
    assert len(said) == 1 and "now ends at step 40 (was 20)" in said[0] and "without a jump" in said[0]
    after = logged_rates(tmp_path)
    assert {s: after[s] for s in before} == before  # the first part as it was
    # Logged is the rate of the step just taken (step s used learning_rate(s - 1)): the old schedule
    # reached min_lr at step 20, and the re-aimed one goes on from there.
    assert after[21] == pytest.approx(learning_rate(20, TrainConfig(**{**BASE, "max_steps": 20}))) == 1e-3
    # A second resume with the same end keeps the re-aimed schedule (it is in the checkpoint).
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="seqlab"):
        trainer = make_trainer(tmp_path, max_steps=40)
        trainer.restore()
    assert trainer.anchor == ScheduleAnchor(20, pytest.approx(1e-3))
    assert not [r for r in caplog.records if "schedule" in r.getMessage()]


def test_a_resume_mid_cosine_to_a_later_end_has_no_jump(tmp_path, one_thread):
    # The first part stops at step 10 of a cosine that would end at 20; the resume moves the end to 50.
    make_trainer(tmp_path, max_steps=10, lr_decay_steps=20).fit()
    make_trainer(tmp_path, max_steps=50).fit(resume=True)
    logged = logged_rates(tmp_path)  # the rate of the step just taken: step s used learning_rate(s - 1)
    old = TrainConfig(**{**BASE, "max_steps": 10, "lr_decay_steps": 20})
    assert logged[10] == pytest.approx(learning_rate(9, old), rel=1e-5)
    assert logged[11] == pytest.approx(learning_rate(10, old), rel=1e-5)  # the resume step's rate: no jump
    assert learning_rate(10, old) > 2 * old.min_lr  # mid-cosine, not yet at its floor
    steps = [abs(logged[s + 1] - logged[s]) for s in range(11, 50)]
    assert max(steps) < abs(learning_rate(9, old) - learning_rate(10, old))  # gentler than the old end's
    anchor = ScheduleAnchor(10, learning_rate(10, old))
    assert logged[50] == pytest.approx(learning_rate(49, TrainConfig(**{**BASE, "max_steps": 50}), anchor), rel=1e-5)
    assert all(a > b for a, b in zip([logged[s] for s in range(11, 51)], [logged[s] for s in range(12, 51)]))


def test_resuming_a_finished_run_trains_nothing_and_says_so(tmp_path, monkeypatch, capsys, word_corpus, tiny_toml):
    monkeypatch.setenv("SEQLAB_CACHE", str(tmp_path / "cache"))
    corpus = word_corpus(tmp_path / "corpus.txt", seed=3)
    config = tmp_path / "tiny.toml"
    config.write_text(tiny_toml(corpus, max_steps=4, eval_steps=1, sample_tokens=0, threads=1))
    run = tmp_path / "run"
    assert main(["-q", "train", str(config), "--out", str(run), "--no-progress"]) == 0
    capsys.readouterr()
    files = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".lock"}
    code = main(["train", "--out", str(run), "--resume", "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 0
    lines = (out + err).strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nothing to train") and "step 4" in lines[0], out + err
    assert "--train.max_steps=8" in lines[0] and "resumed" not in lines[0] and "saved" not in lines[0]
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".lock"} == files
    # With a later end it trains on.
    assert main(["-q", "train", "--out", str(run), "--resume", "--no-progress", "--train.max_steps=6"]) == 0
    assert math.isfinite(max(logged_rates(run).values())) and max(logged_rates(run)) == 6
