"""WaveNetLM: parity with a plain-Conv1d reference of the paper's architecture (float64); exact causality
and the receptive field; the cached steps (queues, chunked prefill) equal the forward; cached and
recompute decoding give the same tokens; seeded sampling is reproducible; the loss, scores, config
validation and the model contract."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from seqlab.config.schema import ModelSettings
from seqlab.errors import ConfigError
from seqlab.generate import generate
from seqlab.generate.sampling import Stepper
from seqlab.models.contract import LanguageModel
from seqlab.models.wavenet import WaveNetConfig, WaveNetLM, WaveNetStepper

VOCAB = 11
# Dilations 1, 2, 4, 1: receptive field 1 + 2 · (1 + 8) = 19 with kernel 3.
TINY = WaveNetConfig(n_layer=4, kernel_size=3, dilation_cycle=3, d_embed=5, d_residual=6, d_skip=7)


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: see conftest.py


def tiny(seed: int = 0, dtype: torch.dtype = torch.float64, **changes) -> WaveNetLM:
    torch.manual_seed(seed)
    return WaveNetLM(dataclasses.replace(TINY, **changes), VOCAB).to(dtype).eval()


def tokens(shape: tuple[int, int], seed: int) -> torch.Tensor:
    return torch.randint(VOCAB, shape, generator=torch.Generator().manual_seed(seed))


# --- config --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("changes, receptive_field", [
    ({}, 1 + 1 * (1 + 1 + 2 + 4)),  # the defaults: 3 layers of width 2
    ({"n_layer": 8, "dilation_cycle": 8}, 257),  # 1 + 1 + (1 + 2 + ... + 128)
    ({"n_layer": 4, "kernel_size": 3, "dilation_cycle": 3}, 19),
    ({"n_layer": 12, "dilation_cycle": 10}, 1 + 1 * (1 + 1023 + 1 + 2)),
])
def test_receptive_field_formula(changes, receptive_field):
    config = WaveNetConfig(**changes)
    assert config.receptive_field == receptive_field
    assert WaveNetLM(config, VOCAB).receptive_field == receptive_field


@pytest.mark.parametrize("key, value", [
    ("block_size", 0), ("n_layer", 0), ("kernel_size", 1), ("dilation_cycle", 0), ("d_embed", 0),
    ("d_residual", 0), ("d_skip", -3), ("dropout", 1.0), ("dropout", -0.1),
])
def test_config_rejects_bad_values(key, value):
    with pytest.raises(ConfigError, match=f"model.{key}"):
        WaveNetConfig(**{key: value})


def test_config_is_frozen_model_settings():
    config = WaveNetConfig()
    assert isinstance(config, ModelSettings) and config.family == "wavenet"
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.n_layer = 5


# --- architecture ---------------------------------------------------------------------------------------


def test_state_dict_keys_and_shapes():
    shapes = {k: tuple(v.shape) for k, v in tiny().state_dict().items()}
    E, R, S, k = 5, 6, 7, 3
    expected = {"tok_emb.weight": (VOCAB, E), "input_conv.weight": (R, E, k), "input_conv.bias": (R,),
                "head.hidden.weight": (S, S, 1), "head.hidden.bias": (S,), "head.out.weight": (VOCAB, S, 1),
                "head.out.bias": (VOCAB,)}
    for i in range(4):
        expected |= {f"layers.{i}.dilated.weight": (2 * R, R, k), f"layers.{i}.dilated.bias": (2 * R,),
                     f"layers.{i}.skip.weight": (S, R, 1), f"layers.{i}.skip.bias": (S,)}
        if i < 3:  # the last layer's residual output would feed nothing
            expected |= {f"layers.{i}.residual.weight": (R, R, 1), f"layers.{i}.residual.bias": (R,)}
    assert shapes == expected
    assert not any(k.endswith("bias") for k in tiny(bias=False).state_dict())


def reference_logits(state: dict[str, torch.Tensor], idx: torch.Tensor, config: WaveNetConfig) -> torch.Tensor:
    """The paper's stack written with F.conv1d on explicitly left-padded inputs: (B, T) → (B, T, V)."""
    def causal(x, name, dilation=1):
        w = state[f"{name}.weight"]
        return F.conv1d(F.pad(x, ((w.shape[-1] - 1) * dilation, 0)), w, state[f"{name}.bias"], dilation=dilation)

    x = causal(state["tok_emb.weight"][idx].transpose(1, 2), "input_conv")  # (B, R, T)
    skips = 0
    for i in range(config.n_layer):
        h = causal(x, f"layers.{i}.dilated", 2 ** (i % config.dilation_cycle))  # (B, 2R, T)
        R = h.shape[1] // 2
        z = torch.tanh(h[:, :R]) * torch.sigmoid(h[:, R:])  # filter ⊙ gate
        skips = skips + causal(z, f"layers.{i}.skip")
        if i < config.n_layer - 1:
            x = x + causal(z, f"layers.{i}.residual")
    h = causal(torch.relu(skips), "head.hidden")
    return causal(torch.relu(h), "head.out").transpose(1, 2)  # (B, T, V)


def test_forward_equals_the_reference_stack():
    model = tiny(seed=1)
    idx = tokens((3, 30), seed=2)
    logits, loss = model(idx)
    assert loss is None and logits.shape == (3, 30, VOCAB)
    torch.testing.assert_close(logits, reference_logits(model.state_dict(), idx, model.config), rtol=0, atol=1e-12)


def test_causality_is_exact():
    model = tiny(seed=3)
    idx = tokens((2, 30), seed=4)
    logits, _ = model(idx)
    for t in (0, 9, 29):
        changed = idx.clone()
        changed[:, t] = (changed[:, t] + 1) % VOCAB
        logits_changed, _ = model(changed)
        assert torch.equal(logits[:, :t], logits_changed[:, :t]), t
        assert not torch.equal(logits[:, t:], logits_changed[:, t:]), t


def test_logits_read_exactly_the_last_receptive_field_tokens():
    model = tiny(seed=5)
    rf = model.receptive_field
    idx = tokens((2, 45), seed=6)
    logits, _ = model(idx)
    p = 40  # the position whose logits are watched
    outside, inside = idx.clone(), idx.clone()
    outside[:, p - rf] = (outside[:, p - rf] + 1) % VOCAB  # one token too far back
    inside[:, p - rf + 1] = (inside[:, p - rf + 1] + 1) % VOCAB  # the oldest token read
    assert torch.equal(model(outside)[0][:, p], logits[:, p])
    assert not torch.equal(model(inside)[0][:, p], logits[:, p])


# --- the model contract and decoding ------------------------------------------------------------------


def test_fulfils_the_model_contract():
    model = tiny()
    assert isinstance(model, LanguageModel) and model.block_size is None
    assert isinstance(model.stepper(), Stepper) and model.stepper().block_size is None


@pytest.mark.parametrize("dtype, atol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_steps_equal_the_forward_position_by_position(dtype, atol):
    model = tiny(seed=7, dtype=dtype)
    idx = tokens((2, 50), seed=8)  # longer than the receptive field: the queues wrap round
    full, _ = model(idx)
    with torch.no_grad():
        state = model.new_state(2)
        one_by_one = torch.stack([model.step(idx[:, t:t + 1], state)[0] for t in range(50)], dim=1)
        torch.testing.assert_close(one_by_one, full, rtol=0, atol=atol)
        assert state.t == 50
        stepper, state, chunked = model.stepper(), model.new_state(2), []
        for start, stop in [(0, 7), (7, 8), (8, 31), (31, 32), (32, 50)]:  # prefill, step, chunk, ...
            logits, state = stepper.step(idx[:, start:stop], state)
            chunked.append(logits)
        torch.testing.assert_close(torch.stack(chunked, dim=1), full[:, [6, 7, 30, 31, 49]], rtol=0, atol=atol)


def test_recompute_step_reads_the_last_receptive_field():
    model = tiny(seed=9)
    idx = tokens((2, 50), seed=10)
    full, _ = model(idx)
    logits, state = model.step(idx, None)
    assert state is None
    torch.testing.assert_close(logits, full[:, -1], rtol=0, atol=1e-12)


@pytest.mark.parametrize("prompt_length", [1, 5, 30])  # 30: longer than the receptive field (19)
def test_cached_and_recompute_greedy_decoding_give_the_same_tokens(prompt_length):
    model = tiny(seed=11, dtype=torch.float32)
    prompt = tokens((2, prompt_length), seed=12)
    cached = generate(model, prompt, 40, temperature=0, use_cache=True)
    recomputed = generate(model, prompt, 40, temperature=0, use_cache=False)
    assert cached.shape == (2, prompt_length + 40)
    assert torch.equal(cached, recomputed)


def test_seeded_sampling_is_reproducible():
    model = tiny(seed=13)
    prompt = tokens((3, 4), seed=14)
    options = dict(temperature=0.9, top_k=5, top_p=0.8, seed=7)
    first = model.generate(prompt, 30, **options)
    assert torch.equal(first, model.generate(prompt, 30, **options))
    assert torch.equal(first, model.generate(prompt, 30, use_cache=False, **options))  # float64: same draws
    assert not torch.equal(first, model.generate(prompt, 30, **(options | {"seed": 8})))


# --- loss, scores, training ----------------------------------------------------------------------------


def test_loss_ignores_targets_of_minus_one():
    model = tiny(seed=15)
    idx, targets = tokens((2, 12), seed=16), tokens((2, 12), seed=17)
    targets[0, :5] = -1
    targets[1, 9] = -1
    logits, loss = model(idx, targets)
    kept = targets != -1
    torch.testing.assert_close(loss, F.cross_entropy(logits[kept], targets[kept]))


def test_score_is_the_log_probability_of_each_next_token():
    model = tiny(seed=18)
    idx = tokens((2, 15), seed=19)
    scores = model.token_log_probs(idx)
    assert scores.shape == (2, 14)
    logits, loss = model(idx[:, :-1], idx[:, 1:])
    torch.testing.assert_close(scores, logits.log_softmax(-1).gather(-1, idx[:, 1:, None]).squeeze(-1))
    torch.testing.assert_close(-scores.mean(), loss)
    assert model.token_log_probs(idx[:, :1]).shape == (2, 0)


def test_trains_with_falling_loss_and_dropout_only_in_training():
    torch.manual_seed(20)
    model = WaveNetLM(dataclasses.replace(TINY, dropout=0.1), VOCAB)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-2)
    pattern = torch.tensor([1, 4, 2, 6, 5, 3, 3])
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(30):
        starts = torch.randint(7, (8,), generator=g)
        idx = torch.stack([pattern[(s + torch.arange(17)) % 7] for s in starts])  # (B, T + 1)
        _, loss = model(idx[:, :-1], idx[:, 1:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-3:]) < 0.5 * sum(losses[:3]), losses[::5]
    idx = tokens((2, 10), seed=21)
    assert not torch.equal(model(idx)[0], model(idx)[0])  # training: dropout draws
    model.eval()
    assert torch.equal(model(idx)[0], model(idx)[0])
    assert isinstance(model.stepper(), WaveNetStepper)
