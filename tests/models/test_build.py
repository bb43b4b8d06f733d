import dataclasses

import pytest

from seqlab.config.schema import ModelConfig
from seqlab.errors import ConfigError
from seqlab.families import build_model
from seqlab.models import TransformerLM


def test_transformer_family_builds_a_transformer_lm():
    model = build_model(ModelConfig(n_layer=1, n_head=1, d_model=8, block_size=4), vocab_size=7)
    assert isinstance(model, TransformerLM)
    assert model.block_size == 4 and model.vocab_size == 7


def test_unknown_family_is_a_config_error():
    config = dataclasses.replace(ModelConfig(), family="no-such-family")
    with pytest.raises(ConfigError, match="no-such-family"):
        build_model(config, vocab_size=7)
