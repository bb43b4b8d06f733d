"""The run directory: what a trained model is, on disk (see DESIGN.md).

    runs/NAME/
      config.toml        the fully resolved config
      tokenizer.json
      model.safetensors  the latest weights
      state/             the checkpoint `--resume` continues from
      metrics.csv, loss.png, samples.txt

Reading a run never unpickles anything: TOML, JSON and safetensors only.
"""

from __future__ import annotations

import shutil
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
from seqlab.training.checkpoint import load_weights, read_metadata

RUN_FILES = ("config.toml", "tokenizer.json", "model.safetensors", "state", "metrics.csv", "loss.png",
             "samples.txt")


def write_run_files(run_dir: Path, config: Config, tokenizer: Tokenizer) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.toml", config_to_toml(config))
    tokenizer.save(run_dir / "tokenizer.json")


def prepare_run_dir(run_dir: Path, *, overwrite: bool) -> None:
    """Make sure starting a new run in `run_dir` loses nothing the user did not ask to lose."""
    if not run_dir.exists():
        return
    if not run_dir.is_dir():
        raise SeqlabError(f"--out {run_dir} is a file, not a folder")
    if (run_dir / "config.toml").exists():
        if not overwrite:
            raise SeqlabError(f"{run_dir} already holds a run: add --resume to continue it, "
                              f"--overwrite to start it again, or choose another --out")
        for name in RUN_FILES:
            path = run_dir / name
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
    elif any(run_dir.iterdir()):
        raise SeqlabError(f"{run_dir} is a folder with other files in it, not a seqlab run; choose another --out")


def read_config(run_dir: Path) -> Config:
    path = Path(run_dir) / "config.toml"
    if not Path(run_dir).is_dir():
        raise CheckpointError(f"run directory {run_dir} does not exist")
    if not path.is_file():
        raise CheckpointError(f"{run_dir} is not a seqlab run directory (it has no config.toml)")
    try:
        # drop_foreign: runs written before settings were per family list every family's keys.
        return build_config(tomllib.loads(path.read_text(encoding="utf-8")), str(path), drop_foreign=True)
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
