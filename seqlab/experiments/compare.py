"""`seqlab compare`: language models of every family trained from their configs, then measured alike.

Each config (a preset name or a TOML file, with the same overrides for all) is trained into
`OUT/NAME` with `seqlab.train`, evaluated with `seqlab.evaluate` on its validation split (the last
`data.val_fraction` of its corpus, the same split for every family on the same corpus), and sampled
from its own prompt. The table has one row per config: family, size (weights, stored n-grams or
HMM parameters), training time, validation bits per character, training tokens per second, and the
start of a sample. `write_reports` saves it as `compare.md` and `compare.csv` and draws
`compare.png`, a bar chart of bits per character.

The ladder can also be named in shorthand, `--models ngram-5,hmm-64,lstm,gpt` (see `ladder_configs`):
each name is a family with an optional size, built on the family's `shakespeare-char` preset, and
`--corpus` points every config at another corpus.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path

from seqlab.config import Config, load_config
from seqlab.config.families import settings_class
from seqlab.errors import SeqlabError
from seqlab.experiments import tables
from seqlab.experiments.tables import markdown_table, text_table
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
                corpus: str = "") -> list[CompareRow]:
    """Train, evaluate and sample each config, then each `models` shorthand (see the module
    docstring); rows in the order given. `corpus`, when given, replaces every config's corpus."""
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
    rows = []
    for name, config in loaded.items():
        run_dir = Path(out) / name
        start = time.perf_counter()
        api.train(config, out=run_dir, overwrite=True, progress=progress)
        seconds = time.perf_counter() - start
        result = api.evaluate(run_dir)
        model, tokenizer, _ = load_run(run_dir)  # once, for its size and its sample
        rows.append(CompareRow(name=name, family=config.model.family, size=_size(model, config),
                               train_seconds=seconds, bits_per_char=float(result["bits_per_char"]),
                               tokens_per_sec=_tokens_per_sec(run_dir),
                               sample=_sample(model, tokenizer, config, sample_tokens)))
    return rows


def _size(model, config) -> int:
    from seqlab import families

    family = families.get(config.model.family)
    return family.size(model) if family.size is not None else sum(p.numel() for p in model.parameters())


def _tokens_per_sec(run_dir: Path) -> float:
    """Training throughput: the last logged batch row's, or a classical run's fitting rate."""
    log = MetricsLog(run_dir / "metrics.csv")
    row = log.last("batch") or log.last("val")
    return float(row["tokens_per_sec"]) if row else 0.0


def _sample(model, tokenizer, config, n_tokens: int) -> str:
    """A sample after the config's prompt, through the sampling path every family shares."""
    from seqlab import api

    options = replace(config.sample, max_new_tokens=n_tokens, num_samples=1, seed=0)
    text = "".join(api.stream_sample(model, tokenizer, options, echo_prompt=True))
    return " ".join(text.split())  # one line for the table


# ---- reports --------------------------------------------------------------------------------------

HEADERS = ["config", "family", "size", "train s", "val bits/char", "tokens/s", "sample"]


def _cells(r: CompareRow) -> list[str]:
    return [r.name, r.family, f"{r.size:,}", f"{r.train_seconds:.1f}", f"{r.bits_per_char:.4f}",
            f"{r.tokens_per_sec:,.0f}", r.sample[:48]]


def render_table(rows: Sequence[CompareRow]) -> str:
    return "\n".join(text_table(HEADERS, [_cells(r) for r in rows]))


def to_markdown(rows: Sequence[CompareRow]) -> str:
    body = markdown_table(HEADERS, [[c.replace("|", "\\|") for c in _cells(r)] for r in rows])
    return "Validation bits per character of each config, trained and measured alike.\n\n" + "\n".join(body) + "\n"


def to_csv(rows: Sequence[CompareRow]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["config", "family", "size", "train_seconds", "val_bits_per_char", "tokens_per_sec", "sample"])
    for r in rows:
        writer.writerow([r.name, r.family, r.size, f"{r.train_seconds:.3f}", f"{r.bits_per_char:.6f}",
                         f"{r.tokens_per_sec:.1f}", r.sample])
    return buffer.getvalue()


def plot(rows: Sequence[CompareRow], path: Path) -> None:
    """A bar of validation bits per character for each config, labelled with its family."""
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(max(5, 1.4 * len(rows)), 4), dpi=110)
    bars = ax.bar(range(len(rows)), [r.bits_per_char for r in rows], color=[f"C{i % 10}" for i in range(len(rows))])
    ax.bar_label(bars, fmt="%.3f", fontsize=8)
    ax.set_xticks(range(len(rows)), [f"{r.name}\n({r.family})" for r in rows], fontsize=8)
    ax.set_ylabel("validation bits per character")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    save_png(fig, path)


def write_reports(rows: Sequence[CompareRow], out: str | Path) -> list[Path]:
    return tables.write_reports(out, REPORT_NAMES, to_markdown(rows), to_csv(rows), lambda path: plot(rows, path))


__all__ = ["CompareRow", "render_table", "run_compare", "to_csv", "to_markdown", "write_reports"]
