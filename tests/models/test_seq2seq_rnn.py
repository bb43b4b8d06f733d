import itertools

import pytest
import torch

from seqlab.data.seq2seq import EncodedPairs, collate
from seqlab.generate.sampling import generate
from seqlab.models.seq2seq_rnn import RNNDecoderState, Seq2SeqRNN, Seq2SeqRNNStepper

V = 9
LENGTHS = [7, 5, 2]
VARIANTS = [{"cell": c, "attention": a, "bidirectional": b}
            for c, a, b in itertools.product(("gru", "lstm"), ("bahdanau", "luong"), (True, False))]


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: see conftest.py


def make_model(seed: int, **variant) -> Seq2SeqRNN:
    torch.manual_seed(seed)
    return Seq2SeqRNN(V, cell=variant["cell"], attention=variant["attention"],
                      bidirectional=variant["bidirectional"], d_embed=6, d_hidden=5, n_layer=2,
                      block_size=12).double().eval()


def data(seed: int):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(V, (3, 7), generator=g)
    src_mask = torch.arange(7)[None, :] < torch.tensor(LENGTHS)[:, None]  # (B, S), True at real tokens
    tgt = torch.randint(V, (3, 6), generator=g)
    return src, src_mask, tgt


def feed(stepper: Seq2SeqRNNStepper, tgt: torch.Tensor, chunks, state=None):
    """Feed tgt in chunks through the stepper → (logits (B, T, V) of every position, weights, state)."""
    state = stepper.new_state(tgt.shape[0]) if state is None else state
    logits, weights, start = [], [], 0
    for size in chunks:
        for t in range(start, start + size):  # one step per token so every position's logits are seen
            out, state = stepper.step(tgt[:, t:t + 1], state)
            logits.append(out)
            weights.append(state.attention)
        start += size
    return torch.stack(logits, dim=1), torch.stack(weights, dim=1), state


@pytest.mark.parametrize("seed", [0])
@pytest.mark.parametrize("variant", VARIANTS, ids=str)
def test_teacher_forcing_equals_step_by_step(variant, seed):
    model = make_model(seed, **variant)
    src, src_mask, tgt = data(seed)
    full, _, full_weights = model(src, tgt, src_mask, return_attention=True)  # (B, T, V), (B, T, S)
    stepped, weights, _ = feed(model.stepper_for(src, src_mask), tgt, (6,))
    torch.testing.assert_close(stepped, full)
    torch.testing.assert_close(weights, full_weights)
    # Several tokens per step with a state, and the stateless recompute path, agree too.
    stepper = model.stepper_for(src, src_mask)
    state = stepper.new_state(3)
    for start, stop in ((0, 2), (2, 3), (3, 6)):
        logits, state = stepper.step(tgt[:, start:stop], state)
        torch.testing.assert_close(logits, full[:, stop - 1])
        torch.testing.assert_close(state.attention, full_weights[:, stop - 1])
    for stop in range(1, 7):
        logits, none = stepper.step(tgt[:, :stop], None)
        assert none is None
        torch.testing.assert_close(logits, full[:, stop - 1])


@pytest.mark.parametrize("seed", [0])
@pytest.mark.parametrize("variant", VARIANTS, ids=str)
def test_attention_rows_sum_to_one_and_skip_padding(variant, seed):
    model = make_model(seed, **variant)
    src, src_mask, tgt = data(seed)
    _, _, weights = model(src, tgt, src_mask, return_attention=True)  # (B, T, S)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 6, dtype=torch.float64))
    assert (weights.masked_select(~src_mask[:, None, :]) == 0).all()


@pytest.mark.parametrize("seed", [0])
@pytest.mark.parametrize("variant", VARIANTS, ids=str)
def test_source_padding_does_not_change_real_logits(variant, seed):
    model = make_model(seed, **variant)
    src, src_mask, tgt = data(seed)
    logits, _ = model(src, tgt, src_mask)
    # Other tokens at padded positions, and three more padded columns.
    g = torch.Generator().manual_seed(seed + 1)
    noisy = torch.where(src_mask, src, torch.randint(V, src.shape, generator=g))
    wider = torch.cat([noisy, torch.randint(V, (3, 3), generator=g)], dim=1)
    wider_mask = torch.cat([src_mask, torch.zeros(3, 3, dtype=torch.bool)], dim=1)
    torch.testing.assert_close(model(wider, tgt, wider_mask)[0], logits)
    # Each row alone, unpadded, gives its row of the padded batch.
    for row, length in enumerate(LENGTHS):
        alone, _ = model(src[row:row + 1, :length], tgt[row:row + 1])
        torch.testing.assert_close(alone, logits[row:row + 1])
    # The mask is what makes this so: read as real tokens, the padding changes the logits.
    assert not torch.allclose(model(noisy, tgt)[0][2], logits[2])


@pytest.mark.parametrize("seed", [0])
@pytest.mark.parametrize("variant", VARIANTS, ids=str)
def test_decoder_is_causal(variant, seed):
    model = make_model(seed, **variant)
    src, src_mask, tgt = data(seed)
    logits, _ = model(src, tgt, src_mask)
    for t in range(tgt.shape[1]):
        changed = tgt.clone()
        changed[:, t] = (changed[:, t] + 1) % V
        other, _ = model(src, changed, src_mask)
        torch.testing.assert_close(other[:, :t], logits[:, :t])  # positions before t never read token t
        assert not torch.allclose(other[:, t], logits[:, t])  # position t does


@pytest.mark.parametrize("seed", [0])
@pytest.mark.parametrize("variant", VARIANTS, ids=str)
def test_reorder_equals_a_stepper_on_the_reordered_beams(variant, seed):
    model = make_model(seed, **variant)
    src, src_mask, _ = data(seed)
    beam = 3
    src_rep, mask_rep = src.repeat_interleave(beam, 0), src_mask.repeat_interleave(beam, 0)  # (B·beam, S)
    g = torch.Generator().manual_seed(seed)
    prefixes = torch.randint(V, (3 * beam, 4), generator=g)  # a different prefix on every beam
    # Beam search moves states only between rows of the same source (rows may repeat, some vanish).
    index = torch.tensor([2, 2, 0, 3, 4, 5, 8, 6, 6])
    assert (src_rep[index] == src_rep).all()

    stepper = model.stepper_for(src_rep, mask_rep)
    _, _, state = feed(stepper, prefixes, (4,))
    moved = stepper.reorder(state, index)
    reference = model.stepper_for(src_rep, mask_rep)
    _, _, expected = feed(reference, prefixes[index], (4,))
    torch.testing.assert_close(moved.hidden, expected.hidden)
    torch.testing.assert_close(moved.attention, expected.attention)
    more = torch.randint(V, (3 * beam, 2), generator=g)
    torch.testing.assert_close(feed(stepper, more, (2,), moved)[0], feed(reference, more, (2,), expected)[0])


@pytest.mark.parametrize("variant", VARIANTS[::2], ids=str)
def test_cached_and_recomputed_greedy_decoding_agree(variant):
    model = make_model(0, **variant)
    src, src_mask, _ = data(0)
    stepper = model.stepper_for(src, src_mask)
    bos = torch.zeros(3, 1, dtype=torch.long)
    cached = generate(stepper, bos, 8, temperature=0.0, use_cache=True)
    recomputed = generate(stepper, bos, 8, temperature=0.0, use_cache=False)
    assert torch.equal(cached, recomputed)


def test_vocabularies_shared_or_separate():
    shared = Seq2SeqRNN(7, d_embed=4, d_hidden=3, block_size=5)
    assert shared.tgt_emb.weight is shared.src_emb.weight and shared.vocab_size == 7
    separate = Seq2SeqRNN(7, 5, d_embed=4, d_hidden=3, block_size=5)
    assert separate.tgt_emb.weight.shape == (5, 4) and separate.vocab_size == 5
    logits, _ = separate(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 4, dtype=torch.long))
    assert logits.shape == (2, 4, 5)
    assert shared.num_parameters() == sum(p.numel() for p in shared.parameters())
    assert shared.num_parameters() < separate.num_parameters() + 7 * 4  # the shared table counts once


def test_stepper_state_and_arguments():
    model = Seq2SeqRNN(7, cell="lstm", d_embed=4, d_hidden=3, n_layer=2, block_size=5)
    stepper = model.stepper_for(torch.zeros(2, 3, dtype=torch.long))
    state = stepper.new_state(2)
    assert isinstance(state, RNNDecoderState) and state.attention is None
    assert [h.shape for h in state.hidden] == [(2, 2, 3), (2, 2, 3)]  # (L, B, H) for h and c
    assert stepper.block_size == 5 and stepper.batch_size == 2
    with pytest.raises(ValueError, match="decodes 2 sources"):
        stepper.new_state(3)
    with pytest.raises(ValueError, match="unknown cell"):
        Seq2SeqRNN(7, cell="rnn", d_embed=4, d_hidden=3, block_size=5)
    with pytest.raises(ValueError, match="unknown attention"):
        Seq2SeqRNN(7, attention="concat", d_embed=4, d_hidden=3, block_size=5)


COPY_PAIRS = [[3, 4, 5], [6, 3, 7, 8], [5, 5, 4], [8, 7]]  # letters 3..8; BOS 1, EOS 2


@pytest.mark.parametrize("seed", [0])
@pytest.mark.parametrize("cell,attention", list(itertools.product(("gru", "lstm"), ("bahdanau", "luong"))))
def test_a_tiny_model_overfits_a_copy_task(cell, attention, seed):
    torch.manual_seed(seed)
    model = Seq2SeqRNN(V, cell=cell, attention=attention, d_embed=8, d_hidden=16, block_size=6)
    (src, tgt_in, src_mask, tgt_mask), targets = collate(EncodedPairs(COPY_PAIRS, COPY_PAIRS, 1, 2), range(4))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-2)
    for _ in range(60):  # the loss falls below 0.1 after about 20 steps at these sizes
        _, loss = model(src, tgt_in, src_mask, tgt_mask, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.1, f"seed {seed}: loss {loss.item():.3f}"
