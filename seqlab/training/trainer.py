"""The training loop: knows nothing about model families.

It takes a model whose `forward(x, y)` returns `(output, loss)` (or more, e.g. a final hidden state
that the batch source's optional `carry` hook keeps), a batch source, and a `TrainConfig`,
and owns the optimizer, the schedule, evaluation, logging and checkpoints of one run directory.
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
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import torch
from torch import Tensor, nn
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from seqlab.config import TrainConfig
from seqlab.training import distributed, precision
from seqlab.training.checkpoint import latest_checkpoint, save_checkpoint
from seqlab.training.distributed import SINGLE, World
from seqlab.training.threads import ThreadGovernor
from seqlab.training.metrics import MetricsLog, plot_losses
from seqlab.training.optim import build_optimizer, learning_rate

log = logging.getLogger(__name__)


class BatchSource(Protocol):
    """Where batches come from: `sample` must draw all its randomness from `generator`."""

    tokens_per_char: dict[str, float]  # per split, turns nats per token into bits per character

    def sample(self, split: str, generator: torch.Generator) -> tuple[Tensor | tuple | dict, Tensor]:
        """(inputs, targets): the trainer calls model(inputs, targets), model(*inputs, targets)
        when inputs is a tuple (an encoder–decoder's source, target and masks), or
        model(**inputs, targets=targets) when it is a dict; the model returns (output, loss, ...).

        Two optional members: `carry(model_output)`, called after each training forward (truncated
        BPTT keeps the final hidden state there), and `sample_eval(split, generator)`, which
        `estimate` draws from instead of `sample` when present, so evaluating never disturbs
        a stateful training stream. Under data-parallel training every process draws the same global
        batch and keeps its rows; a source with a `rows` attribute (a slice) is told its rows
        instead and returns only those for training (truncated BPTT, whose streams are rows)."""


@dataclass
class TrainResult:
    step: int
    interrupted: bool
    val_loss: float | None
    tokens_per_sec: float


class _StopFlag:
    """The first Ctrl-C asks the loop to checkpoint and stop at the end of the step; a second one aborts."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def __enter__(self) -> "_StopFlag":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        log.warning("interrupted: saving a checkpoint at the end of this step (Ctrl-C again to abort)")

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


class Trainer:
    def __init__(self, model: nn.Module, batches: BatchSource, config: TrainConfig, run_dir: Path, *,
                 device: torch.device, sampler: Callable[[nn.Module], str] | None = None,
                 progress: bool = True, title: str = "", world: World = SINGLE,
                 threads: ThreadGovernor | None = None) -> None:
        self.model = model.to(device)  # the plain module: evaluated, sampled and saved
        self.batches = batches
        self.config = config
        self.run_dir = Path(run_dir)
        self.device = device
        self.sampler = sampler
        self.progress = progress and world.main
        self.title = title
        self.world = world
        self.threads = threads  # adapts the CPU thread count to the machine's load as the run goes
        self.dtype = precision.resolve_dtype(config.dtype, device)
        self.scaler = precision.grad_scaler(device, self.dtype)
        self.optimizer = build_optimizer(self.model, config, device)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.metrics = MetricsLog(self.run_dir / "metrics.csv") if world.main else None
        self.step = 0
        self.tokens_seen = 0  # over all processes
        self.train_seconds = 0.0
        self._rows = slice(None)  # this process's rows of every batch it draws
        self._source_rows = hasattr(batches, "rows")  # the source draws this process's rows itself
        self._ddp: nn.parallel.DistributedDataParallel | None = None
        self.train_model = self.model  # what the training forward calls: maybe wrapped, maybe compiled
        if world.distributed:
            if config.batch_size % world.size:
                raise ValueError(f"train.batch_size = {config.batch_size} does not split over {world.size} "
                                 f"processes: use a multiple of {world.size}")
            self._rows = world.rows(config.batch_size)
            if self._source_rows:
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
        counters = {"tokens_seen": self.tokens_seen, "train_seconds": self.train_seconds}
        if self.scaler is not None:
            counters["grad_scaler"] = self.scaler.state_dict()
        save_checkpoint(self.run_dir, step=self.step, model=self.model, optimizer=self.optimizer,
                        rng=self._rng_state(), trainer=counters)

    def restore(self) -> bool:
        """Continue from the run's latest checkpoint; False when there is none."""
        checkpoint = latest_checkpoint(self.run_dir)
        if checkpoint is None:
            return False
        rng = checkpoint.load_into(self.model, self.optimizer)
        self.generator.set_state(rng["batches"])
        torch.set_rng_state(rng["torch"])
        if "cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], self.device)
        self.step = checkpoint.step
        self.tokens_seen = int(checkpoint.trainer.get("tokens_seen", 0))
        self.train_seconds = float(checkpoint.trainer.get("train_seconds", 0.0))
        if self.scaler is not None and "grad_scaler" in checkpoint.trainer:
            self.scaler.load_state_dict(checkpoint.trainer["grad_scaler"])
        if self.metrics is not None:
            self.metrics.truncate_after(self.step)
        log.info("resumed from step %d", self.step)
        return True

    # ---- evaluation --------------------------------------------------------------------------

    @torch.inference_mode()
    def estimate(self, split: str) -> tuple[float, float | None]:
        """(mean loss, top-1 accuracy) over `eval_steps` batches, the same batches at every evaluation.
        The accuracy counts the targets (all but -1, padding) that the output's highest score
        predicts; it is None when the output is not one score vector per target."""
        generator = torch.Generator().manual_seed(self.config.seed + 1)
        was_training = self.model.training
        self.model.eval()
        total = torch.zeros((), device=self.device)
        hits = torch.zeros((), device=self.device, dtype=torch.long)
        counted = torch.zeros((), device=self.device, dtype=torch.long)
        scored = True
        draw = getattr(self.batches, "sample_eval", self.batches.sample)
        for _ in range(self.config.eval_steps):
            x, y = distributed.shard(draw(split, generator), self._rows)
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
        """Log train and val estimates, write a sample and the loss plot; returns the val loss."""
        lr = learning_rate(max(self.step - 1, 0), self.config)
        losses, accuracies = {}, {}
        for split in ("train", "val"):  # every process estimates (the estimates are averaged over them)
            losses[split], accuracies[split] = self.estimate(split)
        if self.metrics is None:  # another process writes the run directory
            return losses["val"]
        for split in ("train", "val"):
            bpc = losses[split] / math.log(2) * self.batches.tokens_per_char[split]
            self.metrics.add(step=self.step, split=split, loss=losses[split], bits_per_char=bpc,
                             accuracy=accuracies[split], tokens_per_sec=self.tokens_per_sec, lr=lr,
                             elapsed_s=self.train_seconds)
        accuracy = "" if accuracies["val"] is None else f", val accuracy {accuracies['val']:.4f}"
        log.info("step %d: train loss %.4f, val loss %.4f%s", self.step, losses["train"], losses["val"], accuracy)
        if self.sampler is not None and self.config.sample_tokens > 0:
            text = self.sampler(self.model)
            with open(self.run_dir / "samples.txt", "a", encoding="utf-8") as handle:
                handle.write(f"==== step {self.step} ====\n{text}\n\n")
        plot_losses(self.metrics.rows(), self.run_dir / "loss.png", self.title)
        return losses["val"]

    @property
    def tokens_per_sec(self) -> float:
        return self.tokens_seen / self.train_seconds if self.train_seconds > 0 else 0.0

    # ---- the loop ------------------------------------------------------------------------------

    def _train_step(self) -> Tensor:
        config = self.config
        lr = learning_rate(self.step, config)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        for micro in range(config.grad_accum_steps):
            batch = self.batches.sample("train", self.generator)
            if not self._source_rows:
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
        carry = getattr(self.batches, "carry", None)
        if carry is not None:
            carry(output)
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

    def _log_batch(self, loss: Tensor, bar: tqdm) -> None:
        value = distributed.mean(loss, self.world).item()  # the only read of a device value between evaluations
        if self.metrics is None:
            return
        self.metrics.add(step=self.step, split="batch", loss=value, tokens_per_sec=self.tokens_per_sec,
                         bits_per_char=value / math.log(2) * self.batches.tokens_per_char["train"],
                         lr=learning_rate(self.step - 1, self.config), elapsed_s=self.train_seconds)
        bar.set_postfix(loss=f"{value:.4f}", tok_s=f"{self.tokens_per_sec:,.0f}", refresh=False)

    def _due(self, every: int) -> bool:
        return (every > 0 and self.step % every == 0) or self.step == self.config.max_steps

    def fit(self, resume: bool = False) -> TrainResult:
        """Train to `max_steps` (from the latest checkpoint when `resume`), checkpointing on the way."""
        config = self.config
        if not (resume and self.restore()):
            if self.metrics is not None:
                self.metrics.truncate_after(-1)  # a run killed before its first checkpoint starts over
            self.evaluate()
        val_loss = None
        self.model.train()
        # disable=None: tqdm draws the bar only on a terminal; logs (eval lines) go through it meanwhile.
        bar = tqdm(total=config.max_steps, initial=self.step, desc=self.title or "train", unit="step",
                   disable=None if self.progress else True, dynamic_ncols=True, leave=True)
        with _StopFlag() as stop, bar, logging_redirect_tqdm(loggers=[logging.getLogger("seqlab")]):
            start = time.perf_counter()
            stopping = False
            while self.step < config.max_steps and not stopping:
                loss = self._train_step()
                bar.update(1)
                log_now = self.step % config.log_every == 0 or self.step == config.max_steps
                if not self.world.distributed:
                    stopping = stop.requested
                elif log_now:  # processes agree to stop, at the same step, when any was asked to
                    flag = torch.tensor(float(stop.requested), device=self.device)
                    stopping = distributed.total(flag, self.world).item() > 0
                eval_now, save_now = self._due(config.eval_every), self._due(config.checkpoint_every)
                if not (log_now or eval_now or save_now):
                    continue
                self.train_seconds += time.perf_counter() - start  # evaluation time is not training time
                if log_now:
                    self._log_batch(loss, bar)
                    if self.threads is not None:
                        self.threads.check()
                if eval_now:
                    val_loss = self.evaluate()
                if save_now:
                    self.save()
                start = time.perf_counter()
            if stopping:
                self.train_seconds += time.perf_counter() - start
                self.save()
        return TrainResult(step=self.step, interrupted=stopping, val_loss=val_loss,
                           tokens_per_sec=self.tokens_per_sec)
