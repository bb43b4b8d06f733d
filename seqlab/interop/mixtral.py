"""Mixtral (Jiang et al. 2024) as Hugging Face stores it (`MixtralForCausalLM`) ↔ seqlab's TransformerLM.

A Mixtral is a LLaMA (`seqlab.interop.llama`) whose MLPs are sparse mixtures of SwiGLU experts
(`seqlab.nn.moe`): `num_local_experts` is `n_experts`, `num_experts_per_tok` is
`experts_per_token`, `router_aux_loss_coef` is `router_aux_loss`. The mapping, beside LLaMA's
attention, norms and embeddings:

| Hugging Face (as `save_pretrained` writes it) | seqlab | note |
|---|---|---|
| `model.layers.{i}.block_sparse_moe.gate` | `blocks.{i}.mlp.router` | the router, (E, D) |
| `model.layers.{i}.block_sparse_moe.experts.{e}.w1` | `blocks.{i}.mlp.experts.{e}.gate` | SiLU on this branch |
| `model.layers.{i}.block_sparse_moe.experts.{e}.w3` | `blocks.{i}.mlp.experts.{e}.up` | |
| `model.layers.{i}.block_sparse_moe.experts.{e}.w2` | `blocks.{i}.mlp.experts.{e}.down` | |

transformers ≥ 5 holds the experts in memory as two stacked tensors per layer,
`model.layers.{i}.mlp.experts.gate_up_proj` (E, 2F, D: w1's rows, then w3's) and `down_proj`
(E, D, F), with the router at `model.layers.{i}.mlp.gate`, but its `save_pretrained` writes the
names above, which every version loads; files in the stacked form are imported too
(`import_names` splits them). The routing is the same: softmax over the experts, top k,
renormalised. Refused: sliding-window attention (`sliding_window` shorter than the context) and
router jitter noise. Parity: tests/interop/test_mixtral.py against `transformers.MixtralForCausalLM`.

Dimensions: D model width · H heads · G kv heads · Dh head width · E experts · F expert hidden width.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TypeVar

from torch import Tensor

from seqlab.config.schema import ModelConfig
from seqlab.errors import ConfigError
from seqlab.interop import llama
from seqlab.interop.hf_config import HFConfig, json_repr, require_axes
from seqlab.interop.tensor_map import TensorMap

MODEL_TYPE = "mixtral"
ARCHITECTURE = "MixtralForCausalLM"

# seqlab's expert linear → the name of its weight in a Mixtral expert
_EXPERT_NAMES = {"gate": "w1", "up": "w3", "down": "w2"}


def config_from_hf(hf: HFConfig) -> tuple[ModelConfig, int]:
    """The ModelConfig and vocabulary size of a Mixtral config.json."""
    config, vocab_size = llama.config_from_hf(hf)  # the attention, norms and positions are LLaMA's
    window = hf.get("sliding_window", int, None)
    if window is not None and window < config.block_size:
        raise ConfigError(f"{hf.source}: sliding_window = {window} is not supported (seqlab's attention sees "
                          f"the whole context; null or at least max_position_embeddings = {config.block_size})")
    hf.expect("router_jitter_noise", (0, 0.0), 0.0, "seqlab's routers are not jittered")
    n_experts = hf.require("num_local_experts", int)
    top_k = hf.require("num_experts_per_tok", int)
    if not 1 <= top_k <= n_experts:
        raise ConfigError(f"{hf.source}: num_experts_per_tok = {json_repr(top_k)} is not in 1..num_local_experts "
                          f"= {n_experts}")
    return replace(config, n_experts=n_experts, experts_per_token=top_k,
                   router_aux_loss=hf.get("router_aux_loss_coef", float, 0.001)), vocab_size


def check_exportable(config: ModelConfig) -> None:
    """Raise a ConfigError naming the first axis a Mixtral cannot express."""
    if config.n_experts < 1:
        raise ConfigError("model.n_experts = 0 cannot be exported as Hugging Face's Mixtral: a dense model "
                          "is a LLaMA")
    require_axes(config, {"position": ("rope",)}, "Hugging Face's Mixtral")
    llama.check_exportable(replace(config, n_experts=0))  # the rest of a Mixtral is a LLaMA


def config_to_hf(config: ModelConfig, vocab_size: int) -> dict:
    """The config.json fields (without dtype) of a Mixtral-shaped seqlab model."""
    check_exportable(config)
    fields = llama.config_to_hf(replace(config, n_experts=0), vocab_size)
    for key in ("attention_bias", "mlp_bias", "pretraining_tp"):  # LLaMA's own switches
        del fields[key]
    return {
        **fields,
        "model_type": MODEL_TYPE,
        "architectures": [ARCHITECTURE],
        "num_local_experts": config.n_experts,
        "num_experts_per_tok": config.experts_per_token,
        "router_aux_loss_coef": config.router_aux_loss,
        "output_router_logits": False,
        "router_jitter_noise": 0.0,
        "sliding_window": None,
    }


def tensor_maps(config: ModelConfig) -> list[TensorMap]:
    """Every seqlab parameter of a Mixtral-shaped model and its Hugging Face tensor."""
    dense = [m for m in llama.tensor_maps(replace(config, n_experts=0)) if ".mlp." not in m.ours]
    experts = []
    for i in range(config.n_layer):
        ours, theirs = f"blocks.{i}.mlp", f"model.layers.{i}.block_sparse_moe"
        experts.append(TensorMap(f"{ours}.router.weight", (f"{theirs}.gate.weight",)))
        for e in range(config.n_experts):
            experts += [TensorMap(f"{ours}.experts.{e}.{name}.weight", (f"{theirs}.experts.{e}.{w}.weight",))
                        for name, w in _EXPERT_NAMES.items()]
    return dense + experts


def export_state(state: dict[str, Tensor], config: ModelConfig) -> tuple[dict[str, Tensor], ModelConfig]:
    """The state and config `tensor_maps` reads (a Mixtral's are seqlab's as they are)."""
    return state, config


T = TypeVar("T")


def import_names(tensors: dict[str, T], config: ModelConfig) -> dict[str, T]:
    """The file's tensors (or their safetensors headers) under the names `tensor_maps` uses: LLaMA's
    dropped names dropped, and transformers 5's stacked experts and router renamed and split."""
    out: dict[str, T] = {}
    for name, t in llama.import_names(tensors, config).items():
        prefix, _, rest = name.partition(".mlp.")
        if not rest:
            out[name] = t
        elif rest == "gate.weight":
            out[f"{prefix}.block_sparse_moe.gate.weight"] = t
        elif rest == "experts.gate_up_proj":  # (E, 2F, D): w1's rows, then w3's
            for e in range(_leading(t)):
                w1, w3 = _halves(_index(t, e))
                out[f"{prefix}.block_sparse_moe.experts.{e}.w1.weight"] = w1
                out[f"{prefix}.block_sparse_moe.experts.{e}.w3.weight"] = w3
        elif rest == "experts.down_proj":  # (E, D, F)
            for e in range(_leading(t)):
                out[f"{prefix}.block_sparse_moe.experts.{e}.w2.weight"] = _index(t, e)
        else:
            out[name] = t  # unexpected: left for the shape check to name
    return out


# A tensor, or a safetensors header (`shape`, `dtype`) that stands for one while names and shapes are checked.

def _leading(t: object) -> int:
    return t.shape[0]


def _index(t: T, e: int) -> T:
    if isinstance(t, Tensor):
        return t[e]
    return type(t)(tuple(t.shape[1:]), t.dtype)


def _halves(t: T) -> tuple[T, T]:
    if isinstance(t, Tensor):
        return tuple(t.chunk(2, dim=0))
    half = (t.shape[0] // 2, *t.shape[1:])
    return type(t)(half, t.dtype), type(t)(half, t.dtype)
