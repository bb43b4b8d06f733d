"""Fixtures shared across test folders."""

import random

import pytest
import torch


@pytest.fixture(scope="session")
def word_corpus():
    """A writer of small seeded English-like texts: word_corpus(path, seed=0, size=4000) -> path."""

    def write(path, seed=0, size=4000):
        rng = random.Random(seed)
        words = ["to", "be", "or", "not", "that", "is", "the", "question", "whether", "tis", "nobler"]
        lines, total = [], 0
        while total < size:
            line = " ".join(rng.choice(words) for _ in range(rng.randint(3, 9))).capitalize() + "."
            lines.append(line)
            total += len(line) + 1
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    return write


@pytest.fixture
def one_thread():
    """Tiny tensors: a single intra-op thread avoids thread-pool overhead that dominates on busy machines."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
