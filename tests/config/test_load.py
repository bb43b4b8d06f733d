"""Config: presets, TOML files, dotted overrides, and errors that name the key."""

import tomllib
from dataclasses import FrozenInstanceError

import pytest

from seqlab.config import (
    Config,
    config_to_toml,
    load_config,
    override,
    parse_overrides,
    preset_names,
    with_section,
)
from seqlab.config.load import build_config
from seqlab.errors import ConfigError


def test_shakespeare_char_preset_is_nanogpts_cpu_configuration():
    config = load_config("shakespeare-char")
    m, t = config.model, config.train
    assert (m.n_layer, m.n_head, m.d_model, m.block_size, m.dropout) == (4, 4, 128, 64, 0.0)
    # nanoGPT's but for the learning rate (2e-3, not 1e-3) and the precision (see the preset's comment)
    assert (t.batch_size, t.max_steps, t.lr, t.min_lr, t.warmup_steps, t.eval_steps) == (12, 2000, 2e-3, 1e-4, 100, 20)
    assert t.dtype == "auto"
    assert t.decay_steps == 2000
    assert config.tokenizer.kind == "char" and config.data.corpus == "shakespeare"


def test_every_preset_loads():
    assert "shakespeare-char" in preset_names()
    for name in preset_names():
        assert isinstance(load_config(name), Config)


def test_overrides_are_typed_from_toml_and_plain_strings():
    config = load_config("shakespeare-char", ["--model.n_layer=6", "train.lr=3e-4", "data.corpus=my file.txt",
                                              "model.bias=true", 'sample.stop="\\n\\n"'])
    assert config.model.n_layer == 6 and config.train.lr == 3e-4
    assert config.data.corpus == "my file.txt" and config.model.bias is True
    assert config.sample.stop == "\n\n"
    assert parse_overrides(["--train.max_steps=5"]) == {"train": {"max_steps": 5}}


def test_int_is_accepted_for_float_but_not_bool_for_int():
    assert load_config(None, ["train.lr=1"]).train.lr == 1.0
    with pytest.raises(ConfigError, match="train.max_steps"):
        load_config(None, ["train.max_steps=true"])


@pytest.mark.parametrize("overrides, words", [
    (["model.n_layr=3"], ["model.n_layr", "did you mean 'n_layer'"]),
    (["model.family=gpt"], ["model.family", "transformer"]),
    (["tokenizer.kind=chars"], ["tokenizer.kind", "did you mean 'char'"]),
    (["train.lr=fast"], ["train.lr", "a number"]),
    (["model.d_model=130"], ["model.d_model", "multiple of model.n_head"]),
    (["data.val_fraction=1.5"], ["data.val_fraction", "between 0 and 1"]),
    (["train.device=tpu"], ["train.device", "cuda"]),
    (["modle.n_layer=3"], ["unknown section [modle]", "did you mean 'model'"]),
    (["n_layer=3"], ["of the form --section.key=value"]),
])
def test_bad_values_name_the_key_and_what_is_allowed(overrides, words):
    with pytest.raises(ConfigError) as info:
        load_config("shakespeare-char", overrides)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_unknown_preset_suggests_the_closest(tmp_path):
    with pytest.raises(ConfigError, match="did you mean 'shakespeare-char'"):
        load_config("shakespeare-chr")
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")


def test_toml_file_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[model\nn_layer = 2\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    bad.write_text("[model]\nn_layer = 2\nwidth = 3\n")
    with pytest.raises(ConfigError, match="unknown key model.width"):
        load_config(bad)


def test_toml_round_trip_is_exact(tmp_path):
    config = load_config("shakespeare-char", ['sample.prompt="Ünïcode \\"quoted\\"\\ttab"', "train.lr=0.00123"])
    text = config_to_toml(config)
    assert build_config(tomllib.loads(text)) == config
    path = tmp_path / "c.toml"
    path.write_text(text)
    assert load_config(path) == config


def test_config_is_immutable_and_changes_are_checked():
    config = load_config(None)
    with pytest.raises(FrozenInstanceError):
        config.model.n_layer = 3
    assert override(config, ["model.n_layer=2"]).model.n_layer == 2
    assert with_section(config, "train", max_steps=7).train.max_steps == 7
    with pytest.raises(ConfigError):
        with_section(config, "model", n_head=3)
