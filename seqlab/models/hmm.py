"""A discrete-emission hidden Markov model with an hmmlearn-like estimator API.

Rabiner (1989), "A Tutorial on Hidden Markov Models and Selected Applications in Speech
Recognition": scaled forward–backward, Viterbi, Baum–Welch re-estimation. Parity reference:
`hmmlearn.hmm.CategoricalHMM`. The numerics live in two places, chosen by `numerics`:
`seqlab.models.hmm_kernels` ("compiled", the default: numba loops over blocks of sequences, on as
many threads as torch uses) and `seqlab.models.hmm_numerics` ("reference": the same algorithm as
batched numpy, one Python step per time step; readable, and what the tests check the kernels
against).

The model is also a `seqlab.models.contract.LanguageModel` (torch tensors in and out, float64 numpy
on the CPU): its state is the predictive state distribution p(z_{t+1} | x_≤t), (B, K), carried by the
forward filter, and `step`'s logits are the exact predictive distribution log p(x_{t+1} | x_≤t).
`token_log_probs` is the contract's scoring (one log p(x_t | x_<t) per token after the first);
`score` stays hmmlearn's (the total log-likelihood).

Dimensions: B batch (sequences) · T time · K states · M symbols.

Parameters: startprob (K,), transmat (K, K) with rows "from" and columns "to", emissionprob (K, M);
every row sums to 1. All arithmetic is float64.

Example (the weather example of the lectures; states Rainy, Sunny; symbols walk, shop, clean):

>>> hmm = HMM(startprob=[0.6, 0.4], transmat=[[0.7, 0.3], [0.4, 0.6]],
...           emissionprob=[[0.1, 0.4, 0.5], [0.6, 0.3, 0.1]])
>>> path, log_prob = hmm.viterbi([0, 1, 2])
>>> path.tolist(), round(float(np.exp(log_prob)), 5)
([1, 0, 0], 0.01344)
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Literal, Sequence, Union, get_args

import numpy as np
import torch
from torch import Tensor

from seqlab.models import hmm_numerics as num
from seqlab.models.contract import GenerateMixin
from seqlab.seeds import numpy_generator

logger = logging.getLogger(__name__)

Sequences = Union[np.ndarray, Sequence[int], Sequence[np.ndarray]]
Numerics = Literal["compiled", "reference"]  # hmm_kernels (fast) or hmm_numerics (reference)
_FORMAT = "seqlab.hmm"


class HMM(GenerateMixin):
    """Discrete-emission HMM: give all three parameter arrays, or `n_states` and `n_symbols` for a
    seeded random (Dirichlet(1)) initialisation. `numerics` picks the implementation (see the
    module docstring); both give the same results to rounding."""

    block_size = None  # the contract's context limit: none, the forward filter carries the whole past

    def __init__(self, n_states: int | None = None, n_symbols: int | None = None, *,
                 startprob: np.ndarray | None = None, transmat: np.ndarray | None = None,
                 emissionprob: np.ndarray | None = None, seed: int = 0,
                 numerics: Numerics = "compiled") -> None:
        if numerics not in get_args(Numerics):
            raise ValueError(f"numerics must be one of {get_args(Numerics)}, got {numerics!r}")
        given = [p is not None for p in (startprob, transmat, emissionprob)]
        self.seed, self.numerics = seed, numerics
        self.history_: list[float] = []
        if all(given):
            self._set_params(startprob, transmat, emissionprob)
            if n_states is not None and n_states != self.n_states:
                raise ValueError(f"n_states={n_states} but startprob has {self.n_states} states")
            if n_symbols is not None and n_symbols != self.n_symbols:
                raise ValueError(f"n_symbols={n_symbols} but emissionprob has {self.n_symbols} symbols")
        elif any(given):
            raise ValueError("give all of startprob, transmat and emissionprob, or none of them")
        else:
            if not _positive_int(n_states) or not _positive_int(n_symbols):
                raise ValueError(f"n_states and n_symbols must be positive integers, got "
                                 f"{n_states!r} and {n_symbols!r}")
            self._set_params(*_random_params(n_states, n_symbols, numpy_generator(seed)))

    # ----------------------------------------------------------------- parameters

    @property
    def n_states(self) -> int:
        return self.startprob.shape[0]

    @property
    def n_symbols(self) -> int:
        return self.emissionprob.shape[1]

    @property
    def _params(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.startprob, self.transmat, self.emissionprob

    def _set_params(self, startprob, transmat, emissionprob) -> None:
        startprob = _stochastic("startprob", startprob, 1)
        transmat = _stochastic("transmat", transmat, 2)
        emissionprob = _stochastic("emissionprob", emissionprob, 2)
        K = startprob.shape[0]
        if transmat.shape != (K, K):
            raise ValueError(f"transmat must have shape ({K}, {K}), got {transmat.shape}")
        if emissionprob.shape[0] != K:
            raise ValueError(f"emissionprob must have {K} rows (one per state), got {emissionprob.shape[0]}")
        self.startprob, self.transmat, self.emissionprob = startprob, transmat, emissionprob

    # ----------------------------------------------------------------- inference

    def log_likelihoods(self, sequences: Sequences) -> np.ndarray:
        """Forward log-likelihood of each sequence, (B,)."""
        seqs, _ = self._check_sequences(sequences)
        if self.numerics == "compiled":
            kern = _kernels()
            return kern.log_likelihoods(*self._params, kern.flatten(seqs))
        batch = num.pad(seqs)
        _, scale = num.forward(self.startprob, self.transmat, self.emissionprob, batch, store=False)
        out = np.empty(len(seqs))
        out[batch.order] = num.log_likelihoods(scale)
        return out

    def score(self, sequences: Sequences) -> float:
        """Total forward log-likelihood of one sequence or a list of sequences (hmmlearn's `score`)."""
        return float(self.log_likelihoods(sequences).sum())

    def token_log_probs(self, tokens: Tensor) -> Tensor:
        """The `LanguageModel` contract's scoring: token ids (B, T) → (B, T - 1) float64 on their
        device, log p(x_t | x_<t) for t >= 1, the logs of the forward algorithm's scaling factors
        (each row's sum plus log p(x_0) is its `log_likelihoods`). An impossible token gets -inf and
        the conditionals after it are undefined (NaN)."""
        x = self._token_array(tokens)  # (B, T)
        start = np.broadcast_to(self.startprob, (len(x), self.n_states))  # (B, K)
        _, log_scales = _forward_filter(start, self.transmat, self.emissionprob, x)  # (B, T)
        return torch.from_numpy(log_scales[:, 1:]).to(tokens.device)

    # ----------------------------------------------------------------- the language-model contract

    def new_state(self, batch_size: int, device: torch.device | str | None = None) -> Tensor:
        """The predictive state distribution before any token, (B, K) float64: startprob in every row."""
        start = torch.from_numpy(self.startprob).to(device)
        return start.expand(batch_size, self.n_states).clone()  # (B, K)

    def step(self, tokens: Tensor, state: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """tokens (B, T) continue the predictive state distribution `state` (B, K) → (logits (B, M)
        float32, the new state).

        For each token x_t the forward filter conditions on it and moves one step,
        filtered ∝ pred ⊙ E[:, x_t], pred ← filtered A; the logits are log(pred E), the exact
        log p(x_{T+1} | x_≤T) (-inf where p = 0). With state None the tokens are the whole context,
        filtered from startprob, and None is returned as the state. Computed on the CPU; the logits
        come back on the tokens' device, the state on the state's. Raises ValueError on a token the
        model gives probability 0 (the filter is undefined after it).
        """
        x = self._token_array(tokens)  # (B, T)
        B, K = len(x), self.n_states
        if state is None:
            pred = np.broadcast_to(self.startprob, (B, K))
        elif tuple(state.shape) != (B, K):
            raise ValueError(f"state must have shape ({B}, {K}), got {tuple(state.shape)}")
        else:
            pred = state.detach().to("cpu", torch.float64).numpy()
        pred, log_scales = _forward_filter(pred, self.transmat, self.emissionprob, x)  # (B, K), (B, T)
        impossible = ~np.isfinite(log_scales)
        if impossible.any():
            b, t = np.argwhere(impossible)[0]
            raise ValueError(f"token {x[b, t]} at position {t} of row {b} has probability 0 under the model")
        with np.errstate(divide="ignore"):
            logits = np.log(pred @ self.emissionprob)  # (B, M)
        logits = torch.from_numpy(logits).to(device=tokens.device, dtype=torch.float32)
        return logits, (None if state is None else torch.from_numpy(pred).to(state.device))

    def _token_array(self, tokens: Tensor) -> np.ndarray:
        """The contract's tokens (B, T), any device → (B, T) int64 numpy array of ids in [0, M)."""
        if not isinstance(tokens, Tensor) or tokens.dim() != 2 or tokens.dtype.is_floating_point:
            raise ValueError(f"tokens must be a (B, T) integer tensor, got {getattr(tokens, 'shape', tokens)}")
        x = tokens.detach().to("cpu", torch.long).numpy()
        if x.size and (x.min() < 0 or x.max() >= self.n_symbols):
            raise ValueError(f"token ids must lie in [0, {self.n_symbols}), got [{x.min()}, {x.max()}]")
        return x

    def posteriors(self, sequences: Sequences) -> np.ndarray | list[np.ndarray]:
        """State posteriors P(state_t = k | sequence), (T, K) per sequence; rows sum to 1."""
        seqs, single = self._check_sequences(sequences)
        if self.numerics == "compiled":
            kern = _kernels()
            out = kern.posteriors(*self._params, kern.flatten(seqs))
        else:
            out = num.posteriors(*self._params, num.pad(seqs))
        return out[0] if single else out

    def viterbi(self, sequences: Sequences
                ) -> tuple[np.ndarray, float] | list[tuple[np.ndarray, float]]:
        """Most probable state path and its joint log-probability log P(path, sequence)."""
        seqs, single = self._check_sequences(sequences)
        if self.numerics == "compiled":
            kern = _kernels()
            paths, log_probs = kern.viterbi(*self._params, kern.flatten(seqs))
        else:
            batch = num.pad(seqs)
            with np.errstate(divide="ignore"):  # log 0 = -inf marks forbidden moves
                logs = [np.log(p) for p in (self.startprob, self.transmat, self.emissionprob.T)]
            path, log_prob = num.viterbi(*logs, batch)
            paths = num.unpad(path, batch)
            log_probs = np.empty(len(seqs))
            log_probs[batch.order] = log_prob.numpy()
        out = [(p, float(lp)) for p, lp in zip(paths, log_probs.tolist())]
        return out[0] if single else out

    def _e_step(self, batch: num.Batch, transitions: bool, reuse: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray | None, float]:
        """The reference E-step (`hmm_numerics`): posteriors gamma (T, K, B), expected transitions
        (K, K) if `transitions`, and the total log-likelihood. `reuse`: the gamma of an earlier
        E-step on `batch`, to overwrite."""
        alpha, scale = num.forward(self.startprob, self.transmat, self.emissionprob, batch, store=True,
                                   reuse=reuse)
        trans = num.backward(self.transmat, self.emissionprob, batch, alpha, scale, transitions)
        return alpha, trans, float(num.log_likelihoods(scale).sum())

    # ----------------------------------------------------------------- learning

    def fit(self, sequences: Sequences, *, n_iter: int = 100, tol: float = 1e-4, n_restarts: int = 1,
            seed: int | None = None) -> HMM:
        """Baum–Welch. Restart 0 starts from the current parameters, later ones from random ones;
        the restart with the highest final log-likelihood wins. Stops when a step gains < tol (a
        negative tol runs all `n_iter` iterations)."""
        if not _positive_int(n_iter) or not _positive_int(n_restarts):
            raise ValueError(f"n_iter and n_restarts must be positive integers, got {n_iter!r}, {n_restarts!r}")
        seqs, _ = self._check_sequences(sequences)
        rng = numpy_generator(self.seed if seed is None else seed)
        best: tuple[float, tuple, list[float]] | None = None
        initial = (self.startprob, self.transmat, self.emissionprob)
        for restart in range(n_restarts):
            params = initial if restart == 0 else _random_params(self.n_states, self.n_symbols, rng)
            self._set_params(*params)
            history = self._baum_welch(seqs, n_iter, tol)
            logger.info("HMM restart %d: log-likelihood %.6f after %d iterations", restart, history[-1],
                     len(history))
            if best is None or history[-1] > best[0]:
                best = (history[-1], (self.startprob, self.transmat, self.emissionprob), history)
        self._set_params(*best[1])
        self.history_ = best[2]
        return self

    def _baum_welch(self, seqs: list[np.ndarray], n_iter: int, tol: float) -> list[float]:
        compiled = self.numerics == "compiled"
        kern = _kernels() if compiled else None
        batch = kern.flatten(seqs) if compiled else num.pad(seqs)  # once: the same every iteration
        history: list[float] = []
        gamma = None
        for _ in range(n_iter):
            if compiled:
                start, trans, emit, log_likelihood = kern.expected_counts(*self._params, batch)
            else:
                gamma, trans, log_likelihood = self._e_step(batch, transitions=True, reuse=gamma)
                counts = num.expected_counts(gamma, trans, batch, self.n_symbols)
                start, trans, emit = counts.start, counts.trans, counts.emit
            history.append(log_likelihood)
            self._m_step(start, trans, emit)
            if len(history) > 1 and history[-1] - history[-2] < tol:
                break
        return history

    def _m_step(self, start: np.ndarray, trans: np.ndarray, emit: np.ndarray) -> None:
        """Normalise expected counts; a row with no counts (a state never visited) keeps its values."""
        self._set_params(_normalise(start, self.startprob), _normalise(trans, self.transmat),
                         _normalise(emit, self.emissionprob))

    def fit_supervised(self, sequences: Sequences, states: Sequences, *, smoothing: float = 1.0) -> HMM:
        """Maximum-likelihood counts from labelled sequences, plus `smoothing` added to every count."""
        if smoothing < 0:
            raise ValueError(f"smoothing must be >= 0, got {smoothing}")
        seqs, _ = self._check_sequences(sequences)
        labels, _ = _as_sequences(states, "states", self.n_states)
        if [len(s) for s in seqs] != [len(s) for s in labels]:
            raise ValueError("states must have the same number and lengths of sequences as sequences")
        K, M = self.n_states, self.n_symbols
        obs, lab = np.concatenate(seqs), np.concatenate(labels)  # (N,), (N,)
        start = np.bincount([s[0] for s in labels], minlength=K) + smoothing  # (K,)
        emit = np.bincount(lab * M + obs, minlength=K * M).reshape(K, M) + smoothing  # (K, M)
        src = np.concatenate([s[:-1] for s in labels])
        dst = np.concatenate([s[1:] for s in labels])
        trans = np.bincount(src * K + dst, minlength=K * K).reshape(K, K) + smoothing  # (K, K)
        self._m_step(start.astype(float), trans.astype(float), emit.astype(float))
        return self

    # ----------------------------------------------------------------- sampling

    def sample(self, n_steps: int, *, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Draw (symbols, states), each (n_steps,) int64."""
        if not _positive_int(n_steps):
            raise ValueError(f"n_steps must be a positive integer, got {n_steps!r}")
        rng = numpy_generator(self.seed if seed is None else seed)
        u_state, u_symbol = rng.random(n_steps), rng.random(n_steps)  # inverse-CDF draws
        cum_trans = np.cumsum(self.transmat, axis=1)  # (K, K)
        states = np.empty(n_steps, dtype=np.int64)
        states[0] = _draw(np.cumsum(self.startprob), u_state[0])
        for t in range(1, n_steps):
            states[t] = _draw(cum_trans[states[t - 1]], u_state[t])
        cum_emit = np.cumsum(self.emissionprob, axis=1)[states]  # (n_steps, M)
        symbols = (cum_emit < u_symbol[:, None]).sum(1).clip(max=self.n_symbols - 1)
        return symbols.astype(np.int64), states

    # ----------------------------------------------------------------- serialisation

    def to_dict(self) -> dict:
        return {"format": _FORMAT, "version": 1, "startprob": self.startprob.tolist(),
                "transmat": self.transmat.tolist(), "emissionprob": self.emissionprob.tolist(),
                "seed": self.seed}

    @classmethod
    def from_dict(cls, data: dict) -> HMM:
        if data.get("format") != _FORMAT:
            raise ValueError(f"not a {_FORMAT} document (format={data.get('format')!r})")
        return cls(startprob=data["startprob"], transmat=data["transmat"],
                   emissionprob=data["emissionprob"], seed=data.get("seed", 0))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | Path) -> HMM:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def _check_sequences(self, sequences: Sequences) -> tuple[list[np.ndarray], bool]:
        return _as_sequences(sequences, "sequences", self.n_symbols)


# --------------------------------------------------------------------- helpers


def _forward_filter(pred: np.ndarray, transmat: np.ndarray, emissionprob: np.ndarray, obs: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The forward filter run from the predictive state distributions `pred` (B, K) over `obs`
    (B, T) → (the predictive distributions after the last token (B, K), log p(x_t | x_<t) (B, T)).

    Each step is one scaled forward step (Rabiner eq. 91–93) written batch-major: the joint
    p(z_t, x_t | x_<t) = pred ⊙ E[:, x_t], its sum the scaling factor p(x_t | x_<t), the joint over
    that the filtered p(z_t | x_≤t), and its product with A the next prediction. The only Python
    loop is over time. An impossible token gives log p = -inf, then NaN (as `hmm_numerics.forward`).
    """
    emission_t = np.ascontiguousarray(emissionprob.T)  # (M, K): row x is E[:, x]
    log_scales = np.empty(obs.shape)  # (B, T)
    with np.errstate(divide="ignore", invalid="ignore"):
        for t in range(obs.shape[1]):
            joint = pred * emission_t[obs[:, t]]  # (B, K)
            scale = joint.sum(1)  # (B,)
            log_scales[:, t] = np.log(scale)
            pred = (joint / scale[:, None]) @ transmat  # (B, K)
    return np.array(pred, dtype=np.float64), log_scales


def _kernels():
    """`seqlab.models.hmm_kernels`, imported on first use: importing numba takes about a second,
    which `import seqlab` should not pay."""
    from seqlab.models import hmm_kernels
    return hmm_kernels


def _positive_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > 0


def _stochastic(name: str, value, ndim: int) -> np.ndarray:
    array = np.array(value, dtype=np.float64)
    if array.ndim != ndim or array.size == 0:
        raise ValueError(f"{name} must be a non-empty {ndim}-D array, got shape {array.shape}")
    if not np.all(np.isfinite(array)) or np.any(array < 0):
        raise ValueError(f"{name} must be finite and non-negative")
    sums = array.sum(-1)
    if not np.allclose(sums, 1.0, rtol=0, atol=1e-8):
        raise ValueError(f"{name} rows must sum to 1, got sums {np.round(sums, 6).tolist()}")
    return array


def _as_sequences(sequences: Sequences, name: str, n_values: int) -> tuple[list[np.ndarray], bool]:
    """One 1-D int sequence or a list of them -> (list of int64 arrays, whether it was one)."""
    if isinstance(sequences, np.ndarray) and sequences.ndim == 1:
        single, items = True, [sequences]
    elif isinstance(sequences, np.ndarray) and sequences.ndim == 2:  # (B, T): B equal-length rows
        single, items = False, list(sequences)
    elif isinstance(sequences, (list, tuple)) and sequences and np.ndim(sequences[0]) == 0:
        single, items = True, [np.asarray(sequences)]
    elif isinstance(sequences, (list, tuple)) and sequences:
        single, items = False, [np.asarray(s) for s in sequences]
    else:
        raise ValueError(f"{name} must be a 1-D int array, a (B, T) int array or a non-empty list of 1-D arrays")
    for s in items:
        if s.ndim != 1 or s.size == 0 or not np.issubdtype(s.dtype, np.integer):
            raise ValueError(f"each of {name} must be a non-empty 1-D integer array, got "
                             f"dtype {s.dtype} shape {s.shape}")
        if s.min() < 0 or s.max() >= n_values:
            raise ValueError(f"{name} values must lie in [0, {n_values}), got [{s.min()}, {s.max()}]")
    return [s.astype(np.int64, copy=False) for s in items], single


def _random_params(K: int, M: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    return rng.dirichlet(np.ones(K)), rng.dirichlet(np.ones(K), K), rng.dirichlet(np.ones(M), K)


def _normalise(counts: np.ndarray, previous: np.ndarray) -> np.ndarray:
    totals = counts.sum(-1, keepdims=True)
    return np.where(totals > 0, counts / np.where(totals > 0, totals, 1.0), previous)


def _draw(cumulative: np.ndarray, u: float) -> int:
    return min(int(np.searchsorted(cumulative, u, side="right")), len(cumulative) - 1)
