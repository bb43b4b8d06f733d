"""The progress bar's numbers (`seqlab.training.progress.StepClock`) on a clock driven by hand, and
the evaluation and checkpoint intervals that follow `max_steps` when not set."""

from __future__ import annotations

import pytest

from seqlab.config import TrainConfig
from seqlab.config.schema import round_interval
from seqlab.training.progress import COMPILING, StepClock, format_seconds


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def run_steps(clock: StepClock, fake: FakeClock, steps, *, train_s, extra_s=0.0, pause_s=0.0, tokens=1000):
    """Steps `steps` (their numbers): each trains for `train_s` seconds, then spends `extra_s`, or
    `pause_s` on the steps the clock counts as slow."""
    for step in steps:
        clock.begin_step()
        fake.now += train_s(step) if callable(train_s) else train_s
        clock.end_training(tokens)
        fake.now += pause_s if clock._slow(step) else extra_s
        clock.end_step(step)


def test_compile_steps_are_left_out_of_the_rate_and_the_eta():
    fake = FakeClock()
    clock = StepClock(max_steps=1000, skip=3, window=20, clock=fake)
    assert clock.warming_up and clock.describe(0, compiling=True) == COMPILING
    assert clock.tokens_per_sec is None and clock.seconds_left(0) is None
    # Step 1 compiles for 40 s, steps 2 and 3 settle; then 0.1 s a step, 1000 tokens each.
    run_steps(clock, fake, range(1, 4), train_s=lambda s: 40.0 if s == 1 else 0.5)
    assert clock.warming_up  # nothing measured yet: still the compile phase
    run_steps(clock, fake, range(4, 101), train_s=0.1)
    assert not clock.warming_up
    assert clock.tokens_per_sec == pytest.approx(10_000)
    assert clock.seconds_per_step == pytest.approx(0.1)
    assert clock.seconds_left(100) == pytest.approx(900 * 0.1)
    assert clock.describe(100) == "eta 1:30, 0.100 s/step, 10,000 tok/s"


def test_the_rate_follows_a_change_within_the_window():
    fake = FakeClock()
    clock = StepClock(max_steps=1000, window=10, clock=fake)
    run_steps(clock, fake, range(1, 51), train_s=0.1)
    run_steps(clock, fake, range(51, 61), train_s=0.2)  # the machine got busy: the window has only those
    assert clock.tokens_per_sec == pytest.approx(5000)
    assert clock.seconds_per_step == pytest.approx(0.2)


def test_eta_counts_the_evaluations_still_due_at_their_measured_time():
    fake = FakeClock()
    clock = StepClock(max_steps=100, pause_every=(20,), window=50, clock=fake)
    clock.add_pause(3.0)  # the evaluation at step 0
    # Ordinary steps: 0.1 s training and 0.01 s of logs; evaluations (every 20) take 3 s more.
    run_steps(clock, fake, range(1, 31), train_s=0.1, extra_s=0.01, pause_s=3.0)
    # Tokens/s counts training time only; s/step the wall time of an ordinary step.
    assert clock.tokens_per_sec == pytest.approx(10_000)
    assert clock.seconds_per_step == pytest.approx((29 * 0.11 + 0.1) / 30)
    # Left after step 30: 70 steps and 4 evaluations (40, 60, 80, 100).
    estimate = clock.seconds_left(30)
    assert estimate == pytest.approx(70 * clock.seconds_per_step + 4 * 3.0)
    start = fake.now
    run_steps(clock, fake, range(31, 101), train_s=0.1, extra_s=0.01, pause_s=3.0)
    assert fake.now - start == pytest.approx(estimate, rel=0.01)  # the time it really took


def test_format_seconds():
    assert format_seconds(7) == "0:07" and format_seconds(123) == "2:03" and format_seconds(3723) == "1:02:03"


@pytest.mark.parametrize(("max_steps", "every"), [(1, 1), (19, 1), (20, 2), (300, 25), (500, 50), (2000, 200),
                                                  (3000, 250), (6000, 500), (30000, 2500)])
def test_eval_and_checkpoint_intervals_follow_max_steps(max_steps, every):
    config = TrainConfig(max_steps=max_steps)
    assert config.eval_every is None and config.eval_interval == every == config.checkpoint_interval
    evaluations = 1 + max_steps // every + (max_steps % every > 0)  # step 0, every `every`, the last
    assert max_steps < 20 or 10 <= evaluations - 1 <= 20


def test_intervals_set_explicitly_are_kept():
    config = TrainConfig(max_steps=300, eval_every=100, checkpoint_every=0)
    assert config.eval_interval == 100 and config.checkpoint_interval == 0
    assert TrainConfig(max_steps=300, eval_every=0).checkpoint_interval == 25


def test_round_interval():
    assert [round_interval(x) for x in (0.3, 1, 2.4, 3, 24, 26, 99, 600)] == [1, 1, 2, 2, 20, 25, 50, 500]
