"""Corpus BLEU (Papineni et al. 2002) by sacreBLEU (Post 2018), with its signature.

sacreBLEU is the field's reference implementation: its signature (`nrefs:1|case:mixed|eff:no|
tok:13a|smooth:exp|version:2.x`) says exactly how a score was computed, so a score printed with it
can be compared with a published one. seqlab passes its options through and keeps the numbers it
reports:

    result = corpus_bleu(["the cat sat on the mat"], ["the cat sat on a mat"])
    result.score, result.signature   # 59.46..., 'nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0'

Several references are given as sacreBLEU takes them: a list of reference streams, each stream a
list with one reference per hypothesis (`[refs_a, refs_b]`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from seqlab.errors import ConfigError

TOKENIZERS = ("13a", "none", "intl", "char")
SMOOTHING = ("exp", "floor", "add-k", "none")


@dataclass(frozen=True)
class BLEUScore:
    """A corpus BLEU score and its parts, as sacreBLEU reports them.

    score: BLEU in 0..100 · precisions: the four (smoothed) n-gram precisions in 0..100 · bp: brevity
    penalty · ratio: sys_len / ref_len · sys_len, ref_len: hypothesis and effective reference tokens ·
    signature: sacreBLEU's description of the settings, to print beside the score.
    """

    score: float
    precisions: tuple[float, ...]
    bp: float
    ratio: float
    sys_len: int
    ref_len: int
    signature: str

    def __str__(self) -> str:
        p = "/".join(f"{x:.1f}" for x in self.precisions)
        return (f"BLEU = {self.score:.2f} {p} (BP = {self.bp:.3f} ratio = {self.ratio:.3f} "
                f"hyp_len = {self.sys_len} ref_len = {self.ref_len}) {self.signature}")


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str] | Sequence[Sequence[str]], *,
                tokenize: Literal["13a", "none", "intl", "char"] = "13a", lowercase: bool = False,
                smooth: Literal["exp", "floor", "add-k", "none"] = "exp") -> BLEUScore:
    """BLEU of `hypotheses` against one reference each (a list of strings) or several streams."""
    try:
        from sacrebleu.metrics import BLEU
    except ImportError as exc:  # a dependency of seqlab; only a broken install lacks it
        raise ConfigError("BLEU needs the sacrebleu package: pip install sacrebleu") from exc
    if tokenize not in TOKENIZERS:
        raise ConfigError(f"unknown BLEU tokenize {tokenize!r}; choose one of {', '.join(TOKENIZERS)}")
    if smooth not in SMOOTHING:
        raise ConfigError(f"unknown BLEU smooth {smooth!r}; choose one of {', '.join(SMOOTHING)}")
    streams = [list(references)] if references and isinstance(references[0], str) else [list(s) for s in references]
    for stream in streams:
        if len(stream) != len(hypotheses):
            raise ConfigError(f"{len(hypotheses)} hypotheses but a reference stream of {len(stream)}")
    metric = BLEU(tokenize=tokenize, lowercase=lowercase, smooth_method=smooth)
    result = metric.corpus_score(list(hypotheses), streams)
    return BLEUScore(score=result.score, precisions=tuple(result.precisions), bp=result.bp, ratio=result.ratio,
                     sys_len=result.sys_len, ref_len=result.ref_len, signature=str(metric.get_signature()))
