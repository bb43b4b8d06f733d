"""`seqlab compare`: language models of every family trained from their configs, then measured alike.

Each config (a preset name or a TOML file, with the same overrides for all) is trained into
`OUT/NAME` with `seqlab.train`, evaluated with `seqlab.evaluate` on its validation split (the last
`data.val_fraction` of its corpus, the same split for every family on the same corpus), and sampled
after one prompt shared by every model. The table has one row per config: family, size (one column
per unit the family registry declares: parameters, an HMM's free parameters, an n-gram's stored
n-grams), the active parameters when a mixture of experts is among them (those one token uses,
`seqlab.nn.moe.active_parameters`), training time, validation bits per character, training tokens
per second, and the start of the sample. The corpus is said once, above the table, when every model read the same one.
`write_reports` saves it as `compare.md` and `compare.csv` and draws `compare.png`, a bar chart of
bits per character.

The ladder can also be named in shorthand, `--models ngram-5,hmm-64,lstm,gpt` (see `ladder_configs`):
each name is a family with an optional size, built on the family's `shakespeare-char` preset, and
`--corpus` points every config at another corpus.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path

from seqlab.config import Config, load_config
from seqlab.config.families import settings_class
from seqlab.errors import SeqlabError
from seqlab.experiments import tables
from seqlab.experiments.tables import markdown_table, text_table
from seqlab.nn.moe import active_parameters
from seqlab.plots import pyplot, save_png
from seqlab.training.metrics import MetricsLog

REPORT_NAMES = ("compare.md", "compare.csv", "compare.png")


@dataclass(frozen=True)
class CompareRow:
    name: str
    family: str
    size: int
    train_seconds: float
    bits_per_char: float
    tokens_per_sec: float
    sample: str
    size_unit: str = "parameters"  # the family's (seqlab.families): parameters, free parameters, n-grams
    corpus: str = ""
    prompt: str = ""  # what the sample follows: the same for every row
    steps: int = 0  # the training budget: train.max_steps (0: fitted in one pass, or not known)
    active: int = 0  # the parameters one token uses (a mixture of experts: k of E); 0 when not counted


def ladder_configs(models: str) -> list[tuple[str, str, list[str]]]:
    """`"ngram-5,hmm-64,lstm,gpt"` as (name, preset, overrides) per model, in order: each name is a
    family's shorthand (its registry entry's), with an optional size (the setting it names).

    >>> ladder_configs("ngram-3,gpt")
    [('ngram-3', 'shakespeare-char-ngram', ['model.family=ngram', 'model.order=3']), ('gpt', 'shakespeare-char', ['model.family=transformer'])]
    """
    from seqlab import families

    known = families.shorthands()
    entries = []
    for name in (part.strip() for part in models.split(",")):
        short, _, size = name.partition("-")
        if short not in known or (size and not (size.isdigit() and int(size) > 0)):
            raise SeqlabError(f"--models: {name!r} is not a model name: use FAMILY or FAMILY-SIZE with FAMILY one "
                              f"of {', '.join(known)} and SIZE a positive integer (e.g. ngram-5, hmm-64, lstm-256)")
        family, shorthand = known[short]
        changes = [f"model.family={family.name}", *([f"model.{shorthand.size}={int(size)}"] if size else [])]
        entries.append((name, shorthand.preset, changes))
    return entries


def _configs(named: Sequence[tuple[str, str, list[str]]], common: Sequence[str]) -> dict[str, Config]:
    """Each model's config with the common overrides laid over it. A `model.*` override applies to the
    models whose family has that setting (`--model.n_layer=1` to the neural ones, `--model.order=3` to
    the n-gram); one that no model has is an error."""
    model_keys = {o: o.removeprefix("--").split("=", 1)[0].removeprefix("model.") for o in common
                  if o.removeprefix("--").startswith("model.")}
    used: set[str] = set()
    loaded = {}
    for name, spec, changes in named:
        family = load_config(spec, changes).model.family
        has = {f.name for f in fields(settings_class(family))}
        mine = [o for o in common if o not in model_keys or model_keys[o] in has]
        used |= {o for o in mine if o in model_keys}
        loaded[name] = load_config(spec, [*changes, *mine])
    unused = [o for o in model_keys if o not in used]
    if unused:
        raise SeqlabError(f"{unused[0]}: no compared model has that setting")
    return loaded


def run_compare(configs: Sequence[str], *, out: str | Path, overrides: Sequence[str] = (),
                sample_tokens: int = 60, progress: bool = True, models: str = "",
                corpus: str = "", prompt: str | None = None) -> list[CompareRow]:
    """Train, evaluate and sample each config, then each `models` shorthand (see the module
    docstring); rows in the order given. `corpus`, when given, replaces every config's corpus.
    Every model samples after `prompt`; None takes the configs' `sample.prompt` when they all have
    the same one, and otherwise the start of a line ("")."""
    from seqlab import api, families
    from seqlab.runs import load_run

    common = [*([f"data.corpus={corpus}"] if corpus else []), *overrides]
    named = [(Path(spec).stem, spec, []) for spec in configs] + (ladder_configs(models) if models else [])
    if not named:
        raise SeqlabError("compare needs at least one config, preset or --models name")
    names = [name for name, _, _ in named]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise SeqlabError(f"compare names a model twice ({', '.join(repeated)}): their runs would share a folder")
    # every mistake before training
    loaded = _configs(named, common)
    for name, config in loaded.items():
        if families.get(config.model.family).reads_pairs:
            raise SeqlabError(f"{name} is a seq2seq config: compare measures language models in bits per char")
        families.require_language_model(config.model.family, f"seqlab compare ({name})")
    prompt = _common_prompt(loaded.values()) if prompt is None else prompt
    rows = []
    with _said_once("seqlab.data.corpus", "seqlab.api"):  # each corpus line once, not at every train and eval
        for name, config in loaded.items():
            run_dir = Path(out) / name
            start = time.perf_counter()
            api.train(config, out=run_dir, overwrite=True, progress=progress)
            seconds = time.perf_counter() - start
            result = api.evaluate(run_dir)
            model, tokenizer, _ = load_run(run_dir)  # once, for its size and its sample
            unit = families.get(config.model.family).size_unit
            rows.append(CompareRow(name=name, family=config.model.family, size=_size(model, config),
                                   size_unit=unit, active=active_parameters(model) if unit == "parameters" else 0,
                                   train_seconds=seconds, bits_per_char=float(result["bits_per_char"]),
                                   tokens_per_sec=_tokens_per_sec(run_dir), corpus=config.data.corpus,
                                   steps=config.train.max_steps if families.get(config.model.family).trained else 0,
                                   prompt=prompt, sample=_sample(model, tokenizer, config, sample_tokens, prompt)))
    return rows


def _common_prompt(configs) -> str:
    """The configs' `sample.prompt` when they all have the same, else "" (the start of a line)."""
    prompts = {config.sample.prompt for config in configs}
    if len(prompts) > 1:
        logging.getLogger(__name__).info("the configs' prompts differ (%s): every model samples from the start "
                                         "of a line (--prompt sets one)", ", ".join(sorted(map(repr, prompts))))
    return prompts.pop() if len(prompts) == 1 else ""


class _OnceFilter(logging.Filter):
    """Lets each distinct message through once."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if not message.startswith("corpus "):
            return True
        new = message not in self.seen
        self.seen.add(message)
        return new


@contextlib.contextmanager
def _said_once(*names: str):
    """While open, the "corpus ..." lines of the loggers `names` are logged once each."""
    once = _OnceFilter()
    loggers = [logging.getLogger(name) for name in names]
    for logger in loggers:
        logger.addFilter(once)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(once)


def _size(model, config) -> int:
    from seqlab import families

    family = families.get(config.model.family)
    return family.size(model) if family.size is not None else sum(p.numel() for p in model.parameters())


def _tokens_per_sec(run_dir: Path) -> float:
    """Training throughput: the last logged batch row's, or a classical run's fitting rate."""
    log = MetricsLog(run_dir / "metrics.csv")
    row = log.last("batch") or log.last("val")
    return float(row["tokens_per_sec"]) if row else 0.0


def _sample(model, tokenizer, config, n_tokens: int, prompt: str) -> str:
    """A sample after `prompt`, through the sampling path every family shares."""
    from seqlab import api

    options = replace(config.sample, prompt=prompt, max_new_tokens=n_tokens, num_samples=1, seed=0)
    text = "".join(api.stream_sample(model, tokenizer, options, echo_prompt=True))
    return " ".join(text.split())  # one line for the table


# ---- reports --------------------------------------------------------------------------------------

def _units(rows: Sequence[CompareRow]) -> list[str]:
    """The size units of the rows, one column each: parameters first, then the others as they come."""
    units = sorted({r.size_unit for r in rows}, key=[r.size_unit for r in rows].index)
    return sorted(units, key=lambda unit: unit != "parameters")


def _shows_active(rows: Sequence[CompareRow]) -> bool:
    """Whether the table has an active-parameters column: when a row's differ from its parameters."""
    return any(r.active and r.active != r.size for r in rows)


def _headers(rows: Sequence[CompareRow]) -> list[str]:
    active = ["active parameters"] if _shows_active(rows) else []
    return ["config", "family", *_units(rows), *active, "train s", "val bits/char", "tokens/s",
            f"sample after {_after(rows)}"]


def _after(rows: Sequence[CompareRow]) -> str:
    prompt = rows[0].prompt if rows else ""
    return repr(prompt) if prompt else "a line start"


def _cells(r: CompareRow, units: Sequence[str], active: bool) -> list[str]:
    sizes = [f"{r.size:,}" if unit == r.size_unit else "-" for unit in units]
    if active:
        sizes.append(f"{r.active:,}" if r.active else "-")
    return [r.name, r.family, *sizes, f"{r.train_seconds:.1f}", f"{r.bits_per_char:.4f}",
            f"{r.tokens_per_sec:,.0f}", r.sample[:48]]


def _text_columns(units: Sequence[str], active: bool) -> tuple[int, ...]:
    return (0, 1, 2 + len(units) + active + 3)  # config, family, sample


def _caption(rows: Sequence[CompareRow]) -> str:
    corpora = sorted({r.corpus for r in rows})
    where = f"corpus {corpora[0]}" if len(corpora) == 1 else "corpora " + ", ".join(corpora)
    return f"{where}: validation bits per character (lower is better), each model trained and measured alike"


def render_table(rows: Sequence[CompareRow]) -> str:
    units, active = _units(rows), _shows_active(rows)
    table = text_table(_headers(rows), [_cells(r, units, active) for r in rows], left=_text_columns(units, active))
    return "\n".join([_caption(rows), "", *table])


def to_markdown(rows: Sequence[CompareRow]) -> str:
    units, active = _units(rows), _shows_active(rows)
    body = markdown_table(_headers(rows), [[c.replace("|", "\\|") for c in _cells(r, units, active)] for r in rows],
                          left=_text_columns(units, active))
    return _caption(rows) + ".\n\n" + "\n".join(body) + "\n"


def to_csv(rows: Sequence[CompareRow]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["config", "family", "size", "size_unit", "corpus", "train_seconds", "val_bits_per_char",
                     "tokens_per_sec", "prompt", "sample", "active_parameters"])
    for r in rows:
        writer.writerow([r.name, r.family, r.size, r.size_unit, r.corpus, f"{r.train_seconds:.3f}",
                         f"{r.bits_per_char:.6f}", f"{r.tokens_per_sec:.1f}", r.prompt, r.sample, r.active or ""])
    return buffer.getvalue()


def plot(rows: Sequence[CompareRow], path: Path) -> None:
    """compare.png: `figure(rows)` saved as `path`."""
    save_png(figure(rows), path)


def figure(rows: Sequence[CompareRow]):
    """A bar of validation bits per character for each config, labelled with its family, from zero;
    titled with the corpus and the training budget."""
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(max(5, 1.4 * len(rows)), 4.2), dpi=110)
    bars = ax.bar(range(len(rows)), [r.bits_per_char for r in rows], color="C0")  # one colour: names say which
    ax.bar_label(bars, fmt="%.3f", fontsize=8)
    ax.set_xticks(range(len(rows)), [f"{r.name}\n({r.family})" for r in rows], fontsize=8)
    ax.set_xlabel("model (family)")
    ax.set_ylabel("validation bits per character (lower is better)")
    ax.set_ylim(bottom=0)
    ax.grid(axis="y", alpha=0.3)
    corpora = ", ".join(dict.fromkeys(Path(r.corpus).name or r.corpus for r in rows if r.corpus)) or "their corpora"
    budgets = sorted({r.steps for r in rows if r.steps})
    budget = (f"{budgets[0]:,} training steps each" if len(budgets) == 1 else
              f"{budgets[0]:,}-{budgets[-1]:,} training steps" if budgets else "fitted in one pass")
    fig.suptitle(f"compare on {corpora}: {budget}; lower is better", fontsize=10)
    fig.tight_layout()
    return fig


def write_reports(rows: Sequence[CompareRow], out: str | Path) -> list[Path]:
    return tables.write_reports(out, REPORT_NAMES, to_markdown(rows), to_csv(rows), lambda path: plot(rows, path))


__all__ = ["CompareRow", "render_table", "run_compare", "to_csv", "to_markdown", "write_reports"]
