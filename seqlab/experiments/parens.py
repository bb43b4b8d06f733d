"""Coloured parentheses: Elman, gated RNN, GRU, LSTM and a Transformer encoder, trained alike.

The lectures' comparison on `seqlab.data.parens` (is a sequence of five colours of brackets
balanced?): every model is a many-to-one classifier trained by the same `Trainer` with the same budget
— the same steps, batch size, learning-rate schedule, training batches (one seed) and initial seed —
and roughly the same number of parameters (the table reports them; the recurrent widths in `WIDTHS`
are chosen for about 19.5k each, the Transformer's `transformer_config` lands near them).

* the recurrent models are `RecurrentEncoder`s (one layer) classified from the state after the last
  real token (`pooling="last"`);
* the Transformer is a `TransformerEncoder` with rotary positions (relative, so defined at any
  length) classified from the mean of its states; it has the same embedding width as the LSTM.

The budget is online training by default: one sequence per step (so no padding), Adam at 1e-3 and
no gradient clipping, for 30,000 sequences. That is the regime the lectures' argument for gates is
about: a gradient through dozens of ReLU recurrences explodes or vanishes, and nothing averages or
clips it away. The Elman network then falls behind the gated models, the more so the longer the
sequences. With batches of 64 and clipping (`seqlab experiment parens --batch-size 64 --lr 3e-3
--clip 1 --steps 1500`) it catches up at these lengths: the README has both tables.

Training sequences have lengths `train_lengths` (2–60 by default). Test accuracy is measured on fresh
held-out sets at the training lengths and at each range of `test_lengths` beyond them (62–100, 102–160),
where no model has seen a sequence that long. The trainer reports validation accuracy at every
evaluation (the `accuracy` column of each run's `metrics.csv`, and the right panel of its `loss.png`).

`write_reports` saves the table as `parens.md` and `parens.csv` and draws `parens.png`: the training
loss (the trainer's estimates) and the validation accuracy of every model against steps.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from seqlab.config import ModelConfig, TrainConfig
from seqlab.data.parens import (
    VOCAB_SIZE,
    Labelled,
    ParensBatches,
    collate_parens,
    make_parens_dataset,
)
from seqlab.errors import SeqlabError
from seqlab.experiments import tables
from seqlab.experiments.tables import markdown_table, text_table
from seqlab.files import atomic_write_text
from seqlab.models.encoder import SequenceClassifier, TransformerEncoder
from seqlab.models.recurrent_encoder import RecurrentEncoder
from seqlab.plots import pyplot, save_png
from seqlab.seeds import generator_seed
from seqlab.training.metrics import MetricsLog
from seqlab.training.trainer import Trainer

log = logging.getLogger(__name__)

MODELS = ("rnn", "gated", "gru", "lstm", "transformer")
LABELS = {"rnn": "Elman RNN", "gated": "gated RNN", "gru": "GRU", "lstm": "LSTM", "transformer": "Transformer"}
# Hidden widths giving about 19.5k parameters each (embedding, recurrence and head): the weights grow
# with the number of gate blocks (1, 2, 3, 4), so the Elman network gets the widest state.
WIDTHS = {"rnn": 96, "gated": 68, "gru": 56, "lstm": 48}
REPORT_NAMES = ("parens.md", "parens.csv", "parens.png")
EVAL_BATCHES = 4  # per estimate of the training loss and the validation accuracy
RESULT_FILE = "result.json"  # in each run: the setup and the result, for --resume


@dataclass(frozen=True)
class ParensSetup:
    """The shared budget and data of one comparison."""

    steps: int = 30_000
    batch_size: int = 1  # sequences per step
    lr: float = 1e-3  # warm-up then cosine decay to lr/10, the trainer's schedule
    grad_clip: float = 0.0  # the largest gradient norm; 0: no clipping
    warmup_steps: int = 100
    eval_every: int = 1000
    eval_batch_size: int = 250  # the trainer's estimates draw EVAL_BATCHES batches of this many
    # Long enough that a bracket's partner can be dozens of steps away; the test ranges reach 2.7× further.
    train_lengths: tuple[int, int] = (2, 60)
    test_lengths: tuple[tuple[int, int], ...] = ((62, 100), (102, 160))  # beyond the training lengths
    n_train: int = 20_000
    n_val: int = 1_000  # validation accuracy during training, at the training lengths
    n_test: int = 2_000  # per range of lengths
    seed: int = 0  # the first seed; `seeds` runs use seed, seed + 1, ...
    seeds: int = 3  # repeats of the whole comparison (data, batches and initial weights), for the spread

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "eval_every", "eval_batch_size", "seeds"):
            if getattr(self, name) < 1:
                raise SeqlabError(f"{name} = {getattr(self, name)}: it must be positive")
        for name in ("n_train", "n_val", "n_test"):  # half balanced, half not
            if getattr(self, name) < 2 or getattr(self, name) % 2:
                raise SeqlabError(f"{name} = {getattr(self, name)}: it must be even and at least 2")
        if self.lr <= 0 or self.grad_clip < 0:
            raise SeqlabError(f"lr = {self.lr}, clip = {self.grad_clip}: the rate must be positive, the clip at least 0")

    @property
    def ranges(self) -> tuple[tuple[int, int], ...]:
        """The test ranges: the training lengths first, then the longer ones."""
        return (self.train_lengths, *self.test_lengths)

    @property
    def max_len(self) -> int:
        return max(high for _, high in self.ranges)

    def train_config(self) -> TrainConfig:
        # No weight decay: the trainer decays linear layers only, which would touch the Transformer's
        # weights but not the recurrent ones.
        return TrainConfig(batch_size=self.batch_size, max_steps=self.steps, lr=self.lr, min_lr=self.lr / 10,
                           warmup_steps=min(self.warmup_steps, self.steps // 10), weight_decay=0.0,
                           grad_clip=self.grad_clip, eval_every=self.eval_every, eval_steps=EVAL_BATCHES,
                           checkpoint_every=0,
                           log_every=min(10, self.steps), sample_tokens=0, seed=self.seed, device="cpu")


def transformer_config(setup: ParensSetup) -> ModelConfig:
    """Two layers of width 32 with rotary positions, defined at every test length."""
    return ModelConfig(n_layer=2, n_head=2, d_model=32, block_size=setup.max_len, position="rope")


def build_classifier(name: str, setup: ParensSetup) -> SequenceClassifier:
    """The many-to-one classifier `name` (one of `MODELS`), its weights drawn from `setup.seed`."""
    torch.manual_seed(generator_seed(setup.seed))  # every model starts from the same seed, whatever the order
    if name not in MODELS:
        raise SeqlabError(f"unknown model {name!r}; choose among {', '.join(MODELS)}")
    if name not in WIDTHS:  # the Transformer encoder
        return SequenceClassifier(TransformerEncoder(transformer_config(setup), VOCAB_SIZE), 2, pooling="mean")
    # The Elman network with ReLU, as the lectures write it (h_t = ReLU(W_xh x_t + W_hh h_{t-1} + b)).
    encoder = RecurrentEncoder(name, VOCAB_SIZE, WIDTHS[name], n_layer=1, nonlinearity="relu")
    return SequenceClassifier(encoder, 2, pooling="last")


@torch.no_grad()
def accuracy(model: nn.Module, data: Labelled, *, batch_size: int = 500) -> float:
    """The fraction of `data` whose label `model.predict` gets right."""
    sequences, labels = data
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for start in range(0, len(sequences), batch_size):
        idx, mask, y = collate_parens(sequences[start:start + batch_size], labels[start:start + batch_size])
        correct += int((model.predict(idx.to(device), mask.to(device)).cpu() == y).sum())
    model.train(was_training)
    return correct / max(len(sequences), 1)


@dataclass(frozen=True)
class ParensResult:
    """One model's row of the table, and its curves for the plot."""

    model: str
    seed: int
    parameters: int
    steps: int
    train_seconds: float
    test_accuracy: dict[str, float]  # "2-60" → accuracy on the held-out set of those lengths
    loss_curve: list[tuple[int, float]] = field(repr=False)  # (step, training loss estimate)
    accuracy_curve: list[tuple[int, float]] = field(repr=False)  # (step, validation accuracy)


def _range_name(lengths: tuple[int, int]) -> str:
    return f"{lengths[0]}-{lengths[1]}"


def make_datasets(setup: ParensSetup) -> tuple[Labelled, Labelled, dict[str, Labelled]]:
    """(train, val, test sets by range name), each drawn from its own seed."""
    low, high = setup.train_lengths
    train = make_parens_dataset(setup.n_train, min_len=low, max_len=high, seed=setup.seed)
    val = make_parens_dataset(setup.n_val, min_len=low, max_len=high, seed=setup.seed + 1)
    tests = {_range_name(r): make_parens_dataset(setup.n_test, min_len=r[0], max_len=r[1], seed=setup.seed + 2 + i)
             for i, r in enumerate(setup.ranges)}
    return train, val, tests


def run_parens(models: Sequence[str] = MODELS, *, out: str | Path, setup: ParensSetup = ParensSetup(),
               progress: bool = True, resume: bool = False) -> list[ParensResult]:
    """Train each model on the same batches and measure it, once per seed (see the module docstring):
    runs in `out/MODEL/seed-S`. Results are in seed order, models in the order given.

    Each finished run keeps its result in `RESULT_FILE`. With `resume`, a run whose result is there,
    from the same setup, is not trained again: an interrupted experiment continues where it stopped,
    and seeds run as separate commands (`--seed S --seeds 1`, in parallel) come together in one
    report when the whole range is asked for."""
    if not models:
        raise SeqlabError("no models to compare")
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise SeqlabError(f"unknown model {unknown[0]!r}; choose among {', '.join(MODELS)}")
    results = []
    for seed in range(setup.seed, setup.seed + setup.seeds):
        one = replace(setup, seed=seed, seeds=1)
        train, val, tests = make_datasets(one)
        for index, name in enumerate(models, start=1):
            run_dir = Path(out) / name / f"seed-{seed}"
            done = _finished(run_dir, one) if resume else None
            if done is not None:
                log.info("parens seed %d, %d/%d: %s, finished in %s", seed, index, len(models), LABELS[name], run_dir)
                results.append(done)
                continue
            log.info("parens seed %d, %d/%d: %s", seed, index, len(models), LABELS[name])
            (run_dir / RESULT_FILE).unlink(missing_ok=True)  # an interrupted retraining must not leave it
            results.append(_train_one(name, one, train, val, tests, run_dir, progress))
            atomic_write_text(run_dir / RESULT_FILE, json.dumps({"setup": asdict(one), "result": asdict(results[-1])}))
    return results


def _plain(setup: ParensSetup) -> dict:
    """The setup as JSON would read it back (tuples become lists)."""
    return json.loads(json.dumps(asdict(setup)))


def _finished(run_dir: Path, setup: ParensSetup) -> ParensResult | None:
    """The result saved in `run_dir`, or None if there is none; an error if it came from another setup."""
    path = run_dir / RESULT_FILE
    if not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        same = saved["setup"] == _plain(setup)
        result = saved["result"]
        result["loss_curve"] = [tuple(point) for point in result["loss_curve"]]
        result["accuracy_curve"] = [tuple(point) for point in result["accuracy_curve"]]
        finished = ParensResult(**result)
    except (ValueError, KeyError, TypeError) as exc:
        raise SeqlabError(f"{path} is not a parens result ({exc}): delete it, or leave out --resume") from None
    if not same:
        raise SeqlabError(f"{run_dir} was trained with another setup (steps, batch size, lr, clip or test sizes): "
                          f"choose another --out, or leave out --resume to train it again")
    return finished


def _train_one(name: str, setup: ParensSetup, train: Labelled, val: Labelled, tests: dict[str, Labelled],
               run_dir: Path, progress: bool) -> ParensResult:
    model = build_classifier(name, setup)
    batches = ParensBatches(train, val, setup.batch_size, setup.eval_batch_size)
    trainer = Trainer(model, batches, setup.train_config(), run_dir,
                      device=torch.device("cpu"), progress=progress, title=f"parens {LABELS[name]} seed {setup.seed}")
    start = time.perf_counter()
    trainer.fit()
    seconds = time.perf_counter() - start
    rows = MetricsLog(run_dir / "metrics.csv").rows()
    result = ParensResult(
        model=name, seed=setup.seed, parameters=sum(p.numel() for p in model.parameters()), steps=trainer.step,
        train_seconds=seconds, test_accuracy={r: accuracy(model, data) for r, data in tests.items()},
        loss_curve=[(int(row["step"]), float(row["loss"])) for row in rows if row["split"] == "train"],
        accuracy_curve=[(int(row["step"]), float(row["accuracy"])) for row in rows if row["split"] == "val"])
    log.info("%s: test accuracy %s", LABELS[name],
             ", ".join(f"{a:.3f} at {r}" for r, a in result.test_accuracy.items()))
    return result


# ---- reports --------------------------------------------------------------------------------------


def _by_model(results: Sequence[ParensResult]) -> dict[str, list[ParensResult]]:
    """The results of each model (all its seeds), models in their first order."""
    grouped: dict[str, list[ParensResult]] = {}
    for r in results:
        grouped.setdefault(r.model, []).append(r)
    return grouped


def _headers(results: Sequence[ParensResult]) -> list[str]:
    ranges = list(results[0].test_accuracy)
    return ["model", "parameters", *(f"acc {r}" for r in ranges), "seconds"]


def _mean_sd(values: Sequence[float]) -> str:
    """`0.912` for one value, `0.912 ± 0.013` (mean ± sample standard deviation) for several."""
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.3f}"
    sd = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    return f"{mean:.3f} ± {sd:.3f}"


def _rows(results: Sequence[ParensResult]) -> list[list[str]]:
    rows = []
    for model, runs in _by_model(results).items():
        accuracies = [_mean_sd([r.test_accuracy[k] for r in runs]) for k in runs[0].test_accuracy]
        seconds = sum(r.train_seconds for r in runs) / len(runs)
        rows.append([LABELS[model], f"{runs[0].parameters:,}", *accuracies, f"{seconds:.0f}"])
    return rows


def _caption(results: Sequence[ParensResult]) -> str:
    ranges = list(results[0].test_accuracy)
    seeds = sorted({r.seed for r in results})
    repeats = (f"mean ± sd over {len(seeds)} seeds ({seeds[0]}-{seeds[-1]})" if len(seeds) > 1
               else f"seed {seeds[0]}")
    return (f"Coloured parentheses, {results[0].steps} steps each; trained on lengths {ranges[0]}, "
            f"test accuracy on held-out sequences of each range of lengths (chance 0.5), {repeats}")


def render_table(results: Sequence[ParensResult]) -> str:
    """The table as aligned plain text, numbers right-aligned."""
    return "\n".join([_caption(results), "", *text_table(_headers(results), _rows(results))])


def to_markdown(results: Sequence[ParensResult]) -> str:
    lines = [_caption(results) + ".", "", *markdown_table(_headers(results), _rows(results))]
    return "\n".join(lines) + "\n"


def to_csv(results: Sequence[ParensResult]) -> str:
    """One row per model and seed, full precision: accuracy columns `acc_LOW_HIGH`."""
    buffer = io.StringIO()
    names = [f"acc_{r.replace('-', '_')}" for r in results[0].test_accuracy]
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["model", "seed", "parameters", "steps", *names, "train_seconds"])
    for r in results:
        writer.writerow([r.model, r.seed, r.parameters, r.steps, *r.test_accuracy.values(),
                         f"{r.train_seconds:.3f}"])
    return buffer.getvalue()


def plot(results: Sequence[ParensResult], path: Path) -> None:
    """parens.png: `figure(results)` saved as `path`."""
    save_png(figure(results), path)


def figure(results: Sequence[ParensResult]):
    """Training loss (left) and validation accuracy (right) of every model against steps: one colour a
    model, one line a seed (the label on its first)."""
    plt = pyplot()

    fig, (losses, accuracies) = plt.subplots(1, 2, figsize=(12, 4.5), dpi=110)
    for i, runs in enumerate(_by_model(results).values()):
        for j, r in enumerate(runs):
            style = dict(marker="o", ms=2.5, lw=1.5 if len(runs) == 1 else 1.0, alpha=1.0 if len(runs) == 1 else 0.7,
                         color=f"C{i % 10}", label=LABELS[r.model] if j == 0 else None)
            if r.loss_curve:
                losses.plot(*zip(*r.loss_curve), **style)
            if r.accuracy_curve:
                accuracies.plot(*zip(*r.accuracy_curve), **style)
    losses.set_ylabel("training loss (nats per sequence label, estimate)")
    losses.set_title("training loss", fontsize=10)
    accuracies.set_ylabel(f"validation accuracy (fraction; lengths {next(iter(results[0].test_accuracy))})")
    accuracies.set_title("validation accuracy", fontsize=10)
    accuracies.axhline(0.5, color="0.6", lw=0.8, ls="--", label="chance (0.5)")
    for ax in (losses, accuracies):
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(_caption(results).split(";")[0])
    fig.tight_layout()
    return fig


def write_reports(results: Sequence[ParensResult], out: str | Path) -> list[Path]:
    """`parens.md`, `parens.csv` and `parens.png` in `out`; returns their paths."""
    return tables.write_reports(out, REPORT_NAMES, to_markdown(results), to_csv(results),
                                lambda path: plot(results, path))

