"""Seconds for score, Viterbi, posteriors and 10 Baum–Welch iterations of `seqlab.models.HMM`
against `hmmlearn.hmm.CategoricalHMM` (both its "scaling" and "log" implementations), on the same
random model and data, interleaved on the same machine; the log-likelihoods must agree to 1e-8.

seqlab runs twice: on one thread, like for like with hmmlearn (whose kernels are single-threaded
C++), and on the thread count of seqlab's policy (`seqlab.training.threads.choose_threads` for work
of this size: every core other processes leave free; `--threads N` fixes it), which its compiled
kernels follow (torch's thread count). hmmlearn's "log" Baum–Welch is slow (minutes for 32
states), so it runs one iteration and its time is multiplied by 10 (marked "1 iter x10").

seqlab's first calls compile its numba kernels, or load them from numba's cache: they run once on
a few sequences before any timing, and their seconds are reported apart ("warm-up").

Rounds alternate the contenders' order (see `_interleave_alternating`). The speed-ups are ratios
of median wall-clock seconds against the faster hmmlearn implementation; the one-thread speed-up
is also given as the ratio of median CPU seconds (process time), the steadier figure when someone
else is using the machine (on more threads, CPU time adds up the threads, so only wall-clock time
is compared).
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
import torch

from benchmarks.common import print_table, save, summary
from seqlab.models.hmm import HMM
from seqlab.training.threads import choose_threads

TASKS = ("score", "viterbi", "posteriors", "fit x10")


class _Timed:
    """Runs `fn` once per call, on `threads` torch threads if given, and returns its wall-clock
    seconds (times `scale`); keeps its CPU seconds (process time) in `cpu`, which another user's
    load on a shared machine inflates far less than wall-clock time."""

    def __init__(self, fn: Callable[[], object], scale: float = 1.0, threads: int | None = None) -> None:
        self.fn, self.scale, self.threads, self.cpu = fn, scale, threads, []

    def __call__(self) -> float:
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        wall, cpu = time.perf_counter(), time.process_time()
        self.fn()
        self.cpu.append((time.process_time() - cpu) * self.scale)
        return (time.perf_counter() - wall) * self.scale


def _seqlab_tasks(model: HMM, seqs: list[np.ndarray], threads: int) -> dict[str, _Timed]:
    def fit() -> None:
        HMM(startprob=model.startprob, transmat=model.transmat,
            emissionprob=model.emissionprob).fit(seqs, n_iter=10, tol=-np.inf)
    return {"score": _Timed(lambda: model.score(seqs), threads=threads),
            "viterbi": _Timed(lambda: model.viterbi(seqs), threads=threads),
            "posteriors": _Timed(lambda: model.posteriors(seqs), threads=threads),
            "fit x10": _Timed(fit, threads=threads)}


def _warm_up(model: HMM, seqs: list[np.ndarray], thread_counts: list[int]) -> float:
    """Seconds of seqlab's first calls, on a few sequences at each thread count: compiling the
    kernels (or loading them from numba's cache), kept out of the timed rounds."""
    start = time.perf_counter()
    for threads in thread_counts:
        for task in _seqlab_tasks(model, seqs[:4], threads).values():
            task()
    return time.perf_counter() - start


def _hmmlearn_tasks(model: HMM, seqs: list[np.ndarray], implementation: str) -> dict[str, _Timed]:
    """hmmlearn's tasks; single-threaded C++ whatever torch's thread count."""
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


def _check_agreement(model: HMM, seqs: list[np.ndarray], thread_counts: list[int]) -> float:
    """Largest relative difference of the total log-likelihoods, ours (on each thread count) vs
    hmmlearn's scaling implementation; raises if it exceeds 1e-8."""
    from hmmlearn.hmm import CategoricalHMM
    ref = CategoricalHMM(n_components=model.n_states, n_features=model.n_symbols, init_params="")
    ref.startprob_, ref.transmat_, ref.emissionprob_ = model.startprob, model.transmat, model.emissionprob
    theirs = ref.score(np.concatenate(seqs)[:, None], [len(s) for s in seqs])
    differences = []
    for threads in thread_counts:
        torch.set_num_threads(threads)
        differences.append(abs(model.score(seqs) - theirs) / abs(theirs))
    if max(differences) > 1e-8:
        raise AssertionError(f"K={model.n_states}: log-likelihoods differ from hmmlearn's by "
                             f"{max(differences):.1e} (relative) on {thread_counts} threads")
    return max(differences)


def _one_size(n_states: int, seqs: list[np.ndarray], n_symbols: int, repeats: int,
              have_hmmlearn: bool, threads: int) -> dict:
    model = HMM(n_states, n_symbols, seed=n_states)
    thread_counts = sorted({1, threads})
    warm_up = _warm_up(model, seqs, thread_counts)
    contenders = {_seqlab(n): _seqlab_tasks(model, seqs, n) for n in thread_counts}
    if have_hmmlearn:
        contenders["hmmlearn-scaling"] = _hmmlearn_tasks(model, seqs, "scaling")
        contenders["hmmlearn-log"] = _hmmlearn_tasks(model, seqs, "log")
    flat = {f"{name}/{task}": fn for name, tasks in contenders.items() for task, fn in tasks.items()}
    seconds = _interleave_alternating(contenders, repeats)
    result: dict = {"seconds": {key: summary(values) for key, values in seconds.items()},
                    "cpu_seconds": {key: summary(timed.cpu) for key, timed in flat.items()},
                    "seqlab_warm_up_seconds": warm_up}
    if have_hmmlearn:
        result["relative_loglik_difference"] = _check_agreement(model, seqs, thread_counts)
    return result


def _interleave_alternating(contenders: dict[str, dict[str, _Timed]], repeats: int
                            ) -> dict[str, list[float]]:
    """`benchmarks.common.interleave`, with the contenders in reverse order every other round
    (A B C D, D C B A, ...): on a virtual machine whose host takes back memory the guest has freed,
    the first large allocation after a long run (hmmlearn's fits take 30 s at K = 32) pays for
    fresh memory again: measured, seqlab's K = 32 posteriors (a 256 MB result) took 0.84 to 0.94 s
    right after hmmlearn's fit, and 0.34 s right after seqlab's other posteriors call. In a fixed
    order the same contender would pay it every round; alternating spreads it."""
    seconds: dict[str, list[float]] = {f"{name}/{task}": [] for name, tasks in contenders.items()
                                       for task in tasks}
    names = list(contenders)
    for round_ in range(repeats):
        for name in names if round_ % 2 == 0 else names[::-1]:
            for task, timed in contenders[name].items():
                seconds[f"{name}/{task}"].append(timed())
    return seconds


def _seqlab(threads: int) -> str:
    return f"seqlab-{threads}-thread{'s' if threads > 1 else ''}"


def _rows(n_states: int, result: dict, threads: int) -> list[list[str]]:
    med = {key: s["median"] for key, s in result["seconds"].items()}
    cpu = {key: s["median"] for key, s in result["cpu_seconds"].items()}
    rows = []
    for task in TASKS:
        one, many = med[f"{_seqlab(1)}/{task}"], med[f"{_seqlab(threads)}/{task}"]
        row = [f"K={n_states}", task, f"{one:.3f}"] + ([f"{many:.3f}"] if threads > 1 else [])
        if f"hmmlearn-scaling/{task}" in med:
            scaling, log_impl = med[f"hmmlearn-scaling/{task}"], med[f"hmmlearn-log/{task}"]
            best = min(scaling, log_impl)
            best_cpu = min(cpu[f"hmmlearn-scaling/{task}"], cpu[f"hmmlearn-log/{task}"])
            log_note = " (1 iter x10)" if task == "fit x10" else ""
            row += [f"{scaling:.3f}", f"{log_impl:.3f}{log_note}", f"{best / one:.2f}x",
                    f"{best_cpu / cpu[f'{_seqlab(1)}/{task}']:.2f}x"]
            row += [f"{best / many:.2f}x"] if threads > 1 else []
        rows.append(row)
    return rows


def run(n_sequences: int = 1000, length: int = 1000, n_symbols: int = 65, state_counts=(8, 32),
        repeats: int = 3, threads: int = 0) -> dict:
    """`threads`: seqlab's second thread count; 0 (default) for its policy's choice, made once
    here for the largest work (K = max(state_counts) on all the symbols)."""
    try:
        import hmmlearn  # noqa: F401  (test-only dependency, the reference)
        have_hmmlearn = True
    except ImportError:
        have_hmmlearn = False
        print("hmmlearn is not installed: timing seqlab alone (pip install hmmlearn to compare)")
    K = max(state_counts)
    threads = threads or choose_threads(params=K * (K + n_symbols), tokens=n_sequences * length)
    previous = torch.get_num_threads()
    seqs = list(np.random.default_rng(0).integers(0, n_symbols, size=(n_sequences, length)))
    try:
        results = {str(k): _one_size(k, seqs, n_symbols, repeats, have_hmmlearn, threads)
                   for k in state_counts}
    finally:
        torch.set_num_threads(previous)
    rows = [row for k in state_counts for row in _rows(k, results[str(k)], threads)]
    many = [f"seqlab {threads} threads s"] if threads > 1 else []
    header = ["states", "task", "seqlab 1 thread s"] + many
    if have_hmmlearn:
        header += ["hmmlearn scaling s", "hmmlearn log s", "speed-up 1 thread (vs faster hmmlearn)",
                   "same, CPU time"] + ([f"speed-up {threads} threads"] if threads > 1 else [])
        for k in state_counts:
            print(f"K={k}: relative log-likelihood difference vs hmmlearn "
                  f"{results[str(k)]['relative_loglik_difference']:.1e}")
    for k in state_counts:
        print(f"K={k}: seqlab warm-up (first calls: compiling the kernels or loading them from "
              f"numba's cache) {results[str(k)]['seqlab_warm_up_seconds']:.2f} s, not timed below")
    print_table(f"HMM, {n_sequences} sequences x {length} symbols, M={n_symbols}, median of {repeats} "
                f"interleaved rounds; hmmlearn on 1 thread, seqlab on 1 and {threads}", rows, header)
    payload = {"n_sequences": n_sequences, "length": length, "n_symbols": n_symbols,
               "repeats": repeats, "threads": threads, "results": results}
    save("hmm", payload)
    return payload


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="seqlab HMM vs hmmlearn")
    parser.add_argument("--threads", type=int, default=0,
                        help="seqlab's second thread count, beside 1 (default: seqlab's thread policy)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds (default 3)")
    args = parser.parse_args()
    run(repeats=args.repeats, threads=args.threads)
