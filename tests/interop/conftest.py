"""Tiny random Hugging Face models and a tiny tokenizer, built offline in tmp_path.

The references are `transformers`' own classes; every parameter (norm gains and biases included,
which Hugging Face initialises to 1 and 0) is randomised so that a swapped or dropped tensor shows.
"""

from __future__ import annotations

import json

import pytest
import torch

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "To be, or not to be, that is the question.",
    "Whether 'tis nobler in the mind to suffer the slings and arrows.",
    "Café, naïve, façade: ünïcödé wörds and 中文 too.",
]


def randomize(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Every parameter drawn afresh: N(1, 0.1) for norm gains, N(0, 0.2) for the rest."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=generator, dtype=torch.float64)
            gain = p.ndim == 1 and ("ln_" in name or "norm" in name) and name.endswith("weight")
            p.copy_((1.0 + 0.1 * noise) if gain else 0.2 * noise)
    return model


@pytest.fixture
def tiny_tokenizer_json(tmp_path):
    """A byte-level BPE tokenizer.json (GPT-2's kind) trained on a few sentences; its path."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=90, show_progress=False)
    tok.train_from_iterator(SENTENCES * 5, trainer)
    path = tmp_path / "tiny-tokenizer" / "tokenizer.json"
    path.parent.mkdir()
    tok.save(str(path))
    return path


def gpt2_model(seed: int, *, vocab_size: int = 100, dtype=torch.float32, **overrides):
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(n_layer=2, n_head=4, n_embd=32, vocab_size=vocab_size, n_positions=32,
                                     bos_token_id=None, eos_token_id=None, **overrides)
    torch.manual_seed(seed)
    model = transformers.GPT2LMHeadModel(config)
    model.config._attn_implementation = "sdpa"
    return randomize(model, seed).to(dtype).eval()


def llama_model(seed: int, *, vocab_size: int = 100, dtype=torch.float32, **overrides):
    transformers = pytest.importorskip("transformers")
    config = transformers.LlamaConfig(hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
                                      intermediate_size=64, num_hidden_layers=2, vocab_size=vocab_size,
                                      max_position_embeddings=64, bos_token_id=None, eos_token_id=None,
                                      pad_token_id=None, **{"rope_theta": 500.0, **overrides})
    torch.manual_seed(seed)
    model = transformers.LlamaForCausalLM(config)
    # SDPA, not eager: eager LLaMA attention takes its softmax in float32 even for float64 models.
    model.config._attn_implementation = "sdpa"
    return randomize(model, seed).to(dtype).eval()


@pytest.fixture
def make_gpt2():
    return gpt2_model


@pytest.fixture
def make_llama():
    return llama_model


@pytest.fixture
def edit_config():
    """A function that changes keys of a saved config.json (None writes null)."""
    def edit(folder, **changes) -> None:
        path = folder / "config.json"
        values = json.loads(path.read_text())
        values.update(changes)
        path.write_text(json.dumps(values))
    return edit


@pytest.fixture
def load_hf():
    """`AutoModelForCausalLM.from_pretrained(folder)` in `dtype`, eval mode, SDPA attention (the dtype
    argument is `dtype` from transformers 4.56 on, `torch_dtype` before)."""
    transformers = pytest.importorskip("transformers")
    from packaging.version import Version

    key = "dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype"

    def load(folder, dtype=torch.float32):
        return transformers.AutoModelForCausalLM.from_pretrained(folder, attn_implementation="sdpa",
                                                                 **{key: dtype}).eval()
    return load
