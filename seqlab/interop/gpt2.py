"""GPT-2 (Radford et al. 2019) as Hugging Face stores it (`GPT2LMHeadModel`) ↔ seqlab's TransformerLM.

GPT-2 is seqlab's default shape: learned positions, pre-LayerNorm blocks, the tanh-approximated GELU
("gelu_new"), biases everywhere, tied embeddings. The mapping:

| Hugging Face | seqlab | note |
|---|---|---|
| `transformer.wte`, `transformer.wpe` | `tok_emb`, `pos_emb` | |
| `transformer.h.{i}.ln_1`, `.ln_2` | `blocks.{i}.norm1`, `.norm2` | |
| `transformer.h.{i}.attn.c_attn` | `blocks.{i}.attn.qkv` | Conv1D: weight (in, out), transposed |
| `transformer.h.{i}.attn.c_proj` | `blocks.{i}.attn.out` | transposed |
| `transformer.h.{i}.mlp.c_fc`, `.c_proj` | `blocks.{i}.mlp.up`, `.down` | transposed |
| `transformer.ln_f` | `norm_f` | |
| `lm_head` (untied only) | `lm_head` | |

`c_attn` packs q, k, v by output columns with heads contiguous, as seqlab's `qkv` packs rows, so the
transpose is the whole conversion. A seqlab model without biases (nanoGPT's `bias = false`) exports
with zero biases, which compute the same function. Parity: tests/interop/test_gpt2.py against
`transformers.GPT2LMHeadModel`.
"""

from __future__ import annotations

from dataclasses import replace

from torch import Tensor

from seqlab.config.schema import ModelConfig
from seqlab.errors import ConfigError
from seqlab.interop.hf_config import HFConfig, require_axes
from seqlab.interop.tensor_map import TensorMap

MODEL_TYPE = "gpt2"
ARCHITECTURE = "GPT2LMHeadModel"

# Hugging Face's activation names → seqlab's. "gelu_new" and "gelu_pytorch_tanh" are both the tanh
# approximation (GPT-2's own); "gelu_fast" rounds its constant differently and is left out.
_ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu", "relu": "relu"}
_EXPORT_ACTIVATIONS = {"gelu_tanh": "gelu_new", "gelu": "gelu", "relu": "relu"}
_BUFFERS = (".attn.bias", ".attn.masked_bias")  # causal-mask buffers older versions saved


def config_from_hf(hf: HFConfig) -> tuple[ModelConfig, int]:
    """The ModelConfig and vocabulary size of a GPT-2 config.json."""
    d_model = hf.require("n_embd", int)
    activation = hf.expect("activation_function", tuple(_ACTIVATIONS), "gelu_new",
                           f"seqlab imports {', '.join(_ACTIVATIONS)}")
    hf.expect("add_cross_attention", (False,), False, "seqlab imports decoder-only GPT-2")
    hf.expect("scale_attn_weights", (True,), True, "seqlab scales attention scores by 1/sqrt(head width)")
    hf.expect("scale_attn_by_inverse_layer_idx", (False,), False, "seqlab does not scale scores by layer")
    config = ModelConfig(
        n_layer=hf.require("n_layer", int),
        n_head=hf.require("n_head", int),
        d_model=d_model,
        block_size=hf.require("n_positions", int),
        dropout=hf.get("resid_pdrop", float, 0.1),
        bias=True,
        d_ff=hf.get("n_inner", int, 4 * d_model),
        norm="layernorm",
        norm_eps=hf.get("layer_norm_epsilon", float, 1e-5),
        norm_position="pre",
        position="learned",
        activation=_ACTIVATIONS[activation],
        tie_embeddings=hf.get("tie_word_embeddings", bool, True),
    )
    return config, hf.require("vocab_size", int)


def check_exportable(config: ModelConfig) -> None:
    """Raise a ConfigError naming the first axis a GPT-2 cannot express."""
    needs = {"family": ("transformer",), "norm": ("layernorm",), "norm_position": ("pre",),
             "activation": tuple(_EXPORT_ACTIVATIONS), "parallel_block": (False,), "n_experts": (0,),
             "attention_only": (False,)}
    require_axes(config, needs, "Hugging Face's GPT-2 (learned positions)")
    if config.kv_heads != config.n_head:
        raise ConfigError(f"model.n_kv_head = {config.n_kv_head} cannot be exported: Hugging Face's GPT-2 "
                          f"(learned positions) needs as many key/value heads as heads (0)")


def config_to_hf(config: ModelConfig, vocab_size: int) -> dict:
    """The config.json fields (without dtype) of a GPT-2-shaped seqlab model."""
    check_exportable(config)
    return {
        "model_type": MODEL_TYPE,
        "architectures": [ARCHITECTURE],
        "vocab_size": vocab_size,
        "n_positions": config.block_size,
        "n_embd": config.d_model,
        "n_layer": config.n_layer,
        "n_head": config.n_head,
        "n_inner": config.hidden_width,
        "activation_function": _EXPORT_ACTIVATIONS[config.activation],
        "resid_pdrop": config.dropout,
        "embd_pdrop": config.dropout,
        "attn_pdrop": config.dropout,
        "layer_norm_epsilon": config.norm_eps,
        "initializer_range": 0.02,
        "scale_attn_weights": True,
        "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False,
        "add_cross_attention": False,
        "tie_word_embeddings": config.tie_embeddings,
        "use_cache": True,
        "bos_token_id": None,  # seqlab's tokenizers have no BOS/EOS; generation runs to its length
        "eos_token_id": None,
    }


def tensor_maps(config: ModelConfig) -> list[TensorMap]:
    """Every seqlab parameter of a GPT-2-shaped model (with biases) and its Hugging Face tensor."""
    maps = [TensorMap("tok_emb.weight", ("transformer.wte.weight",)),
            TensorMap("pos_emb.weight", ("transformer.wpe.weight",))]
    for i in range(config.n_layer):
        ours, theirs = f"blocks.{i}", f"transformer.h.{i}"
        for our_part, their_part, conv1d in (("norm1", "ln_1", False), ("attn.qkv", "attn.c_attn", True),
                                             ("attn.out", "attn.c_proj", True), ("norm2", "ln_2", False),
                                             ("mlp.up", "mlp.c_fc", True), ("mlp.down", "mlp.c_proj", True)):
            maps.append(TensorMap(f"{ours}.{our_part}.weight", (f"{theirs}.{their_part}.weight",), transpose=conv1d))
            maps.append(TensorMap(f"{ours}.{our_part}.bias", (f"{theirs}.{their_part}.bias",)))
    maps += [TensorMap("norm_f.weight", ("transformer.ln_f.weight",)),
             TensorMap("norm_f.bias", ("transformer.ln_f.bias",))]
    if not config.tie_embeddings:
        maps.append(TensorMap("lm_head.weight", ("lm_head.weight",)))
    return maps


def export_state(state: dict[str, Tensor], config: ModelConfig) -> tuple[dict[str, Tensor], ModelConfig]:
    """The state and config `tensor_maps` reads: a bias-free model gets zero biases."""
    if config.bias:
        return state, config
    zeros = {}
    for m in tensor_maps(config):
        if m.ours.endswith(".bias") and m.ours not in state:
            weight = state[m.ours[: -len("bias")] + "weight"]
            width = weight.shape[0]  # out features of a Linear, the width of a LayerNorm
            zeros[m.ours] = weight.new_zeros(width)
    return {**state, **zeros}, replace(config, bias=True)


def import_names(tensors: dict[str, Tensor], config: ModelConfig) -> dict[str, Tensor]:
    """The file's tensors under the names `tensor_maps` uses: `transformer.` added when the file is a
    bare GPT2Model's, old mask buffers dropped, and a tied `lm_head.weight` dropped."""
    if not any(name.startswith("transformer.") for name in tensors):
        tensors = {(name if name.startswith("lm_head.") else f"transformer.{name}"): t for name, t in tensors.items()}
    return {name: t for name, t in tensors.items()
            if not name.endswith(_BUFFERS) and not (config.tie_embeddings and name == "lm_head.weight")}
