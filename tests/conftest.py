"""Fixtures shared across test folders."""

import json
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


TINY_TRAIN_DEFAULTS = {"batch_size": 4, "max_steps": 20, "lr": 3e-3, "warmup_steps": 2, "device": "cpu"}


@pytest.fixture(scope="session")
def tiny_toml():
    """A writer of the TOML text of a tiny character GPT (1 layer, width 16, context 16) on `corpus`:
    tiny_toml(corpus, **train) -> str, the [train] keys given laid over small defaults."""

    def text(corpus, **train) -> str:
        keys = {**TINY_TRAIN_DEFAULTS, **train}
        lines = [f"{k} = {json.dumps(v) if isinstance(v, str) else str(v).lower() if isinstance(v, bool) else v}"
                 for k, v in keys.items()]
        return (f'[data]\ncorpus = "{corpus}"\nval_fraction = 0.2\n\n[tokenizer]\nkind = "char"\n\n'
                "[model]\nn_layer = 1\nn_head = 2\nd_model = 16\nblock_size = 16\n\n[train]\n"
                + "\n".join(lines) + "\n")

    return text
