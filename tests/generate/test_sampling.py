
import pytest
import torch

from seqlab.config.schema import ModelConfig
from seqlab.generate.sampling import (
    Stepper,
    filter_logits,
    generate,
    iter_generate,
    sample_next,
)
from seqlab.models.transformer import TransformerLM

V = 13


def make_model(seed: int, *, block_size: int = 16) -> TransformerLM:
    torch.manual_seed(seed)
    config = ModelConfig(n_layer=2, n_head=2, d_model=16, block_size=block_size, bias=False)
    return TransformerLM(config, vocab_size=V).double()


def kept(filtered: torch.Tensor) -> list[list[int]]:
    return [torch.nonzero(torch.isfinite(row)).flatten().tolist() for row in filtered]


# --- filters -------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("k", [1, 3, 12])
def test_top_k_keeps_exactly_k_of_the_largest(seed, k):
    torch.manual_seed(seed)
    logits = torch.randn(4, V)
    logits[0, :6] = 5.0  # ties at the threshold still keep exactly k
    filtered = filter_logits(logits, top_k=k)
    for row, original in zip(filtered, logits, strict=True):
        finite = torch.isfinite(row)
        assert finite.sum() == k
        assert original[finite].min() >= original[~finite].max() if k < V else True
        torch.testing.assert_close(row[finite], original[finite] - original.max())  # the maximum at 0


@pytest.mark.parametrize("off", [None, 0, V, 100])
def test_top_k_off(off):
    torch.manual_seed(0)
    logits = torch.randn(2, V)
    torch.testing.assert_close(filter_logits(logits, top_k=off), logits - logits.max(dim=-1, keepdim=True).values)


@pytest.mark.parametrize(("top_p", "expected"), [
    (0.3, [2]),  # the most likely token alone is already >= 0.3
    (0.7, [2, 0]),  # 0.5 < 0.7 <= 0.5 + 0.25
    (0.8, [2, 0, 3]),  # 0.75 < 0.8 <= 0.9
    (0.95, [2, 0, 3, 1]),
    (1.0, [0, 1, 2, 3]),
    (None, [0, 1, 2, 3]),
])
def test_top_p_keeps_the_smallest_nucleus(top_p, expected):
    probs = torch.tensor([[0.25, 0.1, 0.5, 0.15]])  # sorted: 2 (0.5), 0 (0.25), 3 (0.15), 1 (0.1)
    filtered = filter_logits(probs.log(), top_p=top_p)
    assert kept(filtered) == [sorted(expected)]
    renormalised = torch.softmax(filtered, dim=-1)
    torch.testing.assert_close(renormalised[0, expected], probs[0, expected] / probs[0, expected].sum())


def test_top_p_always_keeps_one_token():
    logits = torch.tensor([[0.0, 0.0, 10.0]])
    assert kept(filter_logits(logits, top_p=1e-6)) == [[2]]


def test_top_k_then_top_p_then_softmax_is_float32():
    logits = torch.tensor([[4.0, 3.0, 2.0, 1.0, 0.0]], dtype=torch.float16)
    filtered = filter_logits(logits, temperature=0.5, top_k=3, top_p=0.99)
    assert filtered.dtype == torch.float32
    torch.testing.assert_close(filtered[0, :3], torch.tensor([0.0, -2.0, -4.0]))  # (logits - max) / T
    assert kept(filtered) == [[0, 1, 2]]


def test_temperature_divides_logits_less_their_maximum():
    torch.manual_seed(0)
    logits = torch.randn(3, V)
    expected = (logits - logits.max(dim=-1, keepdim=True).values) / 2.0  # the softmax of logits / 2
    torch.testing.assert_close(filter_logits(logits, temperature=2.0), expected)
    torch.testing.assert_close(torch.softmax(expected, -1), torch.softmax(logits / 2.0, -1))


def test_temperature_zero_is_argmax_with_ties_to_the_lowest_id():
    logits = torch.tensor([[0.0, 3.0, 1.0, 3.0], [5.0, 5.0, 5.0, 5.0], [0.0, 1.0, 2.0, 9.0]])
    expected = torch.tensor([1, 0, 3])
    torch.testing.assert_close(sample_next(logits, temperature=0.0), expected)
    assert kept(filter_logits(logits, temperature=0.0)) == [[1], [0], [3]]


def test_bad_arguments_are_errors():
    with pytest.raises(ValueError, match="temperature"):
        filter_logits(torch.zeros(1, 3), temperature=-1.0)
    with pytest.raises(ValueError, match="top_p"):
        filter_logits(torch.zeros(1, 3), top_p=0.0)
    with pytest.raises(ValueError, match="top_p"):
        filter_logits(torch.zeros(1, 3), top_p=1.5)
    with pytest.raises(ValueError, match="top_k"):
        filter_logits(torch.zeros(1, 3), top_k=-2)


# --- sampling ------------------------------------------------------------------------------------

def test_samples_follow_the_distribution_and_never_pick_filtered_tokens():
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    logits = probs.log().expand(40_000, 4)
    generator = torch.Generator().manual_seed(0)
    tokens = sample_next(logits, generator=generator)
    frequencies = torch.bincount(tokens, minlength=4) / len(tokens)
    torch.testing.assert_close(frequencies, probs, atol=0.01, rtol=0)  # ~5 standard errors
    tokens = sample_next(logits, top_k=2, generator=generator)
    frequencies = torch.bincount(tokens, minlength=4) / len(tokens)
    torch.testing.assert_close(frequencies, torch.tensor([0.625, 0.375, 0.0, 0.0]), atol=0.01, rtol=0)


def test_seeded_sampling_is_reproducible_and_leaves_the_global_rng_alone():
    model = make_model(0)
    idx = torch.randint(0, V, (2, 3))
    torch.manual_seed(123)
    global_state = torch.get_rng_state()
    runs = [generate(model, idx, 13, temperature=1.0, top_k=5, seed=7) for _ in range(2)]
    assert torch.equal(torch.get_rng_state(), global_state)
    assert torch.equal(runs[0], runs[1])
    other = generate(model, idx, 13, temperature=1.0, top_k=5, seed=8)
    assert not torch.equal(runs[0], other)
    uncached = generate(model, idx, 13, temperature=1.0, top_k=5, seed=7, use_cache=False)
    assert torch.equal(runs[0], uncached)  # within block_size (3 + 13 = 16) both see the same logits


# --- the generation loop -------------------------------------------------------------------------

def reference_reprime(model: TransformerLM, idx: torch.Tensor, max_new_tokens: int) -> torch.Tensor:
    """Greedy decoding with the documented cache windowing, recomputed from scratch each step:
    the token at position m sees tokens start..m-1; when that exceeds block_size, start = m - W//2."""
    window, keep = model.block_size, max(1, model.block_size // 2)
    out = idx.clone()
    start = max(0, idx.shape[1] - window)
    for m in range(idx.shape[1], idx.shape[1] + max_new_tokens):
        if m - start > window:
            start = m - keep
        logits, _ = model(out[:, start:m])
        out = torch.cat([out, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return out


def reference_crop(model: TransformerLM, idx: torch.Tensor, max_new_tokens: int) -> torch.Tensor:
    """nanoGPT's loop: crop to the last block_size tokens every step."""
    out = idx.clone()
    for _ in range(max_new_tokens):
        logits, _ = model(out[:, -model.block_size:])
        out = torch.cat([out, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return out


@pytest.fixture(params=["functional", "modules"])
def path(request):
    """Which stepper the loop drives: the model's FunctionalStepper, or (with a no-op hook that
    disqualifies it) the model's own module-by-module step."""
    return request.param


def use_path(model: TransformerLM, path: str) -> TransformerLM:
    if path == "modules":
        model.tok_emb.register_forward_hook(lambda module, args, output: None)
        assert model.stepper() is model
    else:
        assert model.stepper() is not model
    return model


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("prompt_len", [1, 5])
def test_cached_and_uncached_greedy_tokens_are_identical_within_block_size(seed, prompt_len, path):
    model = use_path(make_model(seed).eval(), path)
    idx = torch.randint(0, V, (3, prompt_len))
    new = model.block_size - prompt_len  # the last new token is predicted from a full window
    cached = generate(model, idx, new, temperature=0.0, use_cache=True)
    uncached = generate(model, idx, new, temperature=0.0, use_cache=False)
    assert cached.shape == (3, model.block_size)
    assert torch.equal(cached[:, :prompt_len], idx)
    assert torch.equal(cached, uncached)
    assert torch.equal(cached, reference_crop(model, idx, new))


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(("block_size", "prompt_len"), [(8, 3), (8, 11), (7, 2), (1, 2)])
def test_windowing_beyond_block_size_matches_the_references(seed, block_size, prompt_len, path):
    model = use_path(make_model(seed, block_size=block_size).eval(), path)
    idx = torch.randint(0, V, (2, prompt_len))
    new = 3 * block_size + 2
    cached = generate(model, idx, new, temperature=0.0, use_cache=True)
    assert torch.equal(cached, reference_reprime(model, idx, new))
    uncached = generate(model, idx, new, temperature=0.0, use_cache=False)
    assert torch.equal(uncached, reference_crop(model, idx, new))


def test_iter_generate_streams_columns_and_restores_the_mode():
    model = make_model(0)
    model.train()
    idx = torch.randint(0, V, (2, 4))
    columns = iter_generate(model, idx, 6, temperature=0.0)
    first = next(columns)
    assert first.shape == (2,) and first.dtype == torch.long
    assert not model.training  # eval mode while generating
    assert not torch.is_inference_mode_enabled()  # the caller's code between tokens runs normally
    rest = list(columns)
    assert len(rest) == 5 and model.training
    expected = generate(model, idx, 6, temperature=0.0)
    assert torch.equal(torch.stack([first, *rest], dim=1), expected[:, 4:])
    assert model.training
    assert not expected.is_inference()  # generate returns an ordinary tensor


def test_generate_zero_tokens_and_argument_errors():
    model = make_model(0)
    idx = torch.randint(0, V, (1, 3))
    assert torch.equal(generate(model, idx, 0), idx)
    with pytest.raises(ValueError, match="idx"):
        iter_generate(model, torch.zeros(1, 0, dtype=torch.long), 3)  # raised at the call
    with pytest.raises(ValueError, match="idx"):
        iter_generate(model, torch.zeros(3, dtype=torch.long), 3)
    with pytest.raises(ValueError, match="max_new_tokens"):
        iter_generate(model, idx, -1)


def test_model_generate_delegates():
    model = make_model(1)
    idx = torch.randint(0, V, (2, 3))
    expected = generate(model, idx, 9, temperature=0.9, top_p=0.9, seed=3)
    assert torch.equal(model.generate(idx, 9, temperature=0.9, top_p=0.9, seed=3), expected)


class CountingStepper:
    """A toy model through the same protocol: the next token is (sum of the context) mod V, and
    the state is the list of tokens it has seen. Records each context it predicted from."""

    def __init__(self, block_size):
        self.block_size = block_size
        self.contexts = []

    def new_state(self, batch_size, device):
        return []

    def step(self, tokens, state):
        context = (state if state is not None else []) + tokens[0].tolist()
        self.contexts.append(context)
        logits = torch.full((tokens.shape[0], V), -1.0)
        logits[:, sum(context) % V] = 1.0
        return logits, (context if state is not None else None)


@pytest.mark.parametrize("block_size", [None, 4])
def test_the_loop_drives_any_stepper(block_size):
    stepper = CountingStepper(block_size)
    assert isinstance(stepper, Stepper)
    idx = torch.tensor([[1, 2, 3, 4, 5]])
    out = generate(stepper, idx, 6, temperature=0.0)
    tokens = out[0].tolist()
    for m, context in zip(range(5, 11), stepper.contexts, strict=True):
        assert tokens[m] == sum(context) % V
        assert context == tokens[:m][-len(context):]  # always the most recent tokens
    if block_size is None:
        assert [len(c) for c in stepper.contexts] == [5, 6, 7, 8, 9, 10]
    else:  # prefill 4, full, re-prime from 2, grow to 4, re-prime ...
        assert [len(c) for c in stepper.contexts] == [4, 2, 3, 4, 2, 3]
