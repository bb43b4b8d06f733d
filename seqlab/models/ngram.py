"""N-gram language model over integer token ids, with interpolated modified Kneser–Ney smoothing.

    p(w | h) = max(a(hw) - D(a(hw)), 0) / Σ_v a(hv) + γ(h) · p(w | h'),    h' = h without its first token
    γ(h) = (D1 N1(h·) + D2 N2(h·) + D3+ N3+(h·)) / Σ_v a(hv)

Interpolated modified Kneser–Ney is Chen & Goodman (1998), "An Empirical Study of Smoothing
Techniques for Language Modeling", after Kneser & Ney (1995): a(·) is the raw count at the highest
order and the continuation count (distinct left extensions) below it; three discounts D1, D2, D3+
per order come from counts of counts (see `ngram_counts.discounts`); the unigram level interpolates
with the uniform distribution over the outcomes, so every token gets finite probability. A context
never seen in training (Σ_v a(hv) = 0) passes the lower order through unchanged. The reference for
the tests is hand arithmetic on toy corpora and a per-position implementation of these formulas; the
quality reference is KenLM's `lmplz` on tiny Shakespeare (benchmarks/bench_ngram.py).

Other smoothings, at the highest order only: `mle` c(hw) / Σ_v c(hv), which gives probability 0
(log prob -inf) to unseen n-grams and is undefined for unseen contexts (log prob -inf as well;
`distribution` raises); `add_k` (c(hw) + k) / (Σ_v c(hv) + k·P), Laplace at k = 1.

Tokens are ids 0..V-1. With `boundary=True` every sequence is a sentence: it is padded in front with
order-1 BOS tokens (id V) and closed by an EOS token (id V+1), so outcomes are the V tokens plus EOS
(P = V + 1; `distribution` puts EOS at index V). Without it every sequence is one stream and the
first tokens of a stream are predicted from the shorter context they have. Keys are base-(V+2)
int64 numbers, so (V+2)^order must stay below 2^63 (order 7 for V = 500, order 4 for V = 50,000).

The model is also a `seqlab.models.contract.LanguageModel` (torch tensors in and out, computed in
numpy on the CPU): its state is the context, the last L = order - 1 tokens (B, L) int64, left-padded
with NO_TOKEN (-1) where a row has fewer. In stream mode a NO_TOKEN slot is "before the stream" (the
next token is predicted from the shorter context it has, as `log_probs` does); with `boundary` it is
the BOS padding (the row is the start of a sentence). `step` returns the V tokens' log-probabilities:
with `boundary` those of the next token given that the sentence goes on (EOS dropped and the rest
renormalised), so that every id the generation loop can draw is a token; `token_log_probs` uses the same
distribution, so it is the log-softmax of `step`'s logits at every position.

Dimensions: T positions (all streams concatenated) · V vocab · P outcomes (V, or V + 1 with EOS) ·
B batch (rows of the contract's tensors) · L = order - 1 context length.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from seqlab.files import atomic_open, atomic_write_text
from seqlab.models.contract import GenerateMixin
from seqlab.models.ngram_counts import (
    OrderTable,
    build_tables,
    count_ngrams,
    lookup,
    stream_windows,
)
from seqlab.seeds import numpy_generator

Smoothing = Literal["mle", "add_k", "kneser_ney"]
TokensLike = np.ndarray | Sequence[int] | Sequence[np.ndarray]
FORMAT = "seqlab-ngram-1"
NO_TOKEN = -1  # a slot of the contract's context (B, L) before the first token of a row


def max_order(vocab_size: int) -> int:
    """The largest order whose keys fit int64 for `vocab_size` tokens: the largest n with
    (vocab_size + 2)^n < 2^63 (10 for the 65 characters of Tiny Shakespeare, 4 for GPT-2's 50,257)."""
    order, size = 0, 1
    while size * (vocab_size + 2) < 2 ** 63:
        order, size = order + 1, size * (vocab_size + 2)
    return order


def _shift(a: np.ndarray, fill: int | bool) -> np.ndarray:
    """a[t - 1] at each t, `fill` at t = 0."""
    out = np.empty_like(a)
    out[0] = fill
    out[1:] = a[:-1]
    return out


class NGramLM(GenerateMixin):
    """Order-n language model over ids 0..V-1; see the module docstring for the formulas."""

    block_size = None  # the contract's context limit: none, the context slides (`step` keeps L tokens)

    def __init__(self, order: int, vocab_size: int, *, smoothing: Smoothing = "kneser_ney",
                 k: float = 1.0, boundary: bool = False) -> None:
        if order < 1 or vocab_size < 1:
            raise ValueError(f"order = {order} and vocab_size = {vocab_size} must both be >= 1")
        if smoothing not in ("mle", "add_k", "kneser_ney"):
            raise ValueError(f"smoothing = {smoothing!r}; choose 'mle', 'add_k' or 'kneser_ney'")
        if smoothing == "add_k" and not (k > 0 and math.isfinite(k)):
            raise ValueError(f"add_k needs a finite k > 0, got {k}")
        if order > max_order(vocab_size):
            raise ValueError(f"order {order} overflows the int64 keys (base-{vocab_size + 2} numbers) of {vocab_size} "
                             f"tokens: the largest order that fits is {max_order(vocab_size)}")
        self.order, self.vocab_size, self.smoothing = order, vocab_size, smoothing
        self.k, self.boundary = float(k), boundary
        self._raw: list[tuple[np.ndarray, np.ndarray]] | None = None
        self._tables: list[OrderTable] | None = None

    @property
    def base(self) -> int:
        return self.vocab_size + 2

    @property
    def bos(self) -> int:
        return self.vocab_size

    @property
    def eos(self) -> int:
        return self.vocab_size + 1

    @property
    def n_outcomes(self) -> int:
        """P: the V tokens, plus EOS with `boundary`."""
        return self.vocab_size + int(self.boundary)

    # ---- streams ----------------------------------------------------------------------------

    @property
    def n_ngrams(self) -> int:
        """How many distinct n-grams of every order the fitted model stores (its size)."""
        return int(sum(len(keys) for keys, _ in self._raw or []))

    def _sequences(self, tokens: TokensLike) -> list[np.ndarray]:
        if isinstance(tokens, np.ndarray) and tokens.ndim == 1:
            seqs = [tokens]
        elif len(tokens) == 0 or np.ndim(tokens[0]) == 0:
            seqs = [np.asarray(tokens)]
        else:
            seqs = [np.asarray(s) for s in tokens]
        for s in seqs:
            if s.ndim != 1 or (len(s) and (s.min() < 0 or s.max() >= self.vocab_size)):
                raise ValueError(f"tokens must be 1-D arrays of ids in [0, {self.vocab_size})")
        return [s.astype(np.int64) for s in seqs]

    def _stream(self, tokens: TokensLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(x, history, predicted), each (T,): all sequences concatenated (with BOS/EOS when
        `boundary`), how many earlier tokens of its own stream each position may use (at most
        order - 1), and which positions are outcomes (not BOS padding)."""
        seqs = self._sequences(tokens)
        if self.boundary:
            pad = np.full(self.order - 1, self.bos, np.int64)
            seqs = [np.concatenate([pad, s, [self.eos]]) for s in seqs]
        seqs = [s for s in seqs if len(s)] or [np.zeros(0, np.int64)]
        x = np.concatenate(seqs)
        history = np.concatenate([np.minimum(np.arange(len(s)), self.order - 1) for s in seqs])
        return x, history, x != self.bos

    # ---- fitting ------------------------------------------------------------------------------

    def fit(self, tokens: TokensLike) -> NGramLM:
        """Count every k-gram (k = 1..order) of `tokens` (one array, or a list of sequences)."""
        x, history, _ = self._stream(tokens)
        if len(x) == 0:
            raise ValueError("cannot fit an n-gram model on no tokens")
        self._set_counts(count_ngrams(x, history, self.order, self.base))
        return self

    def _set_counts(self, raw: list[tuple[np.ndarray, np.ndarray]]) -> None:
        self._raw = raw
        self._tables = build_tables(raw, self.base)

    def _fitted(self) -> list[OrderTable]:
        if self._tables is None:
            raise RuntimeError("NGramLM is not fitted; call fit(tokens) or NGramLM.load(path)")
        return self._tables

    # ---- scoring --------------------------------------------------------------------------------

    def _probs(self, x: np.ndarray, history: np.ndarray) -> np.ndarray:
        """p(x[t] | up to history[t] previous tokens) at every position, (T,) float64."""
        if len(x) == 0:
            return np.zeros(0)
        if self.smoothing == "kneser_ney":
            return self._kn_probs(x, history)
        return self._count_probs(x, history)

    def _kn_probs(self, x: np.ndarray, history: np.ndarray) -> np.ndarray:
        tables = self._fitted()
        p = np.full(len(x), 1.0 / self.n_outcomes)  # order 0: uniform over the outcomes
        ctx_idx, ctx_found = np.zeros(len(x), np.int64), np.ones(len(x), bool)
        for k, keys in enumerate(stream_windows(x, history, self.order, self.base), start=1):
            idx, found = lookup(tables[k].keys, keys)
            ctx = tables[k - 1]
            inv_total = ctx.kn_inv_total[ctx_idx]
            use = ctx_found & (inv_total > 0)  # an unseen context passes the lower order through
            numerator = np.where(found, tables[k].kn_numerator[idx], 0.0)
            p = np.where(use, numerator * inv_total + ctx.kn_gamma[ctx_idx] * p, p)
            # the context of order k + 1 at t is the k-gram ending at t - 1: reuse this lookup
            ctx_idx, ctx_found = _shift(idx, 0), _shift(found & (history >= k - 1), False) & (history >= k)
        return p

    def interpolation(self, tokens: TokensLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """How each outcome's probability is made, for inspection (every outcome of `log_probs`):

        - order (T,) int64: the longest k-gram ending at the outcome that training saw (k = 0: the
          token itself was never seen, the uniform level answers);
        - weights (T, n + 1): the weight of each order's distribution in the mixture, column k for
          order k (0: uniform). Kneser-Ney's p(w | h) = α_n(w | h) + γ(h) p(w | h') unrolls into
          Σ_k λ_k · α_k(w)/(1 − γ_k), a mixture of normalised distributions with weights λ_n = 1 − γ_n,
          λ_k = (1 − γ_k) Π_{j>k} γ_j, λ_0 = Π γ_j (an unseen context passes its weight down);
          mle and add_k use one order, the longest context the position has;
        - share (T, n + 1): each order's part of the outcome's own probability, summing to 1.
        """
        x, history, predicted = self._stream(tokens)
        n, T = self.order, len(x)
        weights, parts = np.zeros((T, n + 1)), np.zeros((T, n + 1))
        order = np.zeros(T, np.int64)
        tables = self._fitted()
        weights[:, 0] = 1.0
        parts[:, 0] = 1.0 / self.n_outcomes
        ctx_idx, ctx_found = np.zeros(T, np.int64), np.ones(T, bool)
        for k, keys in enumerate(stream_windows(x, history, n, self.base), start=1):
            idx, found = lookup(tables[k].keys, keys)
            order = np.where(found & (history >= k - 1), k, order)
            if self.smoothing == "kneser_ney":
                ctx = tables[k - 1]
                inv_total = ctx.kn_inv_total[ctx_idx]
                use = (ctx_found & (inv_total > 0))[:, None]  # (T, 1)
                gamma = ctx.kn_gamma[ctx_idx][:, None]
                alpha = np.where(found, tables[k].kn_numerator[idx], 0.0) * inv_total
                weights[:, :k] = np.where(use, weights[:, :k] * gamma, weights[:, :k])
                weights[:, k] = np.where(use[:, 0], 1.0 - gamma[:, 0], 0.0)
                parts[:, :k] = np.where(use, parts[:, :k] * gamma, parts[:, :k])
                parts[:, k] = np.where(use[:, 0], alpha, 0.0)
                ctx_idx, ctx_found = _shift(idx, 0), _shift(found & (history >= k - 1), False) & (history >= k)
            else:  # one order: the longest context the position has
                reach = (history >= k - 1)[:, None]
                weights = np.where(reach, np.eye(n + 1)[k], weights)
        if self.smoothing != "kneser_ney":
            parts = weights.copy()
        total = parts.sum(1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(total > 0, parts / total, 0.0)
        return order[predicted], weights[predicted], share[predicted]

    def _count_probs(self, x: np.ndarray, history: np.ndarray) -> np.ndarray:
        """mle / add_k at the longest context each position has (order at most n)."""
        tables = self._fitted()
        p = np.zeros(len(x))
        for k, keys in enumerate(stream_windows(x, history, self.order, self.base), start=1):
            idx, found = lookup(tables[k].keys, keys)
            count = np.where(found, tables[k].raw[idx], 0)
            if k == 1:
                total = np.full(len(x), tables[0].raw_total[0])
            else:
                ctx_idx, ctx_found = lookup(tables[k - 1].keys, keys // self.base)
                total = np.where(ctx_found, tables[k - 1].raw_total[ctx_idx], 0.0)
            if self.smoothing == "add_k":
                p_k = (count + self.k) / (total + self.k * self.n_outcomes)
            else:
                with np.errstate(divide="ignore", invalid="ignore"):
                    p_k = np.where(total > 0, count / total, 0.0)
            p = np.where(history >= k - 1, p_k, p)
        return p

    def log_probs(self, tokens: TokensLike) -> np.ndarray:
        """Natural-log probability of each outcome (T_out,): every token, and with `boundary` the
        EOS closing each sentence, given up to order - 1 preceding tokens of its own sequence."""
        x, history, predicted = self._stream(tokens)
        with np.errstate(divide="ignore"):
            return np.log(self._probs(x, history)[predicted])

    def distribution(self, context: Sequence[int]) -> np.ndarray:
        """p(· | context), (P,): the V tokens, then EOS at index V when `boundary`.

        `context` holds the tokens before the prediction (of the current sentence, with
        `boundary`); only its last order - 1 are used.
        """
        ctx = self._sequences(list(context) or np.zeros(0, np.int64))[0]
        if self.boundary:
            ctx = np.concatenate([np.full(self.order - 1, self.bos, np.int64), ctx])
        ctx = ctx[max(0, len(ctx) - (self.order - 1)):]
        outcomes = np.arange(self.n_outcomes, dtype=np.int64)
        if self.boundary:
            outcomes[-1] = self.eos
        rows = np.concatenate([np.tile(ctx, (len(outcomes), 1)), outcomes[:, None]], axis=1)  # (P, L+1)
        history = np.tile(np.arange(len(ctx) + 1), len(outcomes))
        probs = self._probs(rows.reshape(-1), history).reshape(rows.shape)[:, -1]
        if not probs.sum() > 0:
            raise ValueError(f"context {list(context)} was never seen in training: "
                             f"{self.smoothing} has no distribution there")
        return probs

    def distributions(self, contexts: np.ndarray) -> np.ndarray:
        """p(· | context) for each row of `contexts` (B, L) int64 → (B, P) float64: the batched
        `distribution`, with EOS at index V when `boundary`.

        Each row holds the last L = order - 1 tokens before the prediction, left-padded with
        NO_TOKEN (-1) where there are fewer: the start of a stream, or with `boundary` the BOS
        padding of a sentence. Raises ValueError, naming the first such context, where a row has
        no distribution (`mle` on a context never seen in training).
        """
        probs = self._distributions(contexts)
        empty = ~(probs.sum(1) > 0)
        if empty.any():
            context = _tokens_of(np.asarray(contexts)[np.argmax(empty)])
            raise ValueError(f"context {context} was never seen in training: "
                             f"{self.smoothing} has no distribution there")
        return probs

    def _distributions(self, contexts: np.ndarray) -> np.ndarray:
        """`distributions` without the check: a row with no distribution is all zeros."""
        L, P = self.order - 1, self.n_outcomes
        contexts = np.asarray(contexts, np.int64)
        if contexts.ndim != 2 or contexts.shape[1] != L:
            raise ValueError(f"contexts must have shape (B, {L}), got {contexts.shape}")
        pad = contexts == NO_TOKEN  # (B, L)
        n_pad = pad.sum(1)  # (B,)
        if np.any(pad != (np.arange(L) < n_pad[:, None])) or np.any(contexts >= self.vocab_size) \
                or np.any(contexts < NO_TOKEN):
            raise ValueError(f"each context must be ids in [0, {self.vocab_size}) left-padded with {NO_TOKEN}")
        outcomes = np.arange(P, dtype=np.int64)
        if self.boundary:
            outcomes[-1] = self.eos
        # Every (context, outcome) pair is one row of L + 1 positions, scored by one `_probs` call;
        # only each row's last position (the outcome) is kept.
        rows = np.empty((len(contexts), P, L + 1), np.int64)  # (B, P, L + 1)
        rows[:, :, :L] = np.where(pad, self.bos if self.boundary else 0, contexts)[:, None, :]
        rows[:, :, L] = outcomes
        if self.boundary:  # the BOS padding is part of the sentence, as in `_stream`
            history = np.broadcast_to(np.arange(L + 1), (len(contexts), L + 1))
        else:  # a padded slot is no token: each position sees the real tokens before it
            history = np.maximum(np.arange(L + 1) - n_pad[:, None], 0)  # (B, L + 1)
        history = np.broadcast_to(history[:, None, :], rows.shape)  # (B, P, L + 1)
        return self._probs(rows.reshape(-1), history.reshape(-1)).reshape(rows.shape)[:, :, L]  # (B, P)

    def _token_probs(self, contexts: np.ndarray) -> np.ndarray:
        """The contract's distribution of the next token, (B, V) float64: `_distributions` less EOS,
        renormalised, with `boundary` (a row where EOS takes all the mass is all zeros)."""
        probs = self._distributions(contexts)
        if not self.boundary:
            return probs
        tokens = probs[:, : self.vocab_size]  # (B, V)
        total = tokens.sum(1, keepdims=True)  # (B, 1) = 1 - p(EOS | context)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(total > 0, tokens / total, 0.0)

    # ---- the language-model contract (seqlab.models.contract) -------------------------------------

    def new_state(self, batch_size: int, device: torch.device | str | None = None) -> Tensor:
        """The empty context (B, L) int64, all NO_TOKEN: the start of a stream, or with `boundary`
        the start of a sentence (its BOS padding)."""
        return torch.full((batch_size, self.order - 1), NO_TOKEN, dtype=torch.long, device=device)

    def step(self, tokens: Tensor, state: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """tokens (B, T) continue the context `state` (B, L) → (logits (B, V) float32, the new context).

        The logits are log p(· | the last L tokens) over the V tokens (-inf where p = 0; with
        `boundary`, given that the sentence goes on). With state None the tokens are the whole
        context (from the start of a stream or sentence) and None is returned as the state. Computed
        on the CPU; the logits come back on the tokens' device, the context on the state's. Raises
        ValueError, naming the context, where `mle` has no distribution (or, with `boundary`, only EOS).
        """
        x = _token_array(tokens, self.vocab_size)  # (B, T)
        L = self.order - 1
        past = np.full((len(x), L), NO_TOKEN, np.int64) if state is None else _context_array(state, len(x), L)
        contexts = np.concatenate([past, x], axis=1)[:, x.shape[1]:]  # (B, L): the last L slots
        probs = self._token_probs(contexts)
        empty = ~(probs.sum(1) > 0)
        if empty.any():
            context = _tokens_of(contexts[np.argmax(empty)])
            raise ValueError(f"context {context} was never seen in training"
                             f"{' or is always followed by EOS' if self.boundary else ''}: "
                             f"{self.smoothing} has no distribution of the next token there")
        with np.errstate(divide="ignore"):
            logits = torch.from_numpy(np.log(probs)).to(device=tokens.device, dtype=torch.float32)
        return logits, (None if state is None else torch.from_numpy(contexts).to(state.device))

    def token_log_probs(self, tokens: Tensor) -> Tensor:
        """tokens (B, T) → (B, T - 1) float64 on the tokens' device: the natural-log probability of
        tokens[:, t] (t >= 1) given up to L tokens before it in its row.

        Each row is read from its start: in stream mode `token_log_probs(x)[b]` equals `log_probs(x[b])[1:]`
        (-inf where p = 0, as there); with `boundary` the row starts a sentence and the probabilities
        are `step`'s (given that the sentence goes on).
        """
        x = _token_array(tokens, self.vocab_size)  # (B, T)
        B, T = x.shape
        L = self.order - 1
        if T < 2:
            return torch.zeros((B, 0), dtype=torch.float64, device=tokens.device)
        if not self.boundary:  # every row one stream, scored by one `_probs` call as `log_probs` does
            history = np.tile(np.minimum(np.arange(T), L), B)  # (B T,)
            probs = self._probs(x.reshape(-1), history).reshape(B, T)[:, 1:]  # (B, T - 1)
        else:  # the context of each position, then its distribution
            padded = np.concatenate([np.full((B, L), NO_TOKEN, np.int64), x[:, :-1]], axis=1)  # (B, L + T - 1)
            windows = np.lib.stride_tricks.sliding_window_view(padded, L, axis=1)[:, 1:]  # (B, T - 1, L)
            dist = self._token_probs(windows.reshape(B * (T - 1), L)).reshape(B, T - 1, -1)  # (B, T - 1, V)
            probs = np.take_along_axis(dist, x[:, 1:, None], axis=2)[:, :, 0]  # (B, T - 1)
        with np.errstate(divide="ignore"):
            return torch.from_numpy(np.log(probs)).to(tokens.device)

    def perplexity(self, tokens: TokensLike) -> float:
        """exp of the mean negative log probability per outcome (inf if any outcome has p = 0)."""
        return float(np.exp(-np.mean(self.log_probs(tokens))))

    def bits_per_char(self, tokens: TokensLike, n_chars: int) -> float:
        """-Σ log2 p over all outcomes, divided by the number of characters they spell."""
        return float(-np.sum(self.log_probs(tokens)) / math.log(2) / n_chars)

    def sample(self, n: int, *, context: Sequence[int] = (), temperature: float = 1.0,
               seed: int | None = None) -> np.ndarray:
        """Up to `n` new tokens after `context`, (n,) int64; with `boundary`, EOS ends the sample
        early (EOS is not returned). temperature 0 is greedy; p ** (1 / temperature) otherwise."""
        rng = numpy_generator(seed)
        history, out = list(context), []
        for _ in range(n):
            probs = self.distribution(history[len(history) - self.order + 1:] if self.order > 1 else [])
            if temperature == 0:
                token = int(np.argmax(probs))
            else:
                weights = np.exp(np.log(np.maximum(probs, 1e-300)) / temperature) * (probs > 0)
                token = int(rng.choice(len(probs), p=weights / weights.sum()))
            if self.boundary and token == self.vocab_size:  # index V of the distribution is EOS
                break
            history.append(token)
            out.append(token)
        return np.array(out, np.int64)

    # ---- persistence ----------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write folder `path`: `ngram.json` (settings) and `ngram.npz` (keys and raw counts per
        order; every smoothing statistic is recomputed from them on load). No pickle."""
        self._fitted()
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {f"{name}_{k}": a for k, (keys, counts) in enumerate(self._raw or [])
                  for name, a in (("keys", keys), ("counts", counts))}
        with atomic_open(folder / "ngram.npz", "wb") as f:
            np.savez(f, **arrays)
        meta = {"format": FORMAT, "order": self.order, "vocab_size": self.vocab_size,
                "smoothing": self.smoothing, "k": self.k, "boundary": self.boundary}
        atomic_write_text(folder / "ngram.json", json.dumps(meta, indent=2))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> NGramLM:
        """Read a model written by `save`."""
        folder = Path(path)
        meta = json.loads((folder / "ngram.json").read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT:
            raise ValueError(f"{folder / 'ngram.json'} is not a {FORMAT} file")
        model = cls(meta["order"], meta["vocab_size"], smoothing=meta["smoothing"], k=meta["k"],
                    boundary=meta["boundary"])
        with np.load(folder / "ngram.npz", allow_pickle=False) as npz:
            raw = [(npz[f"keys_{k}"], npz[f"counts_{k}"]) for k in range(model.order + 1)]
        model._set_counts(raw)
        return model


def _token_array(tokens: Tensor, vocab_size: int) -> np.ndarray:
    """The contract's tokens (B, T), any device → (B, T) int64 numpy array of ids in [0, V)."""
    if not isinstance(tokens, Tensor) or tokens.dim() != 2 or tokens.dtype.is_floating_point:
        raise ValueError(f"tokens must be a (B, T) integer tensor, got {getattr(tokens, 'shape', tokens)}")
    x = tokens.detach().to("cpu", torch.long).numpy()
    if x.size and (x.min() < 0 or x.max() >= vocab_size):
        raise ValueError(f"token ids must lie in [0, {vocab_size}), got [{x.min()}, {x.max()}]")
    return x


def _context_array(state: Tensor, batch_size: int, length: int) -> np.ndarray:
    """The contract's state (B, L), any device → (B, L) int64 numpy array (a copy)."""
    if tuple(state.shape) != (batch_size, length):
        raise ValueError(f"state must have shape ({batch_size}, {length}), got {tuple(state.shape)}")
    return state.detach().to("cpu", torch.long).numpy().copy()


def _tokens_of(context: np.ndarray) -> list[int]:
    """A context row without its NO_TOKEN padding, for messages."""
    return [int(t) for t in context if t != NO_TOKEN]
