"""Callbacks: what a run writes besides its weights, each a small class that the Trainer calls.

The Trainer (minGPT's pattern) owns the loop, the loss estimates and the training state; at fixed
points it calls the hooks of every callback in its list, in the list's order:

    on_fit_start(trainer, resumed)            before anything else in `fit`; `resumed`: the run goes on
                                              from a checkpoint at `trainer.step` (else from step 0)
    on_evaluate(trainer, losses, accuracies)  at each evaluation: step 0 of a fresh run, every
                                              `eval_interval` steps and the last; {split: value} for
                                              "train" and "val" (an accuracy is None when not defined)
    on_log(trainer, loss)                     every `log_every` steps and the last: the training batch's
                                              loss as a float, averaged over processes
    on_step_end(trainer, loss)                after every step, its log and its evaluation; `loss` is the
                                              step's loss as a detached tensor (reading it waits for the device)
    on_checkpoint(trainer)                    after `trainer.save()` has written a checkpoint
    on_fit_end(trainer, result)               after the last step, or the step a signal (SIGINT, SIGTERM)
                                              stopped at (`result.interrupted`)

Callbacks run in the main process only (rank 0 under torchrun): the others compute the same numbers,
and one process writes the run directory. `default_callbacks` is the set a Trainer gets unless it is
given its own: metrics.csv, samples.txt, loss.png and checkpoints, in that order (the plot reads the
metrics the callback before it wrote).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from torch import Tensor, nn

from seqlab.config import TrainConfig
from seqlab.training.metrics import MetricsLog, plot_losses, read_rows

if TYPE_CHECKING:
    from seqlab.training.trainer import Trainer, TrainResult


class Callback:
    """A hook for each point of the loop, each doing nothing: a callback overrides the ones it needs."""

    def on_fit_start(self, trainer: Trainer, resumed: bool) -> None:
        pass

    def on_evaluate(self, trainer: Trainer, losses: dict[str, float], accuracies: dict[str, float | None]) -> None:
        pass

    def on_log(self, trainer: Trainer, loss: float) -> None:
        pass

    def on_step_end(self, trainer: Trainer, loss: Tensor) -> None:
        pass

    def on_checkpoint(self, trainer: Trainer) -> None:
        pass

    def on_fit_end(self, trainer: Trainer, result: TrainResult) -> None:
        pass


class MetricsCallback(Callback):
    """metrics.csv (see `seqlab.training.metrics`): a `batch` row at each log, `train` and `val` rows
    at each evaluation. A resumed run drops the rows after its checkpoint's step (it logs them again),
    and a damaged last line (a write cut short); a fresh one, also one killed before its first
    checkpoint, starts the file over."""

    def __init__(self) -> None:
        self.metrics: MetricsLog | None = None  # opened in the trainer's run directory by its first hook

    def on_fit_start(self, trainer: Trainer, resumed: bool) -> None:
        self.metrics = MetricsLog(trainer.run_dir / "metrics.csv")
        if resumed:
            self.metrics.truncate_after(trainer.step)
        else:
            self.metrics.clear()

    def on_log(self, trainer: Trainer, loss: float) -> None:
        self._add(trainer, "batch", loss, accuracy=None)

    def on_evaluate(self, trainer: Trainer, losses: dict[str, float], accuracies: dict[str, float | None]) -> None:
        for split, loss in losses.items():
            self._add(trainer, split, loss, accuracy=accuracies[split])

    def _add(self, trainer: Trainer, split: str, loss: float, accuracy: float | None) -> None:
        tokens_per_char = trainer.batches.tokens_per_char["train" if split == "batch" else split]
        if self.metrics is None:  # an evaluation outside `fit`
            self.metrics = MetricsLog(trainer.run_dir / "metrics.csv")
        self.metrics.add(step=trainer.step, split=split, loss=loss, bits_per_char=loss / math.log(2) * tokens_per_char,
                         accuracy=accuracy, tokens_per_sec=trainer.recent_tokens_per_sec, lr=trainer.lr,
                         elapsed_s=trainer.train_seconds)


class LossPlotCallback(Callback):
    """loss.png, drawn again at each evaluation from metrics.csv: it follows a `MetricsCallback`.
    `title` (default: the trainer's) names the run, its corpus and its budget."""

    def __init__(self, title: str | None = None) -> None:
        self.title = title

    def on_evaluate(self, trainer: Trainer, losses: dict[str, float], accuracies: dict[str, float | None]) -> None:
        rows = read_rows(trainer.run_dir / "metrics.csv")
        if rows:
            plot_losses(rows, trainer.run_dir / "loss.png", self.title or trainer.title)


class SampleCallback(Callback):
    """samples.txt: at each evaluation, appends `sampler(model)` under a `==== step N ====` line."""

    def __init__(self, sampler: Callable[[nn.Module], str]) -> None:
        self.sampler = sampler

    def on_evaluate(self, trainer: Trainer, losses: dict[str, float], accuracies: dict[str, float | None]) -> None:
        text = self.sampler(trainer.model)
        with open(trainer.run_dir / "samples.txt", "a", encoding="utf-8") as handle:
            handle.write(f"==== step {trainer.step} ====\n{text}\n\n")


class CheckpointCallback(Callback):
    """Checkpoints (`trainer.save()`): every `every` steps (never when 0), at the last step, and at
    the step a signal (SIGINT, SIGTERM) stopped at, so `--resume` can go on from there."""

    def __init__(self, every: int) -> None:
        self.every = every
        self._saved_step: int | None = None  # the step last saved, not to write it twice

    def on_fit_start(self, trainer: Trainer, resumed: bool) -> None:
        self._saved_step = None

    def on_step_end(self, trainer: Trainer, loss: Tensor) -> None:
        if trainer.due(self.every):
            self._save(trainer)

    def on_fit_end(self, trainer: Trainer, result: TrainResult) -> None:
        if result.interrupted and self._saved_step != trainer.step:
            self._save(trainer)

    def _save(self, trainer: Trainer) -> None:
        trainer.save()
        self._saved_step = trainer.step


def default_callbacks(config: TrainConfig, sampler: Callable[[nn.Module], str] | None = None, *,
                      plot_title: str | None = None) -> list[Callback]:
    """What a Trainer writes unless told otherwise: metrics.csv, samples.txt (with a `sampler`, when
    `config.sample_tokens` > 0), loss.png (titled `plot_title`, default the trainer's title), and
    checkpoints every `config.checkpoint_interval` steps."""
    callbacks: list[Callback] = [MetricsCallback()]
    if sampler is not None and config.sample_tokens > 0:
        callbacks.append(SampleCallback(sampler))
    callbacks += [LossPlotCallback(plot_title), CheckpointCallback(config.checkpoint_interval)]
    return callbacks
