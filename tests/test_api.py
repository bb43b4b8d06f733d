"""The Python API the README shows: seqlab.train -> run dir, seqlab.load -> (model, tokenizer),
seqlab.evaluate, model.generate."""

import math

import torch

import seqlab
from seqlab.config import load_config


def test_train_load_generate_evaluate(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQLAB_CACHE", str(tmp_path / "cache"))
    corpus = tmp_path / "abc.txt"
    corpus.write_text("abcabcabd\n" * 300)
    config = load_config(None, [f"data.corpus={corpus}", "model.n_layer=1", "model.n_head=2", "model.d_model=16",
                                "model.block_size=16", "train.max_steps=150", "train.batch_size=8", "train.lr=1e-2",
                                "train.warmup_steps=5", "train.eval_every=0", "train.checkpoint_every=0",
                                "train.device=cpu",
                                # the 5 characters alone: 256 byte tokens more take this tiny model twice the steps
                                "tokenizer.byte_fallback=false"])
    run_dir = seqlab.train(config, out=tmp_path / "run", progress=False)
    model, tokenizer = seqlab.load(run_dir)
    assert not model.training and tokenizer.kind == "char"

    idx = torch.tensor([tokenizer.encode("abcab")])
    out = model.generate(idx, max_new_tokens=8, temperature=0, use_cache=True)
    assert out.shape == (1, 13) and torch.equal(out[:, :5], idx)
    assert tokenizer.decode(out[0]) in corpus.read_text()  # the pattern is learned

    result = seqlab.evaluate(run_dir)
    assert result["loss"] < 0.5 and math.isclose(result["perplexity"], math.exp(result["loss"]))
    assert math.isclose(result["bits_per_char"], result["loss"] / math.log(2), rel_tol=1e-6)  # one char per token


def test_api_names_survive_importing_every_subpackage():
    import importlib

    for name in ("config", "data", "tokenizers", "nn", "models", "generate", "training", "experiments"):
        importlib.import_module(f"seqlab.{name}")
    assert callable(seqlab.train) and callable(seqlab.load) and callable(seqlab.evaluate)
