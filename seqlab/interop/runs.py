"""Hugging Face folders ↔ seqlab run directories: what `seqlab import-hf` and `seqlab export-hf` do.

An imported run is an ordinary run directory (config.toml, tokenizer.json, model.safetensors) whose
model section comes from config.json and whose other sections are seqlab's defaults, so `seqlab
sample`, `eval` and `info` work on it as on a trained run. Its tokenizer is the folder's
tokenizer.json (the `hf` kind) unless another file is given.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from safetensors import SafetensorError, safe_open
from torch import nn

from seqlab.config import Config
from seqlab.config.schema import TokenizerConfig
from seqlab.errors import CheckpointError, SeqlabError, TokenizerError
from seqlab.files import atomic_folder, atomic_write_text
from seqlab.interop.card import model_card
from seqlab.interop.hf import from_hf, hf_tokenizer_json, to_hf
from seqlab import families, rundir
from seqlab.families import build_model
from seqlab.runs import read_config, read_tokenizer, run_step, write_run_files
from seqlab.tokenizers import HFTokenizer, Tokenizer, load_tokenizer
from seqlab.training.checkpoint import load_weights, save_weights

log = logging.getLogger(__name__)


def import_hf_run(hf_dir: str | Path, out: str | Path, *, tokenizer_file: str | Path | None = None,
                  overwrite: bool = False) -> Path:
    """Make the run directory `out` from the save_pretrained folder `hf_dir`; returns `out`.

    `tokenizer_file`: a Hugging Face tokenizer.json or a seqlab tokenizer file, used instead of the
    folder's tokenizer.json (which is then not needed).
    """
    hf_dir, out = Path(hf_dir), Path(out)
    with rundir.claim(out) as run:  # as `seqlab train` does: locked, everything checked, then written
        rundir.check_new(out, overwrite=overwrite, hint="")
        model, tokenizer = from_hf(hf_dir)
        if tokenizer_file is not None:
            tokenizer = read_any_tokenizer(Path(tokenizer_file), model.vocab_size)
        if tokenizer is None:
            raise CheckpointError(f"{hf_dir} has no tokenizer.json and a run needs a tokenizer; pass one with "
                                  f"--tokenizer FILE (a Hugging Face tokenizer.json)")
        if tokenizer.vocab_size != model.vocab_size:
            raise TokenizerError(f"the tokenizer has {tokenizer.vocab_size} ids but the model's vocabulary "
                                 f"{model.vocab_size}; use the tokenizer the model was trained with")
        run.start(fresh=True)
        settings = TokenizerConfig(kind=tokenizer.kind, unknown_token=getattr(tokenizer, "unknown_token", False),
                                   byte_fallback=getattr(tokenizer, "byte_fallback", True))
        write_run_files(out, Config(tokenizer=settings, model=model.config), tokenizer)
        save_weights(model, out / "model.safetensors", {"source": f"hf:{hf_dir.name}"})
    return out


def export_hf_run(run_dir: str | Path, out: str | Path, *, overwrite: bool = False) -> Path:
    """Write the run `run_dir` as a save_pretrained folder `out`, in the dtype of the run's weights
    (with its tokenizer.json when the run's tokenizer has that form) and a model card, README.md
    (`seqlab.interop.card`); returns `out`.

    An earlier export in `out` is replaced whole (`overwrite`), once the new one is written: no file
    of it survives, and a failed export leaves it as it was."""
    out, run_dir = Path(out), Path(run_dir)
    _check_export_target(out, overwrite=overwrite)
    model, tokenizer = _load_run_in_stored_dtype(run_dir)  # refuses families that do not export
    own = tokenizer
    try:
        hf_tokenizer_json(tokenizer)
        without = None
    except TokenizerError:
        tokenizer, without = None, tokenizer.kind
    card = model_card(run_dir, out, read_config(run_dir), own, parameters=sum(p.numel() for p in model.parameters()),
                      step=run_step(run_dir), with_tokenizer=tokenizer is not None)
    with atomic_folder(out) as folder:
        to_hf(model, folder, tokenizer)
        atomic_write_text(folder / "README.md", card)
    if without is not None:
        log.warning("the run's %s tokenizer has no tokenizer.json form: the model was exported without it", without)
    return out


def _check_export_target(out: Path, *, overwrite: bool) -> None:
    """Refuse an `out` whose content an export would replace without being asked to: a file, a
    model (without `overwrite`), or a folder of other files."""
    if out.exists() and not out.is_dir():
        raise SeqlabError(f"--out {out} is a file, not a folder")
    if any((out / name).exists() for name in ("config.json", "model.safetensors")):
        if not overwrite:
            raise SeqlabError(f"{out} already holds a model: add --overwrite to replace it, or choose another --out")
    elif out.is_dir() and any(out.iterdir()):
        raise SeqlabError(f"{out} is a folder with other files in it, not a Hugging Face model; choose another --out")


def _load_run_in_stored_dtype(run_dir: Path) -> tuple[nn.Module, Tokenizer]:
    """A run's model (eval mode) in the dtype its weights were saved in (`load_run` gives float32),
    and its tokenizer."""
    config, tokenizer = read_config(run_dir), read_tokenizer(run_dir)
    family = families.get(config.model.family)
    if not family.exports_hf:
        exporting = ", ".join(f.name for f in families.FAMILIES.values() if f.exports_hf)
        raise SeqlabError(f"{run_dir} is a {family.name} run: export-hf writes {exporting} runs only")
    path = run_dir / "model.safetensors"
    try:
        with safe_open(str(path), "pt") as handle:
            dtype = handle.get_tensor(next(iter(handle.keys()))).dtype  # seqlab saves one dtype
    except (SafetensorError, OSError, StopIteration) as exc:
        raise CheckpointError(f"{path} is missing, damaged or not a safetensors file: {exc}") from None
    model = build_model(config.model, tokenizer.vocab_size).to(dtype)
    load_weights(model, path)
    return model.eval(), tokenizer


def read_any_tokenizer(path: Path, vocab_size: int) -> Tokenizer:
    """A seqlab tokenizer file (it has a "kind") or a Hugging Face tokenizer.json, padded to
    `vocab_size` ids when it has fewer (the hf kind)."""
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TokenizerError(f"tokenizer file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TokenizerError(f"cannot read tokenizer file {path}: {exc}") from None
    if isinstance(content, dict) and "kind" in content:
        return load_tokenizer(path)
    return HFTokenizer.from_file(path, vocab_size=vocab_size)
