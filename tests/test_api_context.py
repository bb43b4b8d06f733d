"""Evaluating with a longer context than training's (`seqlab eval --context N`): allowed when the
positions extrapolate (rotary, ALiBi), a one-line error for learned positions."""

import math

import pytest

import seqlab
from seqlab.cli import main
from seqlab.config import load_config
from seqlab.errors import SeqlabError

SEED = 7
BLOCK = 16




@pytest.fixture(scope="module")
def runs(tmp_path_factory, word_corpus):
    """Tiny trained runs, one per position scheme."""
    root = tmp_path_factory.mktemp("context")
    corpus = word_corpus(root / "corpus.txt", seed=SEED, size=3000)
    out = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SEQLAB_CACHE", str(root / "cache"))
        for position in ("rope", "alibi", "learned"):
            config = load_config(None, [f"data.corpus={corpus}", "data.val_fraction=0.2", f"model.position={position}",
                                        "model.n_layer=1", "model.n_head=2", "model.d_model=16",
                                        f"model.block_size={BLOCK}", "train.max_steps=4", "train.batch_size=4",
                                        "train.eval_every=0", "train.eval_steps=1", "train.checkpoint_every=0",
                                        "train.sample_tokens=0", "train.seed=" + str(SEED), "train.device=cpu"])
            out[position] = seqlab.train(config, out=root / position, progress=False)
        yield out


@pytest.mark.parametrize("position", ["rope", "alibi"])
def test_extrapolating_positions_evaluate_three_times_the_context(runs, position):
    default = seqlab.evaluate(runs[position])
    long = seqlab.evaluate(runs[position], context=3 * BLOCK)
    assert default["context"] == BLOCK and long["context"] == 3 * BLOCK
    assert math.isfinite(long["bits_per_char"]) and long["bits_per_char"] > 0
    assert long["tokens"] == default["tokens"]  # every token is still predicted exactly once


def test_context_of_block_size_is_the_default(runs):
    assert seqlab.evaluate(runs["rope"], context=BLOCK) == seqlab.evaluate(runs["rope"])


def test_learned_positions_reject_a_longer_context(runs):
    with pytest.raises(SeqlabError, match="learned positions"):
        seqlab.evaluate(runs["learned"], context=BLOCK + 1)
    shorter = seqlab.evaluate(runs["learned"], context=BLOCK // 2)  # a shorter window is always possible
    assert math.isfinite(shorter["bits_per_char"])


def test_cli_context_too_long_is_a_one_line_error(runs, capsys):
    code = main(["eval", str(runs["learned"]), "--context", str(3 * BLOCK)])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("seqlab: error: ") and f"at most {BLOCK}" in lines[0]


def test_cli_evaluates_with_a_longer_context(runs, capsys):
    assert main(["eval", str(runs["alibi"]), "--context", str(3 * BLOCK), "--json"]) == 0
    assert f'"context": {3 * BLOCK}' in capsys.readouterr().out


def test_context_must_be_positive(runs):
    with pytest.raises(SeqlabError, match="positive"):
        seqlab.evaluate(runs["rope"], context=0)
