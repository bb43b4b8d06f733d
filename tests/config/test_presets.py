"""The decoder presets: each loads, builds, has the axes of the model it stands for, and differs from
nanoGPT's shakespeare-char only in [model]'s variant axes, so that they compare fairly."""

import dataclasses

import pytest
import torch

from seqlab.config import load_config, preset_names
from seqlab.families import build_model

VOCAB = 65  # tiny Shakespeare's characters
SIZE_FIELDS = ("family", "n_layer", "n_head", "d_model", "block_size", "dropout")

# The axes each preset's model is known by, as the issue lists them.
AXES = {
    "gpt3": {"norm": "layernorm", "norm_position": "pre", "position": "learned", "activation": "gelu",
             "bias": True},
    "opt": {"norm": "layernorm", "norm_position": "pre", "position": "learned", "activation": "relu",
            "bias": True},
    "palm": {"norm": "layernorm", "position": "rope", "activation": "swiglu", "bias": False,
             "parallel_block": True, "n_kv_head": 1, "tie_embeddings": True},
    "bloom": {"norm": "layernorm", "position": "alibi", "activation": "gelu", "bias": True},
    "llama": {"norm": "rmsnorm", "norm_eps": 1e-6, "position": "rope", "activation": "swiglu", "bias": False,
              "tie_embeddings": False},
    "gopher": {"norm": "rmsnorm", "position": "relative", "activation": "gelu"},
    "galactica": {"norm": "layernorm", "position": "learned", "activation": "gelu", "bias": False},
    "glm": {"norm_position": "deepnorm", "position": "rope", "activation": "geglu"},
}


def test_presets_command_lists_every_decoder_preset():
    assert set(AXES) <= set(preset_names())


@pytest.mark.parametrize("name", sorted(AXES))
def test_preset_has_its_models_axes(name):
    model = load_config(name).model
    got = {key: getattr(model, key) for key in AXES[name]}
    assert got == AXES[name]


@pytest.mark.parametrize("name", sorted(AXES))
def test_preset_differs_from_nanogpt_only_in_model_axes(name):
    base, config = load_config("shakespeare-char"), load_config(name)
    for section in ("data", "tokenizer", "train", "sample"):
        assert getattr(config, section) == getattr(base, section), section
    assert {f: getattr(config.model, f) for f in SIZE_FIELDS} == {f: getattr(base.model, f) for f in SIZE_FIELDS}


@pytest.mark.parametrize("name", sorted(AXES))
def test_preset_builds_and_predicts(name):
    torch.manual_seed(0)
    config = load_config(name).model
    model = build_model(config, VOCAB).eval()
    idx = torch.randint(VOCAB, (2, config.block_size))
    logits, loss = model(idx, idx)
    assert logits.shape == (2, config.block_size, VOCAB)
    assert torch.isfinite(loss)
    # Weight tying is the one axis visible in the parameters themselves.
    assert (model.lm_head.weight is model.tok_emb.weight) == config.tie_embeddings


def test_multi_query_palm_has_one_key_value_head():
    config = load_config("palm").model
    assert config.kv_heads == 1 and config.n_head == 4
    # Fewer key/value heads: PaLM is smaller than the same preset with multi-head attention.
    mha = dataclasses.replace(config, n_kv_head=0)
    assert (sum(p.numel() for p in build_model(config, VOCAB).parameters())
            < sum(p.numel() for p in build_model(mha, VOCAB).parameters()))


@pytest.mark.parametrize("name, extrapolates", [("gpt3", False), ("galactica", False), ("palm", True),
                                                ("bloom", True), ("llama", True), ("gopher", True),
                                                ("glm", True)])
def test_only_learned_positions_bound_the_context(name, extrapolates):
    model = build_model(load_config(name).model, VOCAB)
    assert (model.max_context is None) == extrapolates
