"""train.max_minutes: the run stops itself at its time budget, checkpointed and evaluated there; the
cosine decay follows the time spent; a resumed run counts its earlier time."""

import time

import pytest

from seqlab.config import TrainConfig
from seqlab.errors import ConfigError
from seqlab.training import latest_checkpoint, learning_rate
from tests.training.test_trainer import CycleBatches, make_trainer

BUDGET_MINUTES = 0.01  # 0.6 s


class SlowBatches(CycleBatches):
    """Each training batch takes 20 ms to draw: the budget ends the run after about 30 steps."""

    def sample(self, split, generator):
        if split == "train":
            time.sleep(0.02)
        return super().sample(split, generator)


def budget_trainer(run_dir, **changes):
    trainer = make_trainer(run_dir, **{"max_steps": 100_000, "eval_every": 0, "checkpoint_every": 0,
                                       "max_minutes": BUDGET_MINUTES, **changes})
    trainer.batches = SlowBatches()
    return trainer


def test_the_schedule_follows_the_time_spent():
    config = TrainConfig(max_steps=100_000, lr=1e-2, min_lr=1e-3, warmup_steps=10, max_minutes=10)
    assert learning_rate(5, config, time_spent=0.9) == learning_rate(5, config)  # the warm-up counts steps
    assert learning_rate(50, config, time_spent=0.5) == pytest.approx((1e-2 + 1e-3) / 2)
    assert learning_rate(50, config, time_spent=1.0) == 1e-3
    # the steps' progress still ends the decay when it comes first
    assert learning_rate(100_000, config, time_spent=0.1) == 1e-3
    assert learning_rate(50, config, time_spent=0.0) == learning_rate(50, config)


def test_the_run_stops_itself_at_its_budget_checkpointed_and_evaluated(tmp_path):
    trainer = budget_trainer(tmp_path, warmup_steps=0)
    result = trainer.fit()
    assert not result.interrupted and result.signal is None
    assert 1 <= result.step <= 0.6 / 0.02 + 1  # 20 ms a step: it stopped at the first step past 0.6 s
    assert result.val_loss is not None  # the last step's evaluation
    assert trainer.elapsed >= BUDGET_MINUTES * 60
    assert latest_checkpoint(tmp_path).step == result.step
    assert trainer.lr == pytest.approx(1e-3, rel=0.05)  # the cosine ended with the time
    saved = latest_checkpoint(tmp_path).trainer["wall_seconds"]
    assert saved >= BUDGET_MINUTES * 60


def test_a_resumed_run_counts_its_earlier_time(tmp_path):
    first = budget_trainer(tmp_path).fit()
    again = budget_trainer(tmp_path)
    assert again.fit(resume=True).step == first.step  # its time is used up: no step taken
    spent = latest_checkpoint(tmp_path).trainer["wall_seconds"]  # the fits' time so far, callbacks included
    longer = budget_trainer(tmp_path, max_minutes=(spent + 1.0) / 60)  # one more second
    result = longer.fit(resume=True)
    assert result.step > first.step
    assert longer.elapsed >= spent + 1.0


def test_a_negative_budget_is_refused():
    with pytest.raises(ConfigError, match="train.max_minutes"):
        TrainConfig(max_minutes=-1)


def test_resuming_a_run_whose_budget_is_spent_trains_nothing_and_says_so(tmp_path, monkeypatch, capsys, word_corpus,
                                                                         tiny_toml):
    from seqlab.cli import main
    monkeypatch.setenv("SEQLAB_CACHE", str(tmp_path / "cache"))
    config = tmp_path / "tiny.toml"
    config.write_text(tiny_toml(word_corpus(tmp_path / "corpus.txt", seed=3), max_steps=100_000, eval_steps=1,
                                sample_tokens=0, threads=1))
    run = tmp_path / "run"
    budget = ["--train.max_minutes=0.00167", "--train.eval_every=0", "--train.checkpoint_every=0",
              "--train.compile=false"]  # 0.1 s
    assert main(["-q", "train", str(config), "--out", str(run), "--no-progress", *budget]) == 0
    first = latest_checkpoint(run).step
    assert 1 <= first < 100_000
    capsys.readouterr()
    assert main(["train", "--out", str(run), "--resume", "--no-progress"]) == 0
    out, err = capsys.readouterr()
    lines = (out + err).strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nothing to train") and "train.max_minutes" in lines[0], out + err
    assert main(["-q", "train", "--out", str(run), "--resume", "--no-progress", "--train.max_minutes=0.05"]) == 0
    assert latest_checkpoint(run).step > first
