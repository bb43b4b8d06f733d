"""What exists: the shipped presets, the runs in a folder, and what one run holds.

`seqlab presets`, `seqlab presets show NAME`, `seqlab runs [DIR]` and `seqlab info RUN` print what
these functions return. Nothing here trains, fits or reads a corpus:

- a preset's size is its model built on the meta device (shapes, no memory) with the vocabulary its
  `[preset]` table records (`seqlab.config.presets`), or, for a family fitted by counting or EM,
  its registry entry's `planned_size` (an HMM's free parameters; an n-gram's counts are known only
  after counting);
- a run's figures come from its files: config.toml, the weights' header and metadata, metrics.csv.

A run's validation figures in metrics.csv are of two kinds, and the tables say which: a trained
family's are the Trainer's estimate over `train.eval_steps` fixed batches of the split; a fitted
family's are the whole split's. `seqlab eval RUN` always scores the whole split.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from seqlab import families
from seqlab.config import Config, config_to_toml, load_config, preset_names
from seqlab.config.presets import PresetInfo, preset_info
from seqlab.errors import SeqlabError
from seqlab.experiments.tables import text_table

RUN_SEARCH_DEPTH = 3  # `seqlab runs DIR` looks this many folders deep (runs/compare/NAME is 2)


# ---- presets -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PresetRow:
    name: str
    family: str
    size: int | None  # in size_unit; None when only fitting tells (an n-gram's counts)
    size_unit: str
    steps: int | None  # None: fitted in one pass, not trained in steps
    info: PresetInfo | None  # the preset's [preset] table


def preset_size(config: Config, vocab_size: int, source_vocab_size: int | None = None) -> int | None:
    """The size (in the family's `size_unit`) of the model `config` describes, with no training and
    no memory: the parameters of the model built on the meta device, or a fitted family's
    `planned_size` (None when it has none)."""
    from seqlab.budget import model_shape

    family = families.get(config.model.family)
    if family.trained:
        return model_shape(config.model, vocab_size, source_vocab_size).parameters
    return family.planned_size(config.model, vocab_size) if family.planned_size is not None else None


def preset_rows() -> list[PresetRow]:
    """One row per shipped preset, by name."""
    rows = []
    for name in preset_names():
        config, info = load_config(name), preset_info(name)
        family = families.get(config.model.family)
        size = (preset_size(config, info.vocab_size, info.source_vocab_size or None) if info is not None
                else None)
        rows.append(PresetRow(name=name, family=family.name, size=size, size_unit=family.size_unit,
                              steps=config.train.max_steps if family.trained else None, info=info))
    return rows


def _size_cell(size: int | None, unit: str) -> str:
    if size is None:
        return f"{unit}: known once fitted"
    return f"{size:,}" if unit == "parameters" else f"{size:,} ({unit})"


def render_presets(rows: list[PresetRow]) -> str:
    """The table `seqlab presets` prints, with a line on what its columns mean."""
    headers = ["preset", "family", "parameters", "steps", "time, 2 cores", "description"]
    cells = [[r.name, r.family, _size_cell(r.size, r.size_unit), f"{r.steps:,}" if r.steps else "fitted",
              r.info.time if r.info else "?", r.info.description if r.info else ""] for r in rows]
    lines = text_table(headers, cells, left=(0, 1, 5))
    return "\n".join([*lines, "", "time: wall time of `seqlab train PRESET` on 2 CPU cores, measured or (~) "
                      "estimated; `seqlab presets show PRESET` prints its whole config"])


def preset_toml(name: str) -> str:
    """The preset's fully resolved config as TOML (every default filled in), after a comment saying
    what it is; `seqlab train` reads it back as it is."""
    config, info = load_config(name), preset_info(name)
    head = [f"# preset {name}" + (f": {info.description}" if info else ""),
            "# every setting, defaults included (`seqlab train FILE.toml` reads this back)", ""]
    return "\n".join(head) + config_to_toml(config)


# ---- runs ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunRow:
    path: Path
    family: str
    step: str  # "1500/2000", "fitted", "imported", "-"
    val_bits_per_char: float | None
    measured_on: str  # what the val figure is over: "20 batches", "whole split", ""
    parameters: int | None
    disk_bytes: int
    modified: datetime.datetime
    problem: str = ""  # why the run cannot be read, when it cannot


def find_runs(folder: str | Path, depth: int = RUN_SEARCH_DEPTH) -> list[Path]:
    """The run directories (folders with a config.toml) in `folder`, looking `depth` folders deep
    through folders that are not runs (such as an experiment's); hidden folders are skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SeqlabError(f"{folder} is not a folder of runs" if folder.exists() else f"{folder} does not exist")
    found: list[Path] = []
    for child in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if (child / "config.toml").is_file():
            found.append(child)
        elif depth > 1:
            found += find_runs(child, depth - 1)
    return found


def run_row(run_dir: Path) -> RunRow:
    """What `seqlab runs` shows of one run directory."""
    from seqlab.runs import read_config

    disk, modified = _disk_usage(run_dir)
    try:
        config = read_config(run_dir)
    except SeqlabError as exc:
        return RunRow(run_dir, "?", "-", None, "", None, disk, modified, problem=str(exc))
    family = families.get(config.model.family)
    facts = _run_facts(run_dir, config)
    return RunRow(run_dir, family.name, facts["progress"], facts["val_bits_per_char"], facts["measured_on"],
                  facts["parameters"], disk, modified)


def _run_facts(run_dir: Path, config: Config) -> dict[str, Any]:
    """Step, source, validation figures and parameter count of a run, from its files alone."""
    from seqlab.training.checkpoint import read_metadata
    from seqlab.training.metrics import MetricsLog

    family = families.get(config.model.family)
    weights = run_dir / "model.safetensors"
    metadata = read_metadata(weights) if weights.is_file() else {}
    step = int(metadata["step"]) if "step" in metadata else None
    source = metadata.get("source")  # set by `seqlab import-hf`: the weights were not trained here
    metrics = run_dir / "metrics.csv"
    last = MetricsLog(metrics).last("val") if metrics.is_file() else None
    if source is not None:
        progress = "imported"
    elif not family.trained:
        progress = "fitted" if last else "-"
    else:
        progress = f"{step if step is not None else 0}/{config.train.max_steps}"
    return {"step": step, "source": source, "progress": progress,
            "val_loss": float(last["loss"]) if last else None,
            "val_bits_per_char": float(last["bits_per_char"]) if last else None,
            "measured_on": ("" if last is None else f"estimate, {config.train.eval_steps} batches"
                            if family.trained else "whole split"),
            "parameters": _weights_parameters(weights) if weights.is_file() else None}


def _weights_parameters(path: Path) -> int | None:
    """The number of values the weights file holds, from its header (no tensor is read)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), "pt") as handle:
            total = 0
            for key in handle.keys():
                n = 1
                for d in handle.get_slice(key).get_shape():
                    n *= d
                total += n
            return total
    except (SafetensorError, OSError):
        return None


def _disk_usage(folder: Path) -> tuple[int, datetime.datetime]:
    """Bytes of the files under `folder`, and the time the latest of them changed."""
    total, latest = 0, folder.stat().st_mtime
    for root, _, names in os.walk(folder):
        for name in names:
            try:
                stat = (Path(root) / name).stat()
            except OSError:  # removed meanwhile
                continue
            total += stat.st_size
            latest = max(latest, stat.st_mtime)
    return total, datetime.datetime.fromtimestamp(latest)


def run_rows(folder: str | Path) -> list[RunRow]:
    return [run_row(path) for path in find_runs(folder)]


def render_runs(rows: list[RunRow], folder: str | Path) -> str:
    """The table `seqlab runs` prints."""
    from seqlab.budget import format_bytes

    if not rows:
        return f"no runs in {folder} (a run is a folder with a config.toml; `seqlab train` makes one)"
    base = Path(folder)
    headers = ["run", "family", "step", "val bits/char", "over", "parameters", "disk", "modified"]
    cells = []
    for r in rows:
        name = r.path.relative_to(base).as_posix() if r.path.is_relative_to(base) else str(r.path)
        if r.problem:
            cells.append([name, "?", "-", "-", r.problem[:60], "-", format_bytes(r.disk_bytes),
                          f"{r.modified:%Y-%m-%d %H:%M}"])
            continue
        cells.append([name, r.family, r.step, "-" if r.val_bits_per_char is None else f"{r.val_bits_per_char:.4f}",
                      r.measured_on or "-", "-" if r.parameters is None else f"{r.parameters:,}",
                      format_bytes(r.disk_bytes), f"{r.modified:%Y-%m-%d %H:%M}"])
    note = ("val bits/char: the last evaluation in metrics.csv, over the batches or the whole split shown in "
            "'over'; `seqlab eval RUN` scores the whole split")
    return "\n".join([*text_table(headers, cells, left=(0, 1, 4)), "", note])


# ---- one run -------------------------------------------------------------------------------------


def run_info(run_dir: str | Path) -> dict[str, Any]:
    """What `seqlab info RUN` shows: the run's data, tokenizer, size, progress and last validation
    figures (labelled with what they are over), and the model settings of its family only (the
    settings class the family registry names). A run made by `seqlab import-hf` shows where its
    weights came from instead of a corpus and a step budget it never had."""
    from seqlab.runs import load_run, read_config

    run_dir = Path(run_dir)
    task = None
    if read_config(run_dir).task.kind != "lm":  # a head on a family's states (seqlab.tasks)
        from seqlab.tasks.run import load_task_run
        model, tokenizer, config, task = load_task_run(run_dir)
    else:
        model, tokenizer, config = load_run(run_dir)
    family = families.get(config.model.family)
    facts = _run_facts(run_dir, config)
    size = family.size(model) if family.size is not None and task is None else \
        sum(p.numel() for p in model.parameters())
    info: dict[str, Any] = {"run_dir": str(run_dir), "family": family.name}
    if facts["source"] is not None:
        info["imported_from"] = facts["source"]
    else:
        info.update(_data_source(config))
    if task is not None:
        info.update({"task": task.kind, "task_data": config.task.data, "labels": len(task.labels)})
    info.update({"tokenizer": tokenizer.kind if tokenizer is not None else "none (real-valued series)",
                 "vocab_size": tokenizer.vocab_size if tokenizer is not None else 0,
                 family.size_unit.replace(" ", "_").replace("-", "_") if task is None else "parameters": size})
    if family.trained and facts["source"] is None:
        info.update({"step": facts["step"], "max_steps": config.train.max_steps})
    elif family.trained:
        info["step"] = facts["step"]
    info.update({"val_loss": facts["val_loss"], "val_bits_per_char": facts["val_bits_per_char"],
                 "val_measured_on": facts["measured_on"] or None})
    info["model"] = {f.name: getattr(config.model, f.name) for f in fields(family.settings)}
    return info


def _data_source(config: Config) -> dict[str, str]:
    """The data a run was trained on: its task, its pairs or its corpus."""
    data = config.data
    if data.task:
        return {"task": data.task}
    if data.pairs:
        return {"pairs": data.pairs}
    return {"corpus": data.corpus}


def render_info(info: dict[str, Any]) -> str:
    """`seqlab info`'s text: one line a field; the validation figures say what they are over."""
    pairs = []
    for key, value in info.items():
        if key == "val_measured_on" or value is None:
            continue
        if key in ("val_loss", "val_bits_per_char"):
            pairs.append((f"{key} ({info['val_measured_on']})", f"{value:.4f}"))
        elif key == "model":
            pairs.append(("model", ", ".join(f"{k}={v}" for k, v in value.items())))
        else:
            pairs.append((key, f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)))
    width = max(len(label) for label, _ in pairs)
    lines = [f"{label:>{width}}  {text}" for label, text in pairs]
    lines.append("(val figures: the last evaluation in metrics.csv; `seqlab eval RUN` scores the whole split)"
                 if info.get("val_loss") is not None
                 else "(no validation figures recorded; `seqlab eval RUN` scores the split)")
    return "\n".join(lines)


__all__ = ["PresetRow", "RunRow", "find_runs", "preset_rows", "preset_size", "preset_toml", "render_info",
           "render_presets", "render_runs", "run_info", "run_rows"]
