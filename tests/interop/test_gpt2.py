"""GPT-2 through `seqlab.interop`: parity with `transformers.GPT2LMHeadModel` on tiny random models
(logits in float32 and float64, greedy generations), export back to Hugging Face, and the errors."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from seqlab.config import ModelConfig
from seqlab.errors import CheckpointError, ConfigError
from seqlab.interop import from_hf, to_hf
from seqlab.models.transformer import TransformerLM

pytest.importorskip("transformers")

TOLERANCE = {torch.float32: 1e-4, torch.float64: 1e-9}


def tokens(seed: int, shape=(2, 16), vocab: int = 100) -> torch.Tensor:
    return torch.randint(0, vocab, shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("seed", [0])
def test_logits_equal_hf(tmp_path, make_gpt2, dtype, seed):
    hf = make_gpt2(seed, dtype=dtype)
    hf.save_pretrained(tmp_path)
    model, tokenizer = from_hf(tmp_path)
    assert tokenizer is None and model.tok_emb.weight.dtype == dtype and not model.training
    assert model.lm_head.weight is model.tok_emb.weight
    x = tokens(seed)
    with torch.no_grad():
        expected, ours = hf(x).logits, model(x)[0]
    tol = TOLERANCE[dtype]
    torch.testing.assert_close(ours, expected, atol=tol, rtol=tol)


@pytest.mark.parametrize("seed", [0])
def test_greedy_generation_equals_hf(tmp_path, make_gpt2, seed):
    hf = make_gpt2(seed)
    hf.save_pretrained(tmp_path)
    model, _ = from_hf(tmp_path)
    prompt = tokens(seed, (1, 5))
    expected = hf.generate(prompt, do_sample=False, max_new_tokens=16, min_new_tokens=16, pad_token_id=0)
    ours = model.generate(prompt, 16, temperature=0)  # the cached, functional decode path
    assert ours.tolist() == expected.tolist()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_export_loads_in_transformers_with_same_logits(tmp_path, make_gpt2, load_hf, dtype):
    make_gpt2(2, dtype=dtype).save_pretrained(tmp_path / "hf")
    model, _ = from_hf(tmp_path / "hf")
    to_hf(model, tmp_path / "out")
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["model_type"] == "gpt2" and config["architectures"] == ["GPT2LMHeadModel"]
    stored = load_file(tmp_path / "out" / "model.safetensors")
    assert "lm_head.weight" not in stored  # tied: written once, as transformers writes it
    assert {t.dtype for t in stored.values()} == {dtype}
    reloaded = load_hf(tmp_path / "out", dtype)
    x = tokens(2)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(x).logits, model(x)[0], atol=TOLERANCE[dtype], rtol=TOLERANCE[dtype])


def test_bias_free_seqlab_model_exports_with_zero_biases(tmp_path, load_hf):
    torch.manual_seed(3)
    config = ModelConfig(n_layer=2, n_head=2, d_model=16, block_size=16, bias=False, activation="gelu")
    model = TransformerLM(config, vocab_size=50).double().eval()
    to_hf(model, tmp_path)
    reloaded = load_hf(tmp_path, torch.float64)
    x = tokens(3, vocab=50)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(x).logits, model(x)[0], atol=1e-9, rtol=1e-9)


def test_bare_gpt2model_names_are_read(tmp_path, make_gpt2):
    """The original GPT-2 checkpoints name tensors `h.0...` (a GPT2Model) and carry mask buffers."""
    hf = make_gpt2(4)
    hf.save_pretrained(tmp_path)
    stored = load_file(tmp_path / "model.safetensors")
    bare = {name.removeprefix("transformer."): t for name, t in stored.items()}
    bare["h.0.attn.bias"] = torch.ones(1, 1, 32, 32)  # the causal-mask buffer of older versions
    save_file(bare, tmp_path / "model.safetensors", metadata={"format": "pt"})
    model, _ = from_hf(tmp_path)
    x = tokens(4)
    with torch.no_grad():
        torch.testing.assert_close(model(x)[0], hf(x).logits, atol=1e-4, rtol=1e-4)


def test_shape_mismatch_names_tensor_and_both_shapes(tmp_path, make_gpt2):
    make_gpt2(5).save_pretrained(tmp_path)
    stored = load_file(tmp_path / "model.safetensors")
    stored["transformer.h.1.mlp.c_fc.weight"] = torch.zeros(32, 100)
    save_file(stored, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match=r"transformer\.h\.1\.mlp\.c_fc\.weight has shape \[32, 100\].*"
                                              r"implies \[32, 128\]"):
        from_hf(tmp_path)


def test_missing_tensor_is_named(tmp_path, make_gpt2):
    make_gpt2(5).save_pretrained(tmp_path)
    stored = load_file(tmp_path / "model.safetensors")
    del stored["transformer.ln_f.bias"]
    save_file(stored, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match=r"missing transformer\.ln_f\.bias"):
        from_hf(tmp_path)


@pytest.mark.parametrize("changes, message", [
    ({"model_type": "bert"}, r"model_type = \"bert\" is not supported; seqlab imports gpt2, llama"),
    ({"activation_function": "gelu_fast"}, r"activation_function = \"gelu_fast\" is not supported"),
    ({"scale_attn_by_inverse_layer_idx": True}, r"scale_attn_by_inverse_layer_idx = true is not supported"),
])
def test_unsupported_config_is_refused(tmp_path, make_gpt2, edit_config, changes, message):
    make_gpt2(6).save_pretrained(tmp_path)
    edit_config(tmp_path, **changes)
    with pytest.raises(ConfigError, match=message):
        from_hf(tmp_path)


def test_missing_files_are_one_line_errors(tmp_path, make_gpt2):
    with pytest.raises(CheckpointError, match="has no config.json"):
        from_hf(tmp_path)
    make_gpt2(7).save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").rename(tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="pickled pytorch_model.bin"):
        from_hf(tmp_path)


@pytest.mark.parametrize("axis, value", [("norm_position", "post"), ("parallel_block", True),
                                         ("activation", "swiglu"), ("norm", "rmsnorm"), ("n_kv_head", 1)])
def test_export_refuses_what_gpt2_cannot_express(tmp_path, axis, value):
    config = ModelConfig(n_layer=1, n_head=2, d_model=16, block_size=8, **{axis: value})
    with pytest.raises(ConfigError, match=rf"model\.{axis} = .* cannot be exported: Hugging Face's GPT-2"):
        to_hf(TransformerLM(config, vocab_size=20), tmp_path)
    assert not (tmp_path / "config.json").exists()


@pytest.mark.parametrize("position", ["alibi", "sinusoidal", "relative", "none"])
def test_export_refuses_other_positions(tmp_path, position):
    config = ModelConfig(n_layer=1, n_head=2, d_model=16, block_size=8, position=position)
    with pytest.raises(ConfigError, match=rf"model\.position = '{position}' cannot be exported"):
        to_hf(TransformerLM(config, vocab_size=20), tmp_path)
