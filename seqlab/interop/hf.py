"""Hugging Face `save_pretrained` folders ↔ seqlab's TransformerLM, offline and without `transformers`.

A folder holds `config.json` (the architecture: `model_type` picks the converter), the weights as
`model.safetensors` (or shards listed in `model.safetensors.index.json`) and often the tokenizer as
`tokenizer.json`. Only JSON and safetensors are read: pickled `pytorch_model.bin` weights are refused.

    model, tokenizer = from_hf("tiny-gpt2/")   # TransformerLM in eval mode, HFTokenizer or None
    to_hf(model, "exported/", tokenizer)       # AutoModelForCausalLM.from_pretrained("exported/")

Supported: `gpt2` (seqlab's learned-position, LayerNorm, GELU models), `llama` (rope, RMSNorm,
SwiGLU), `mixtral` (a LLaMA with mixture-of-experts MLPs, `n_experts` > 0) and `mamba` (a MambaLM,
the converter's `MODEL`); see `seqlab.interop.gpt2`, `seqlab.interop.llama`, `seqlab.interop.mixtral`
and `seqlab.interop.mamba` for the mappings and what each refuses.
Every tensor's name and shape, read from the safetensors headers, is checked against the shapes
config.json implies, and the model's size against the memory available, before the model is built
or any weight is loaded.
The weights keep their dtype (float32, float64, bfloat16, float16) both ways.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor

from seqlab.errors import CheckpointError, ConfigError, TokenizerError
from seqlab.files import atomic_path, atomic_write_text
from seqlab.interop import gpt2, hf_tokenizer, llama, mamba, mixtral
from seqlab.interop.hf_config import HFConfig, json_repr
from seqlab.interop.tensor_map import check_tensors, expected_shapes
from seqlab import families
from seqlab.budget import check_model_size
from seqlab.config.schema import ModelConfig
from seqlab.models.transformer import TransformerLM
from seqlab.tokenizers import BPETokenizer, HFTokenizer, Tokenizer

log = logging.getLogger(__name__)

CONVERTERS: dict[str, ModuleType] = {gpt2.MODEL_TYPE: gpt2, llama.MODEL_TYPE: llama, mixtral.MODEL_TYPE: mixtral,
                                     mamba.MODEL_TYPE: mamba}
EXPORT_BY_POSITION: dict[str, ModuleType] = {"learned": gpt2, "rope": llama}  # the axis that decides
EXPORT_WITH_EXPERTS: ModuleType = mixtral  # n_experts > 0: a mixture of experts exports as a Mixtral (rope only)
EXPORT_BY_SETTINGS: dict[type, ModuleType] = {mamba.SETTINGS: mamba}  # models other than TransformerLM
DTYPES: dict[torch.dtype, str] = {torch.float32: "float32", torch.float64: "float64",
                                  torch.bfloat16: "bfloat16", torch.float16: "float16"}
SAFETENSORS_DTYPES: dict[str, torch.dtype] = {"F32": torch.float32, "F64": torch.float64, "BF16": torch.bfloat16,
                                              "F16": torch.float16}  # the header's names of DTYPES


def from_hf(path: str | Path) -> tuple[TransformerLM, HFTokenizer | None]:
    """The model of a `save_pretrained` folder (eval mode, the weights' dtype) and its tokenizer
    (None when the folder has no tokenizer.json)."""
    folder = Path(path)
    if not folder.is_dir():
        raise CheckpointError(f"{folder} is not a folder; pass a Hugging Face save_pretrained folder")
    hf = read_hf_config(folder)
    converter = converter_for(hf)
    config, vocab_size = converter.config_from_hf(hf)
    model_class = getattr(converter, "MODEL", TransformerLM)  # the class the converter's model_type builds
    files = weight_files(folder)
    source = f"weights in {folder}"
    # Checked from the safetensors headers before anything is built or loaded: first the number of
    # tensors (cheap however many layers config.json claims), then every name and shape (against a
    # model built on the meta device: no memory), then the size against the memory available.
    headers = converter.import_names(read_headers(files), config)
    check_tensor_count(headers, converter, config, source=source)
    maps = converter.tensor_maps(config)
    with torch.device("meta"):
        shapes = expected_shapes(maps, model_class(config, vocab_size).state_dict())
    check_tensors(headers, shapes, source=source)
    stored = headers[maps[0].theirs[0]].dtype  # the token embedding's
    dtype = SAFETENSORS_DTYPES.get(stored)
    if dtype is None:
        raise CheckpointError(f"{source} are {stored}; seqlab imports {', '.join(DTYPES.values())}")
    # Built in float32, then converted: the float32 model, the loaded tensors and the converted copy.
    check_model_size(config, vocab_size, bytes_per_parameter=4 + 2 * dtype.itemsize, what=f"the model in {folder}")
    tensors = converter.import_names(load_weights(files), config)
    model = model_class(config, vocab_size)
    model.to(dtype)
    state = {m.ours: m.gather(tensors) for m in maps}
    if config.tie_embeddings:
        state["lm_head.weight"] = state["tok_emb.weight"]  # the same parameter; its key is in the state dict
    model.load_state_dict(state, strict=True)
    tokenizer = None
    if (folder / "tokenizer.json").is_file():
        tokenizer = HFTokenizer.from_file(folder / "tokenizer.json", vocab_size=vocab_size)
    log.debug("imported %s from %s: %d layers, d_model %d, vocab %d, %s", hf.values["model_type"], folder,
             config.n_layer, config.d_model, vocab_size, DTYPES[dtype])
    return model.eval(), tokenizer


def to_hf(model: TransformerLM, path: str | Path, tokenizer: Tokenizer | None = None) -> None:
    """Write `model` as a `save_pretrained` folder (config.json, model.safetensors, and tokenizer.json
    when `tokenizer` is given) that `transformers.AutoModelForCausalLM.from_pretrained` loads."""
    config = getattr(model, "config", None)
    if config is None or not families.get(config.family).exports_hf:
        raise ConfigError(f"only a decoder-only TransformerLM exports to Hugging Face, not {type(model).__name__}")
    converter = EXPORT_BY_SETTINGS.get(type(config))
    if converter is None:
        converter = EXPORT_WITH_EXPERTS if getattr(config, "n_experts", 0) else EXPORT_BY_POSITION.get(config.position)
    if converter is None:
        raise ConfigError(f"model.position = {config.position!r} cannot be exported: Hugging Face's GPT-2 "
                          f"needs 'learned' and its LLaMA 'rope'")
    dtype = model.tok_emb.weight.dtype
    if dtype not in DTYPES:
        raise ConfigError(f"model weights are {dtype}; seqlab exports {', '.join(DTYPES.values())}")
    fields = converter.config_to_hf(config, model.vocab_size)
    tokenizer_json = None if tokenizer is None else hf_tokenizer_json(tokenizer)
    state, map_config = converter.export_state(model.state_dict(), config)
    tensors: dict[str, Tensor] = {}
    for m in converter.tensor_maps(map_config):
        tensors.update(m.scatter(state[m.ours]))  # a tied lm_head is not among the maps: written once
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    # Both names of the dtype field: transformers 5 reads "dtype", 4.x "torch_dtype".
    atomic_write_text(folder / "config.json",
                      json.dumps({**fields, "dtype": DTYPES[dtype], "torch_dtype": DTYPES[dtype]}, indent=2) + "\n")
    with atomic_path(folder / "model.safetensors") as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt"})  # transformers requires the format tag
    if tokenizer_json is not None:
        atomic_write_text(folder / "tokenizer.json", json.dumps(tokenizer_json, ensure_ascii=False) + "\n")
    if tokenizer is not None and hf_tokenizer.exportable(tokenizer):  # AutoTokenizer: the plain fast class
        atomic_write_text(folder / "tokenizer_config.json",
                          json.dumps(hf_tokenizer.tokenizer_config(tokenizer, config.block_size), indent=2) + "\n")
    log.debug("exported %s (%s) to %s", fields["model_type"], DTYPES[dtype], folder)


def converter_for(hf: HFConfig) -> ModuleType:
    model_type = hf.values.get("model_type")
    if model_type not in CONVERTERS:
        raise ConfigError(f"{hf.source}: model_type = {json_repr(model_type)} is not supported; seqlab "
                          f"imports {', '.join(CONVERTERS)}")
    return CONVERTERS[model_type]


def read_hf_config(folder: Path) -> HFConfig:
    path = folder / "config.json"
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{folder} has no config.json; pass a Hugging Face save_pretrained folder") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from None
    if not isinstance(values, dict):
        raise CheckpointError(f"{path} is not a JSON object")
    return HFConfig(values, str(path))


def read_weights(folder: Path) -> dict[str, Tensor]:
    """Every tensor of `model.safetensors`, or of the shards its index lists."""
    return load_weights(weight_files(folder))


@dataclass(frozen=True)
class TensorHeader:
    """A tensor as a safetensors header describes it: its shape and dtype name ("F32", "BF16")."""

    shape: tuple[int, ...]
    dtype: str


def read_headers(files: list[Path]) -> dict[str, TensorHeader]:
    """Every tensor's shape and dtype from the headers of `files`, none of the data read."""
    headers: dict[str, TensorHeader] = {}
    for file in files:
        try:
            with safe_open(str(file), "pt") as handle:
                for name in handle.keys():
                    piece = handle.get_slice(name)
                    headers[name] = TensorHeader(tuple(piece.get_shape()), piece.get_dtype())
        except (SafetensorError, OSError) as exc:
            raise CheckpointError(f"{file} is damaged, missing or not a safetensors file: {exc}") from None
    return headers


def check_tensor_count(headers: Mapping[str, object], converter: ModuleType, config: ModelConfig, *,
                       source: str) -> None:
    """Raise a one-line CheckpointError when config.json implies more than twice the tensors the file
    holds, counted without listing them (the count grows by the same number per layer: the
    converter's maps for 1 and 2 layers), so a config claiming 100000 layers beside 1-layer weights
    is refused before anything of its size is made. Smaller differences are left to `check_tensors`,
    which names them."""
    count = [sum(len(m.theirs) for m in converter.tensor_maps(replace(config, n_layer=n))) for n in (1, 2)]
    expected = count[0] + (config.n_layer - 1) * (count[1] - count[0])
    if expected > 2 * len(headers):
        raise CheckpointError(f"{source} do not fit their config.json: it implies {expected:,} tensors "
                              f"(n_layer = {config.n_layer:,}) and the weights hold {len(headers):,}")


def weight_files(folder: Path) -> list[Path]:
    """The safetensors files of a save_pretrained folder: `model.safetensors`, or the shards its
    index lists."""
    single, index = folder / "model.safetensors", folder / "model.safetensors.index.json"
    if single.is_file():
        files = [single]
    elif index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            files = [folder / name for name in sorted(set(weight_map.values()))]
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CheckpointError(f"cannot read the shard index {index}: {exc!r}") from None
    elif any((folder / name).exists() for name in ("pytorch_model.bin", "pytorch_model.bin.index.json")):
        raise CheckpointError(f"{folder} holds pickled pytorch_model.bin weights, which seqlab does not "
                              f"load; save them with save_pretrained(..., safe_serialization=True)")
    else:
        raise CheckpointError(f"{folder} has no model.safetensors (nor a sharded index)")
    return files


def load_weights(files: list[Path]) -> dict[str, Tensor]:
    """Every tensor of the safetensors `files`."""
    tensors: dict[str, Tensor] = {}
    for file in files:
        try:
            tensors.update(load_file(str(file)))
        except (SafetensorError, OSError) as exc:
            raise CheckpointError(f"{file} is damaged, missing or not a safetensors file: {exc}") from None
    return tensors


def hf_tokenizer_json(tokenizer: Tokenizer) -> dict[str, Any]:
    """The `tokenizer.json` content of a tokenizer that has one (hf, bpe, char and byte kinds)."""
    if isinstance(tokenizer, HFTokenizer):
        return tokenizer.hf_json()
    if isinstance(tokenizer, BPETokenizer):
        return json.loads(tokenizer.hf_tokenizer.to_str())
    if hf_tokenizer.exportable(tokenizer):
        return hf_tokenizer.tokenizer_json(tokenizer)
    raise TokenizerError(f"a {tokenizer.kind} tokenizer has no tokenizer.json form; export the model "
                         f"without it (bpe, hf, char and byte tokenizers have one)")
