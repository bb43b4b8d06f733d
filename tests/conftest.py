"""Fixtures shared across test folders."""

import random

import pytest


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
