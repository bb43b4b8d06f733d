"""Mixtral through `seqlab.interop`: parity with `transformers.MixtralForCausalLM` on tiny random
models (logits, the experts the routers pick for every token, the load-balancing loss, greedy
generations), export back to Hugging Face, transformers 5's stacked-expert files, and the errors."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from seqlab.config import ModelConfig
from seqlab.errors import ConfigError
from seqlab.interop import from_hf, to_hf
from seqlab.models.transformer import TransformerLM
from seqlab.nn.moe import load_balancing_loss, recorded_router_logits, route

from .conftest import randomize

transformers = pytest.importorskip("transformers")
modeling_mixtral = pytest.importorskip("transformers.models.mixtral.modeling_mixtral")

N_EXPERTS, TOP_K = 4, 2


def mixtral_model(seed: int, *, dtype=torch.float32, **overrides):
    config = transformers.MixtralConfig(
        hidden_size=32, num_attention_heads=4, num_key_value_heads=2, intermediate_size=48, num_hidden_layers=2,
        vocab_size=100, max_position_embeddings=64, num_local_experts=N_EXPERTS, num_experts_per_tok=TOP_K,
        bos_token_id=None, eos_token_id=None, pad_token_id=None, sliding_window=None,
        **{"rope_theta": 500.0, "router_aux_loss_coef": 0.02, **overrides})
    torch.manual_seed(seed)
    model = transformers.MixtralForCausalLM(config)
    model.config._attn_implementation = "sdpa"
    return randomize(model, seed).to(dtype).eval()


def tokens(seed: int, shape=(2, 16)) -> torch.Tensor:
    return torch.randint(0, 100, shape, generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def imported(tmp_path):
    hf = mixtral_model(0)
    hf.save_pretrained(tmp_path / "hf")
    model, _ = from_hf(tmp_path / "hf")
    return hf, model


def test_config_is_read(imported):
    _, model = imported
    c = model.config
    assert (c.n_experts, c.experts_per_token, c.router_aux_loss) == (N_EXPERTS, TOP_K, 0.02)
    assert (c.position, c.norm, c.activation, c.bias, c.kv_heads, c.d_ff) == ("rope", "rmsnorm", "swiglu", False, 2, 48)


def test_logits_equal_hf_float32(imported):
    hf, model = imported
    x = tokens(0)
    with torch.no_grad():
        torch.testing.assert_close(model(x)[0], hf(x).logits, atol=1e-5, rtol=1e-5)


def test_router_picks_the_same_experts_for_every_token(imported):
    hf, model = imported
    x = tokens(1)
    with torch.no_grad(), recorded_router_logits(model) as ours:
        model(x)
        theirs = hf(x, output_router_logits=True).router_logits
    assert len(ours) == len(theirs) == 2
    for layer, (a, b) in enumerate(zip(ours, theirs)):
        torch.testing.assert_close(a, b.reshape(a.shape), atol=1e-5, rtol=1e-5)
        ids, gates = route(a, TOP_K)
        their_probs = torch.softmax(b.float(), dim=-1)
        their_gates, their_ids = torch.topk(their_probs, TOP_K, dim=-1)
        assert torch.equal(ids, their_ids), f"layer {layer}: the experts differ"
        torch.testing.assert_close(gates, their_gates / their_gates.sum(-1, keepdim=True))


def test_training_loss_adds_hf_load_balancing_loss(imported):
    """Train mode, with targets: our loss is the LM loss (eval mode's) plus the coefficient times
    Hugging Face's `aux_loss` of the same inputs (it adds the same to its own loss with labels)."""
    hf, model = imported
    x, y = tokens(2), tokens(3)
    with torch.no_grad():
        out = hf(x, output_router_logits=True)
        model.train()
        ours = model(x, y)[1]
        model.eval()
        lm = model(x, y)[1]
    expected_aux = modeling_mixtral.load_balancing_loss_func(out.router_logits, N_EXPERTS, TOP_K)
    torch.testing.assert_close(out.aux_loss, expected_aux)
    assert expected_aux > 1.0  # not the zero of a missing term
    torch.testing.assert_close(ours - lm, 0.02 * expected_aux, atol=1e-6, rtol=1e-5)


def test_load_balancing_loss_equals_hf_function():
    generator = torch.Generator().manual_seed(3)
    logits = tuple(torch.randn(40, 6, generator=generator) * 2 for _ in range(3))
    for k in (1, 2, 3):
        torch.testing.assert_close(load_balancing_loss(logits, k),
                                   modeling_mixtral.load_balancing_loss_func(logits, 6, k))


def test_greedy_generation_equals_hf(imported):
    hf, model = imported
    prompt = tokens(4, (1, 5))
    expected = hf.generate(prompt, do_sample=False, max_new_tokens=12, min_new_tokens=12, pad_token_id=0)
    assert model.generate(prompt, 12, temperature=0).tolist() == expected.tolist()


def test_export_loads_in_transformers_with_same_logits(tmp_path, imported, load_hf):
    _, model = imported
    to_hf(model, tmp_path / "out")
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["model_type"] == "mixtral" and config["num_local_experts"] == N_EXPERTS
    assert config["num_experts_per_tok"] == TOP_K
    reloaded = load_hf(tmp_path / "out")
    assert type(reloaded).__name__ == "MixtralForCausalLM"
    x = tokens(5)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(x).logits, model(x)[0], atol=1e-5, rtol=1e-5)


def test_a_seqlab_mixture_exports_as_mixtral(tmp_path, load_hf):
    config = ModelConfig(n_layer=2, n_head=4, n_kv_head=2, d_model=32, block_size=16, bias=False, norm="rmsnorm",
                         position="rope", activation="swiglu", tie_embeddings=False, n_experts=3,
                         experts_per_token=1)
    torch.manual_seed(6)
    model = randomize(TransformerLM(config, vocab_size=30), 6).eval()
    to_hf(model, tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "mixtral"
    reloaded = load_hf(tmp_path)
    x = torch.randint(0, 30, (2, 16), generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        torch.testing.assert_close(reloaded(x).logits, model(x)[0], atol=1e-5, rtol=1e-5)
    again, _ = from_hf(tmp_path)
    assert again.config == dataclasses.replace(config, d_ff=config.hidden_width)  # the width is written out


def test_stacked_expert_files_are_read(tmp_path, imported):
    """transformers 5's in-memory layout (router at `mlp.gate`, experts as `gate_up_proj` and
    `down_proj`), written as a file, imports to the same model."""
    hf, model = imported
    hf.save_pretrained(tmp_path)
    stacked = {name: t.detach().contiguous() for name, t in hf.state_dict().items()}
    assert any(name.endswith("experts.gate_up_proj") for name in stacked)
    save_file(stacked, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    again, _ = from_hf(tmp_path)
    x = tokens(7)
    with torch.no_grad():
        torch.testing.assert_close(again(x)[0], model(x)[0], atol=0, rtol=0)


@pytest.mark.parametrize("changes, message", [
    ({"sliding_window": 8}, r"sliding_window = 8 is not supported"),
    ({"router_jitter_noise": 0.1}, r"router_jitter_noise = 0.1 is not supported"),
    ({"num_experts_per_tok": 5}, r"num_experts_per_tok = 5 is not in 1..num_local_experts = 4"),
])
def test_unsupported_config_is_refused(tmp_path, edit_config, changes, message):
    mixtral_model(8).save_pretrained(tmp_path)
    edit_config(tmp_path, **changes)
    with pytest.raises(ConfigError, match=message):
        from_hf(tmp_path)


def test_a_missing_expert_is_named(tmp_path):
    mixtral_model(9).save_pretrained(tmp_path)
    tensors = load_file(tmp_path / "model.safetensors")
    del tensors["model.layers.1.block_sparse_moe.experts.3.w2.weight"]
    save_file(tensors, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(Exception, match=r"missing model\.layers\.1\.block_sparse_moe\.experts\.3\.w2\.weight"):
        from_hf(tmp_path)


def test_export_refuses_a_mixture_without_rope(tmp_path):
    config = ModelConfig(n_layer=1, n_head=2, d_model=16, block_size=8, n_experts=2)
    with pytest.raises(ConfigError, match=r"model\.position = 'learned' cannot be exported: Hugging Face's Mixtral"):
        to_hf(TransformerLM(config, vocab_size=20), tmp_path)


def test_import_hf_and_export_hf_commands_round_trip(tmp_path, capsys, load_hf, tiny_tokenizer_json):
    from seqlab.cli import main

    hf = mixtral_model(10)
    hf.save_pretrained(tmp_path / "hf")
    code = main(["import-hf", str(tmp_path / "hf"), "--out", str(tmp_path / "run"),
                 "--tokenizer", str(tiny_tokenizer_json)])
    assert code == 0, capsys.readouterr().err
    assert main(["export-hf", str(tmp_path / "run"), "--out", str(tmp_path / "out")]) == 0
    capsys.readouterr()
    assert json.loads((tmp_path / "out" / "config.json").read_text())["model_type"] == "mixtral"
    x = tokens(10)
    with torch.no_grad():
        torch.testing.assert_close(load_hf(tmp_path / "out")(x).logits, hf(x).logits, atol=1e-5, rtol=1e-5)
