"""How many CPU threads torch gets: a deliberate choice instead of torch's default of every core.

On a shared machine torch's default collapses: its threads wait for each other at every operation,
so one core taken by another process stalls all of them. Sampling the `shakespeare-char` model on
2 cores was measured falling from 776 to 5 tokens/s when another process held a core, while one
thread kept 638. The policy:

- a number asked for (`--threads N`, `train.threads = N`) is used as is, up to the cores this process
  may run on (more is clamped to them, with a warning: extra threads only wait for each other);
- otherwise the cores this process may run on (its CPU affinity) that other processes are not busy
  on right now (a 50 ms look at /proc/stat; the 1-minute load average where that is missing);
- re-decided every few seconds of a long training run (`ThreadGovernor`), as other processes
  come and go;
- and one thread for small work: a step whose matrix products are too small to split (a model of
  `params` parameters on `tokens` tokens per step under `SMALL_WORK`), which includes decoding one
  token at a time from any model of the sizes seqlab trains on a CPU.
"""

from __future__ import annotations

import logging
import math
import os
import time

import torch

log = logging.getLogger(__name__)

# parameters × tokens per step below which one thread is faster than two: the per-operation cost of
# waking a second thread exceeds its share of the arithmetic (measured on 2-core AVX-512 machines:
# the shakespeare-char model, 0.8M parameters × 768 tokens, trains 1.3× faster on 2 threads; a decode
# step of the same model, 0.8M × 1, is faster on one).
SMALL_WORK = 5e7


def available_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def busy_cores(window: float = 0.05) -> float:
    """How many cores other processes keep busy now: the non-idle share of /proc/stat over `window`
    seconds times the core count; the 1-minute load average where /proc/stat does not exist."""
    try:
        first = _cpu_times()
        time.sleep(window)
        second = _cpu_times()
    except OSError:
        try:
            return os.getloadavg()[0]
        except OSError:
            return 0.0
    return _busy_between(first, second)


def _busy_between(first: list[int], second: list[int], own: int = 0) -> float:
    """Cores kept busy between two /proc/stat readings, less `own` ticks of this process's."""
    total = sum(second) - sum(first)
    idle = (second[3] + second[4]) - (first[3] + first[4])  # idle + iowait
    return max(0.0, (total - idle - own) / total * (os.cpu_count() or 1)) if total > 0 else 0.0


def _own_ticks() -> int:
    """CPU time this process has used (all its threads), in clock ticks like /proc/stat's."""
    with open("/proc/self/stat", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()  # after "pid (name)"
    return int(fields[11]) + int(fields[12])  # utime + stime


class ThreadGovernor:
    """Re-decides torch's thread count during a long run: when other processes start to use the
    cores, seqlab's threads would wait on each other at every operation, so it steps down; when
    they stop, it steps back up. `check()` is cheap and looks at most every `interval` seconds at
    what the other processes used since the previous look (the machine's busy time minus this
    process's own). Off when the thread count was asked for or the work is small."""

    def __init__(self, requested: int = 0, *, params: int = 0, tokens: int = 1, interval: float = 5.0) -> None:
        self.active = _fixed(requested, params, tokens) is None
        self.interval = interval
        self.cores = available_cores()
        self._last = self._sample() if self.active else None

    def _sample(self) -> tuple[float, list[int], int] | None:
        try:
            return time.monotonic(), _cpu_times(), _own_ticks()
        except OSError:  # not Linux: no adapting
            self.active = False
            return None

    def check(self) -> int | None:
        """Adapt the thread count when due; returns the new count when it changed."""
        if not self.active or time.monotonic() - self._last[0] < self.interval:
            return None
        now = self._sample()
        if now is None:
            return None
        (_, first, own_first), (_, second, own_second) = self._last, now
        self._last = now
        others = _busy_between(first, second, own=own_second - own_first)
        n = _free(self.cores, others)
        if n == torch.get_num_threads():
            return None
        torch.set_num_threads(n)
        log.info("other processes use %.1f of %d cores: now %d thread(s)", others, self.cores, n)
        return n


def _free(cores: int, others: float) -> int:
    """Threads to use when other processes keep `others` cores busy: every core another process
    uses more than 30% of is left to it (a thread sharing a core stalls all the others)."""
    return max(1, min(cores, cores - math.ceil(others - 0.3)))


def _cpu_times() -> list[int]:
    with open("/proc/stat", encoding="ascii") as handle:
        fields = handle.readline().split()  # "cpu  user nice system idle iowait irq softirq ..."
    return [int(v) for v in fields[1:8]]


_COMMAND_LINE = 0  # `seqlab --threads N`: wins over a config's train.threads


def set_command_line_threads(n: int) -> None:
    global _COMMAND_LINE
    _COMMAND_LINE = n


def choose_threads(requested: int = 0, *, params: int = 0, tokens: int = 1, processes: int = 1) -> int:
    """The thread count for work on a model of `params` parameters over `tokens` tokens per step,
    in each of `processes` processes sharing the machine (data-parallel training on the CPU)."""
    fixed = _fixed(requested, params, tokens)
    if fixed is not None:
        return fixed
    cores = available_cores()
    if processes > 1:  # they start together: each sees the others idle, so split the cores evenly
        return max(1, cores // processes)
    return _free(cores, busy_cores())


def _fixed(requested: int, params: int, tokens: int) -> int | None:
    """The thread count when it does not depend on the machine's load: asked for (the command line
    first, at most the cores), or one for small work; None when it does."""
    if _COMMAND_LINE > 0 or requested > 0:
        return capped(_COMMAND_LINE or requested)
    return 1 if params * tokens < SMALL_WORK else None


_WARNED: set[tuple[int, int]] = set()  # (asked, cores) already warned about


def capped(asked: int) -> int:
    """`asked` threads, or the cores this process may run on when that is fewer, with a warning
    (once per value): threads beyond the cores only wait for each other, and a count such as
    100000 would exhaust the host's threads for every process."""
    cores = available_cores()
    if asked <= cores:
        return asked
    if (asked, cores) not in _WARNED:
        _WARNED.add((asked, cores))
        log.warning("%d threads asked for, but this process may run on %d core(s): using %d", asked, cores, cores)
    return cores


def use_threads(requested: int = 0, *, params: int = 0, tokens: int = 1, processes: int = 1) -> int:
    """Set torch's thread count by `choose_threads` and return it."""
    n = choose_threads(requested, params=params, tokens=tokens, processes=processes)
    if n != torch.get_num_threads():
        torch.set_num_threads(n)
    log.debug("torch uses %d CPU thread(s)", n)
    return n
