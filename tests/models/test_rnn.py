"""RNNLM: every recurrent family builds and learns; the carried hidden state makes windowed evaluation,
cached stepping and truncated BPTT equal one long pass; sampling works; a run goes end to end."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn

from seqlab.config.schema import ModelConfig
from seqlab.models.rnn import RecurrentConfig
from seqlab.data import TBPTTBatches, TokenData
from seqlab.generate import generate
from seqlab.families import build_model
from seqlab.models import RNNLM

VOCAB = 7
FAMILIES = ["rnn", "gated", "gru", "lstm"]


def tiny(family: str, **changes) -> RecurrentConfig:
    return RecurrentConfig(**{"family": family, "n_layer": 2, "d_model": 12, "block_size": 8, **changes})


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_builds_and_trains_with_falling_loss(family):
    torch.manual_seed(0)
    model = build_model(tiny(family, dropout=0.1), VOCAB)
    assert isinstance(model, RNNLM) and model.block_size is None
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-2)
    pattern = torch.tensor([1, 4, 2, 6, 5])
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(30):
        starts = torch.randint(5, (8,), generator=g)
        idx = torch.stack([pattern[(s + torch.arange(9)) % 5] for s in starts])  # (B, T+1)
        _, loss = model(idx[:, :-1], idx[:, 1:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-3:]) < 0.6 * sum(losses[:3]), (family, losses[::5])


def test_relu_elman_and_tied_embeddings():
    model = build_model(tiny("rnn", nonlinearity="relu", tie_embeddings=True), VOCAB)
    assert model.rnn.nonlinearity == "relu" and model.lm_head.weight is model.tok_emb.weight
    with pytest.raises(Exception, match="model.nonlinearity"):
        tiny("gru", nonlinearity="relu")


def test_attention_axes_are_settings_of_another_family():
    from seqlab.config import load_config
    from seqlab.errors import ConfigError

    tiny("lstm", d_model=10)  # no head count to divide d_model
    with pytest.raises(ConfigError, match="model.n_head is a setting of model.family = transformer"):
        load_config(None, ["model.family=lstm", "model.n_head=4"])


@pytest.mark.parametrize("family", FAMILIES)
def test_windows_with_carried_state_equal_one_long_pass(family):
    torch.manual_seed(1)
    model = build_model(tiny(family), VOCAB).double().eval()
    idx = torch.randint(VOCAB, (3, 20))
    full, _ = model(idx)
    state, pieces = model.new_state(3, "cpu"), []
    for start in range(0, 20, 6):  # windows of 6, 6, 6, 2
        logits, _, state = model(idx[:, start:start + 6], state=state, return_state=True)
        pieces.append(logits)
    torch.testing.assert_close(torch.cat(pieces, dim=1), full)


@pytest.mark.parametrize("family", FAMILIES)
def test_cached_steps_equal_the_full_forward(family):
    torch.manual_seed(2)
    model = build_model(tiny(family), VOCAB).double().eval()
    idx = torch.randint(VOCAB, (2, 9))
    full, _ = model(idx)
    logits, state = model.step(idx[:, :3], model.new_state(2, "cpu"))  # prefill
    stepped = [logits]
    for t in range(3, 9):
        logits, state = model.step(idx[:, t:t + 1], state)
        stepped.append(logits)
    torch.testing.assert_close(torch.stack(stepped, dim=1), full[:, 2:])


def test_greedy_generation_is_deterministic_and_cached_equals_recompute():
    torch.manual_seed(3)
    model = build_model(tiny("lstm"), VOCAB)
    idx = torch.randint(VOCAB, (2, 4))
    cached = generate(model, idx, 30, temperature=0)  # longer than block_size: no windowing
    assert cached.shape == (2, 34) and torch.equal(cached[:, :4], idx)
    assert torch.equal(generate(model, idx, 30, temperature=0, use_cache=False), cached)
    assert torch.equal(model.generate(idx, 30, temperature=0), cached)
    sampled = generate(model, idx, 10, temperature=1.0, seed=5)
    assert torch.equal(generate(model, idx, 10, temperature=1.0, seed=5), sampled)


def assert_equal_on_torch_nn_lstm(model, input_size: int) -> None:
    """The model's logits are unchanged when its stack is replaced by torch.nn.LSTM with its weights."""
    idx = torch.randint(VOCAB, (2, 7))
    ours, _ = model(idx)
    reference = nn.LSTM(input_size, 12, 2, batch_first=True).double()
    reference.load_state_dict(model.rnn.state_dict())
    model.rnn = reference
    torch.testing.assert_close(model(idx)[0], ours)


def test_state_dict_loads_into_torch_nn_lstm_with_equal_outputs():
    torch.manual_seed(4)
    assert_equal_on_torch_nn_lstm(build_model(tiny("lstm"), VOCAB).double().eval(), 12)


def test_a_narrow_embedding_feeds_the_first_layer_and_is_never_tied():
    torch.manual_seed(5)
    model = build_model(tiny("lstm", d_embed=5, tie_embeddings=False), VOCAB).double().eval()
    assert model.tok_emb.weight.shape == (VOCAB, 5) and model.rnn.weight_ih_l0.shape == (48, 5)
    assert model.rnn.weight_ih_l1.shape == (48, 12)
    assert_equal_on_torch_nn_lstm(model, 5)
    assert tiny("gru", d_embed=12, tie_embeddings=True).embed_width == 12  # equal to d_model: tying works
    with pytest.raises(Exception, match="model.d_embed"):
        tiny("lstm", d_embed=5, tie_embeddings=True)
    with pytest.raises(Exception, match="model.d_embed"):
        tiny("lstm", d_embed=-1, tie_embeddings=False)


def test_weight_dropout_reaches_every_recurrent_layer_in_training_only():
    torch.manual_seed(6)
    model = build_model(tiny("gru", weight_dropout=0.5), VOCAB)
    assert model.rnn.weight_dropout == 0.5
    idx = torch.randint(VOCAB, (2, 6))
    model.eval()
    torch.testing.assert_close(model(idx)[0], model(idx)[0])  # eval: the weights as they are
    model.train()
    torch.manual_seed(7)
    first = model(idx)[0]
    torch.manual_seed(8)
    assert not torch.allclose(first, model(idx)[0])  # a fresh mask each forward
    for bad in (-0.1, 1.0):
        with pytest.raises(Exception, match="model.weight_dropout"):
            tiny("lstm", weight_dropout=bad)


# ---- truncated BPTT ------------------------------------------------------------------------------

def token_data(n: int = 203) -> TokenData:
    tokens = (np.arange(n) % VOCAB).astype(np.uint16)
    return TokenData(train=tokens, val=tokens[:60], train_chars=n, val_chars=60)


def test_tbptt_windows_are_consecutive_per_stream_and_wrap():
    data = token_data()
    batches = TBPTTBatches(data, batch_size=4, block_size=10)
    S = (len(data.train) - 1) // 4
    assert batches.stream_length == S == 50 and batches.windows == 5
    g = torch.Generator()
    seen = []
    for k in range(batches.windows + 1):
        inputs, y = batches.sample("train", g)
        x = inputs["idx"]
        for b in range(4):
            start = b * S + (k % batches.windows) * 10
            assert x[b].tolist() == data.train[start:start + 10].tolist()
            assert y[b].tolist() == data.train[start + 1:start + 11].tolist()
        seen.append(inputs["state"])
        batches.carry((None, None, (torch.full((1, 4, 3), float(k)),)))
    assert seen[0] is None and seen[-1] is None  # zero state at the start and after the wrap
    assert seen[1][0].eq(0).all() and seen[3][0].eq(2).all()


def test_shifted_streams_repeat_no_pass_and_read_the_text_as_a_ring():
    """data.shift_streams: the first pass is the plain one; each later pass adds one random offset
    r to every start (mod n), from zero state, the rows still consecutive within the pass; the
    offsets follow the generator's seed, and two processes' rows are the two halves of one batch."""
    n = 203
    data = TokenData(train=np.arange(n, dtype=np.uint16), val=np.arange(60, dtype=np.uint16),
                     train_chars=n, val_chars=60)

    def passes(rows=slice(None), count=4, seed=0):
        batches = TBPTTBatches(data, batch_size=4, block_size=10, shift=True)
        batches.rows = rows
        g = torch.Generator().manual_seed(seed)
        out = []
        for _ in range(count):
            windows = []
            for _ in range(batches.windows):
                inputs, y = batches.sample("train", g)
                windows.append((inputs["idx"], y, inputs["state"]))
                batches.carry((None, None, (torch.zeros(1, inputs["idx"].shape[0], 3),)))
            out.append(windows)
        return out

    S, offsets = (n - 1) // 4, []
    for number, windows in enumerate(passes()):
        r = windows[0][0][0, 0].item()  # row 0 starts at r
        offsets.append(r)
        assert windows[0][2] is None  # each pass starts from zero state
        for k, (x, y, _) in enumerate(windows):
            for b in range(4):
                start = b * S + k * 10 + r
                assert x[b].tolist() == [(start + j) % n for j in range(10)]
                assert y[b].tolist() == [(start + 1 + j) % n for j in range(10)]
    assert offsets[0] == 0 and len(set(offsets)) == 4, offsets  # the first pass is unshifted
    assert [w[0][0][0, 0].item() for w in passes(seed=0)] == offsets
    assert [w[0][0][0, 0].item() for w in passes(seed=1)] != offsets
    halves = [passes(slice(0, 2)), passes(slice(2, 4))]
    for number, windows in enumerate(passes()):
        for k, (x, _, _) in enumerate(windows):
            torch.testing.assert_close(torch.cat([halves[0][number][k][0], halves[1][number][k][0]]), x)


@pytest.mark.parametrize("family", ["lstm", "mamba"])
def test_data_shift_streams_reaches_the_truncated_bptt_batches(family):
    from seqlab import families
    from seqlab.config import load_config

    for setting in (False, True):
        config = load_config(None, [f"model.family={family}", "model.block_size=8", "train.batch_size=2",
                                    f"data.shift_streams={str(setting).lower()}"])
        assert families.get(family).batches(config, token_data()).shift is setting


def test_tbptt_carried_state_is_the_final_state_of_the_previous_window():
    torch.manual_seed(5)
    model = build_model(tiny("gru"), VOCAB).double()
    batches = TBPTTBatches(token_data(), batch_size=4, block_size=10)
    g = torch.Generator()
    inputs, y = batches.sample("train", g)
    output = model(**inputs, targets=y)
    batches.carry(output)
    following, _ = batches.sample("train", g)
    assert following["state"][0].grad_fn is None  # detached: the truncation
    torch.testing.assert_close(following["state"][0], output[2][0].detach())
    # Carrying across the two windows equals one pass over both, stream by stream.
    x2 = torch.cat([inputs["idx"], following["idx"]], dim=1)
    logits, _ = model(x2)
    continued = model(**following)[0]
    torch.testing.assert_close(continued, logits[:, 10:])


def test_tbptt_evaluation_leaves_the_training_stream_alone():
    batches = TBPTTBatches(token_data(), batch_size=4, block_size=10)
    g = torch.Generator().manual_seed(0)
    batches.sample("train", g)
    batches.carry((None, None, (torch.ones(1, 4, 3),)))
    x, y = batches.sample_eval("val", g)
    assert x.shape == (4, 20) and y[:, :10].eq(-1).all() and y[:, 10:].ge(0).all()
    inputs, _ = batches.sample("train", g)
    assert inputs["idx"][0, 0].item() == 10 % VOCAB and inputs["state"][0].eq(1).all()


# ---- end to end ----------------------------------------------------------------------------------

def test_rnn_run_trains_evaluates_exactly_and_samples(tmp_path, monkeypatch, capsys):
    import seqlab
    from seqlab.families.common import score_carried
    from seqlab.cli import main
    from seqlab.config import load_config

    monkeypatch.setenv("SEQLAB_CACHE", str(tmp_path / "cache"))
    corpus = tmp_path / "abc.txt"
    corpus.write_text("abcabcabd\n" * 300)
    config = load_config(None, [f"data.corpus={corpus}", "model.family=lstm", "model.n_layer=1",
                                "model.d_model=16", "model.block_size=16", "train.max_steps=60",
                                "train.batch_size=8", "train.lr=1e-2", "train.warmup_steps=5",
                                "train.eval_every=30", "train.eval_steps=2", "train.checkpoint_every=30",
                                "train.sample_tokens=10", "train.device=cpu",
                                # the 5 characters alone: 256 byte tokens more take this tiny model more steps
                                "tokenizer.byte_fallback=false"])
    run_dir = seqlab.train(config, out=tmp_path / "run", progress=False)
    result = seqlab.evaluate(run_dir)
    assert result["loss"] < 0.5 and math.isclose(result["perplexity"], math.exp(result["loss"]))
    # The split as one stream: any window gives the same loss, that of one pass.
    model, tokenizer = seqlab.load(run_dir)
    tokens = tokenizer.encode_array(corpus.read_text()[-300:])
    with torch.inference_mode():
        one_pass = torch.nn.functional.cross_entropy(
            model(torch.tensor(tokens[None, :-1], dtype=torch.long))[0][0],
            torch.tensor(tokens[1:], dtype=torch.long), reduction="sum").item()
    for window in (7, 64):
        total, count, _ = score_carried(model, tokens, "cpu", window)
        assert count == len(tokens) - 1 and math.isclose(total, one_pass, rel_tol=1e-4)
    assert math.isclose(seqlab.evaluate(run_dir, context=7)["loss"], result["loss"], rel_tol=1e-4)

    assert main(["sample", str(run_dir), "--prompt", "abcab", "--max-new-tokens", "12",
                 "--temperature", "0"]) == 0
    greedy = model.generate(torch.tensor([tokenizer.encode("abcab")]), 12, temperature=0)
    assert capsys.readouterr().out == tokenizer.decode(greedy[0].tolist()) + "\n"
    # Resume continues the run (the carried state restarts at zero).
    seqlab.train(run_dir, out=run_dir, overrides=["train.max_steps=70"], resume=True, progress=False)
    assert seqlab.evaluate(run_dir)["loss"] < 0.5


def test_build_refuses_an_unknown_family():
    config = dataclasses.replace(tiny("lstm"), family="no-such-rnn")
    with pytest.raises(Exception, match="no-such-rnn"):
        build_model(config, VOCAB)
