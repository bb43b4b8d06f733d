import itertools
import math
from typing import ClassVar

import pytest
import torch

from seqlab.config.schema import EncoderDecoderConfig, ModelConfig
from seqlab.generate.beam import (
    Hypothesis,
    beam_search,
    beam_search_n_best,
    length_penalty_factor,
)
from seqlab.generate.sampling import generate
from seqlab.models.encoder_decoder import EncoderDecoder
from seqlab.nn.kv_cache import KVCache

V = 11
BOS = 0


def make_model(seed: int, **axes) -> EncoderDecoder:
    torch.manual_seed(seed)
    config = EncoderDecoderConfig(n_layer=2, n_encoder_layer=2, n_head=2, d_model=16,
                         block_size=10, **axes)
    return EncoderDecoder(config, V).double()


def sources(seed: int, lengths=(7, 5, 2, 4)):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(1, V, (len(lengths), max(lengths)), generator=g)
    src_mask = torch.arange(max(lengths))[None, :] < torch.tensor(lengths)[:, None]  # (B, S)
    return src.masked_fill(~src_mask, 0), src_mask


def greedy(model, src, src_mask, eos, max_new_tokens):
    """Greedy targets the way `seqlab.seq2seq.translate` makes them: generate at temperature 0, cut at EOS."""
    stepper = model.eval().stepper_for(src, src_mask)
    start = torch.full((src.shape[0], 1), BOS, dtype=torch.long)
    rows = generate(stepper, start, max_new_tokens, temperature=0)[:, 1:].tolist()
    return [row[:row.index(eos)] if eos in row else row for row in rows]


def teacher_forced_log_prob(model, src, src_mask, hypothesis: Hypothesis, eos: int) -> float:
    """Sum of the target's token log-probs (EOS included when it ended) by one teacher-forced forward."""
    target = hypothesis.tokens + ([eos] if hypothesis.finished else [])
    tgt_in = torch.tensor([[BOS, *target[:-1]]])
    with torch.no_grad():
        logits, _ = model.eval()(src, tgt_in, src_mask)  # (1, T, V)
    log_probs = torch.log_softmax(logits[0], dim=-1)  # (T, V)
    return float(log_probs[torch.arange(len(target)), torch.tensor(target)].sum())


# (a) width 1 is greedy decoding

@pytest.mark.parametrize("seed", [0, 1])
def test_beam_size_one_is_greedy_decoding(seed):
    model = make_model(seed)
    src, src_mask = sources(seed)
    ended = 0
    for eos in range(1, V, 2):  # several ids as EOS: the same greedy paths, cut at different places
        expected = greedy(model, src, src_mask, eos, 9)
        found = beam_search(model, src, src_mask, bos=BOS, eos=eos, beam_size=1, max_new_tokens=9,
                            length_penalty=0.0)
        assert [h.tokens for h in found] == expected, f"seed {seed} eos {eos}"
        ended += sum(h.finished for h in found)
        for row, h in enumerate(found):
            n = int(src_mask[row].sum())
            tf = teacher_forced_log_prob(model, src[row:row + 1, :n], src_mask[row:row + 1, :n], h, eos)
            assert h.log_prob == pytest.approx(tf, abs=1e-9) and h.score == h.log_prob
    assert ended > 0  # some targets did end with EOS (not only cut at the length limit)


def test_model_mode_is_restored():
    model = make_model(0).train()
    src, src_mask = sources(0)
    beam_search(model, src, src_mask, bos=BOS, eos=1, beam_size=2, max_new_tokens=3)
    assert model.training


# (c) a batch is decoded as each source alone

@pytest.mark.parametrize("alpha", [0.0, 0.6])
def test_batched_equals_each_source_alone(alpha):
    model = make_model(3)
    src, src_mask = sources(3)
    eos = 4
    batched = beam_search_n_best(model, src, src_mask, bos=BOS, eos=eos, beam_size=3, max_new_tokens=8,
                                 length_penalty=alpha, n_best=3)
    for row in range(src.shape[0]):
        n = int(src_mask[row].sum())
        alone = beam_search_n_best(model, src[row:row + 1, :n], src_mask[row:row + 1, :n], bos=BOS, eos=eos,
                                   beam_size=3, max_new_tokens=8, length_penalty=alpha, n_best=3)[0]
        assert [h.tokens for h in batched[row]] == [h.tokens for h in alone], f"row {row}"
        for a, b in zip(batched[row], alone):
            assert a.log_prob == pytest.approx(b.log_prob, abs=1e-9) and a.finished == b.finished
        for h in alone:  # scores and log-probs agree with teacher forcing
            tf = teacher_forced_log_prob(model, src[row:row + 1, :n], src_mask[row:row + 1, :n], h, eos)
            assert h.log_prob == pytest.approx(tf, abs=1e-9)
            length = len(h.tokens) + h.finished
            assert h.score == pytest.approx(tf / length_penalty_factor(length, alpha), abs=1e-9)
        assert [h.score for h in alone] == sorted((h.score for h in alone), reverse=True)


# (b), (d) exactness on a toy whose every target can be enumerated

class TableModel:
    """A fake seq2seq model: the next-token log-probs are a fixed random function of (source, prefix).

    It follows the beam-search protocol; its state is the (B, t) prefix fed so far, and `reorder`
    selects rows of it, so a reorder bug shows up as wrong log-probs.
    """

    def __init__(self, vocab: int, seed: int, sharpness: float = 2.0) -> None:
        self.vocab, self.seed, self.sharpness = vocab, seed, sharpness
        self.block_size = None

    def log_probs(self, source: tuple[int, ...], prefix: tuple[int, ...]) -> torch.Tensor:
        # Python hashes tuples of ints deterministically (no hash randomisation for ints).
        g = torch.Generator().manual_seed(hash((self.seed, source, prefix)) & 0xFFFF_FFFF)
        return torch.log_softmax(self.sharpness * torch.randn(self.vocab, generator=g, dtype=torch.float64), -1)

    def stepper_for(self, src, src_mask):
        model = self

        class Stepper:
            block_size = None

            def __init__(self):
                self.sources = [tuple(r[m].tolist()) for r, m in zip(src, src_mask)]

            def new_state(self, batch_size, device):
                return torch.zeros(batch_size, 0, dtype=torch.long)

            def step(self, tokens, state):
                state = torch.cat([state, tokens], dim=1)
                rows = [model.log_probs(s, tuple(p)) for s, p in zip(self.sources, state.tolist())]
                return torch.stack(rows), state

            def reorder(self, state, index):
                return state[index]

        return Stepper()

    def sequence_log_prob(self, source, tokens) -> float:
        """Teacher forcing: the sum of each token's log-prob given the prefix before it."""
        prefix, total = (BOS,), 0.0
        for token in tokens:
            total += float(self.log_probs(source, prefix)[token])
            prefix += (token,)
        return total


def all_targets(vocab: int, eos: int, max_len: int):
    """Every possible output: (tokens, ended with EOS) — EOS within max_len, or max_len tokens without."""
    words = [t for t in range(vocab) if t != eos]
    for n in range(max_len):
        for tokens in itertools.product(words, repeat=n):
            yield list(tokens), True
    for tokens in itertools.product(words, repeat=max_len):
        yield list(tokens), False


def ranked_targets(model: TableModel, source, eos, max_len, alpha):
    """All targets with (score, log_prob), best score first."""
    out = []
    for tokens, ended in all_targets(model.vocab, eos, max_len):
        log_prob = model.sequence_log_prob(source, tokens + ([eos] if ended else []))
        out.append((log_prob / length_penalty_factor(len(tokens) + ended, alpha), log_prob, tokens, ended))
    return sorted(out, key=lambda x: -x[0])


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_wide_enough_beam_finds_the_best_target_exactly(seed, alpha):
    vocab, eos, max_len = 3, 2, 4  # 1 + 2 + 4 + 8 ended targets + 16 cut ones = 31
    model = TableModel(vocab, seed)
    src = torch.tensor([[5, 6, 7], [8, 9, 0]])
    src_mask = torch.tensor([[True, True, True], [True, True, False]])
    n_targets = len(list(all_targets(vocab, eos, max_len)))
    pools = beam_search_n_best(model, src, src_mask, bos=BOS, eos=eos, beam_size=n_targets,
                               max_new_tokens=max_len, length_penalty=alpha, n_best=3)
    for row, pool in enumerate(pools):
        source = tuple(src[row][src_mask[row]].tolist())
        ranked = ranked_targets(model, source, eos, max_len, alpha)
        for h, (score, log_prob, tokens, ended) in zip(pool, ranked):  # the 3 best, in order
            assert (h.tokens, h.finished) == (tokens, ended), f"seed {seed} row {row}"
            assert h.score == pytest.approx(score, abs=1e-12)
            assert h.log_prob == pytest.approx(log_prob, abs=1e-12)
        assert ranked[0][0] - ranked[3][0] > 1e-9  # no near-tie makes the order above arbitrary


@pytest.mark.parametrize("seed", range(6))
def test_beam_log_prob_matches_teacher_forcing_at_every_width(seed):
    vocab, eos, max_len = 4, 1, 3
    model = TableModel(vocab, seed)
    src, src_mask = torch.tensor([[3, 4]]), torch.tensor([[True, True]])
    for k in (1, 2, 3, 5):
        for h in beam_search_n_best(model, src, src_mask, bos=BOS, eos=eos, beam_size=k, max_new_tokens=max_len,
                                    length_penalty=0.6, n_best=k)[0]:
            tf = model.sequence_log_prob((3, 4), h.tokens + ([eos] if h.finished else []))
            assert h.log_prob == pytest.approx(tf, abs=1e-12), f"seed {seed} width {k}"


@pytest.mark.parametrize("seed", range(10))
def test_wider_beam_never_loses_to_width_one(seed):
    # Beam search is not monotonic in the width in general (a narrower beam can keep a prefix a wider
    # one drops); what holds is that an exhaustive width is best, so it never loses to greedy or any
    # narrower width. With alpha = 0 the score is the log-prob.
    vocab, eos, max_len = 4, 3, 3  # 1 + 3 + 9 ended + 27 cut = 40 targets
    model = TableModel(vocab, seed)
    src, src_mask = torch.tensor([[1, 2], [2, 1]]), torch.ones(2, 2, dtype=torch.bool)
    found = {k: beam_search(model, src, src_mask, bos=BOS, eos=eos, beam_size=k, max_new_tokens=max_len,
                            length_penalty=0.0) for k in (1, 2, 4, 40)}
    for row in range(2):
        best = found[40][row].log_prob
        source = tuple(src[row].tolist())
        assert best == pytest.approx(ranked_targets(model, source, eos, max_len, 0.0)[0][1], abs=1e-12)
        for k in (1, 2, 4):
            assert best >= found[k][row].log_prob - 1e-12, f"seed {seed} row {row} width {k}"


class HandTable(TableModel):
    """Explicit next-token probabilities by prefix (tokens 0, 1, 2; EOS 3; BOS is 0); uniform elsewhere."""

    TABLE: ClassVar[dict[tuple[int, ...], list[float]]] = {
        (0,): [0.40, 0.35, 0.24, 0.01],
        (0, 0): [0.31, 0.30, 0.29, 0.10],  # after the greedy first token the mass spreads ...
        (0, 0, 0): [0.01, 0.01, 0.01, 0.97],  # ... but greedy's path then ends surely: 0.4 * 0.31 * 0.97
        (0, 1): [0.50, 0.49, 0.005, 0.005],  # the runner-up's two children outrank greedy's prefix ...
    }  # ... and then spread out uniformly: 0.35 * 0.5 * 0.25 < 0.4 * 0.31 * 0.97

    def log_probs(self, source, prefix):
        return torch.tensor(self.TABLE.get(prefix, [0.25] * 4), dtype=torch.float64).log()


def test_narrower_beam_can_beat_a_wider_one_so_only_exhaustive_width_is_guaranteed():
    # Documents the non-monotonicity behind the test above on a hand-made table.
    model = HandTable(4, 0)
    src, src_mask = torch.tensor([[1]]), torch.ones(1, 1, dtype=torch.bool)
    one, two, wide = (beam_search(model, src, src_mask, bos=BOS, eos=3, beam_size=k, max_new_tokens=3,
                                  length_penalty=0.0)[0] for k in (1, 2, 40))
    assert (one.tokens, one.finished) == ([0, 0], True)
    assert one.log_prob == pytest.approx(math.log(0.4 * 0.31 * 0.97), abs=1e-12)
    assert two.log_prob == pytest.approx(math.log(0.35 * 0.5 * 0.25), abs=1e-12)
    assert two.log_prob < one.log_prob
    assert wide.log_prob == pytest.approx(one.log_prob, abs=1e-12)


class LongerWins(HandTable):
    """EOS first is likeliest, but a strong length penalty favours the long, near-certain path 0 0 0 0."""

    TABLE: ClassVar[dict[tuple[int, ...], list[float]]] = {
        (0,): [0.38, 0.01, 0.01, 0.60],
        (0, 0): [0.98, 0.01, 0.005, 0.005],
        (0, 0, 0): [0.98, 0.01, 0.005, 0.005],
        (0, 0, 0, 0): [0.98, 0.01, 0.005, 0.005],
    }


def test_search_does_not_stop_while_a_live_beam_can_still_win_on_length():
    # After one step the finished [EOS] scores log 0.6 = -0.51 and the live [0] has log 0.38 = -0.97:
    # with alpha = 3, lp(2) = 1.59 makes -0.61 (a stop by the current length), but at the length limit
    # lp(4) = 3.38 gives about -0.30 > -0.51. The bound must use the largest reachable lp.
    model, alpha = LongerWins(4, 0), 3.0
    src, src_mask = torch.tensor([[1]]), torch.ones(1, 1, dtype=torch.bool)
    best = beam_search(model, src, src_mask, bos=BOS, eos=3, beam_size=2, max_new_tokens=4, length_penalty=alpha)[0]
    score, _, tokens, ended = ranked_targets(model, (1,), 3, 4, alpha)[0]
    assert (best.tokens, best.finished) == (tokens, ended) == ([0, 0, 0, 0], False)
    assert best.score == pytest.approx(score, abs=1e-12)


def test_first_step_never_duplicates_a_hypothesis():
    model = TableModel(4, 0)
    src, src_mask = torch.tensor([[1, 2]]), torch.ones(1, 2, dtype=torch.bool)
    pool = beam_search_n_best(model, src, src_mask, bos=BOS, eos=3, beam_size=6, max_new_tokens=3,
                              length_penalty=0.0, n_best=6)[0]
    assert len({(tuple(h.tokens), h.finished) for h in pool}) == len(pool) == 6


def test_zero_new_tokens_gives_empty_targets_and_bad_arguments_fail():
    model = TableModel(4, 0)
    src, src_mask = torch.tensor([[1, 2]]), torch.ones(1, 2, dtype=torch.bool)
    assert beam_search(model, src, src_mask, bos=BOS, eos=3, max_new_tokens=0) == [Hypothesis([], 0.0, 0.0, False)]
    with pytest.raises(ValueError, match="n_best"):
        beam_search_n_best(model, src, src_mask, bos=BOS, eos=3, beam_size=2, max_new_tokens=2, n_best=3)


# (e) reordering the decoder state

def test_kv_cache_reorder_selects_and_repeats_rows():
    torch.manual_seed(0)
    cache = KVCache(torch.randn(2, 3, 2, 6, 4), torch.randn(2, 3, 2, 6, 4), length=4)
    index = torch.tensor([2, 0, 0, 1])
    new = cache.reorder(index)
    assert (new.length, new.batch_size, new.max_len) == (4, 4, 6)
    torch.testing.assert_close(new.k[:, :, :, :4], cache.k[:, index, :, :4])
    torch.testing.assert_close(new.v[:, :, :, :4], cache.v[:, index, :, :4])
    new.k[:, 1].zero_()  # the repeats are separate storage from each other and from the old cache
    torch.testing.assert_close(new.k[:, 2, :, :4], cache.k[:, 0, :, :4])
    with pytest.raises(ValueError, match="long"):
        cache.reorder(index.int())


def test_stepping_a_reordered_state_equals_a_stepper_on_reordered_prefixes():
    model = make_model(5).eval()
    base, base_mask = sources(5, lengths=(6, 3))
    K = 3
    src, src_mask = base.repeat_interleave(K, 0), base_mask.repeat_interleave(K, 0)  # as beam search builds it
    g = torch.Generator().manual_seed(5)
    prefix = torch.randint(V, (2 * K, 4), generator=g)  # a different target prefix per row
    index = torch.tensor([2, 2, 0, 4, 3, 3])  # rows move only within their source's group
    nxt = torch.randint(V, (2 * K, 1), generator=g)
    with torch.inference_mode():
        stepper = model.stepper_for(src, src_mask)
        _, state = stepper.step(prefix, stepper.new_state(2 * K, "cpu"))
        logits, _ = stepper.step(nxt, stepper.reorder(state, index))
        fresh = model.stepper_for(src, src_mask)
        expected, _ = fresh.step(torch.cat([prefix[index], nxt], dim=1), fresh.new_state(2 * K, "cpu"))
        assert stepper.reorder(None, index) is None
    torch.testing.assert_close(logits, expected)
    with pytest.raises(ValueError, match="index"):
        stepper.reorder(state, index[:3])
