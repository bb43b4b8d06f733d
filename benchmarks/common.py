"""Helpers shared by the benchmarks: interleaved repetitions, medians, peak memory, machine facts."""

from __future__ import annotations

import ctypes
import gc
import json
import multiprocessing
import os
import platform
import resource
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Hashable
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    from seqlab.training.precision import native_bfloat16
    return {"python": platform.python_version(), "torch": torch.__version__, "cpu_count": os.cpu_count(),
            "cpu": cpu_model(), "native_bfloat16": native_bfloat16(torch.device("cpu")),
            "torch_threads": torch.get_num_threads(), "load_average": os.getloadavg(),
            "platform": platform.platform()}


def interleave(contenders: dict[Hashable, Callable[[], float]], repeats: int) -> dict[Hashable, list[float]]:
    """Run each contender once per round, in turn, `repeats` rounds; each call returns a rate."""
    rates: dict[Hashable, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, run in contenders.items():
            rates[name].append(run())
    return rates


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return {"median": statistics.median(values), "p90": p90, "min": ordered[0], "max": ordered[-1],
            "n": len(values)}


def rate_rows(result: dict[str, dict[str, float]], reference: str) -> list[list[str]]:
    """Table rows (name, median, p90, median as a multiple of `reference`'s) of `summary` results."""
    base = result[reference]["median"]
    return [[name, f"{s['median']:,.0f}", f"{s['p90']:,.0f}", f"{s['median'] / base:.2f}x"]
            for name, s in result.items()]


def timed(fn: Callable[[], int]) -> float:
    """Calls `fn` (which returns a count of tokens) and returns tokens per second."""
    start = time.perf_counter()
    count = fn()
    return count / (time.perf_counter() - start)


def machine_line() -> str:
    """The machine facts a timing needs beside it: the CPU and whether it computes bfloat16 natively,
    threads, cores, load average (1, 5, 15 minutes)."""
    info = machine()
    load = " / ".join(f"{x:.2f}" for x in info["load_average"])
    return (f"{info['cpu']}, native bfloat16: {'yes' if info['native_bfloat16'] else 'no'}, "
            f"torch {info['torch']}, threads {info['torch_threads']}, cpus {info['cpu_count']}, "
            f"load average {load} (1/5/15 min)")


def print_table(title: str, rows: list[list[str]], header: list[str]) -> None:
    """Print `rows` under `title`, a line of machine facts (`machine_line`) and `header`."""
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths))
    print(f"\n{title}\n[{machine_line()}]\n{line}\n{'-' * len(line)}")
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)))


def save(name: str, payload: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **payload}, indent=2))
    return path


# --- peak memory ------------------------------------------------------------------------------------

MB = 2 ** 20


def peak_memory(prepare: Callable[..., Callable[[], object]], *args, timeout: float = 600.0) -> dict:
    """Peak memory of one run of the work that `prepare(*args)` returns, measured in a fresh process.

    Why a fresh process: a process's peak resident set (ru_maxrss) only ever grows, and allocators keep
    freed memory for reuse, so measurements made one after another in one process hide each other.
    The child runs `prepare(*args)`, which builds what the work needs (and should warm it up: first
    calls allocate kernels' buffers) and returns the work, a callable with no arguments; then the
    child returns the C heap's free memory to the system (else the work could reuse what `prepare`
    freed, unseen), resets its peak, runs the work once and reports:

        peak_mb       high-water mark of the resident set during the work minus the resident set
                      before it (Linux resets the mark through /proc/self/clear_refs; elsewhere the
                      mark cannot be reset and is taken from ru_maxrss, so a peak during `prepare`
                      above the work's hides the work's)
        cuda_peak_mb  torch.cuda.max_memory_allocated during the work minus the memory allocated
                      before it, when the child uses CUDA; else None

    peak_mb is the resident set the system sees, so it includes the C allocator's fragmentation:
    differences of a few MB between runs or between similar contenders are noise.

    The child uses the caller's torch thread count. `prepare` and `args` travel by pickle, so
    `prepare` must be a module-level function of an importable module:

        def prepare_decode(n):                       # runs in the child
            model = build(n)
            model.generate(start, 1)                 # warm-up
            return lambda: model.generate(start, n)  # the work measured
        peak_memory(prepare_decode, 1024)            # {"peak_mb": 9.1, "cuda_peak_mb": None}
    """
    context = _child_context()
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_measure_in_child, args=(send, prepare, args, torch.get_num_threads()))
    child.start()
    send.close()
    try:
        if not receive.poll(timeout):
            raise RuntimeError(f"peak_memory: no result from {prepare.__qualname__}{args} within {timeout:.0f} s "
                               f"(child exit code {child.exitcode})")
        ok, value = receive.recv()
    except EOFError:  # the child ended without answering
        child.join(5)
        ok, value = False, f"the child process died (exit code {child.exitcode})"
    finally:
        child.join(5)
        if child.is_alive():
            child.kill()
    if not ok:
        raise RuntimeError(f"peak_memory of {prepare.__qualname__}{args} failed in the child:\n{value}")
    return value


def memory_cell(peak: dict) -> str:
    """A table cell for a `peak_memory` result: host MB, and CUDA MB when measured."""
    cell = f"{peak['peak_mb']:,.1f}"
    return cell if peak["cuda_peak_mb"] is None else f"{cell} (cuda {peak['cuda_peak_mb']:,.1f})"


def _child_context() -> multiprocessing.context.BaseContext:
    """forkserver where it exists: children fork from a server that imported torch once (fast) but
    never ran it (no thread pools, no CUDA context, nothing allocated); else spawn."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["torch"])  # no effect once the server runs
    return context


def _resident_mb(field: str) -> float | None:
    """VmRSS or VmHWM of this process from /proc/self/status in MB, None where there is none."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024 / MB  # the kernel writes kB
    except OSError:
        pass
    return None


def _reset_resident_peak() -> bool:
    """Reset VmHWM (and ru_maxrss) to the current resident set: Linux 4.0+; False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
        return True
    except OSError:
        return False


def _release_free_memory() -> None:
    """Hand the C heap's free pages back to the system (glibc), so that memory `prepare` freed is not
    reused by the work without raising the resident set: the work's peak would hide in it."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (AttributeError, OSError):  # not glibc: nothing to do
        pass


def _max_rss_mb() -> float:
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is bytes on macOS, kB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / MB


def _measure_in_child(send, prepare: Callable[..., Callable[[], object]], args: tuple, threads: int) -> None:
    try:
        torch.set_num_threads(threads)
        work = prepare(*args)
        gc.collect()
        _release_free_memory()
        cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            cuda_before = torch.cuda.memory_allocated()
        if _reset_resident_peak() and _resident_mb("VmRSS") is not None:
            before, read_peak = _resident_mb("VmRSS"), lambda: _resident_mb("VmHWM")
        else:
            before, read_peak = _max_rss_mb(), _max_rss_mb
        work()
        if cuda:
            torch.cuda.synchronize()
        result = {"peak_mb": max(0.0, read_peak() - before),
                  "cuda_peak_mb": (torch.cuda.max_memory_allocated() - cuda_before) / MB if cuda else None}
        send.send((True, result))
    except BaseException:  # noqa: BLE001 - everything goes back to the parent, which raises
        send.send((False, traceback.format_exc()))
    finally:
        send.close()
