"""Honest progress: the rate, seconds per step and time left of a training run, over recent steps.

A running average from the start of a run is wrong twice over: the first steps of a compiled model
include `torch.compile`'s work (30-75 s on a CPU, against tens of milliseconds for a steady step),
and a rate that averages everything never forgets them. `StepClock` keeps a window of the last
`window` steps and leaves out the first `skip` steps of a fit (compilation, the allocator's warm-up):

    clock = StepClock(max_steps=2000, pause_every=(250,), skip=3)
    clock.begin_step()          # before the training step
    ...                         # forward, backward, optimizer step
    clock.end_training(tokens)  # the step's training part is done: tokens/s counts this time only
    ...                         # logs, evaluation, callbacks
    clock.end_step(step)        # the whole step is done

`tokens_per_sec` is the training throughput over the window (what `benchmarks/bench_train.py`
measures); `seconds_per_step` the wall time of an ordinary step (training plus its small per-step
work); the time left adds, for every evaluation or checkpoint still due (`pause_every`), the mean
time of the recent ones, so that a run which evaluates every few hundred steps is not
under-estimated between evaluations. The clock is injectable, so tests drive it by hand.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence

COMPILING = "compiling (first time ~30 s)"
WINDOW = 50  # steps: long enough to smooth a busy machine's noise, short enough to follow a change
PAUSES_KEPT = 4  # the evaluations (or checkpoints) whose mean time stands for the ones to come


class StepClock:
    """Tokens/s, s/step and the time left of a run, measured over the last `window` steps.

    `pause_every`: the intervals (steps) of the slow steps, evaluations and checkpoints, whose
    extra time is measured apart (a step is slow when any of them is due at it, or it is the last);
    `skip`: the steps at the start of a fit that are measured in no window (compilation)."""

    def __init__(self, *, max_steps: int, pause_every: Sequence[int] = (), skip: int = 0, window: int = WINDOW,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.max_steps = max_steps
        self.pause_every = tuple(pause_every)
        self.skip = skip
        self.clock = clock
        self._training: deque[tuple[float, int]] = deque(maxlen=window)  # (seconds, tokens) of training
        self._steps: deque[float] = deque(maxlen=window)  # wall seconds of ordinary steps
        self._pauses: deque[float] = deque(maxlen=PAUSES_KEPT)  # extra seconds of slow steps
        self.seconds_cap: float | None = None  # the time budget left, when the run has one
        self._started = 0  # steps begun in this fit
        self._begin: float | None = None
        self._trained: float | None = None

    @property
    def warming_up(self) -> bool:
        """True until the first step after the `skip` ones has been measured."""
        return not self._training

    def begin_step(self) -> None:
        self._started += 1
        self._begin = self.clock()

    def end_training(self, tokens: int) -> float:
        """The step's training part is done (`tokens` trained on); returns its seconds."""
        self._trained = self.clock()
        seconds = self._trained - self._begin
        if self._started > self.skip:
            self._training.append((seconds, tokens))
        return seconds

    def end_step(self, step: int) -> None:
        """The whole of step `step` is done (its log, evaluation, callbacks)."""
        now = self.clock()
        if self._started <= self.skip:
            return
        training, extra = self._trained - self._begin, now - self._trained
        if self._slow(step):  # its training time is an ordinary step's; the rest is the pause
            self._steps.append(training)
            self._pauses.append(extra)
        else:
            self._steps.append(training + extra)

    def add_pause(self, seconds: float) -> None:
        """An evaluation outside the loop (step 0 of a fresh run): one more measure of a slow step."""
        self._pauses.append(seconds)

    @property
    def tokens_per_sec(self) -> float | None:
        """Training tokens per second over the window; None before any step was measured."""
        seconds = sum(s for s, _ in self._training)
        return sum(t for _, t in self._training) / seconds if seconds > 0 else None

    @property
    def seconds_per_step(self) -> float | None:
        """Wall seconds of an ordinary step over the window; None before any step was measured."""
        return sum(self._steps) / len(self._steps) if self._steps else None

    def seconds_left(self, step: int) -> float | None:
        """The time to `max_steps` from the end of step `step` (at most `seconds_cap`, the time budget
        left); None before any step was measured."""
        per_step = self.seconds_per_step
        if per_step is None:
            return None
        pauses = self._pauses_left(step)
        pause = sum(self._pauses) / len(self._pauses) if self._pauses else 0.0
        left = (self.max_steps - step) * per_step + pauses * pause
        return left if self.seconds_cap is None else min(left, self.seconds_cap)

    def describe(self, step: int, compiling: bool = False) -> str:
        """The bar's text: the compile phase, or the ETA, s/step and tokens/s."""
        if self.warming_up:
            return COMPILING if compiling else "measuring"
        left, per_step, rate = self.seconds_left(step), self.seconds_per_step, self.tokens_per_sec
        per = f"{per_step:.3f} s/step" if per_step < 10 else f"{per_step:.1f} s/step"
        return f"eta {format_seconds(left)}, {per}, {rate:,.0f} tok/s"

    def _slow(self, step: int) -> bool:
        return step == self.max_steps or any(every > 0 and step % every == 0 for every in self.pause_every)

    def _pauses_left(self, step: int) -> int:
        """Slow steps in (step, max_steps]: due at any interval of `pause_every`, or the last."""
        slow = {self.max_steps} if step < self.max_steps else set()
        for every in self.pause_every:
            if every > 0:
                slow.update(range((step // every + 1) * every, self.max_steps + 1, every))
        return len(slow)


def format_seconds(seconds: float) -> str:
    """`1:02:03`, `2:03` or `0:07`, as tqdm shows times."""
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
