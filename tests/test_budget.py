"""Bounded resources (`seqlab.budget`, issue "A run never loses work"): sizes checked before memory
is allocated, threads capped at the cores, sampling that streams in bounded memory and stops each
sample at its stop string as it appears.

Where a test must prove a bound it runs in a subprocess whose address space is limited to 2 GiB
(`resource.RLIMIT_AS`): an allocation the bound should have prevented fails there instead.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import sys
import textwrap

import pytest
import torch

from seqlab import api, budget, families
from seqlab.cli import main
from seqlab.config import SampleConfig, load_config, preset_names
from seqlab.config.schema import ModelConfig
from seqlab.errors import CheckpointError, SeqlabError
from seqlab.generate import sampling
from seqlab.generate.sampling import generate
from seqlab.generate.stream import TextStream
from seqlab.interop.hf import from_hf, to_hf
from seqlab.models.rnn import RecurrentConfig, RNNLM
from seqlab.models.transformer import TransformerLM
from seqlab.training import threads

GIB = 1 << 30

# The [train] keys laid over the tiny config of tests/conftest.py (`tiny_toml`).
TRAIN = dict(eval_every=0, checkpoint_every=0, sample_tokens=0)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, word_corpus, tiny_toml):
    """(config path, a trained run directory, the cache folder) of a 1-layer char Transformer."""
    tmp = tmp_path_factory.mktemp("budget")
    config = tmp / "tiny.toml"
    # The samples below are read as the corpus's characters: a vocabulary without byte tokens.
    config.write_text(tiny_toml(word_corpus(tmp / "corpus.txt"), **TRAIN).replace('kind = "char"',
                                                                                 'kind = "char"\nbyte_fallback = false'))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SEQLAB_CACHE", str(tmp / "cache"))
        run = api.train(config, out=tmp / "run", progress=False)
    return config, run, tmp / "cache"


@pytest.fixture
def cache(tiny, monkeypatch):
    monkeypatch.setenv("SEQLAB_CACHE", str(tiny[2]))


def error_line(code: int, err: str) -> str:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("seqlab: error: "), err
    return lines[0]


def run_bounded(code: str, *, limit: int = 2 * GIB, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run Python `code` in a child whose address space is limited to `limit` bytes."""
    prelude = f"import resource; resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))\n"
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout)


def trained_presets() -> list[str]:
    return [name for name in preset_names() if families.get(load_config(name).model.family).trained]


def preset_vocab(config) -> int:
    """The vocabulary a preset trains with: its tokenizer's size, 256 for char and byte."""
    return config.tokenizer.vocab_size if config.tokenizer.kind in ("bpe", "word") else 256


# ---------------------------------------------------------------------------------- training


def test_every_preset_fits_in_two_gib(monkeypatch):
    monkeypatch.setattr(budget, "available_memory", lambda: 2 * GIB)
    for name in trained_presets():
        config = load_config(name)
        estimate = budget.check_budget(config, preset_vocab(config))
        assert 0 < estimate.total_bytes < 2 * GIB, name


@pytest.mark.parametrize("name", trained_presets())
def test_sizes_are_exact_and_extrapolate_in_depth(name):
    torch.manual_seed(0)
    settings = load_config(name).model
    built = families.get(settings.family).build_model(settings, 70)
    assert budget.model_shape(settings, 70).parameters == sum(p.numel() for p in built.parameters())
    assert budget.model_shape(settings, 70) == budget.measure(built)
    encoder = (0, 3) if hasattr(settings, "n_encoder_layer") else (None,)
    for n_encoder_layer in encoder:
        deeper = dataclasses.replace(settings, n_layer=5, **({} if n_encoder_layer is None
                                                              else {"n_encoder_layer": n_encoder_layer}))
        assert budget.model_shape(deeper, 70, exact_depth=1) == budget.model_shape(deeper, 70)


def test_deep_model_is_refused_before_it_is_built(tiny, cache, capsys, monkeypatch):
    config, _, _ = tiny
    out = config.parent / "deep"
    monkeypatch.setattr(budget, "available_memory", lambda: GIB)
    code = main(["-q", "train", str(config), "--out", str(out), "--no-progress", "--model.n_layer=100000"])
    line = error_line(code, capsys.readouterr().err)
    assert "training this model needs about" in line and "1.0 GiB available" in line
    assert not (out / "model.safetensors").exists()


def test_refusal_allocates_nothing_of_the_model_size(tiny):
    """Refused on any machine (≈8·10^10 parameters), in a 2 GiB address space."""
    config, _, cache = tiny
    child = run_bounded(f"""
        import os, resource, sys
        os.environ["SEQLAB_CACHE"] = {str(cache)!r}
        from seqlab.cli import main
        code = main(["-q", "train", {str(config)!r}, "--out", {str(config.parent / "deeper")!r}, "--no-progress",
                     "--model.n_layer=100000", "--model.d_model=256"])
        # VmHWM, this process's own peak: ru_maxrss keeps the parent's peak across fork and exec
        print(code, next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")))
    """)
    code, max_rss_kib = child.stdout.split()
    assert "needs about" in error_line(int(code), child.stderr)
    assert int(max_rss_kib) < 1024 * 1024  # under 1 GiB resident


def test_estimate_names_what_it_counts(monkeypatch):
    config = load_config("shakespeare-char")
    estimate = budget.training_estimate(config, 65)
    assert estimate.state_bytes == estimate.parameters * budget.STATE_BYTES_PER_PARAMETER
    # Activations grow with the batch and the layers; the deep model's dwarf the machine.
    doubled = dataclasses.replace(config.train, batch_size=2 * config.train.batch_size)
    bigger = dataclasses.replace(config, train=doubled)
    assert budget.training_estimate(bigger, 65).activation_bytes == pytest.approx(2 * estimate.activation_bytes)
    monkeypatch.setattr(budget, "available_memory", lambda: 64 * GIB)
    deep = dataclasses.replace(config, model=dataclasses.replace(config.model, n_layer=100000))
    with pytest.raises(SeqlabError, match=r"needs about .* TiB .* 64\.0 GiB available"):
        budget.check_budget(deep, 65)


def test_available_memory_reads_the_machine():
    available = budget.available_memory()
    assert available is None or available > 0


# ---------------------------------------------------------------------------------- HF folders


def tiny_hf_folder(path, n_layer: int = 1):
    torch.manual_seed(0)
    to_hf(TransformerLM(ModelConfig(n_layer=n_layer, n_head=2, d_model=16, block_size=16), 50), path)
    return path


def edit_config(folder, **changes):
    path = folder / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def test_hf_config_claiming_100000_layers_beside_one_is_refused_from_the_headers(tmp_path, capsys):
    folder = tiny_hf_folder(tmp_path / "hf")
    edit_config(folder, n_layer=100000)
    with pytest.raises(CheckpointError, match=r"implies 1,200,004 tensors \(n_layer = 100,000\) and the "
                                              r"weights hold 16"):
        from_hf(folder)
    code = main(["import-hf", str(folder), "--out", str(tmp_path / "run")])
    assert "do not fit their config.json" in error_line(code, capsys.readouterr().err)
    assert not (tmp_path / "run").exists()


def test_hf_config_one_layer_off_names_the_missing_tensors(tmp_path):
    folder = tiny_hf_folder(tmp_path / "hf")
    edit_config(folder, n_layer=2)
    with pytest.raises(CheckpointError, match=r"missing transformer\.h\.1\."):
        from_hf(folder)


def test_hf_config_wider_than_the_weights_is_refused_before_building(tmp_path):
    folder = tiny_hf_folder(tmp_path / "hf")
    edit_config(folder, n_embd=1 << 20, n_inner=1 << 22)  # a model of terabytes: never built
    with pytest.raises(CheckpointError, match=r"tensor transformer\.wte\.weight has shape \[50, 16\]"):
        from_hf(folder)


def test_hf_model_larger_than_memory_is_refused(tmp_path, monkeypatch):
    folder = tiny_hf_folder(tmp_path / "hf", n_layer=2)
    model, _ = from_hf(folder)  # fits
    assert model.config.n_layer == 2
    monkeypatch.setattr(budget, "available_memory", lambda: 4096)
    with pytest.raises(SeqlabError, match=r"has [\d,]+ parameters and needs about .* but this machine has "
                                          r"4\.0 KiB available"):
        from_hf(folder)


# ---------------------------------------------------------------------------------- threads


def test_threads_asked_for_are_capped_at_the_cores(monkeypatch, caplog):
    monkeypatch.setattr(threads, "_COMMAND_LINE", 0)
    monkeypatch.setattr(threads, "_WARNED", set())
    seqlab_log = logging.getLogger("seqlab")  # as the CLI left it: its own handler, not propagating
    monkeypatch.setattr(seqlab_log, "handlers", [])
    monkeypatch.setattr(seqlab_log, "propagate", True)
    cores = threads.available_cores()
    before = torch.get_num_threads()
    try:
        with caplog.at_level(logging.WARNING, logger="seqlab"):
            assert threads.choose_threads(1) == 1  # within the cores: as asked
            assert threads.choose_threads(100000) == cores  # train.threads
            threads.set_command_line_threads(100000)  # --threads
            assert threads.use_threads(params=10**9, tokens=10**3) == cores
        assert torch.get_num_threads() == cores
        assert f"100000 threads asked for, but this process may run on {cores} core(s)" in caplog.text
    finally:
        torch.set_num_threads(before)


def test_threads_option_on_the_command_line_is_capped(tiny, capsys, monkeypatch):
    monkeypatch.setattr(threads, "_COMMAND_LINE", 0)
    monkeypatch.setattr(threads, "_WARNED", set())
    before = torch.get_num_threads()
    try:
        assert main(["--threads", "100000", "sample", str(tiny[1]), "--max-new-tokens", "5"]) == 0
        assert torch.get_num_threads() <= threads.available_cores()
        assert "threads asked for" in capsys.readouterr().err
    finally:
        torch.set_num_threads(before)


# ---------------------------------------------------------------------------------- sampling


def test_too_many_samples_is_one_line(tiny, capsys):
    code = main(["sample", str(tiny[1]), "--num-samples", "100000000"])
    line = error_line(code, capsys.readouterr().err)
    assert "100,000,000 sample(s)" in line and "available" in line and "samples fit" in line
    code = main(["sample", str(tiny[1]), "--num-samples", "2", "--max-new-tokens", str(10**10)])
    line = error_line(code, capsys.readouterr().err)
    assert "new tokens per sample fit" in line


def test_each_sample_stops_at_its_stop_string_as_it_appears(tiny, capsys):
    code = main(["sample", str(tiny[1]), "--num-samples", "2", "--stop", "e", "--max-new-tokens", "1000000000",
                 "--top-k", "0", "--temperature", "1"])
    out = capsys.readouterr().out
    samples = out.rstrip("\n").split("\n---------------\n")
    assert code == 0 and len(samples) == 2
    assert all(s.endswith("e") and s.count("e") == 1 for s in samples)


def test_stopped_rows_are_the_unstopped_rows_cut(tiny):
    model, tokenizer = api.load(tiny[1])
    options = SampleConfig(prompt="the", max_new_tokens=120, num_samples=5, temperature=1.0, top_k=0, seed=3)
    whole = api.sample_many(model, tokenizer, options)
    stopped = api.sample_many(model, tokenizer, dataclasses.replace(options, stop="o "))

    def cut(text: str) -> str:
        found = text.find("o ", len("the"))
        return text if found < 0 else text[:found + 2]

    assert stopped == [cut(t) for t in whole]
    assert any(s != t for s, t in zip(stopped, whole))  # some row did stop early


def test_stop_never_met_ends_at_the_memory_bound(tiny, monkeypatch):
    model, tokenizer = api.load(tiny[1])
    per_row = budget.decode_state_bytes(model) + budget.LOGIT_COPIES * budget.FLOAT_BYTES * tokenizer.vocab_size
    context = budget.TOKEN_BYTES * (1 + sampling.HISTORY_CHUNK)
    monkeypatch.setattr(budget, "available_memory", lambda: 2 * (per_row + context) + budget.TOKEN_BYTES * 300)
    options = SampleConfig(max_new_tokens=10**9, num_samples=2, stop="§", top_k=0)  # "§" is not in the vocabulary
    with pytest.raises(SeqlabError, match=r"not all of them reached the stop string '§': this machine has room "
                                          r"for about [\d,]+; lower max_new_tokens"):
        api.sample_many(model, tokenizer, options)


def test_streaming_an_endless_sample_holds_bounded_memory(tiny):
    """10^10 new tokens would be an 80 GB buffer allocated up front; streamed, nothing of the kind."""
    child = run_bounded(f"""
        import itertools
        from seqlab import api
        from seqlab.config import SampleConfig
        from seqlab.generate import sampling
        sampling.HISTORY_CHUNK = 64  # the context rolls within the few hundred tokens drawn here
        model, tokenizer = api.load({str(tiny[1])!r})
        options = SampleConfig(max_new_tokens=10**10, top_k=0)
        pieces = api.stream_sample(model, tokenizer, options, use_cache=True)
        cached = len(list(itertools.islice(pieces, 600)))
        pieces.close()
        pieces = api.stream_sample(model, tokenizer, options, use_cache=False)
        print(cached, len(list(itertools.islice(pieces, 300))))
    """)
    assert child.returncode == 0, child.stderr
    assert child.stdout.split() == ["600", "300"]


@pytest.mark.parametrize("use_cache", [True, False])
@pytest.mark.parametrize("model_kind", ["transformer", "lstm"])
def test_rolling_context_gives_the_tokens_of_the_whole_one(monkeypatch, use_cache, model_kind):
    torch.manual_seed(0)
    model = (TransformerLM(ModelConfig(n_layer=1, n_head=2, d_model=16, block_size=8), 11)
             if model_kind == "transformer" else RNNLM(RecurrentConfig(family="lstm", n_layer=1, d_model=16), 11))
    idx = torch.tensor([[1, 2, 3], [4, 5, 6]])

    def run() -> torch.Tensor:
        return generate(model, idx, 150, temperature=1.0, top_k=None, use_cache=use_cache, seed=7)

    whole = run()  # HISTORY_CHUNK (4096) > 150: one buffer for everything
    monkeypatch.setattr(sampling, "HISTORY_CHUNK", 3)  # the context rolls every few tokens
    torch.testing.assert_close(run(), whole, rtol=0, atol=0)
    assert whole.shape == (2, 153)


def test_text_stream_holds_only_what_it_has_not_returned(tiny):
    _, tokenizer = api.load(tiny[1])
    ids = tokenizer.encode("to be or not to be ") * 5000
    stream = TextStream(tokenizer, stop="zzz")
    pieces = [stream.push(ids[i:i + 7]) for i in range(0, len(ids), 7)]
    tail = stream.flush()
    assert "".join(pieces) + tail == tokenizer.decode(ids)
    assert len(tail) <= 2  # held back: what could still start "zzz"; the rest was returned, not kept


def test_decode_state_of_one_row_is_measured_without_allocating():
    model = TransformerLM(ModelConfig(n_layer=2, n_head=2, d_model=16, block_size=32), 11)
    cache = model.new_state(1, "cpu")
    assert budget.decode_state_bytes(model) == cache.k.nbytes + cache.v.nbytes
