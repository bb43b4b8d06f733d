"""`FunctionalStepper` against the module path (`TransformerLM.step`).

Wherever `supports` says yes, the logits (prefill, a cached chunk, single cached steps, and without a
cache) equal the module path's and greedy tokens are identical, for every decoder-only preset and a
seeded sample of the variant axes; wherever it says no, `stepper()` hands back the model itself.
The settings are read as data (`dataclasses.fields`, the schema's type hints), never by class name.
"""

import contextlib
import dataclasses
import random
import typing

import pytest
import torch

from seqlab.config import load_config
from seqlab.config.load import preset_names
from seqlab.models.functional_decode import ANY_VALUE, HANDLED_SETTINGS, FunctionalStepper, unhandled_settings
from seqlab.models.transformer import TransformerLM

V = 13
TINY = {"n_layer": 2, "d_model": 32, "block_size": 16, "d_ff": 0}
AXES = ("norm", "norm_position", "position", "activation", "bias", "n_kv_head", "parallel_block", "tie_embeddings")
SAMPLE_SEED, SAMPLE_SIZE = 2024, 64


def default_settings():
    """The Transformer's settings at GPT-2's defaults, shrunk to TINY."""
    return dataclasses.replace(load_config(None).model, **TINY)


def tiny(settings):
    """`settings` at TINY's sizes, its heads kept where they divide d_model."""
    n_head = settings.n_head if TINY["d_model"] % settings.n_head == 0 else 4
    n_kv_head = settings.n_kv_head if settings.n_kv_head and n_head % settings.n_kv_head == 0 else 0
    return dataclasses.replace(settings, **TINY, n_head=n_head, n_kv_head=n_kv_head)


def build(settings, seed: int, *, dtype=torch.float32) -> TransformerLM:
    """An eval-mode model whose every parameter matters: GPT-2's initialisation (std 0.02, zero
    biases, unit gains) leaves attention nearly uniform, where a missing rotation or position bias
    would move the logits by less than the tolerance."""
    torch.manual_seed(seed)
    model = TransformerLM(settings, vocab_size=V).to(dtype).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".bias"):
                p.normal_(0.0, 0.2)
            elif "norm" in name:  # norm1, norm2, norm_f gains
                p.normal_(1.0, 0.2)
            elif p.dim() == 2:  # unit-variance outputs: embeddings N(0, 1), matrices N(0, 1/fan_in)
                fan_in = 1 if "emb" in name else p.shape[1]
                p.normal_(0.0, fan_in ** -0.5)
    return model


def assert_decodes_alike(model: TransformerLM, seed: int) -> None:
    """The stepper `model` offers against `model.step`: a 5-token prefill, a cached 3-token chunk,
    then greedy single-token steps to block_size, at batch 2; then the whole sequence uncached."""
    stepper = model.stepper()
    assert isinstance(stepper, FunctionalStepper)
    close = {"atol": 1e-5, "rtol": 1e-5} if model.tok_emb.weight.dtype == torch.float32 else {}
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, V, (2, 8), generator=gen)
    fast, slow = stepper.new_state(2, "cpu"), model.new_state(2, "cpu")
    for chunk in (idx[:, :5], idx[:, 5:]):
        fast_logits, fast = stepper.step(chunk, fast)
        slow_logits, slow = model.step(chunk, slow)
        torch.testing.assert_close(fast_logits, slow_logits, **close, msg=lambda m: f"seed {seed}: {m}")
    while fast.length < model.block_size:
        token = fast_logits.argmax(-1, keepdim=True)  # (B, 1)
        assert torch.equal(token, slow_logits.argmax(-1, keepdim=True)), f"seed {seed}: greedy tokens differ"
        idx = torch.cat([idx, token], dim=1)
        fast_logits, fast = stepper.step(token, fast)
        slow_logits, slow = model.step(token, slow)
        torch.testing.assert_close(fast_logits, slow_logits, **close, msg=lambda m: f"seed {seed}: {m}")
    torch.testing.assert_close(fast.k, slow.k, **close)
    torch.testing.assert_close(stepper.step(idx, None)[0], model.step(idx, None)[0], **close)


def assert_decodes_through_the_model(model: TransformerLM) -> None:
    assert model.stepper() is model
    assert not FunctionalStepper.supports(model)


# --- every decoder-only preset ----------------------------------------------------------------------

def decoder_presets() -> list[str]:
    return [name for name in preset_names() if load_config(name).model.family == "transformer"]


def test_the_decoder_presets_are_found():
    assert {"shakespeare-char", "gpt3", "llama", "palm"} <= set(decoder_presets())


@pytest.mark.parametrize("inference", [True, False], ids=["inference_mode", "grad"])
@pytest.mark.parametrize("preset", decoder_presets())
def test_each_decoder_preset_decodes_alike_or_through_the_model(preset, inference):
    # Under inference mode the stepper writes the cache through views it prepares once per cache
    # (sampling's path); with autograd on it indexes the cache afresh, as the module path does.
    model = build(tiny(load_config(preset).model), seed=0)
    with torch.inference_mode() if inference else contextlib.nullcontext():
        if FunctionalStepper.supports(model):
            assert_decodes_alike(model, seed=0)
        else:
            assert_decodes_through_the_model(model)


def test_the_gpt2_shaped_preset_takes_the_fast_path():
    """Sampling speed depends on it: a setting added to the Transformer must be declared (and tested)
    in `seqlab.models.functional_decode` for the shakespeare-char preset to keep decoding fast."""
    settings = tiny(load_config("shakespeare-char").model)
    assert unhandled_settings(settings) == []
    assert isinstance(build(settings, seed=0).stepper(), FunctionalStepper)


# --- a seeded sample of the variant axes --------------------------------------------------------------

def axis_values(settings) -> dict[str, tuple]:
    """Every value the schema admits for each axis (its Literal or bool), and n_kv_head's divisors of 4."""
    hints = typing.get_type_hints(type(settings))
    values = {}
    for axis in AXES:
        if axis == "n_kv_head":
            values[axis] = (0, 1, 2, 4)  # with n_head 4: multi-head (twice), multi-query, grouped
        elif hints[axis] is bool:
            values[axis] = (False, True)
        else:
            values[axis] = typing.get_args(hints[axis])
    return values


def sampled_settings() -> list:
    base = dataclasses.replace(default_settings(), n_head=4)
    rng = random.Random(SAMPLE_SEED)
    choices = axis_values(base)
    return [dataclasses.replace(base, **{axis: rng.choice(choices[axis]) for axis in AXES})
            for _ in range(SAMPLE_SIZE)]


def combo_id(settings) -> str:
    return "-".join(f"{getattr(settings, axis)}" for axis in AXES)


SAMPLE = sampled_settings()


@pytest.mark.parametrize("seed", range(SAMPLE_SIZE), ids=[f"{i}-{combo_id(s)}" for i, s in enumerate(SAMPLE)])
def test_sampled_variants_decode_alike_or_through_the_model(seed):
    model = build(SAMPLE[seed], seed=seed)
    with torch.inference_mode():
        if FunctionalStepper.supports(model):
            assert_decodes_alike(model, seed=seed)
        else:
            assert_decodes_through_the_model(model)


def test_the_sample_reaches_both_paths_and_every_value():
    supported = sum(FunctionalStepper.supports(build(s, seed=0)) for s in SAMPLE)
    assert supported >= 15 and SAMPLE_SIZE - supported >= 15, supported
    for axis, values in axis_values(SAMPLE[0]).items():
        assert {getattr(s, axis) for s in SAMPLE} == set(values), axis


# --- the declared settings ---------------------------------------------------------------------------

def test_declared_settings_are_fields_with_values_the_schema_admits():
    settings = default_settings()
    names = {f.name for f in dataclasses.fields(settings)}
    assert set(HANDLED_SETTINGS) <= names and set(ANY_VALUE) <= names  # no stale declarations
    assert not set(HANDLED_SETTINGS) & set(ANY_VALUE)
    hints = typing.get_type_hints(type(settings))
    for name, values in HANDLED_SETTINGS.items():
        if hints[name] is int:  # a count (n_experts): any integer is a value the schema's type admits
            assert all(type(v) is int for v in values), name
            continue
        admitted = {False, True} if hints[name] is bool else set(typing.get_args(hints[name]))
        assert values <= admitted, name  # a misspelt value would never match


def test_a_setting_it_does_not_know_sends_the_model_through_the_module_path():
    base = default_settings()

    @dataclasses.dataclass(frozen=True)
    class WithANewAxis(type(base)):
        qk_norm: bool = False  # a new option, even at a default that changes nothing, is unknown here

    settings = WithANewAxis(**{f.name: getattr(base, f.name) for f in dataclasses.fields(base)})
    assert unhandled_settings(settings) == ["qk_norm: a setting this path does not know"]
    assert_decodes_through_the_model(build(settings, seed=0))


def test_a_value_it_does_not_implement_sends_the_model_through_the_module_path():
    settings = dataclasses.replace(default_settings(), norm_position="post")
    assert unhandled_settings(settings) == ["norm_position = 'post' is not implemented here"]
    assert_decodes_through_the_model(build(settings, seed=0))


# --- the structural conditions -------------------------------------------------------------------------

def test_train_mode_hooks_and_swapped_parts_send_the_model_through_the_module_path():
    model = build(default_settings(), seed=0)
    assert isinstance(model.stepper(), FunctionalStepper)
    model.train()
    assert_decodes_through_the_model(model)
    model.eval()
    model.blocks[1].mlp.train()  # one part in train mode: its dropout would not be applied here
    assert_decodes_through_the_model(model)
    model.eval()
    handle = model.blocks[1].mlp.activation.register_forward_hook(lambda module, args, output: None)
    assert_decodes_through_the_model(model)
    handle.remove()
    handle = model.blocks[0].attn.register_forward_pre_hook(lambda module, args: None)
    assert_decodes_through_the_model(model)
    handle.remove()
    handle = torch.nn.modules.module.register_module_forward_hook(lambda module, args, output: None)
    try:
        assert_decodes_through_the_model(model)
    finally:
        handle.remove()
    assert isinstance(model.stepper(), FunctionalStepper)
    model.blocks[0].mlp.activation = torch.nn.Tanh()  # a swapped part: the stepper does not know it
    assert_decodes_through_the_model(model)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("inference", [False, True], ids=["grad", "inference_mode"])
def test_functional_stepper_equals_the_module_path_in_float64(seed, bias, inference):
    model = build(dataclasses.replace(default_settings(), bias=bias), seed, dtype=torch.float64)
    stepper = FunctionalStepper(model)
    idx = torch.randint(0, V, (2, 16), generator=torch.Generator().manual_seed(seed))
    with torch.inference_mode() if inference else contextlib.nullcontext():
        for chunks in [(5, 3, 1, 1, 4, 2), (16,)]:  # the second pass gets a new cache: new views
            ours, theirs = stepper.new_state(2, "cpu"), model.new_state(2, "cpu")
            start = 0
            for size in chunks:
                logits, ours = stepper.step(idx[:, start:start + size], ours)
                expected, theirs = model.step(idx[:, start:start + size], theirs)
                torch.testing.assert_close(logits, expected)
                start += size
            assert ours.length == theirs.length == 16
            torch.testing.assert_close(ours.k, theirs.k)
            assert (stepper._views_of is ours.k) == inference  # the path under test ran
        for end in (1, 7, 16):
            logits, state = stepper.step(idx[:, :end], None)
            assert state is None
            torch.testing.assert_close(logits, model.step(idx[:, :end], None)[0])


def test_functional_stepper_checks_the_context_length():
    stepper = FunctionalStepper(build(default_settings(), seed=0))
    with pytest.raises(ValueError, match="block_size"):
        stepper.step(torch.zeros(1, 17, dtype=torch.long), None)
