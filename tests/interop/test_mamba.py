"""Mamba through `seqlab.interop`: parity with `transformers.MambaForCausalLM` (its pure-PyTorch path)
on tiny random models (float32: its slow path computes the scan in float32 whatever the weights),
logits and greedy generations; export back to Hugging
Face (tied and untied) with the same logits; a run directory through import-hf and export-hf; and
the errors."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from seqlab.errors import CheckpointError, ConfigError
from seqlab.interop import export_hf_run, from_hf, import_hf_run, to_hf
from seqlab.models.mamba import MambaLM

transformers = pytest.importorskip("transformers")


def tokens(seed: int, shape=(2, 16)) -> torch.Tensor:
    return torch.randint(0, 100, shape, generator=torch.Generator().manual_seed(seed))


def make_mamba(seed: int, *, dtype=torch.float32, **overrides) -> torch.nn.Module:
    """A tiny MambaForCausalLM with every parameter drawn afresh (norm gains N(1, 0.1), the rest
    N(0, 0.2)), so that a swapped or dropped tensor shows."""
    config = transformers.MambaConfig(**{"vocab_size": 100, "hidden_size": 32, "state_size": 8, "num_hidden_layers": 2,
                                         "conv_kernel": 3, "expand": 2, "time_step_rank": 5, "bos_token_id": None,
                                         "eos_token_id": None, "pad_token_id": None, **overrides})
    torch.manual_seed(seed)
    model = transformers.MambaForCausalLM(config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=generator, dtype=torch.float64)
            p.copy_(1.0 + 0.1 * noise if "norm" in name else 0.2 * noise)
    return model.to(dtype).eval()


def load_hf(folder, dtype=torch.float32):
    return transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).eval()


def test_logits_equal_hf_float32(tmp_path):
    hf = make_mamba(0, tie_word_embeddings=False)
    hf.save_pretrained(tmp_path)
    model, _ = from_hf(tmp_path)
    assert isinstance(model, MambaLM) and model.config.time_step_rank == 5 and model.config.d_conv == 3
    assert not model.config.tie_embeddings
    x = tokens(0)
    with torch.no_grad():
        torch.testing.assert_close(model(x)[0], hf(x).logits, atol=1e-4, rtol=1e-4)


def test_greedy_generation_equals_hf(tmp_path):
    hf = make_mamba(2)
    hf.save_pretrained(tmp_path)
    model, _ = from_hf(tmp_path)
    prompt = tokens(2, (1, 5))
    expected = hf.generate(prompt, do_sample=False, max_new_tokens=12, min_new_tokens=12)
    assert model.generate(prompt, 12, temperature=0).tolist() == expected.tolist()


@pytest.mark.parametrize("tied", [False, True])
def test_export_loads_in_transformers_with_same_logits(tmp_path, tied):
    make_mamba(3, tie_word_embeddings=tied, use_bias=True).save_pretrained(tmp_path / "hf")
    model, _ = from_hf(tmp_path / "hf")
    assert model.config.tie_embeddings == tied and model.config.bias
    to_hf(model, tmp_path / "out")
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["model_type"] == "mamba" and config["time_step_rank"] == 5 and config["conv_kernel"] == 3
    assert ("lm_head.weight" in load_file(tmp_path / "out" / "model.safetensors")) == (not tied)
    reloaded = load_hf(tmp_path / "out")
    x = tokens(3)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(x).logits, model(x)[0], atol=1e-4, rtol=1e-4)


def test_run_directory_round_trip(tmp_path, tiny_tokenizer_json):
    make_mamba(4).save_pretrained(tmp_path / "hf")
    run = import_hf_run(tmp_path / "hf", tmp_path / "run", tokenizer_file=tiny_tokenizer_json)
    assert 'family = "mamba"' in (run / "config.toml").read_text()
    export_hf_run(run, tmp_path / "out")
    x = tokens(4)
    with torch.no_grad():
        torch.testing.assert_close(load_hf(tmp_path / "out")(x).logits, load_hf(tmp_path / "hf")(x).logits,
                                   atol=1e-5, rtol=1e-5)


def test_older_embedding_name_is_read(tmp_path):
    hf = make_mamba(5)
    hf.save_pretrained(tmp_path)
    tensors = load_file(tmp_path / "model.safetensors")
    tensors["backbone.embedding.weight"] = tensors.pop("backbone.embeddings.weight")
    from safetensors.torch import save_file
    save_file(tensors, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    model, _ = from_hf(tmp_path)
    x = tokens(5)
    with torch.no_grad():
        torch.testing.assert_close(model(x)[0], hf(x).logits, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("changes, error, message", [
    ({"hidden_act": "gelu"}, ConfigError, r"hidden_act = \"gelu\" is not supported"),
    ({"intermediate_size": 50}, ConfigError, r"intermediate_size = 50 is not supported"),
    ({"state_size": 4}, CheckpointError, r"has shape \[.*\], but config.json implies"),
])
def test_unsupported_or_inconsistent_config_is_refused(tmp_path, changes, error, message):
    make_mamba(6).save_pretrained(tmp_path)
    values = json.loads((tmp_path / "config.json").read_text())
    values.update(changes)
    (tmp_path / "config.json").write_text(json.dumps(values))
    with pytest.raises(error, match=message):
        from_hf(tmp_path)


def test_import_hf_and_export_hf_commands_round_trip(tmp_path, capsys, tiny_tokenizer_json):
    from seqlab.cli import main

    hf = make_mamba(7)
    hf.save_pretrained(tmp_path / "hf")
    code = main(["import-hf", str(tmp_path / "hf"), "--out", str(tmp_path / "run"),
                 "--tokenizer", str(tiny_tokenizer_json)])
    assert code == 0, capsys.readouterr().err
    assert main(["export-hf", str(tmp_path / "run"), "--out", str(tmp_path / "out")]) == 0
    capsys.readouterr()
    assert json.loads((tmp_path / "out" / "config.json").read_text())["model_type"] == "mamba"
    x = tokens(7)
    with torch.no_grad():
        torch.testing.assert_close(load_hf(tmp_path / "out")(x).logits, hf(x).logits, atol=1e-5, rtol=1e-5)


def test_a_bad_folder_is_one_line_and_exit_2(tmp_path, capsys, tiny_tokenizer_json):
    from seqlab.cli import main

    make_mamba(8).save_pretrained(tmp_path / "hf")
    values = json.loads((tmp_path / "hf" / "config.json").read_text())
    (tmp_path / "hf" / "config.json").write_text(json.dumps({**values, "hidden_act": "gelu"}))
    capsys.readouterr()  # save_pretrained's progress bar
    code = main(["import-hf", str(tmp_path / "hf"), "--out", str(tmp_path / "run"),
                 "--tokenizer", str(tiny_tokenizer_json)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and 'hidden_act = "gelu" is not supported' in err
    assert not (tmp_path / "run").exists()
