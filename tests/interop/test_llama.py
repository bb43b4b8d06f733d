"""LLaMA through `seqlab.interop`: parity with `transformers.LlamaForCausalLM` on tiny random models
with grouped-query attention (logits in float32 and float64, greedy generations), export back to
Hugging Face (tied and untied), sharded weights, and the errors."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from seqlab.config import ModelConfig
from seqlab.errors import ConfigError
from seqlab.interop import from_hf, to_hf
from seqlab.models.transformer import TransformerLM

modeling_llama = pytest.importorskip("transformers.models.llama.modeling_llama")


def tokens(seed: int, shape=(2, 16)) -> torch.Tensor:
    return torch.randint(0, 100, shape, generator=torch.Generator().manual_seed(seed))


def rms_norm_in_input_precision(self, hidden_states):
    """LlamaRMSNorm.forward without its cast to float32, which a float64 model does not need."""
    variance = hidden_states.pow(2).mean(-1, keepdim=True)
    return self.weight * (hidden_states * torch.rsqrt(variance + self.variance_epsilon))


@pytest.mark.parametrize("seed", [0])
def test_logits_equal_hf_float32(tmp_path, make_llama, seed):
    hf = make_llama(seed)
    hf.save_pretrained(tmp_path)
    model, _ = from_hf(tmp_path)
    assert model.config.kv_heads == 2 and model.config.rope_base == 500.0 and not model.config.tie_embeddings
    x = tokens(seed)
    with torch.no_grad():
        torch.testing.assert_close(model(x)[0], hf(x).logits, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("seed", [0])
def test_logits_equal_hf_float64(tmp_path, make_llama, monkeypatch, seed):
    # Hugging Face's LlamaRMSNorm computes in float32 whatever the input's dtype, which caps its
    # float64 agreement with ours (float64 stays float64) at float32 precision, ~1e-8. Patch it to
    # compute in the input's precision so that the comparison can be made at 1e-9. The rotary tables
    # are float32 in both (same inv_freq, same angle products), and the model runs SDPA because
    # eager LLaMA attention takes its softmax in float32. The float32 test above runs unpatched.
    monkeypatch.setattr(modeling_llama.LlamaRMSNorm, "forward", rms_norm_in_input_precision)
    hf = make_llama(seed, dtype=torch.float64)
    hf.save_pretrained(tmp_path)
    model, _ = from_hf(tmp_path)
    assert model.tok_emb.weight.dtype == torch.float64
    x = tokens(seed)
    with torch.no_grad():
        torch.testing.assert_close(model(x)[0], hf(x).logits, atol=1e-9, rtol=1e-9)


@pytest.mark.parametrize("seed", [0])
def test_greedy_generation_equals_hf(tmp_path, make_llama, seed):
    hf = make_llama(seed)
    hf.save_pretrained(tmp_path)
    model, _ = from_hf(tmp_path)
    prompt = tokens(seed, (1, 5))
    expected = hf.generate(prompt, do_sample=False, max_new_tokens=16, min_new_tokens=16, pad_token_id=0)
    ours = model.generate(prompt, 16, temperature=0)
    assert ours.tolist() == expected.tolist()


@pytest.mark.parametrize("tied", [False, True])
def test_export_loads_in_transformers_with_same_logits(tmp_path, make_llama, load_hf, tied):
    make_llama(2, tie_word_embeddings=tied).save_pretrained(tmp_path / "hf")
    model, _ = from_hf(tmp_path / "hf")
    assert model.config.tie_embeddings == tied
    to_hf(model, tmp_path / "out")
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["model_type"] == "llama" and config["num_key_value_heads"] == 2
    assert ("lm_head.weight" in load_file(tmp_path / "out" / "model.safetensors")) == (not tied)
    reloaded = load_hf(tmp_path / "out")
    x = tokens(2)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(x).logits, model(x)[0], atol=1e-4, rtol=1e-4)


def test_bfloat16_weights_keep_their_dtype(tmp_path, make_llama):
    make_llama(3, dtype=torch.bfloat16).save_pretrained(tmp_path / "hf")
    model, _ = from_hf(tmp_path / "hf")
    assert model.tok_emb.weight.dtype == torch.bfloat16
    to_hf(model, tmp_path / "out")
    assert {t.dtype for t in load_file(tmp_path / "out" / "model.safetensors").values()} == {torch.bfloat16}
    assert json.loads((tmp_path / "out" / "config.json").read_text())["dtype"] == "bfloat16"


def test_sharded_weights_are_read(tmp_path, make_llama):
    hf = make_llama(4)
    hf.save_pretrained(tmp_path, max_shard_size="20KB")
    assert (tmp_path / "model.safetensors.index.json").is_file()
    model, _ = from_hf(tmp_path)
    x = tokens(4)
    with torch.no_grad():
        torch.testing.assert_close(model(x)[0], hf(x).logits, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("changes, message", [
    ({"rope_parameters": {"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0}},
     r"rope_type = \"linear\" is not supported"),
    ({"rope_parameters": None, "rope_scaling": {"type": "dynamic", "factor": 2.0}}, r"rope_scaling = .* is not supported"),
    ({"attention_bias": True}, r"attention_bias = true is not supported"),
    ({"mlp_bias": True}, r"mlp_bias = true is not supported"),
    ({"head_dim": 16}, r"head_dim = 16 is not supported \(seqlab's head width is .* = 8\)"),
    ({"hidden_act": "gelu"}, r"hidden_act = \"gelu\" is not supported"),
])
def test_unsupported_config_is_refused(tmp_path, make_llama, edit_config, changes, message):
    make_llama(5).save_pretrained(tmp_path)
    edit_config(tmp_path, **changes)
    with pytest.raises(ConfigError, match=message):
        from_hf(tmp_path)


@pytest.mark.parametrize("axis, value", [("bias", True), ("activation", "geglu"), ("norm", "layernorm"),
                                         ("norm_position", "deepnorm")])
def test_export_refuses_what_llama_cannot_express(tmp_path, axis, value):
    overrides = {"norm": "rmsnorm", "activation": "swiglu", "bias": False, axis: value}
    config = ModelConfig(n_layer=1, n_head=2, d_model=16, block_size=8, position="rope", **overrides)
    with pytest.raises(ConfigError, match=rf"model\.{axis} = .* cannot be exported: Hugging Face's LLaMA"):
        to_hf(TransformerLM(config, vocab_size=20), tmp_path)
