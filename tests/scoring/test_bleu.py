"""BLEU through sacreBLEU: the options reach it (each changes the score as sacreBLEU's own call
does), several reference streams, the signature, a worked example and the errors."""

import math

import pytest

from seqlab.errors import ConfigError
from seqlab.scoring.bleu import corpus_bleu

sacrebleu = pytest.importorskip("sacrebleu")

HYPS = ["The cat sat on the mat.", "A dog ran, quickly, in THE park!", "3.5-4 e-mail U.S.A."]
REFS = ["the cat sat on a mat .", "a dog ran quickly in the park", "3.5 - 4 e-mail U.S.A."]
REFS2 = ["The cat is on the mat.", "A dog was running in the park!", "3.5-4 email USA"]


@pytest.mark.parametrize("tokenize", ["13a", "none", "intl", "char"])
@pytest.mark.parametrize("lowercase", [False, True])
@pytest.mark.parametrize("smooth", ["exp", "floor", "add-k", "none"])
def test_options_reach_sacrebleu(tokenize, lowercase, smooth):
    ours = corpus_bleu(HYPS, [REFS, REFS2], tokenize=tokenize, lowercase=lowercase, smooth=smooth)
    theirs = sacrebleu.corpus_bleu(HYPS, [REFS, REFS2], tokenize=tokenize, lowercase=lowercase,
                                   smooth_method=smooth)
    assert ours.score == theirs.score and list(ours.precisions) == list(theirs.precisions)
    assert (ours.sys_len, ours.ref_len, ours.bp) == (theirs.sys_len, theirs.ref_len, theirs.bp)
    assert f"tok:{tokenize}" in ours.signature and f"smooth:{smooth}" in ours.signature
    assert ("case:lc" in ours.signature) == lowercase and "nrefs:2" in ours.signature


def test_options_change_the_score():
    base = corpus_bleu(HYPS, REFS).score
    assert corpus_bleu(HYPS, REFS, lowercase=True).score != base
    assert corpus_bleu(HYPS, REFS, tokenize="none").score != base


def test_worked_example_and_identical_corpus():
    lines = ["the cat sat on the mat", "a dog ran in the park today"]
    assert corpus_bleu(lines, lines).score == pytest.approx(100.0)
    result = corpus_bleu(["a b c d e"], ["a b c x e f"], tokenize="none")
    # p = 4/5, 2/4, 1/3, 0/2; exp smoothing makes the first zero precision 1/(2·2); BP = exp(1 - 6/5)
    assert list(result.precisions) == pytest.approx([80.0, 50.0, 100 / 3, 25.0])
    expected = math.exp(1 - 6 / 5) * math.exp(sum(math.log(p / 100) for p in [80.0, 50.0, 100 / 3, 25.0]) / 4)
    assert result.score == pytest.approx(100 * expected)
    assert "BLEU = " in str(result) and "nrefs:1" in str(result)


def test_bad_input_is_a_config_error():
    with pytest.raises(ConfigError, match="2 hypotheses but a reference stream of 1"):
        corpus_bleu(["a", "b"], ["a"])
    with pytest.raises(ConfigError, match="tokenize"):
        corpus_bleu(["a"], ["a"], tokenize="moses")
