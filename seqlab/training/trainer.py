"""The training loop: knows nothing about model families.

It takes a model whose `forward(x, y)` returns `(output, loss)` (or more, e.g. a final hidden state
that the batch source's `carry` keeps), a batch source (`seqlab.data.BatchSource`: its `sample`
for training, `sample_eval` for the estimates, `carry` after each training forward, and
`shards_rows` under data-parallel training), a `TrainConfig`, and callbacks
(`seqlab.training.callbacks`). It owns the optimizer, the schedule, the loss estimates and the
checkpoint state of one run directory; the callbacks write what the run leaves there (by default
metrics.csv, samples.txt, loss.png and the checkpoints) from the numbers it hands them.
Resuming restores weights, optimizer moments, the batch sampler's random state and torch's, so on CPU
a resumed run repeats the uninterrupted run's losses exactly (except for a stateful source such as
truncated BPTT, whose streams and carried state restart at the beginning).

Speed settings (`train.dtype`, `train.compile`) and data-parallel training under torchrun (a
`World` of several processes: see `seqlab.training.distributed`) change how a step is computed,
not what it computes: the losses equal the plain float32 single-process run's, up to rounding.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from seqlab.config import TrainConfig
from seqlab.data.batches import BatchSource
from seqlab.errors import CheckpointError, SeqlabError
from seqlab.seeds import torch_generator
from seqlab.training import distributed, precision
from seqlab.training.callbacks import Callback, default_callbacks
from seqlab.training.checkpoint import latest_checkpoint, save_checkpoint
from seqlab.training.distributed import SINGLE, World
from seqlab.training.optim import ScheduleAnchor, build_optimizer, learning_rate, reaim
from seqlab.training.progress import StepClock
from seqlab.training.signals import STOP_SIGNALS, StopSignals
from seqlab.training.threads import ThreadGovernor

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    step: int
    interrupted: bool  # stopped by a signal before max_steps (with a checkpoint at `step`, by default)
    val_loss: float | None
    tokens_per_sec: float
    signal: int | None = None  # the signal that interrupted it


def _callback_list(config: TrainConfig, sampler: Callable[[nn.Module], str] | None,
                   callbacks: Sequence[Callback] | None) -> list[Callback]:
    """The callbacks given, or the default ones (which `sampler` is for)."""
    if callbacks is None:
        return default_callbacks(config, sampler)
    if sampler is not None:
        raise ValueError("sampler= feeds the default callbacks: with callbacks=, put a SampleCallback(sampler) "
                         "in the list instead")
    return list(callbacks)


class Trainer:
    """Trains `model` on `batches` to `config.max_steps`, calling `callbacks` on the way.

    `callbacks` None gives `default_callbacks(config, sampler)`: metrics.csv, samples.txt (from
    `sampler(model)`, when given), loss.png and checkpoints. A list replaces them: add one to
    `default_callbacks(...)`, or pass [] to train without writing anything (`sampler` then goes into
    a `SampleCallback` of the list, not beside it). Callbacks run in the main process only.
    """

    def __init__(self, model: nn.Module, batches: BatchSource, config: TrainConfig, run_dir: Path, *,
                 device: torch.device, sampler: Callable[[nn.Module], str] | None = None,
                 callbacks: Sequence[Callback] | None = None, progress: bool = True, title: str = "",
                 world: World = SINGLE, threads: ThreadGovernor | None = None) -> None:
        if not isinstance(batches, BatchSource):
            raise TypeError(f"{type(batches).__name__} is not a batch source: it needs tokens_per_char, sample, "
                            f"sample_eval, carry and shards_rows (subclass seqlab.data.Batches for the plain ones)")
        callbacks = _callback_list(config, sampler, callbacks)
        self.model = model.to(device)  # the plain module: evaluated, sampled and saved
        self.batches = batches
        self.config = config
        self.run_dir = Path(run_dir)
        self.device = device
        self.callbacks = callbacks if world.main else []  # one process writes the run directory
        self.progress = progress and world.main
        self.title = title
        self.world = world
        self.threads = threads  # adapts the CPU thread count to the machine's load as the run goes
        self.dtype = precision.resolve_dtype(config.dtype, device)
        self.scaler = precision.grad_scaler(device, self.dtype)
        self.optimizer = build_optimizer(self.model, config, device)
        self.generator = torch_generator(config.seed)  # any integer seed: seqlab.seeds
        self.step = 0
        self.tokens_seen = 0  # over all processes
        self.train_seconds = 0.0
        self.wall_seconds = 0.0  # the fits' wall time before the current one (train.max_minutes counts it)
        self._fit_start: float | None = None  # when the current fit began
        self._out_of_time = False  # the step just taken used up train.max_minutes: it is the last
        self.anchor: ScheduleAnchor | None = None  # the schedule re-aimed by a resume with another end
        self.clock = self._new_clock(compiled=False)  # the bar's rates: remade at each fit
        self._last_loss: float | None = None  # the last logged loss, for the bar
        self._rows = slice(None)  # this process's rows of every batch it draws
        self._ddp: nn.parallel.DistributedDataParallel | None = None
        self.train_model = self.model  # what the training forward calls: maybe wrapped, maybe compiled
        if world.distributed:
            if config.batch_size % world.size:
                raise ValueError(f"train.batch_size = {config.batch_size} does not split over {world.size} "
                                 f"processes: use a multiple of {world.size}")
            self._rows = world.rows(config.batch_size)
            if batches.shards_rows:  # the source draws this process's rows itself
                batches.rows = self._rows
            ids = [device.index] if device.type == "cuda" else None
            self._ddp = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
            self.train_model = self._ddp
        self._compiled = precision.wants_compile(config.compile, model=self.model, steps=config.max_steps)
        if self._compiled:
            self.train_model = precision.compile_model(self.train_model)

    # ---- state -------------------------------------------------------------------------------

    def _rng_state(self) -> dict[str, Tensor]:
        state = {"batches": self.generator.get_state(), "torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def save(self) -> None:
        """Checkpoint the run (rank 0 only: every process holds the same weights and moments)."""
        if not self.world.main:
            return
        counters = {"tokens_seen": self.tokens_seen, "train_seconds": self.train_seconds,
                    "wall_seconds": self.elapsed, "decay_steps": self.config.decay_steps}
        if self.anchor is not None:
            counters["lr_anchor"] = {"step": self.anchor.step, "lr": self.anchor.lr}
        if self.scaler is not None:
            counters["grad_scaler"] = self.scaler.state_dict()
        save_checkpoint(self.run_dir, step=self.step, model=self.model, optimizer=self.optimizer,
                        rng=self._rng_state(), trainer=counters)
        for callback in self.callbacks:
            callback.on_checkpoint(self)

    def restore(self) -> bool:
        """Continue from the run's latest checkpoint; False when there is none. Every file of it is
        checked before anything is restored (`seqlab.training.checkpoint`)."""
        checkpoint = latest_checkpoint(self.run_dir)
        if checkpoint is None:
            return False
        rng = checkpoint.load_into(self.model, self.optimizer)
        self.generator.set_state(rng["batches"])
        torch.set_rng_state(rng["torch"])
        if "cuda" in rng and self.device.type == "cuda":
            try:
                torch.cuda.set_rng_state(rng["cuda"], self.device)
            except RuntimeError as exc:
                raise CheckpointError(f"{checkpoint.folder / 'rng.safetensors'}: 'cuda' is no CUDA generator's "
                                      f"state ({exc})") from None
        self.step = checkpoint.step
        self.tokens_seen = checkpoint.trainer.get("tokens_seen", 0)
        self.train_seconds = float(checkpoint.trainer.get("train_seconds", 0.0))
        self.wall_seconds = float(checkpoint.trainer.get("wall_seconds", 0.0))
        if self.scaler is not None and "grad_scaler" in checkpoint.trainer:
            self.scaler.load_state_dict(checkpoint.trainer["grad_scaler"])
        self._restore_schedule(checkpoint.trainer)
        log.info("resumed from step %d", self.step)
        return True

    def _restore_schedule(self, saved: dict) -> None:
        """The learning-rate schedule as the checkpoint left it; when the run's end (`max_steps` or
        `lr_decay_steps`) changed, re-aimed from the resume step without a jump (`optim.reaim`), and
        said in one line. A checkpoint that did not record its end keeps the plain schedule."""
        anchor = saved.get("lr_anchor")
        self.anchor = ScheduleAnchor(anchor["step"], anchor["lr"]) if anchor is not None else None
        old_end, new_end = saved.get("decay_steps"), self.config.decay_steps
        if old_end is None or old_end == new_end:
            return
        self.anchor = reaim(self.step, self.config, old_end, self.anchor)
        if self.anchor is None:
            log.info("the learning-rate schedule now ends at step %d (was %d): the warm-up goes on, then the "
                     "cosine decays to %.3g at step %d", new_end, old_end, self.config.min_lr, new_end)
        else:
            log.info("the learning-rate schedule now ends at step %d (was %d): from %.3g at step %d it follows a "
                     "cosine to %.3g at step %d, without a jump", new_end, old_end, self.anchor.lr, self.step,
                     self.config.min_lr, new_end)

    # ---- evaluation --------------------------------------------------------------------------

    @torch.inference_mode()
    def estimate(self, split: str) -> tuple[float, float | None]:
        """(mean loss, top-1 accuracy) over `eval_steps` batches, the same batches at every evaluation.
        The accuracy counts the targets (all but -1, padding) that the output's highest score
        predicts; it is None when the output is not one score vector per target."""
        generator = torch_generator(self.config.seed + 1)
        was_training = self.model.training
        self.model.eval()
        total = torch.zeros((), device=self.device)
        hits = torch.zeros((), device=self.device, dtype=torch.long)
        counted = torch.zeros((), device=self.device, dtype=torch.long)
        scored = True
        for _ in range(self.config.eval_steps):
            x, y = distributed.shard(self.batches.sample_eval(split, generator), self._rows)
            y = y.to(self.device, non_blocking=True)  # once: _forward's move is then a no-op
            output = self._forward(self.model, x, y)
            total += output[1].float()
            scores = output[0]
            scored = scored and isinstance(scores, Tensor) and scores.shape[:-1] == y.shape
            if scored:
                real = y != -1
                hits += ((scores.argmax(dim=-1) == y) & real).sum()
                counted += real.sum()
        self.model.train(was_training)
        total = distributed.mean(total, self.world)
        hits, counted = distributed.total(hits, self.world), distributed.total(counted, self.world)
        accuracy = hits.item() / counted.item() if scored and counted.item() > 0 else None
        return total.item() / self.config.eval_steps, accuracy

    def evaluate(self) -> float:
        """Estimate the train and val losses, log them and hand them to the callbacks; returns the
        val loss. Every process estimates (the estimates are averaged over them)."""
        losses, accuracies = {}, {}
        for split in ("train", "val"):
            losses[split], accuracies[split] = self.estimate(split)
        if self.world.main:
            accuracy = "" if accuracies["val"] is None else f", val accuracy {accuracies['val']:.4f}"
            log.info("step %d: train loss %.4f, val loss %.4f%s", self.step, losses["train"], losses["val"], accuracy)
        for callback in self.callbacks:
            callback.on_evaluate(self, losses, accuracies)
        return losses["val"]

    @property
    def tokens_per_sec(self) -> float:
        """Training tokens per second over the whole fit (compilation included)."""
        return self.tokens_seen / self.train_seconds if self.train_seconds > 0 else 0.0

    @property
    def recent_tokens_per_sec(self) -> float:
        """Training tokens per second over the recent steps (`StepClock`: compilation left out);
        the whole fit's rate before any such step."""
        rate = self.clock.tokens_per_sec
        return rate if rate is not None else self.tokens_per_sec

    def _new_clock(self, compiled: bool) -> StepClock:
        # Left out of the rates: a compiled model's first steps (the forward and backward graphs
        # compile at the first, recompilation for a changed shape at the next), an eager model's first
        # (the allocator's warm-up).
        return StepClock(max_steps=self.config.max_steps, skip=3 if compiled else 1,
                         pause_every=(self.config.eval_interval, self.config.checkpoint_interval))

    @property
    def elapsed(self) -> float:
        """Wall seconds of the run's fits so far, the current one included (train.max_minutes)."""
        now = 0.0 if self._fit_start is None else time.perf_counter() - self._fit_start
        return self.wall_seconds + now

    def _time_spent(self) -> float:
        """The fraction of the time budget used (0 without one): the schedule's clock."""
        budget = self.config.budget_seconds
        return 0.0 if budget is None else min(1.0, self.elapsed / budget)

    @property
    def lr(self) -> float:
        """The learning rate of the step last taken (before any, of the first)."""
        return learning_rate(max(self.step - 1, 0), self.config, self.anchor, self._time_spent())

    def due(self, every: int | None) -> bool:
        """Whether the step just taken is an `every`-th one (never when 0) or the last: at
        `max_steps`, or the one that used up the time budget."""
        return ((every > 0 and self.step % every == 0) or self.step == self.config.max_steps
                or self._out_of_time)

    # ---- the loop ------------------------------------------------------------------------------

    def _train_step(self) -> Tensor:
        config = self.config
        lr = learning_rate(self.step, config, self.anchor, self._time_spent())
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        for micro in range(config.grad_accum_steps):
            batch = self.batches.sample("train", self.generator)
            if not self.batches.shards_rows:
                batch = distributed.shard(batch, self._rows)
            # Gradients are averaged over processes once per step, at the last micro-batch's backward.
            last = micro == config.grad_accum_steps - 1
            with contextlib.nullcontext() if last or self._ddp is None else self._ddp.no_sync():
                loss = self._micro_step(*batch)
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)  # clip the true gradients
        if config.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), config.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return loss.detach()

    def _micro_step(self, x: Tensor | tuple | dict, y: Tensor) -> Tensor:
        """Forward and backward of one micro-batch; returns its loss. A compiled model that fails to
        compile (at its first call) is dropped for the eager one, with a warning."""
        try:
            output = self._forward(self.train_model, x, y)
            loss = output[1]
            scaled = loss / self.config.grad_accum_steps
            (scaled if self.scaler is None else self.scaler.scale(scaled)).backward()
        except Exception as exc:  # noqa: BLE001 - any compiler failure; an eager error re-raises below
            if not self._compiled:
                raise
            log.warning("torch.compile failed (%s: %s); training without it", type(exc).__name__,
                        str(exc).strip().splitlines()[0] if str(exc).strip() else "")
            self._compiled = False
            self.train_model = self._ddp if self._ddp is not None else self.model
            self.optimizer.zero_grad(set_to_none=True)
            return self._micro_step(x, y)
        self.batches.carry(output)
        self.tokens_seen += y.numel() * self.world.size
        return loss

    def _forward(self, model: nn.Module, x: Tensor | tuple | dict, y: Tensor) -> tuple:
        """`model`'s output on one batch, (output, loss, ...), in the run's precision: model(x, y),
        model(*x, y) for a tuple, model(**x, targets=y) for a dict."""
        targets = y.to(self.device, non_blocking=True)
        with precision.autocast(self.device, self.dtype):
            if isinstance(x, dict):
                return model(**{k: self._to_device(v) for k, v in x.items()}, targets=targets)
            inputs = x if isinstance(x, tuple) else (x,)
            return model(*(self._to_device(t) for t in inputs), targets)

    def _to_device(self, value):
        """Tensors (also inside tuples, such as a hidden state) on the training device; the rest as is."""
        if isinstance(value, Tensor):
            return value.to(self.device, non_blocking=True)
        if isinstance(value, tuple):
            return tuple(self._to_device(v) for v in value)
        return value

    def _log(self, loss: Tensor) -> None:
        """Hand the step's loss, averaged over processes, to the progress bar and the callbacks."""
        value = distributed.mean(loss, self.world).item()  # the only read of a device value between evaluations
        if not math.isfinite(value):  # before any callback: diverged weights are never logged or saved
            raise SeqlabError(f"the training loss is {value} at step {self.step}: the run diverged (lower "
                              f"train.lr, or clip with train.grad_clip); its last checkpoint is kept, and "
                              f"`seqlab train --out {self.run_dir} --resume --train.lr=...` continues from it")
        self._last_loss = value
        for callback in self.callbacks:
            callback.on_log(self, value)
        if self.threads is not None:
            self.threads.check()

    def _stop_signal(self, stop: StopSignals) -> int | None:
        """The signal to stop after this step for, if any. Under torchrun the processes agree at each
        log step, so all of them stop at the same step when any was signalled (SIGINT before SIGTERM
        when processes got different ones)."""
        if not self.world.distributed:
            return stop.signum
        if not self.due(self.config.log_every):
            return None
        received = torch.tensor([float(stop.signum == s) for s in STOP_SIGNALS], device=self.device)
        counts = distributed.total(received, self.world).tolist()
        return next((s for s, count in zip(STOP_SIGNALS, counts) if count > 0), None)

    def fit(self, resume: bool = False) -> TrainResult:
        """Train to `max_steps`, from the latest checkpoint when `resume` and there is one. A `step`
        set before `fit` (weights loaded without a checkpoint: `--from-weights`) is gone on from, as a
        resumed run.

        SIGINT or SIGTERM (`seqlab.training.signals`) stops the loop at the end of its step: the
        result is then `interrupted`, with the `signal`, and the default callbacks checkpoint it."""
        config = self.config
        # Open from the start, so that a signal during the restore or the first evaluation is kept.
        self._fit_start, self._out_of_time = time.perf_counter(), False
        with StopSignals() as stop:
            resumed = (resume and self.restore()) or self.step > 0
            budget = config.budget_seconds  # a resumed run whose time is used up takes no step
            self._out_of_time = budget is not None and self.elapsed >= budget
            for callback in self.callbacks:
                callback.on_fit_start(self, resumed)
            self.clock = self._new_clock(self._compiled)
            if not resumed:
                start = time.perf_counter()
                self.evaluate()
                self.clock.add_pause(time.perf_counter() - start)
            result = self._loop(stop)
            for callback in self.callbacks:
                callback.on_fit_end(self, result)
        self.wall_seconds, self._fit_start = self.elapsed, None
        return result

    def _loop(self, stop: StopSignals) -> TrainResult:
        """Steps to `max_steps`, or to the end of the step a signal came in."""
        config = self.config
        val_loss, signum = None, None
        self.model.train()
        self._last_loss = None
        # disable=None: tqdm draws the bar only on a terminal; logs (eval lines) go through it meanwhile.
        # tqdm's own rate and ETA average since the start (compilation included): the bar shows the
        # StepClock's instead, after the elapsed time.
        bar = tqdm(total=config.max_steps, initial=self.step, desc=self.title or "train", unit="step",
                   disable=None if self.progress else True, dynamic_ncols=True, leave=True,
                   bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]")
        bar.set_postfix_str(self.clock.describe(self.step, compiling=self._compiled), refresh=True)
        with bar, logging_redirect_tqdm(loggers=[logging.getLogger("seqlab")]):
            while self.step < config.max_steps and signum is None and not self._out_of_time:
                start = time.perf_counter()
                self.clock.begin_step()
                tokens = self.tokens_seen
                loss = self._train_step()
                signum = self._stop_signal(stop)
                self.train_seconds += time.perf_counter() - start  # logs, evaluations, callbacks: not training time
                self.clock.end_training(self.tokens_seen - tokens)
                budget = config.budget_seconds
                if budget is not None:
                    left = budget - self.elapsed
                    self._out_of_time, self.clock.seconds_cap = left <= 0, max(0.0, left)
                bar.update(1)
                if self.due(config.log_every):
                    self._log(loss)
                if self.due(config.eval_interval):
                    val_loss = self.evaluate()
                for callback in self.callbacks:
                    callback.on_step_end(self, loss)
                self.clock.end_step(self.step)
                if self.due(config.log_every) or self.clock.warming_up:
                    self._show(bar)
        # A signal at the last step (by steps or by time): finished.
        interrupted = signum is not None and self.step < config.max_steps and not self._out_of_time
        return TrainResult(step=self.step, interrupted=interrupted, val_loss=val_loss,
                           tokens_per_sec=self.tokens_per_sec, signal=signum if interrupted else None)

    def _show(self, bar: tqdm) -> None:
        """The bar's text: the compile phase, then the recent rates, the time left and the loss."""
        if not self.progress:
            return
        text = self.clock.describe(self.step, compiling=self._compiled)
        if self._last_loss is not None:
            text += f", loss {self._last_loss:.4f}"
        bar.set_postfix_str(text, refresh=False)
