"""Training batches and evaluation windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from seqlab.data import iter_eval_windows, sample_batch
from seqlab.errors import DataError

SEED = 1234


def _positions(n: int, tmp_path: Path) -> np.ndarray:
    """A memory-mapped uint16 split whose token at position i is i (so a value is its position)."""
    np.save(tmp_path / "ids.npy", np.arange(n, dtype=np.uint16), allow_pickle=False)
    return np.load(tmp_path / "ids.npy", mmap_mode="r", allow_pickle=False)


def test_batch_shapes_and_shifted_targets(tmp_path: Path):
    tokens = _positions(500, tmp_path)
    x, y = sample_batch(tokens, 8, 16, torch.Generator().manual_seed(SEED))
    assert x.shape == y.shape == (8, 16)
    assert x.dtype == y.dtype == torch.int64
    # Each row is a window of consecutive positions, and the targets are the next positions.
    torch.testing.assert_close(x - x[:, :1], torch.arange(16).expand(8, 16))
    torch.testing.assert_close(y, x + 1)
    assert int(x.min()) >= 0 and int(y.max()) <= 499


def test_offsets_come_from_the_generator_state(tmp_path: Path):
    tokens = _positions(300, tmp_path)
    gen = torch.Generator().manual_seed(SEED)
    sample_batch(tokens, 4, 10, gen)  # advance the state
    state = gen.get_state()
    x1, y1 = sample_batch(tokens, 4, 10, gen)
    expected_starts = torch.randint(300 - 10, (4,), generator=torch.Generator().set_state(state))
    torch.testing.assert_close(x1[:, 0], expected_starts)
    gen.set_state(state)
    x2, y2 = sample_batch(tokens, 4, 10, gen)
    torch.testing.assert_close(x2, x1)
    torch.testing.assert_close(y2, y1)


def test_shortest_split_that_fits(tmp_path: Path):
    tokens = _positions(11, tmp_path)
    x, y = sample_batch(tokens, 3, 10, torch.Generator().manual_seed(SEED))
    torch.testing.assert_close(x, torch.arange(10).expand(3, 10))
    torch.testing.assert_close(y, torch.arange(1, 11).expand(3, 10))


def test_split_shorter_than_context_is_an_error(tmp_path: Path):
    tokens = _positions(10, tmp_path)
    message = "has 10 tokens .* block_size = 10 .* smaller model.block_size"
    with pytest.raises(DataError, match=message):
        sample_batch(tokens, 2, 10, torch.Generator().manual_seed(SEED))


@pytest.mark.parametrize(("n", "block_size", "batch_size"),
                         [(2, 1, 1), (2, 5, 3), (33, 8, 2), (100, 7, 4), (100, 11, 100),
                          (65, 8, 3)])
def test_eval_windows_predict_every_target_once(tmp_path: Path, n: int, block_size: int,
                                                batch_size: int):
    tokens = _positions(n, tmp_path)
    targets = []
    batches = list(iter_eval_windows(tokens, block_size, batch_size))
    for i, (x, y) in enumerate(batches):
        assert x.dtype == torch.int64 and x.shape == y.shape
        assert x.shape[0] <= batch_size and x.shape[1] <= block_size
        if x.shape[1] < block_size:
            assert i == len(batches) - 1 and x.shape[0] == 1
        torch.testing.assert_close(y, x + 1)
        targets.extend(y.flatten().tolist())
    assert targets == list(range(1, n))


def test_eval_needs_two_tokens(tmp_path: Path):
    with pytest.raises(DataError, match="at least 2"):
        list(iter_eval_windows(_positions(1, tmp_path), 4, 2))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_batches_land_on_cuda(tmp_path: Path):
    tokens = _positions(200, tmp_path)
    gen = torch.Generator().manual_seed(SEED)
    x, y = sample_batch(tokens, 4, 8, gen, device="cuda")
    assert x.device.type == y.device.type == "cuda"
    torch.testing.assert_close(y, x + 1)
    xe, ye = next(iter_eval_windows(tokens, 8, 4, device="cuda"))
    assert xe.is_cuda and ye.is_cuda
