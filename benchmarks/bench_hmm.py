"""Seconds for score, Viterbi, posteriors and 10 Baum–Welch iterations of `seqlab.models.HMM`
against `hmmlearn.hmm.CategoricalHMM` (both its "scaling" and "log" implementations), on the same
random model and data, interleaved on the same machine; the log-likelihoods must agree to 1e-8.

Both sides run single-threaded by default (hmmlearn's kernels are single-threaded C++), which also
keeps timings stable on a shared machine. hmmlearn's "log" Baum–Welch is slow (minutes for 32
states), so it runs one iteration and its time is multiplied by 10 (marked "1 iter x10").

The speed-ups are ratios of median wall-clock seconds; the last column gives the same ratio of
median CPU seconds (process time), the steadier figure when someone else is using the machine.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
import torch

from benchmarks.common import interleave, print_table, save, summary
from seqlab.models.hmm import HMM

TASKS = ("score", "viterbi", "posteriors", "fit x10")


class _Timed:
    """Runs `fn` once per call and returns its wall-clock seconds (times `scale`); keeps its CPU
    seconds (process time) in `cpu`, which another user's load on a shared machine inflates far
    less than wall-clock time."""

    def __init__(self, fn: Callable[[], object], scale: float = 1.0) -> None:
        self.fn, self.scale, self.cpu = fn, scale, []

    def __call__(self) -> float:
        wall, cpu = time.perf_counter(), time.process_time()
        self.fn()
        self.cpu.append((time.process_time() - cpu) * self.scale)
        return (time.perf_counter() - wall) * self.scale


def _seqlab_tasks(model: HMM, seqs: list[np.ndarray]) -> dict[str, _Timed]:
    def fit() -> None:
        HMM(startprob=model.startprob, transmat=model.transmat,
            emissionprob=model.emissionprob).fit(seqs, n_iter=10, tol=-np.inf)
    return {"score": _Timed(lambda: model.score(seqs)), "viterbi": _Timed(lambda: model.viterbi(seqs)),
            "posteriors": _Timed(lambda: model.posteriors(seqs)), "fit x10": _Timed(fit)}


def _hmmlearn_tasks(model: HMM, seqs: list[np.ndarray], implementation: str) -> dict[str, _Timed]:
    from hmmlearn.hmm import CategoricalHMM
    X, lengths = np.concatenate(seqs)[:, None], [len(s) for s in seqs]  # (N, 1)
    fit_iters = 10 if implementation == "scaling" else 1

    def make(n_iter: int = 1, params: str = "") -> CategoricalHMM:
        ref = CategoricalHMM(n_components=model.n_states, n_features=model.n_symbols, params=params,
                             init_params="", n_iter=n_iter, tol=-np.inf, implementation=implementation)
        ref.startprob_, ref.transmat_, ref.emissionprob_ = model.startprob, model.transmat, model.emissionprob
        return ref

    ref = make()
    return {"score": _Timed(lambda: ref.score(X, lengths)),
            "viterbi": _Timed(lambda: ref.decode(X, lengths)),
            "posteriors": _Timed(lambda: ref.predict_proba(X, lengths)),
            "fit x10": _Timed(lambda: make(fit_iters, "ste").fit(X, lengths), scale=10 / fit_iters)}


def _check_agreement(model: HMM, seqs: list[np.ndarray]) -> float:
    """Relative difference of the total log-likelihoods, ours vs hmmlearn's scaling implementation."""
    from hmmlearn.hmm import CategoricalHMM
    ref = CategoricalHMM(n_components=model.n_states, n_features=model.n_symbols, init_params="")
    ref.startprob_, ref.transmat_, ref.emissionprob_ = model.startprob, model.transmat, model.emissionprob
    ours, theirs = model.score(seqs), ref.score(np.concatenate(seqs)[:, None], [len(s) for s in seqs])
    return abs(ours - theirs) / abs(theirs)


def _one_size(n_states: int, seqs: list[np.ndarray], n_symbols: int, repeats: int,
              have_hmmlearn: bool) -> dict:
    model = HMM(n_states, n_symbols, seed=n_states)
    contenders = {"seqlab": _seqlab_tasks(model, seqs)}
    if have_hmmlearn:
        contenders["hmmlearn-scaling"] = _hmmlearn_tasks(model, seqs, "scaling")
        contenders["hmmlearn-log"] = _hmmlearn_tasks(model, seqs, "log")
    flat = {f"{name}/{task}": fn for name, tasks in contenders.items() for task, fn in tasks.items()}
    seconds = interleave(flat, repeats)
    result: dict = {"seconds": {key: summary(values) for key, values in seconds.items()},
                    "cpu_seconds": {key: summary(timed.cpu) for key, timed in flat.items()}}
    if have_hmmlearn:
        result["relative_loglik_difference"] = _check_agreement(model, seqs)
    return result


def _rows(n_states: int, result: dict) -> list[list[str]]:
    med = {key: s["median"] for key, s in result["seconds"].items()}
    cpu = {key: s["median"] for key, s in result["cpu_seconds"].items()}
    rows = []
    for task in TASKS:
        ours = med[f"seqlab/{task}"]
        row = [f"K={n_states}", task, f"{ours:.3f}"]
        if f"hmmlearn-scaling/{task}" in med:
            scaling, log_impl = med[f"hmmlearn-scaling/{task}"], med[f"hmmlearn-log/{task}"]
            best = min(scaling, log_impl)
            best_cpu = min(cpu[f"hmmlearn-scaling/{task}"], cpu[f"hmmlearn-log/{task}"])
            log_note = " (1 iter x10)" if task == "fit x10" else ""
            row += [f"{scaling:.3f}", f"{log_impl:.3f}{log_note}", f"{best / ours:.2f}x",
                    f"{best_cpu / cpu[f'seqlab/{task}']:.2f}x"]
        rows.append(row)
    return rows


def run(n_sequences: int = 1000, length: int = 1000, n_symbols: int = 65, state_counts=(8, 32),
        repeats: int = 3, threads: int = 1) -> dict:
    torch.set_num_threads(threads)
    try:
        import hmmlearn  # noqa: F401  (test-only dependency, the reference)
        have_hmmlearn = True
    except ImportError:
        have_hmmlearn = False
        print("hmmlearn is not installed: timing seqlab alone (pip install hmmlearn to compare)")
    seqs = list(np.random.default_rng(0).integers(0, n_symbols, size=(n_sequences, length)))
    results = {str(k): _one_size(k, seqs, n_symbols, repeats, have_hmmlearn) for k in state_counts}
    rows = [row for k in state_counts for row in _rows(k, results[str(k)])]
    header = ["states", "task", "seqlab s"]
    if have_hmmlearn:
        header += ["hmmlearn scaling s", "hmmlearn log s", "speed-up vs faster hmmlearn",
                   "same, CPU time"]
        for k in state_counts:
            print(f"K={k}: relative log-likelihood difference vs hmmlearn "
                  f"{results[str(k)]['relative_loglik_difference']:.1e}")
    print_table(f"HMM, {n_sequences} sequences x {length} symbols, M={n_symbols}, median of {repeats} "
                f"interleaved rounds, {threads} thread(s)", rows, header)
    payload = {"n_sequences": n_sequences, "length": length, "n_symbols": n_symbols,
               "repeats": repeats, "threads": threads, "results": results}
    save("hmm", payload)
    return payload


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="seqlab HMM vs hmmlearn")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for seqlab (default 1)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds (default 3)")
    args = parser.parse_args()
    run(repeats=args.repeats, threads=args.threads)
