"""Part-of-speech tagging with a bigram hidden Markov model (the classic HMM tagger).

Jurafsky & Martin, "Speech and Language Processing", ch. 8 (HMM part-of-speech tagging): states are
tags, symbols are words, parameters are smoothed relative frequencies from a tagged corpus
(`HMM.fit_supervised`), and a sentence is tagged with its Viterbi path.

Unknown words follow TnT (Brants 2000, "TnT -- A Statistical Part-of-Speech Tagger", section 2.3):
P(tag | suffix) is estimated from the rare words of the training data, one suffix trie per word
kind (`word_kind`: capitalised, lower-case, numbers, punctuation, URLs and e-mail addresses, ...),
from the last letter up to the longest suffix seen (at most 10 letters), and Bayes' rule turns it
into an emission: P(word | tag) ∝ P(tag | suffix) / P(tag), the word's own P(suffix) being the
same for every tag. Deviation from TnT: each suffix's distribution is smoothed towards the next
shorter one's with a Dirichlet prior of fixed weight (`SuffixModel`), not TnT's count-blind θ.

Case. Words keep their case: capitals are strong evidence for PROPN. An unseen word whose
lowercased form is known (`The` at a sentence start when only `the` was seen) takes the lowercased
form's emissions. Accordingly a training word is "rare", and trains the suffix model, when it and
its lowercased form together occur at most `rare_count` times: the words that stand in for unknown
ones are those that would have been unknown.

Tuning, on dev only (`cross_validate`, `seqlab experiment pos --held-out`: five folds, each
holding out a fifth of dev): pooled held-out accuracy 0.8996 (unknown words 0.7350) against 0.8932
(0.7011) for the word-shape classes this replaced. TnT's θ (the standard deviation of the tag
probabilities) scored 0.8927 here, 0.8990 at 16 θ. The settings sit on a plateau: rare_count 1–10,
suffixes of 6–10 letters and prior weights 3–10 all scored 0.8990–0.9005 (weight 1: 0.896–0.898).

Dimensions: K tags · M vocabulary words · U unknown words of one `tag` call.

    tagger = HMMTagger().fit(read_conllu(dev_path))
    tagger.tag([["I", "like", "tea", "."]])  # [['PRON', 'VERB', 'NOUN', 'PUNCT']]
    tagger.accuracy(read_conllu(test_path))["accuracy"]
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from seqlab.data.conllu import TaggedSentence
from seqlab.errors import DataError
from seqlab.files import atomic_write_text
from seqlab.models import hmm_kernels
from seqlab.models.hmm import HMM

logger = logging.getLogger(__name__)

_FORMAT = "seqlab.hmm-tagger"

WORD_KINDS = ("web", "num", "punct", "upper", "cap", "lower")
# URLs and e-mail addresses (EWT is web text): a scheme, "www.", an @ before a letter, or a domain.
_WEB = re.compile(r"^(https?://|www\.)|\w@\w|\.(com|org|net|edu|gov)\b", re.IGNORECASE)


def word_kind(word: str) -> str:
    """Which suffix trie an unknown word uses: one of `WORD_KINDS`.

    >>> [word_kind(w) for w in ["www.x.com", "3.5%", "?!", "NASA", "Paris", "walked"]]
    ['web', 'num', 'punct', 'upper', 'cap', 'lower']
    """
    if _WEB.search(word):
        return "web"
    if any(c.isdigit() for c in word):
        return "num"
    if not any(c.isalpha() for c in word):
        return "punct"
    if word.isupper() and len(word) > 1:  # acronyms: mostly PROPN, some NOUN
        return "upper"
    return "cap" if word[0].isupper() else "lower"


class SuffixModel:
    """P(tag | suffix) by successive abstraction over the suffixes of a word, one trie per kind.

    P(t | s_i) = (c(s_i, t) + β P(t | s_{i-1})) / (c(s_i) + β), where s_i is the last i letters
    (s_0 the empty suffix, i.e. the kind's tag counts) and c counts rare training tokens. The chain
    starts from the tag distribution of all rare tokens (add-one: no tag is impossible) and stops
    at the longest suffix of at most `max_length` letters seen in training. β = `prior_weight`.

    >>> model = SuffixModel(2, prior_weight=1.0).fit({("ran", "lower", 1): 1, ("tan", "lower", 0): 3})
    >>> model.tag_probs("fan", "lower").round(3).tolist()  # "an" as seen in training, mostly tag 0
    [0.749, 0.251]
    """

    def __init__(self, n_tags: int, *, max_length: int = 10, prior_weight: float = 3.0) -> None:
        if max_length < 0 or prior_weight <= 0:
            raise DataError(f"need max_length >= 0 and prior_weight > 0, got {max_length}, {prior_weight}")
        self.n_tags = n_tags
        self.max_length = max_length
        self.prior_weight = prior_weight
        self.tokens: Counter[tuple[str, str, int]] = Counter()  # (word, kind, tag id) -> count
        self.tries: dict[str, dict[str, np.ndarray]] = {}  # kind -> suffix -> (K,) tag counts
        self.prior = np.full(n_tags, 1.0 / n_tags)  # (K,)

    def fit(self, tokens: dict[tuple[str, str, int], int]) -> SuffixModel:
        """`tokens`: how often each (word, kind, tag id) occurs among the rare training tokens."""
        self.tokens = Counter(tokens)
        self.tries = {}
        total = np.ones(self.n_tags)  # (K,) add-one
        for (word, kind, tag), count in self.tokens.items():
            trie = self.tries.setdefault(kind, {})
            for i in range(min(len(word), self.max_length) + 1):
                trie.setdefault(word[len(word) - i:], np.zeros(self.n_tags))[tag] += count
            total[tag] += count
        self.prior = total / total.sum()
        return self

    def tag_probs(self, word: str, kind: str) -> np.ndarray:
        """P(tag | the longest known suffix of `word` in the `kind` trie), (K,)."""
        probs = self.prior
        trie = self.tries.get(kind, {})
        for i in range(min(len(word), self.max_length) + 1):
            counts = trie.get(word[len(word) - i:])
            if counts is None:
                break
            probs = (counts + self.prior_weight * probs) / (counts.sum() + self.prior_weight)
        return probs

    def to_dict(self) -> dict:
        return {"max_length": self.max_length, "prior_weight": self.prior_weight,
                "tokens": [[w, kind, tag, count] for (w, kind, tag), count in self.tokens.items()]}

    @classmethod
    def from_dict(cls, data: dict, n_tags: int) -> SuffixModel:
        model = cls(n_tags, max_length=data["max_length"], prior_weight=data["prior_weight"])
        return model.fit({(w, kind, tag): count for w, kind, tag, count in data["tokens"]})


class HMMTagger:
    """A bigram HMM tagger: `fit` on tagged sentences, `tag` word lists, `accuracy` on a test set.

    `rare_count`: training words seen at most this often (with their lowercased form) train the
    unknown-word model; `max_suffix` and `prior_weight` are the `SuffixModel`'s.
    """

    def __init__(self, *, rare_count: int = 3, max_suffix: int = 10, prior_weight: float = 3.0) -> None:
        if rare_count < 1 or max_suffix < 0 or prior_weight <= 0:
            raise DataError(f"need rare_count >= 1, max_suffix >= 0 and prior_weight > 0, got "
                            f"{rare_count}, {max_suffix} and {prior_weight}")
        self.rare_count = rare_count
        self.max_suffix = max_suffix
        self.prior_weight = prior_weight
        self.tags: list[str] = []
        self.words: list[str] = []  # M vocabulary words, in emission column order
        self.hmm: HMM | None = None
        self.suffixes: SuffixModel | None = None
        self.log_tag_prior = np.zeros(0)  # (K,) log P(tag) over all training tokens
        self._index: dict[str, int] = {}

    def _set_vocabulary(self, tags: list[str], words: list[str]) -> None:
        self.tags = list(tags)
        self.words = list(words)
        self._index = {w: i for i, w in enumerate(self.words)}

    def is_known(self, word: str) -> bool:
        """Whether `word` or, failing that, its lowercased form has its own emission column."""
        return self._word_id(word) is not None

    def _word_id(self, word: str) -> int | None:
        i = self._index.get(word)
        return self._index.get(word.lower()) if i is None else i

    # ----------------------------------------------------------------- learning

    def fit(self, sentences: Sequence[TaggedSentence], *, smoothing: float = 0.01,
            transition_smoothing: float = 1.0) -> HMMTagger:
        """Counts from tagged sentences. `smoothing` is the add-k of the emissions (small: the
        vocabulary is large and most (tag, word) pairs are impossible), `transition_smoothing` the
        add-k of the start and transition probabilities (17 x 17 cells, all well attested)."""
        if not sentences:
            raise DataError("no training sentences: give at least one tagged sentence")
        counts = Counter(w for s in sentences for w in s.words)
        tags = sorted({t for s in sentences for t in s.tags})
        self._set_vocabulary(tags, sorted(counts))
        tag_index = {t: k for k, t in enumerate(tags)}
        symbols = [np.array([self._index[w] for w in s.words]) for s in sentences]
        states = [np.array([tag_index[t] for t in s.tags], dtype=np.int64) for s in sentences]
        K, M = len(tags), len(self.words)
        # Two fits because fit_supervised takes one add-k: keep each one's half of the parameters.
        emissions = HMM(K, M).fit_supervised(symbols, states, smoothing=smoothing)
        transitions = HMM(K, M).fit_supervised(symbols, states, smoothing=transition_smoothing)
        self.hmm = HMM(startprob=transitions.startprob, transmat=transitions.transmat,
                       emissionprob=emissions.emissionprob)
        tag_counts = np.bincount(np.concatenate(states), minlength=K) + 1.0  # (K,)
        self.log_tag_prior = np.log(tag_counts / tag_counts.sum())

        def rare(w: str) -> bool:
            return counts[w] + (counts[w.lower()] if w.lower() != w else 0) <= self.rare_count

        tokens = Counter((w, word_kind(w), tag_index[t]) for s in sentences
                         for w, t in zip(s.words, s.tags) if rare(w))
        self.suffixes = SuffixModel(K, max_length=self.max_suffix, prior_weight=self.prior_weight).fit(tokens)
        logger.info("HMM tagger: %d tags, %d words, %d rare tokens from %d sentences",
                    K, M, tokens.total(), len(sentences))
        return self

    # ----------------------------------------------------------------- inference

    def _encode(self, words: Sequence[str], unknown: dict[str, int]) -> np.ndarray:
        """Symbol ids of one sentence, (T,): a known word's column, else its id in `unknown`
        (word -> M + u), where a new unknown word is added."""
        ids = []
        for word in words:
            i = self._word_id(word)
            ids.append(unknown.setdefault(word, len(self.words) + len(unknown)) if i is None else i)
        return np.array(ids, dtype=np.int64)

    def unknown_log_emission(self, word: str) -> np.ndarray:
        """log P(word | tag) of an unknown word up to a constant, (K,): P(tag | suffix) / P(tag)."""
        return np.log(self.suffixes.tag_probs(word, word_kind(word))) - self.log_tag_prior

    def tag(self, sentences: Sequence[Sequence[str]]) -> list[list[str]]:
        """The Viterbi tag sequence of each word list."""
        if self.hmm is None:
            raise DataError("the tagger is not fitted: call fit() or load() first")
        if not sentences or any(len(s) == 0 for s in sentences):
            raise DataError("tag() needs a non-empty list of non-empty word lists")
        # Each distinct unknown word of the call gets a symbol id after the vocabulary's, M + u,
        # and an emission row of its own: the HMM's emission matrix stays that of the known words.
        unknown: dict[str, int] = {}
        encoded = [self._encode(s, unknown) for s in sentences]
        with np.errstate(divide="ignore"):  # log 0 = -inf marks forbidden moves
            log_start = np.log(self.hmm.startprob)  # (K,)
            log_trans = np.log(self.hmm.transmat)  # (K, K)
            log_known = np.log(self.hmm.emissionprob.T)  # (M, K)
        log_emission_t = np.concatenate(  # (M + U, K)
            [log_known, *(self.unknown_log_emission(w)[None] for w in unknown)])
        paths, _ = hmm_kernels.log_viterbi(log_start, log_trans, log_emission_t.T, hmm_kernels.flatten(encoded))
        return [[self.tags[k] for k in p] for p in paths]

    def accuracy(self, sentences: Sequence[TaggedSentence]) -> dict:
        """Tag accuracy overall, on known words (own emission column: seen in training, as written
        or lowercased) and on unknown words (tagged by the suffix model), with counts."""
        predicted = self.tag([s.words for s in sentences])
        correct = {True: 0, False: 0}
        total = {True: 0, False: 0}
        for sentence, guess in zip(sentences, predicted):
            for word, gold, tag in zip(sentence.words, sentence.tags, guess):
                known = self.is_known(word)
                total[known] += 1
                correct[known] += gold == tag
        return _accuracy_dict(correct[True], total[True], correct[False], total[False])

    # ----------------------------------------------------------------- serialisation

    def to_dict(self) -> dict:
        if self.hmm is None:
            raise DataError("the tagger is not fitted: nothing to save")
        return {"format": _FORMAT, "version": 2, "rare_count": self.rare_count, "tags": self.tags,
                "words": self.words, "hmm": self.hmm.to_dict(), "suffixes": self.suffixes.to_dict(),
                "log_tag_prior": self.log_tag_prior.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> HMMTagger:
        if data.get("format") != _FORMAT or data.get("version") != 2:
            raise DataError(f"not a version-2 {_FORMAT} document "
                            f"(format={data.get('format')!r}, version={data.get('version')!r})")
        suffixes = data["suffixes"]
        tagger = cls(rare_count=data["rare_count"], max_suffix=suffixes["max_length"],
                     prior_weight=suffixes["prior_weight"])
        tagger._set_vocabulary(data["tags"], data["words"])
        tagger.hmm = HMM.from_dict(data["hmm"])
        tagger.suffixes = SuffixModel.from_dict(suffixes, len(tagger.tags))
        tagger.log_tag_prior = np.array(data["log_tag_prior"], dtype=float)
        if tagger.hmm.emissionprob.shape != (len(tagger.tags), len(tagger.words)):
            raise DataError(f"tagger document is inconsistent: emissions {tagger.hmm.emissionprob.shape}"
                            f" for {len(tagger.tags)} tags and {len(tagger.words)} words")
        return tagger

    def save(self, path: str | Path) -> None:
        """Write the tagger as JSON (vocabulary, tags, the HMM's parameters, the rare tokens of
        the suffix model), atomically."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(Path(path), json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | Path) -> HMMTagger:
        """Read a tagger written by `save`."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(f"cannot read tagger file {path}: {exc}") from exc
        return cls.from_dict(data)


# --------------------------------------------------------------------- tuning on held-out data


def dev_folds(sentences: Sequence[TaggedSentence], *, n_folds: int = 5, block: int = 25
              ) -> list[tuple[list[TaggedSentence], list[TaggedSentence]]]:
    """(train, held-out) pairs: fold k holds out blocks k, k + n_folds, ... of `block` consecutive
    sentences, so each held-out part spreads over the whole file (all genres) while keeping runs
    of a document together. Every sentence is held out exactly once."""
    if n_folds < 2 or block < 1:
        raise DataError(f"need n_folds >= 2 and block >= 1, got {n_folds} and {block}")
    if len(sentences) < n_folds * block:
        raise DataError(f"{n_folds} folds of blocks of {block} need at least {n_folds * block} sentences,"
                        f" got {len(sentences)}")
    fold_of = [(i // block) % n_folds for i in range(len(sentences))]
    return [([s for s, f in zip(sentences, fold_of) if f != k],
             [s for s, f in zip(sentences, fold_of) if f == k]) for k in range(n_folds)]


def cross_validate(sentences: Sequence[TaggedSentence], tagger_options: dict | None = None, *,
                   n_folds: int = 5, smoothing: float = 0.01) -> tuple[dict, list[dict]]:
    """Fit on all folds but one, score on that one, for each fold: (pooled accuracy, per fold)."""
    folds = [HMMTagger(**(tagger_options or {})).fit(train, smoothing=smoothing).accuracy(held)
             for train, held in dev_folds(sentences, n_folds=n_folds)]
    correct_known = sum(r["n_correct_known"] for r in folds)
    correct_unknown = sum(r["n_correct"] - r["n_correct_known"] for r in folds)
    pooled = _accuracy_dict(correct_known, sum(r["n_known"] for r in folds),
                            correct_unknown, sum(r["n_unknown"] for r in folds))
    return pooled, folds


def _accuracy_dict(correct_known: int, n_known: int, correct_unknown: int, n_unknown: int) -> dict:
    def ratio(a: int, b: int) -> float:
        return a / b if b else float("nan")

    n, n_correct = n_known + n_unknown, correct_known + correct_unknown
    return {"accuracy": ratio(n_correct, n), "known_accuracy": ratio(correct_known, n_known),
            "unknown_accuracy": ratio(correct_unknown, n_unknown), "n_words": n,
            "n_correct": n_correct, "n_known": n_known, "n_unknown": n_unknown,
            "n_correct_known": correct_known}
