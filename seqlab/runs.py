"""The run directory: what a trained model is, on disk (see DESIGN.md).

    runs/NAME/
      config.toml        the fully resolved config
      tokenizer.json
      model.safetensors  the latest weights
      state/             the checkpoint `--resume` continues from
      metrics.csv, loss.png, samples.txt
      .seqlab.lock       while a process trains (or imports) into it; .replaced/ while a new run
                         replaces the old one (see `seqlab.rundir`)

Reading a run never unpickles anything: TOML, JSON and safetensors only.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import torch
from torch import nn

from seqlab.config import Config, config_to_toml
from seqlab.config.load import build_config
from seqlab.errors import CheckpointError, ConfigError, SeqlabError, TokenizerError
from seqlab.files import atomic_write_text
from seqlab import families
from seqlab.families import build_model
from seqlab.tokenizers import Tokenizer, load_tokenizer, source_vocab_size
from seqlab.training.checkpoint import FILES as CHECKPOINT_FILES
from seqlab.training.checkpoint import load_weights, read_metadata


def write_run_files(run_dir: Path, config: Config, tokenizer: Tokenizer) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.toml", config_to_toml(config))
    tokenizer.save(run_dir / "tokenizer.json")


def missing_state(run_dir: Path) -> str | None:
    """The first part of the run's resumable state that is missing (`state/latest.json`, or a file
    of the checkpoint it names), as a path inside the run; None when none is. A part that is there
    but damaged is not missing: reading the checkpoint says what is wrong with it."""
    state = Path(run_dir) / "state"
    pointer = state / "latest.json"
    if not pointer.is_file():
        return "state/latest.json"
    try:
        name = json.loads(pointer.read_text(encoding="utf-8"))["checkpoint"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(name, str) or Path(name).name != name:
        return None
    for file in CHECKPOINT_FILES:  # what a checkpoint folder holds
        if not (state / name / file).is_file():
            return f"state/{name}/{file}"
    return None


def check_resumable(run_dir: Path, *, from_weights: bool) -> None:
    """Refuse to `--resume` a run that has trained something but not the state to continue it as it
    was (optimizer, random state, step): starting it again from step 0 would replace that work.
    `from_weights` continues from model.safetensors alone, which must then be there. A run with
    nothing trained yet (no weights, no checkpoint) passes: starting it from step 0 loses nothing."""
    run_dir = Path(run_dir)
    weights = run_dir / "model.safetensors"
    if from_weights:
        if not weights.is_file():
            raise SeqlabError(f"--from-weights: {run_dir} has no model.safetensors to continue from")
        return
    missing = missing_state(run_dir)
    if missing is None:
        return
    left = ([weights.name] if weights.is_file() else []) + sorted(
        f"state/{folder.name}" for folder in (run_dir / "state").glob("ckpt-*"))
    if not left:
        return
    step = run_step(run_dir) if weights.is_file() else None
    todo = (f"add --from-weights to continue from its weights (step {step or 0}) with a fresh optimizer, or "
            f"--overwrite" if weights.is_file() else "add --overwrite")
    raise SeqlabError(f"cannot resume {run_dir}: {missing} is missing, and {', '.join(left)} cannot be continued "
                      f"without it; {todo} to start again")


def read_config(run_dir: Path) -> Config:
    path = Path(run_dir) / "config.toml"
    if Path(run_dir).exists() and not Path(run_dir).is_dir():
        raise CheckpointError(f"{run_dir} is a file, not a run directory (give the folder a run was saved in)")
    if not Path(run_dir).is_dir():
        raise CheckpointError(f"run directory {run_dir} does not exist")
    if not path.is_file():
        runs = any((child / "config.toml").is_file() for child in Path(run_dir).iterdir() if child.is_dir())
        hint = f"; it holds runs: `seqlab runs {run_dir}` lists them" if runs else ""
        raise CheckpointError(f"{run_dir} is not a seqlab run directory (it has no config.toml){hint}")
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
        # A run written before tokenizer.byte_fallback existed has none: its tokenizer has no byte
        # tokens, whatever the default of a new config is.
        if isinstance(table.get("tokenizer", {}), dict):
            table.setdefault("tokenizer", {}).setdefault("byte_fallback", False)
        # drop_foreign: runs written before settings were per family list every family's keys.
        return build_config(table, str(path), drop_foreign=True)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is damaged: {exc}") from None
    except ConfigError as exc:
        raise CheckpointError(f"{path} does not fit this version of seqlab: {exc}") from None


def read_tokenizer(run_dir: Path) -> Tokenizer:
    try:
        return load_tokenizer(Path(run_dir) / "tokenizer.json")
    except TokenizerError as exc:
        raise CheckpointError(str(exc)) from None


def load_run(run_dir: str | Path, device: torch.device | str = "cpu") -> tuple[nn.Module, Tokenizer, Config]:
    """The trained model (in eval mode, on `device`), its tokenizer and its config."""
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    if config.task.kind != "lm":  # a head on the model's states: seqlab.tasks.run.load_task_run
        raise SeqlabError(f"{run_dir} is a {config.task.kind} run (task.kind), not a language model: use "
                          f"seqlab predict and seqlab eval with it")
    tokenizer = read_tokenizer(run_dir)
    family = families.get(config.model.family)
    if family.load is not None:  # fitted by counting or EM: its own files, not weights
        try:
            return family.load(run_dir), tokenizer, config
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{run_dir}: the {family.name} model cannot be read ({exc})") from None
    model = build_model(config.model, tokenizer.vocab_size, source_vocab_size=source_vocab_size(tokenizer))
    load_weights(model, run_dir / "model.safetensors")
    return model.to(device).eval(), tokenizer, config


def run_step(run_dir: Path) -> int | None:
    """The training step the run's weights come from, when recorded."""
    path = Path(run_dir) / "model.safetensors"
    if not path.is_file():
        return None
    step = read_metadata(path).get("step")
    return int(step) if step is not None else None
