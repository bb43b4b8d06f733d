"""LLaMA (Touvron et al. 2023) as Hugging Face stores it (`LlamaForCausalLM`) ↔ seqlab's TransformerLM.

A LLaMA is seqlab's Transformer with four axes changed: RMSNorm, rotary positions, a SwiGLU MLP and
no biases; grouped-query attention is `n_kv_head`. The mapping:

| Hugging Face | seqlab | note |
|---|---|---|
| `model.embed_tokens` | `tok_emb` | |
| `model.layers.{i}.input_layernorm` | `blocks.{i}.norm1` | |
| `model.layers.{i}.self_attn.{q,k,v}_proj` | `blocks.{i}.attn.qkv` | stacked rows: q (H·Dh), k (G·Dh), v (G·Dh) |
| `model.layers.{i}.self_attn.o_proj` | `blocks.{i}.attn.out` | |
| `model.layers.{i}.post_attention_layernorm` | `blocks.{i}.norm2` | |
| `model.layers.{i}.mlp.{gate,up,down}_proj` | `blocks.{i}.mlp.{gate,up,down}` | SiLU on the gate branch in both |
| `model.norm` | `norm_f` | |
| `lm_head` (untied only) | `lm_head` | |

No permutation of q and k is needed: seqlab's RoPE uses Hugging Face's half-split (`rotate_half`)
layout. Only default RoPE is imported (no `rope_scaling`); config.json's `rope_theta` is read from
`rope_parameters` (transformers ≥ 5) or the top level (4.x), and both are written. Parity:
tests/interop/test_llama.py against `transformers.LlamaForCausalLM`.

Dimensions: D model width · H heads · G kv heads · Dh head width.
"""

from __future__ import annotations

from torch import Tensor

from seqlab.config.schema import ModelConfig
from seqlab.errors import ConfigError
from seqlab.interop.hf_config import HFConfig, json_repr, require_axes
from seqlab.interop.tensor_map import TensorMap

MODEL_TYPE = "llama"
ARCHITECTURE = "LlamaForCausalLM"


def _rope_theta(hf: HFConfig) -> float:
    """RoPE's base from `rope_parameters` (transformers ≥ 5) or `rope_theta` (4.x); scaled RoPE
    variants (linear, dynamic, yarn, llama3) are refused."""
    params = hf.get("rope_parameters", dict, None)
    if params is not None:
        if params.get("rope_type", "default") != "default":
            raise ConfigError(f"{hf.source}: rope_parameters.rope_type = {json_repr(params.get('rope_type'))} "
                              f"is not supported (seqlab imports default RoPE only)")
        return float(params.get("rope_theta", hf.get("rope_theta", float, 10000.0)))
    scaling = hf.values.get("rope_scaling")
    if scaling is not None and (not isinstance(scaling, dict) or scaling.get("rope_type", scaling.get("type"))
                                != "default"):
        raise ConfigError(f"{hf.source}: rope_scaling = {json_repr(scaling)} is not supported "
                          f"(seqlab imports default RoPE only)")
    return hf.get("rope_theta", float, 10000.0)


def config_from_hf(hf: HFConfig) -> tuple[ModelConfig, int]:
    """The ModelConfig and vocabulary size of a LLaMA config.json."""
    d_model, n_head = hf.require("hidden_size", int), hf.require("num_attention_heads", int)
    if d_model % n_head:
        raise ConfigError(f"{hf.source}: hidden_size = {d_model} is not a multiple of num_attention_heads = {n_head}")
    hf.expect("head_dim", (None, d_model // n_head), None,
              f"seqlab's head width is hidden_size / num_attention_heads = {d_model // n_head}")
    hf.expect("hidden_act", ("silu",), "silu", "seqlab imports LLaMA's SwiGLU, hidden_act = \"silu\"")
    hf.expect("attention_bias", (False,), False, "seqlab imports LLaMAs without biases")
    hf.expect("mlp_bias", (False,), False, "seqlab imports LLaMAs without biases")
    config = ModelConfig(
        n_layer=hf.require("num_hidden_layers", int),
        n_head=n_head,
        d_model=d_model,
        block_size=hf.require("max_position_embeddings", int),
        dropout=hf.get("attention_dropout", float, 0.0),
        bias=False,
        n_kv_head=hf.get("num_key_value_heads", int, n_head),
        d_ff=hf.require("intermediate_size", int),
        norm="rmsnorm",
        norm_eps=hf.get("rms_norm_eps", float, 1e-6),
        norm_position="pre",
        position="rope",
        rope_base=_rope_theta(hf),
        activation="swiglu",
        tie_embeddings=hf.get("tie_word_embeddings", bool, False),
    )
    return config, hf.require("vocab_size", int)


def check_exportable(config: ModelConfig) -> None:
    """Raise a ConfigError naming the first axis a LLaMA cannot express."""
    needs = {"family": ("transformer",), "norm": ("rmsnorm",), "norm_position": ("pre",),
             "activation": ("swiglu",), "parallel_block": (False,), "bias": (False,), "n_experts": (0,),
             "attention_only": (False,)}
    require_axes(config, needs, "Hugging Face's LLaMA (rope positions)")


def config_to_hf(config: ModelConfig, vocab_size: int) -> dict:
    """The config.json fields (without dtype) of a LLaMA-shaped seqlab model."""
    check_exportable(config)
    return {
        "model_type": MODEL_TYPE,
        "architectures": [ARCHITECTURE],
        "vocab_size": vocab_size,
        "hidden_size": config.d_model,
        "intermediate_size": config.hidden_width,
        "num_hidden_layers": config.n_layer,
        "num_attention_heads": config.n_head,
        "num_key_value_heads": config.kv_heads,
        "head_dim": config.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": config.block_size,
        "rms_norm_eps": config.norm_eps,
        "rope_theta": config.rope_base,  # transformers 4.x reads this ...
        "rope_scaling": None,
        "rope_parameters": {"rope_type": "default", "rope_theta": config.rope_base},  # ... and 5.x this
        "attention_bias": False,
        "attention_dropout": config.dropout,
        "mlp_bias": False,
        "pretraining_tp": 1,
        "initializer_range": 0.02,
        "tie_word_embeddings": config.tie_embeddings,
        "use_cache": True,
        "bos_token_id": None,  # seqlab's tokenizers have no BOS/EOS; generation runs to its length
        "eos_token_id": None,
    }


def tensor_maps(config: ModelConfig) -> list[TensorMap]:
    """Every seqlab parameter of a LLaMA-shaped model and its Hugging Face tensor(s)."""
    H, G, Dh = config.n_head, config.kv_heads, config.head_dim
    maps = [TensorMap("tok_emb.weight", ("model.embed_tokens.weight",))]
    for i in range(config.n_layer):
        ours, theirs = f"blocks.{i}", f"model.layers.{i}"
        attn = f"{theirs}.self_attn"
        maps += [
            TensorMap(f"{ours}.norm1.weight", (f"{theirs}.input_layernorm.weight",)),
            TensorMap(f"{ours}.attn.qkv.weight", (f"{attn}.q_proj.weight", f"{attn}.k_proj.weight",
                                                  f"{attn}.v_proj.weight"), rows=(H * Dh, G * Dh, G * Dh)),
            TensorMap(f"{ours}.attn.out.weight", (f"{attn}.o_proj.weight",)),
            TensorMap(f"{ours}.norm2.weight", (f"{theirs}.post_attention_layernorm.weight",)),
            TensorMap(f"{ours}.mlp.gate.weight", (f"{theirs}.mlp.gate_proj.weight",)),
            TensorMap(f"{ours}.mlp.up.weight", (f"{theirs}.mlp.up_proj.weight",)),
            TensorMap(f"{ours}.mlp.down.weight", (f"{theirs}.mlp.down_proj.weight",)),
        ]
    maps.append(TensorMap("norm_f.weight", ("model.norm.weight",)))
    if not config.tie_embeddings:
        maps.append(TensorMap("lm_head.weight", ("lm_head.weight",)))
    return maps


def export_state(state: dict[str, Tensor], config: ModelConfig) -> tuple[dict[str, Tensor], ModelConfig]:
    """The state and config `tensor_maps` reads (a LLaMA's are seqlab's as they are)."""
    return state, config


def import_names(tensors: dict[str, Tensor], config: ModelConfig) -> dict[str, Tensor]:
    """The file's tensors under the names `tensor_maps` uses: rotary tables some versions saved, and
    a tied `lm_head.weight`, dropped."""
    return {name: t for name, t in tensors.items()
            if not name.endswith("rotary_emb.inv_freq") and not (config.tie_embeddings and name == "lm_head.weight")}
