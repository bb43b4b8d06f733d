"""`seqlab train ... --dry-run`: what a training would be, said before anything is written.

`seqlab.api.plan` resolves the config, reads the data and fits the tokenizer as training would (so a
missing corpus or a bad key fails here too), then this module estimates, without creating the run
directory:

- parameters: the model built on the meta device (`seqlab.budget.model_shape`), exact;
- memory: `seqlab.budget.training_estimate`, a rough upper estimate: float32 weights (4 bytes a
  parameter), gradients (4), AdamW's two moments (8), and one micro-batch's activations;
- time: a few eager training steps timed on this machine (`TIMED_STEPS` after `WARMUP_STEPS`, with
  `seqlab.training.Trainer` and no callbacks, so nothing is saved), times the steps to train, plus
  the evaluations' forward passes (a third of a step each); and, for a preset, the time its
  `[preset]` table records for 2 CPU cores. A compiled run (`train.compile`) spends ~30 s compiling
  and then usually steps faster than the eager steps timed here.

Families fitted by counting or EM (n-gram, HMM) have no steps to time: their size comes from their
registry entry and their time from the preset's record, when there is one.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from seqlab import families
from seqlab.budget import Estimate, format_bytes, training_estimate
from seqlab.config import Config, config_to_toml
from seqlab.config.presets import PresetInfo
from seqlab.training.callbacks import Callback

WARMUP_STEPS = 2  # not timed: the first steps allocate and warm the allocator's caches
TIMED_STEPS = 5
EVAL_FORWARD_SHARE = 1 / 3  # an evaluation batch (forward only) against a training step (forward and backward)


@dataclass(frozen=True)
class TrainingPlan:
    """What `seqlab train --dry-run` reports (see the module docstring)."""

    config: Config
    run_dir: Path
    continuing: bool  # --resume of a run that exists
    start_step: int  # where training would begin (a resumed run's step)
    vocab_size: int
    size: int | None  # in size_unit
    size_unit: str
    memory: Estimate | None  # None for the fitted families
    seconds_per_step: float | None  # timed here, eager
    seconds: float | None  # the whole training, estimated from the timed steps
    preset: tuple[str, PresetInfo] | None  # the preset's name and record, when the config is a preset's
    data_seconds: float  # reading the data and fitting the tokenizer, measured here


class _StepClock(Callback):
    """The time at the end of every step."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def on_step_end(self, trainer, loss) -> None:
        self.times.append(time.perf_counter())


def time_steps(model: torch.nn.Module, batches, config: Config, run_dir: Path, device: torch.device) -> float:
    """Seconds per training step of `model` on `batches`, the median of `TIMED_STEPS` eager steps
    after `WARMUP_STEPS`. Nothing is written: the Trainer runs with no callbacks but a clock."""
    from seqlab.training import Trainer

    steps = WARMUP_STEPS + TIMED_STEPS + 1  # +1: the last step is followed by an evaluation, not timed
    train = replace(config.train, max_steps=steps, eval_every=0, eval_steps=1, compile=False, sample_tokens=0)
    clock = _StepClock()
    Trainer(model, batches, train, run_dir, device=device, callbacks=[clock], progress=False).fit()
    gaps = [b - a for a, b in zip(clock.times, clock.times[1:])][WARMUP_STEPS - 1:WARMUP_STEPS - 1 + TIMED_STEPS]
    return statistics.median(gaps)


def training_seconds(config: Config, seconds_per_step: float, start_step: int = 0) -> float:
    """The steps still to train at `seconds_per_step`, plus the evaluations' forward passes."""
    train = config.train
    steps = max(train.max_steps - start_step, 0)
    evaluations = steps // max(train.eval_interval, 1) + 1
    return seconds_per_step * (steps + evaluations * 2 * train.eval_steps * EVAL_FORWARD_SHARE)


def estimate(config: Config, *, run_dir: Path, vocab_size: int, source_vocab_size: int | None,
             continuing: bool, start_step: int, preset: tuple[str, PresetInfo] | None, data_seconds: float,
             timed: float | None) -> TrainingPlan:
    """The plan of a training of `config` whose steps took `timed` seconds each (None: not timed)."""
    from seqlab.catalog import preset_size

    family = families.get(config.model.family)
    memory = training_estimate(config, vocab_size, source_vocab_size) if family.trained else None
    return TrainingPlan(config=config, run_dir=run_dir, continuing=continuing, start_step=start_step,
                        vocab_size=vocab_size, size=preset_size(config, vocab_size, source_vocab_size),
                        size_unit=family.size_unit, memory=memory, seconds_per_step=timed,
                        seconds=None if timed is None else training_seconds(config, timed, start_step),
                        preset=preset, data_seconds=data_seconds)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def render(plan: TrainingPlan) -> str:
    """What `seqlab train --dry-run` prints: the resolved config, then the estimates, each saying
    what it is."""
    config, family = plan.config, families.get(plan.config.model.family)
    lines = [f"# resolved config of {plan.run_dir} (dry run: nothing written)", config_to_toml(config).rstrip(), ""]
    size = "counted from the data when fitted" if plan.size is None else f"{plan.size:,}"
    lines.append(f"{family.size_unit}: {size} (vocabulary {plan.vocab_size:,})")
    if plan.memory is not None:
        m = plan.memory
        weights = m.parameters * 4
        lines.append(f"memory (estimate, float32, one micro-batch of {config.train.batch_size}): "
                     f"{format_bytes(m.total_bytes)} = {format_bytes(weights)} weights + {format_bytes(weights)} "
                     f"gradients + {format_bytes(m.state_bytes - 2 * weights)} AdamW moments + "
                     f"{format_bytes(m.activation_bytes)} activations")
    lines.append(f"data: read and tokenized in {plan.data_seconds:.1f} s here")
    if plan.seconds is not None:
        steps = config.train.max_steps - plan.start_step
        compiled = " (compiling, where train.compile applies, adds ~30 s and then usually steps faster)"
        lines.append(f"time (estimate from {TIMED_STEPS} eager steps timed here: {plan.seconds_per_step:.3f} s/step): "
                     f"~{_duration(plan.seconds)} for {steps:,} steps with evaluations{compiled}")
    if plan.preset is not None:
        name, info = plan.preset
        kind = "estimated" if info.timing == "estimated" else "measured"
        lines.append(f"time recorded for the preset {name} as shipped, on 2 CPU cores ({kind}): {info.time}")
    if plan.seconds is None and plan.preset is None:
        lines.append(f"time: not estimated (a {family.name} model is fitted in one pass over the data)")
    lines.append(f"dry run: {plan.run_dir} was not created; drop --dry-run to train")
    return "\n".join(lines)


__all__ = ["TrainingPlan", "estimate", "render", "time_steps", "training_seconds"]
