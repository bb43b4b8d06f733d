"""LoRA (`seqlab.nn.lora`) against `peft`'s on tiny random `transformers` GPT-2 and LLaMA models
imported through seqlab's converter: the same A and B matrices give the same logits, the same
trainable-parameter count, merging changes nothing, and the adapters are a small file."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from seqlab.errors import ConfigError
from seqlab.interop import from_hf
from seqlab.nn.lora import (LoRAEmbedding, LoRALinear, LoRASettings, adapter_state_dict, add_lora, load_adapters,
                            merge_lora, trainable_parameters)

peft = pytest.importorskip("peft")

# seqlab target -> (peft target, how a seqlab adapter is named from a peft module path)
GPT2_TARGETS = {"attn.qkv": "c_attn", "attn.out": "attn.c_proj", "mlp.up": "c_fc", "mlp.down": "mlp.c_proj"}
LLAMA_TARGETS = {"attn.q": "q_proj", "attn.v": "v_proj", "attn.out": "o_proj", "mlp.gate": "gate_proj",
                 "mlp.down": "down_proj"}


def ours_to_peft(layer: int, target: str, kind: str) -> tuple[str, str]:
    """(seqlab module path of the adapted layer, adapter name) for a seqlab target in one block."""
    module, part = target.rsplit(".", 1)
    if module == "attn" and part in {"q", "k", "v"}:
        return f"blocks.{layer}.attn.qkv", part
    return f"blocks.{layer}.{target}", "all"


def peft_module(kind: str, layer: int, target: str) -> str:
    if kind == "gpt2":
        return f"base_model.model.transformer.h.{layer}.{ {'c_attn': 'attn.c_attn', 'attn.c_proj': 'attn.c_proj', 'c_fc': 'mlp.c_fc', 'mlp.c_proj': 'mlp.c_proj'}[target]}"
    owner = "self_attn" if target in {"q_proj", "k_proj", "v_proj", "o_proj"} else "mlp"
    return f"base_model.model.model.layers.{layer}.{owner}.{target}"


# the token embedding: seqlab's name, peft's target and its module path under the peft wrapper
EMBEDDINGS = {"gpt2": ("wte", "base_model.model.transformer.wte"),
              "llama": ("embed_tokens", "base_model.model.model.embed_tokens")}


def adapted_pair(tmp_path, hf, kind: str, targets: dict[str, str], rank: int = 4, alpha: float = 8.0,
                 embedding: bool = False):
    """The HF model wrapped by peft with random A and B, and seqlab's import of the same weights with
    the same A and B copied in; with `embedding`, the token embedding is adapted too."""
    hf.save_pretrained(tmp_path / "hf")
    ours, _ = from_hf(tmp_path / "hf")
    peft_targets = list(targets.values()) + ([EMBEDDINGS[kind][0]] if embedding else [])
    config = peft.LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=peft_targets,
                             fan_in_fan_out=(kind == "gpt2"))
    wrapped = peft.get_peft_model(hf, config).eval()
    add_lora(ours, LoRASettings(rank=rank, alpha=alpha, targets=tuple(targets) + (("tok_emb",) if embedding else ())),
             seed=0)
    generator = torch.Generator().manual_seed(7)
    modules = dict(wrapped.named_modules())
    if embedding:  # peft starts A at zero: random values make the comparison able to fail
        lora = modules[EMBEDDINGS[kind][1]]
        a, b = lora.lora_embedding_A["default"], lora.lora_embedding_B["default"]
        with torch.no_grad():
            a.copy_(0.3 * torch.randn(a.shape, generator=generator))
            b.copy_(0.3 * torch.randn(b.shape, generator=generator))
            ours.tok_emb.lora_A["all"].copy_(a)
            ours.tok_emb.lora_B["all"].copy_(b)
    for layer in range(hf.config.num_hidden_layers if kind == "llama" else hf.config.n_layer):
        for ours_target, peft_target in targets.items():
            lora = modules[peft_module(kind, layer, peft_target)]
            a, b = lora.lora_A["default"].weight, lora.lora_B["default"].weight
            with torch.no_grad():
                a.copy_(0.3 * torch.randn(a.shape, generator=generator))
                b.copy_(0.3 * torch.randn(b.shape, generator=generator))
            path, name = ours_to_peft(layer, ours_target, kind)
            mine = ours.get_submodule(path)
            with torch.no_grad():
                mine.lora_A[name].copy_(a)
                mine.lora_B[name].copy_(b)
    return wrapped, ours


def assert_equal_to_peft(wrapped, ours, x):
    """Our logits equal peft's on `x`, the adapters change them (so the comparison can fail), and both
    train the same number of parameters; returns the base model's logits (peft's adapters disabled)."""
    with torch.no_grad():
        expected = wrapped(x).logits
        torch.testing.assert_close(ours(x)[0], expected, atol=1e-5, rtol=1e-5)
        with wrapped.disable_adapter():
            plain = wrapped(x).logits
    assert (expected - plain).abs().max() > 1e-2
    assert trainable_parameters(ours) == wrapped.get_nb_trainable_parameters()[0]
    return plain


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_logits_equal_peft(tmp_path, make_gpt2, make_llama, kind):
    hf = make_gpt2(0) if kind == "gpt2" else make_llama(0)
    targets = GPT2_TARGETS if kind == "gpt2" else LLAMA_TARGETS
    wrapped, ours = adapted_pair(tmp_path, hf, kind, targets)
    assert_equal_to_peft(wrapped, ours, torch.randint(0, 100, (2, 12), generator=torch.Generator().manual_seed(1)))


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_merged_equals_unmerged(tmp_path, make_gpt2, make_llama, kind):
    hf = make_gpt2(1) if kind == "gpt2" else make_llama(1)
    targets = GPT2_TARGETS if kind == "gpt2" else LLAMA_TARGETS
    _, ours = adapted_pair(tmp_path, hf, kind, targets)
    x = torch.randint(0, 100, (2, 12), generator=torch.Generator().manual_seed(2))
    keys_before = {key for key in ours.state_dict() if "lora_" not in key}
    with torch.no_grad():
        unmerged = ours(x)[0]
        assert merge_lora(ours) == len(targets) * 2 - (1 if kind == "llama" else 0) * 2
        merged = ours(x)[0]
    torch.testing.assert_close(merged, unmerged, atol=1e-5, rtol=1e-5)
    assert not any(isinstance(module, LoRALinear) for module in ours.modules())
    assert set(ours.state_dict()) == keys_before  # the base model's keys, unchanged


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_an_adapted_embedding_equals_peft(tmp_path, make_gpt2, make_llama, kind):
    """peft's embedding LoRA (A zero, B normal, no dropout): the same logits, GPT-2's tied output layer
    reading the base matrix in both; the same trainable count; adapters that start at the base model."""
    hf = make_gpt2(4) if kind == "gpt2" else make_llama(4)
    wrapped, ours = adapted_pair(tmp_path, hf, kind, {}, embedding=True)
    assert isinstance(ours.tok_emb, LoRAEmbedding)
    assert (ours.lm_head.weight is ours.tok_emb.weight) == (kind == "gpt2")
    x = torch.randint(0, 100, (2, 12), generator=torch.Generator().manual_seed(5))
    plain = assert_equal_to_peft(wrapped, ours, x)

    fresh, _ = from_hf(tmp_path / "hf")
    add_lora(fresh, LoRASettings(rank=4, alpha=8, targets=("tok_emb",)), seed=0)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x)[0], plain, atol=1e-5, rtol=1e-5)  # A starts at zero


def test_a_merged_embedding_keeps_its_tie_and_its_lookups(tmp_path, make_gpt2):
    _, ours = adapted_pair(tmp_path, make_gpt2(5), "gpt2", {"attn.qkv": "c_attn"}, embedding=True)
    x = torch.randint(0, 100, (2, 12), generator=torch.Generator().manual_seed(6))
    states = []  # the last hidden states, what a task head reads (the tied output layer moves with the merge)
    ours.norm_f.register_forward_hook(lambda module, inputs, output: states.append(output))
    with torch.no_grad():
        rows = ours.tok_emb(x)
        ours(x)
        assert merge_lora(ours) == 3  # the embedding and two blocks' qkv
        torch.testing.assert_close(ours.tok_emb(x), rows, atol=1e-6, rtol=1e-6)
        ours(x)
    torch.testing.assert_close(states[1], states[0], atol=1e-5, rtol=1e-5)
    assert type(ours.tok_emb) is torch.nn.Embedding and ours.lm_head.weight is ours.tok_emb.weight
    assert not any("lora_" in key for key in ours.state_dict())


def test_adapters_start_at_the_base_model_and_train_alone(make_gpt2, tmp_path):
    make_gpt2(2).save_pretrained(tmp_path / "hf")
    model, _ = from_hf(tmp_path / "hf")
    x = torch.randint(0, 100, (2, 12), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        before = model(x)[0]
    add_lora(model, LoRASettings(rank=2, alpha=4, targets=("attn.qkv",)), seed=0)
    with torch.no_grad():
        torch.testing.assert_close(model(x)[0], before)  # B starts at zero
    model.train()
    logits = model(x)[0]
    logits.sum().backward()
    grads = {name for name, p in model.named_parameters() if p.grad is not None}
    assert grads and all("lora_" in name for name in grads)


def test_adapter_file_is_small_and_round_trips(tmp_path):
    from seqlab.config.schema import ModelConfig
    from seqlab.models.transformer import TransformerLM

    torch.manual_seed(0)
    base = TransformerLM(ModelConfig(n_layer=4, n_head=4, d_model=128, block_size=64, bias=False), 65)
    add_lora(base, LoRASettings(rank=8, alpha=16, targets=("attn.qkv", "attn.out")), seed=0)
    with torch.no_grad():
        for _, layer in base.named_modules():
            if isinstance(layer, LoRALinear):
                for b in layer.lora_B.values():
                    b.normal_()
    save_file(adapter_state_dict(base), tmp_path / "adapters.safetensors")
    save_file({k: v.contiguous() for k, v in base.state_dict().items() if "lora_" not in k and k != "lm_head.weight"},
              tmp_path / "model.safetensors")
    ratio = (tmp_path / "adapters.safetensors").stat().st_size / (tmp_path / "model.safetensors").stat().st_size
    assert ratio <= 0.05

    torch.manual_seed(0)
    fresh = TransformerLM(ModelConfig(n_layer=4, n_head=4, d_model=128, block_size=64, bias=False), 65)
    fresh.load_state_dict(base.state_dict(), strict=False)
    add_lora(fresh, LoRASettings(rank=8, alpha=16, targets=("attn.qkv", "attn.out")), seed=1)
    load_adapters(fresh, load_file(tmp_path / "adapters.safetensors"))
    x = torch.randint(0, 65, (1, 16), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        torch.testing.assert_close(fresh(x)[0], base(x)[0])


def test_bad_targets_and_settings_are_one_line_errors(make_gpt2, tmp_path):
    make_gpt2(3).save_pretrained(tmp_path / "hf")
    model, _ = from_hf(tmp_path / "hf")
    with pytest.raises(ConfigError, match="names no linear layer or embedding.*attn.qkv"):
        add_lora(model, LoRASettings(targets=("attn.query",)))
    with pytest.raises(ConfigError, match="both whole and by part"):
        add_lora(model, LoRASettings(targets=("attn.qkv", "attn.q")))
    for bad in ({"rank": 0}, {"alpha": float("nan")}, {"dropout": 1.0}, {"targets": ()}):
        with pytest.raises(ConfigError):
            LoRASettings(**bad)
