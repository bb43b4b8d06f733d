"""Mamba (Gu & Dao 2023) as Hugging Face stores it (`MambaForCausalLM`) ↔ seqlab's MambaLM.

seqlab's mixer keeps Hugging Face's parameter names and layouts, so the mapping renames and never
reshapes:

| Hugging Face | seqlab | note |
|---|---|---|
| `backbone.embeddings` | `tok_emb` | older checkpoints say `backbone.embedding`: read as well |
| `backbone.layers.{i}.norm` | `layers.{i}.norm` | RMSNorm |
| `backbone.layers.{i}.mixer.in_proj` | `layers.{i}.mixer.in_proj` | rows: x (E), then the gate z (E) |
| `backbone.layers.{i}.mixer.conv1d` | `layers.{i}.mixer.conv1d` | depthwise (E, 1, K) |
| `backbone.layers.{i}.mixer.{x_proj,dt_proj,out_proj}` | `layers.{i}.mixer.{x_proj,dt_proj,out_proj}` | x_proj rows: Δ (R), B (N), C (N) |
| `backbone.layers.{i}.mixer.{A_log,D}` | `layers.{i}.mixer.{A_log,D}` | A = −exp(A_log) |
| `backbone.norm_f` | `norm_f` | |
| `lm_head` (untied only) | `lm_head` | |

config.json's initialisation fields (`time_step_min`, `time_step_max`, `time_step_floor`) become
`dt_min`, `dt_max`, `dt_init_floor`; `residual_in_fp32` is read as the residual stream in the
weights' dtype (the same in float32 and float64). Parity: tests/interop/test_mamba.py against
`transformers.MambaForCausalLM`.

Dimensions: D model width · E inner width · N state size · R Δ rank · K conv taps.
"""

from __future__ import annotations

from torch import Tensor

from seqlab.interop.hf_config import HFConfig
from seqlab.interop.tensor_map import TensorMap
from seqlab.models.mamba import MambaConfig, MambaLM

MODEL_TYPE = "mamba"
ARCHITECTURE = "MambaForCausalLM"
MODEL = MambaLM  # the class `seqlab.interop.hf` builds for this model_type ...
SETTINGS = MambaConfig  # ... and the settings it exports

_MIXER = ("in_proj.weight", "conv1d.weight", "x_proj.weight", "dt_proj.weight", "dt_proj.bias", "A_log", "D",
          "out_proj.weight")


def config_from_hf(hf: HFConfig) -> tuple[MambaConfig, int]:
    """The MambaConfig and vocabulary size of a Mamba config.json."""
    d_model, expand = hf.require("hidden_size", int), hf.get("expand", int, 2)
    hf.expect("hidden_act", ("silu",), "silu", "seqlab's Mamba gates with SiLU")
    hf.expect("intermediate_size", (None, expand * d_model), None,
              f"seqlab's inner width is expand · hidden_size = {expand * d_model}")
    rank = hf.values.get("time_step_rank", "auto")
    config = MambaConfig(
        n_layer=hf.require("num_hidden_layers", int),
        d_model=d_model,
        d_state=hf.get("state_size", int, 16),
        d_conv=hf.get("conv_kernel", int, 4),
        expand=expand,
        dt_rank="auto" if rank == "auto" else hf.require("time_step_rank", int),
        bias=hf.get("use_bias", bool, False),
        conv_bias=hf.get("use_conv_bias", bool, True),
        norm_eps=hf.get("layer_norm_epsilon", float, 1e-5),
        dt_min=hf.get("time_step_min", float, 0.001),
        dt_max=hf.get("time_step_max", float, 0.1),
        dt_init_floor=hf.get("time_step_floor", float, 1e-4),
        tie_embeddings=hf.get("tie_word_embeddings", bool, True),
    )
    return config, hf.require("vocab_size", int)


def config_to_hf(config: MambaConfig, vocab_size: int) -> dict:
    """The config.json fields (without dtype) of a seqlab Mamba."""
    return {
        "model_type": MODEL_TYPE,
        "architectures": [ARCHITECTURE],
        "vocab_size": vocab_size,
        "hidden_size": config.d_model,
        "intermediate_size": config.d_inner,
        "state_size": config.d_state,
        "num_hidden_layers": config.n_layer,
        "conv_kernel": config.d_conv,
        "expand": config.expand,
        "time_step_rank": config.time_step_rank,
        "use_bias": config.bias,
        "use_conv_bias": config.conv_bias,
        "hidden_act": "silu",
        "layer_norm_epsilon": config.norm_eps,
        "residual_in_fp32": True,
        "time_step_min": config.dt_min,
        "time_step_max": config.dt_max,
        "time_step_floor": config.dt_init_floor,
        "tie_word_embeddings": config.tie_embeddings,
        "use_cache": True,
        "bos_token_id": None,  # seqlab's tokenizers have no BOS/EOS; generation runs to its length
        "eos_token_id": None,
        "pad_token_id": None,
    }


def tensor_maps(config: MambaConfig) -> list[TensorMap]:
    """Every seqlab parameter of a Mamba and its Hugging Face tensor."""
    maps = [TensorMap("tok_emb.weight", ("backbone.embeddings.weight",))]
    names = list(_MIXER)
    if config.conv_bias:
        names.append("conv1d.bias")
    if config.bias:
        names += ["in_proj.bias", "out_proj.bias"]
    for i in range(config.n_layer):
        ours, theirs = f"layers.{i}", f"backbone.layers.{i}"
        maps.append(TensorMap(f"{ours}.norm.weight", (f"{theirs}.norm.weight",)))
        maps += [TensorMap(f"{ours}.mixer.{name}", (f"{theirs}.mixer.{name}",)) for name in names]
    maps.append(TensorMap("norm_f.weight", ("backbone.norm_f.weight",)))
    if not config.tie_embeddings:
        maps.append(TensorMap("lm_head.weight", ("lm_head.weight",)))
    return maps


def export_state(state: dict[str, Tensor], config: MambaConfig) -> tuple[dict[str, Tensor], MambaConfig]:
    """The state and config `tensor_maps` reads (seqlab's, as they are)."""
    return state, config


def import_names(tensors: dict[str, Tensor], config: MambaConfig) -> dict[str, Tensor]:
    """The file's tensors under the names `tensor_maps` uses: the older `backbone.embedding` renamed,
    a tied `lm_head.weight` dropped."""
    renamed = {name.replace("backbone.embedding.", "backbone.embeddings."): t for name, t in tensors.items()}
    return {name: t for name, t in renamed.items() if not (config.tie_embeddings and name == "lm_head.weight")}
