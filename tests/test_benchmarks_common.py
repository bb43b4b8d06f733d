"""benchmarks.common.peak_memory: each measurement in a fresh process, counting only the work."""

import sys
from pathlib import Path

import pytest
import torch

# benchmarks/ is not an installed package; the measuring children also import this module by name.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import MB, peak_memory


def allocate(megabytes: int):
    torch.zeros(1)  # torch's first-call allocations stay out of the work
    return lambda: torch.ones(megabytes * MB // 4)  # float32: 4 bytes each


def allocate_in_prepare(megabytes: int):
    kept = torch.ones(megabytes * MB // 4)
    return lambda: kept.sum()


def churn_then_allocate(megabytes: int):
    """Leave freed memory in the C heap before the work: the work could reuse it without the
    resident set growing."""
    big = torch.ones(20 * MB // 4)  # mmapped; freeing it raises glibc's mmap threshold to 20 MB
    del big
    blocks = [torch.ones(MB // 4) for _ in range(30)]  # 30 MB of 1 MB blocks, now on the heap
    del blocks
    return lambda: torch.ones(megabytes * MB // 4)


def fail():
    raise ValueError("prepare failed on purpose")


def test_the_work_allocation_shows_in_the_peak():
    with_tensor = peak_memory(allocate, 200)
    without = peak_memory(allocate, 0)
    assert with_tensor["peak_mb"] - without["peak_mb"] >= 150, (with_tensor, without)
    assert with_tensor["cuda_peak_mb"] is None  # the child never touched CUDA


def test_memory_that_prepare_keeps_is_not_counted():
    peak = peak_memory(allocate_in_prepare, 200)
    assert peak["peak_mb"] < 50, peak


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's heap")
def test_memory_that_prepare_freed_is_not_reused_unseen():
    peak = peak_memory(churn_then_allocate, 10)
    assert peak["peak_mb"] >= 8, peak


def test_an_error_in_the_child_is_raised_with_its_traceback():
    with pytest.raises(RuntimeError, match="prepare failed on purpose"):
        peak_memory(fail)
