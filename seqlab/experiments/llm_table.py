"""The LLM table: the decoder variants of famous language models, trained alike and compared.

Each decoder preset (`gpt3`, `opt`, `palm`, `bloom`, `llama`, `gopher`, `galactica`, `glm`, the
mixture of experts `mixtral` beside `mixtral-dense` with its active parameters, and nanoGPT's
`shakespeare-char` as the baseline) is nanoGPT's CPU configuration for character-level
tiny Shakespeare (4 layers, 4 heads, width 128, context 64, batch 12) with the architecture choices
of one model: its norm and where it sits, its positions, its activation, biases, parallel blocks,
key/value heads, tied embeddings, experts. Data, tokenizer and training are the same, so every preset
sees the same training tokens (steps × batch × context) and the table compares the architectures
alone, at a size far below the one they were designed for.

`run_llm_table` trains each preset into its own run directory (`OUT/PRESET`, so `seqlab sample`
and `seqlab eval` work on it) and measures, per preset:

* **parameters**, each shared tensor counted once (a tied output layer is the token embedding);
* **active parameters**, those one token uses (`seqlab.nn.moe.active_parameters`): all of them
  for a dense model, k of the E experts of each layer for a mixture of experts (`mixtral`, whose
  dense counterpart `mixtral-dense` has the same active parameters);
* **validation bits per char** over the whole validation split (`seqlab.api.evaluate`:
  non-overlapping windows of the training context, every token predicted once), not the
  trainer's estimate from a few random batches;
* **training tokens per second**, the trainer's own measure (training steps only, evaluations and
  checkpoints excluded). It depends on whatever else the machine runs meanwhile.

`write_reports` saves the table as `llm-table.md` and `llm-table.csv` and draws `llm-table.png`:
each preset's validation curve (the trainer's estimates) beside its final bits per char.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from seqlab import api
from seqlab.config import Config, ModelConfig, load_config
from seqlab.errors import SeqlabError
from seqlab.experiments import tables
from seqlab.experiments.tables import markdown_table, text_table
from seqlab.nn.moe import active_parameters
from seqlab.plots import pyplot, save_png
from seqlab.runs import read_config, run_step
from seqlab.training.metrics import MetricsLog

log = logging.getLogger(__name__)

DECODER_PRESETS = ("shakespeare-char", "gpt3", "opt", "palm", "bloom", "llama", "gopher", "galactica", "glm",
                   "mixtral", "mixtral-dense")
REPORT_NAMES = ("llm-table.md", "llm-table.csv", "llm-table.png")


@dataclass(frozen=True)
class LLMResult:
    """One preset's row of the table."""

    preset: str
    variant: str  # its architecture choices, as `describe` writes them
    parameters: int
    active_parameters: int  # those one token uses: a mixture of experts counts k of its E experts
    train_tokens: int  # steps × batch × gradient accumulation × context
    val_loss: float  # nats per token over the whole validation split
    val_bits_per_char: float
    tokens_per_sec: float  # training throughput, as the trainer measured it
    train_seconds: float
    run_dir: str


def describe(model: ModelConfig) -> str:
    """The architecture choices of a decoder config in a few words.

    >>> describe(ModelConfig(norm="rmsnorm", position="rope", activation="swiglu", bias=False))
    'pre-rmsnorm, rope, swiglu, no bias'
    """
    placed = f"deepnorm {model.norm}" if model.norm_position == "deepnorm" else f"{model.norm_position}-{model.norm}"
    words = [placed, model.position, model.activation,
             "bias" if model.bias else "no bias"]
    if model.parallel_block:
        words.append("parallel")
    if model.kv_heads == 1 and model.n_head > 1:
        words.append("multi-query")
    elif model.kv_heads < model.n_head:
        words.append(f"{model.kv_heads} kv heads")
    if not model.tie_embeddings:
        words.append("untied")
    if model.n_experts:
        words.append(f"{model.n_experts} experts, top-{model.experts_per_token}")
    return ", ".join(words)


def train_tokens(config: Config) -> int:
    t = config.train
    return t.max_steps * t.batch_size * t.grad_accum_steps * config.model.block_size


def _configs(presets: Sequence[str], steps: int | None, overrides: Sequence[str]) -> dict[str, Config]:
    """Every preset's config, checked before any training starts (a typo fails at once)."""
    if not presets:
        raise SeqlabError("no presets to compare")
    repeated = sorted({p for p in presets if list(presets).count(p) > 1})
    if repeated:
        raise SeqlabError(f"presets named more than once: {', '.join(repeated)}")
    if steps is not None and steps < 1:
        raise SeqlabError(f"steps = {steps}: the number of training steps must be positive")
    extra = [*overrides, *([f"train.max_steps={steps}"] if steps is not None else [])]
    configs = {name: load_config(name, extra) for name in presets}
    # The table's columns are the decoder's variant axes: the settings must be exactly ModelConfig.
    others = [name for name, c in configs.items() if type(c.model) is not ModelConfig]
    if others:
        raise SeqlabError(f"the table compares decoder-only Transformers: {', '.join(others)} "
                          f"{'is' if len(others) == 1 else 'are'} not (model.family)")
    budgets = {name: train_tokens(c) for name, c in configs.items()}
    if len(set(budgets.values())) > 1:
        log.warning("the presets do not train on the same number of tokens: %s",
                    ", ".join(f"{n} {b:,}" for n, b in budgets.items()))
    return configs


def _check_run_dir(run_dir: Path, config: Config, *, resume: bool, overwrite: bool) -> None:
    if not (run_dir / "config.toml").is_file() or overwrite:
        return
    if not resume:
        raise SeqlabError(f"{run_dir} already holds a run: add --resume to continue (or reuse) it, "
                          f"--overwrite to train it again, or choose another --out")
    if read_config(run_dir) != config:
        raise SeqlabError(f"{run_dir} was trained with another config (other steps or overrides): "
                          f"add --overwrite to train it again, or choose another --out")


def run_llm_table(presets: Sequence[str] = DECODER_PRESETS, *, out: str | Path, steps: int | None = None,
                  overrides: Sequence[str] = (), resume: bool = False, overwrite: bool = False,
                  progress: bool = True) -> list[LLMResult]:
    """Train each preset into `out/PRESET` and measure it (see the module docstring).

    `steps` replaces the presets' `train.max_steps` (None keeps it); `overrides` (dotted
    `section.key=value`) apply to every preset. With `resume`, a run already in `out` continues from
    its last checkpoint, or is measured again if it is finished, provided its config is the same;
    `overwrite` trains existing runs from scratch.
    """
    out = Path(out)
    configs = _configs(presets, steps, overrides)
    for name, config in configs.items():
        _check_run_dir(out / name, config, resume=resume, overwrite=overwrite)
    results = []
    for index, (name, config) in enumerate(configs.items(), start=1):
        run_dir = out / name
        log.info("llm-table %d/%d: %s (%s)", index, len(configs), name, describe(config.model))
        existing = (run_dir / "config.toml").is_file()
        api.train(config, out=run_dir, resume=resume and existing, overwrite=overwrite, progress=progress)
        if run_step(run_dir) != config.train.max_steps:
            raise SeqlabError(f"{name} stopped at step {run_step(run_dir)} of {config.train.max_steps}: "
                              f"continue with the same command and --resume")
        results.append(_measure(name, config, run_dir))
        log.info("%s: %.4f bits/char on the validation split, %.0f tokens/s",
                 name, results[-1].val_bits_per_char, results[-1].tokens_per_sec)
    return results


def _measure(name: str, config: Config, run_dir: Path) -> LLMResult:
    result = api.evaluate(run_dir, device=config.train.device)
    model, _ = api.load(run_dir)
    last = MetricsLog(run_dir / "metrics.csv").last("batch")
    return LLMResult(
        preset=name, variant=describe(config.model),
        parameters=sum(p.numel() for p in model.parameters()),  # parameters() yields a tied tensor once
        active_parameters=active_parameters(model),
        train_tokens=train_tokens(config), val_loss=float(result["loss"]),
        val_bits_per_char=float(result["bits_per_char"]),
        tokens_per_sec=float(last["tokens_per_sec"]) if last else math.nan,
        train_seconds=float(last["elapsed_s"]) if last else math.nan, run_dir=str(run_dir))


# ---- reports --------------------------------------------------------------------------------------

HEADERS = ("preset", "variant", "parameters", "active", "val bits/char", "val loss", "tokens/s")


def _cells(r: LLMResult) -> tuple[str, ...]:
    return (r.preset, r.variant, f"{r.parameters:,}", f"{r.active_parameters:,}", f"{r.val_bits_per_char:.4f}",
            f"{r.val_loss:.4f}", f"{r.tokens_per_sec:,.0f}")


def _budget_line(results: Sequence[LLMResult]) -> str:
    budgets = sorted({r.train_tokens for r in results})
    return f"training tokens per preset: {', '.join(f'{b:,}' for b in budgets)}"


def render_table(results: Sequence[LLMResult]) -> str:
    """The table as aligned plain text, numbers right-aligned, with the token budget above it."""
    title = f"Decoder presets trained alike ({_budget_line(results)}; bits/char over the whole validation split)"
    return "\n".join([title, "", *text_table(HEADERS, [_cells(r) for r in results], left=2)])


def to_markdown(results: Sequence[LLMResult]) -> str:
    lines = [f"{_budget_line(results).capitalize()}; bits/char over the whole validation split.", "",
             *markdown_table(HEADERS, [_cells(r) for r in results], left=2)]
    return "\n".join(lines) + "\n"


def to_csv(results: Sequence[LLMResult]) -> str:
    """Every field of every result, full precision, one row per preset."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[f.name for f in fields(LLMResult)], lineterminator="\n")
    writer.writeheader()
    writer.writerows(asdict(r) for r in results)
    return buffer.getvalue()


def plot(results: Sequence[LLMResult], path: Path) -> None:
    """llm-table.png: `figure(results)` saved as `path`."""
    save_png(figure(results), path)


def figure(results: Sequence[LLMResult]):
    """Validation curves (the trainer's estimates) on the left, final bits per char on the right,
    as bars from zero in the curves' colours."""
    plt = pyplot()

    fig, (curves, bars) = plt.subplots(1, 2, figsize=(12, 4.5), dpi=110, width_ratios=(3, 2))
    for i, r in enumerate(results):
        rows = MetricsLog(Path(r.run_dir) / "metrics.csv").rows()
        points = [(int(row["step"]), float(row["bits_per_char"])) for row in rows if row["split"] == "val"]
        if points:
            curves.plot(*zip(*points), marker="o", ms=3, lw=1.5, color=f"C{i % 10}", label=r.preset)
    curves.set_xlabel("step")
    curves.set_ylabel("val bits per char (20-batch estimate)")
    curves.set_title("validation during training", fontsize=10)
    curves.grid(alpha=0.3)
    curves.legend(fontsize=8)
    order = sorted(range(len(results)), key=lambda i: results[i].val_bits_per_char, reverse=True)
    bars.barh([results[i].preset for i in order], [results[i].val_bits_per_char for i in order],
              color=[f"C{i % 10}" for i in order])
    for y, i in enumerate(order):
        bars.text(results[i].val_bits_per_char, y, f" {results[i].val_bits_per_char:.3f}", va="center",
                  fontsize=8)
    high = max(r.val_bits_per_char for r in results)
    # From zero, so that lengths compare; the labels carry the small differences.
    bars.set_xlim(0.0, high * 1.18)
    bars.set_xlabel("val bits per char (whole split; lower is better)")
    bars.set_ylabel("preset")
    bars.set_title("after training", fontsize=10)
    bars.grid(alpha=0.3, axis="x")
    fig.suptitle(f"Decoder presets trained alike ({_budget_line(results)})")
    fig.tight_layout()
    return fig


def write_reports(results: Sequence[LLMResult], out: str | Path) -> list[Path]:
    """`llm-table.md`, `llm-table.csv` and `llm-table.png` in `out`; returns their paths."""
    return tables.write_reports(out, REPORT_NAMES, to_markdown(results), to_csv(results),
                                lambda path: plot(results, path))
