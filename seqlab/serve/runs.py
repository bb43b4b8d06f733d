"""The runs a `seqlab serve` process serves: each loaded once at start-up and shared by every request.

A request names a run by its index in the command line's list or by its name (the run directory's
own name, made unique with `-2`, `-3`, ... when two directories share one); it never names a path,
so no part of a request reaches the file system.

Each run has one worker thread (`ServedRun.call`): every computation with its model runs there, one
at a time, so requests share one model without a lock around each call and the event loop never
waits on torch. Runs work in parallel with each other; torch's own thread count is chosen once at
start-up for one-token steps (`seqlab.training.threads`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

from seqlab import families
from seqlab.config import Config
from seqlab.errors import SeqlabError
from seqlab.runs import load_run
from seqlab.tokenizers import Tokenizer

log = logging.getLogger(__name__)

R = TypeVar("R")


@dataclass
class ServedRun:
    """One run: its model (eval mode, CPU), tokenizer, config and family declaration."""

    index: int
    name: str
    path: Path
    model: Any
    tokenizer: Tokenizer
    config: Config
    executor: ThreadPoolExecutor = field(repr=False, default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.executor is None:
            self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"seqlab-serve-{self.index}")

    @property
    def family(self) -> families.Family:
        return families.get(self.config.model.family)

    @property
    def seq2seq(self) -> bool:
        """Whether the run translates (reads a source) rather than continues a text."""
        return self.family.reads_pairs

    @cached_property
    def token_strings(self) -> list[str]:
        """Each token id's text: the token decoded alone, or the tokenizer's readable name for it
        (`token_strings`) where it is not text by itself (a part of a UTF-8 character)."""
        names = self.tokenizer.token_strings()
        texts = []
        for i, name in enumerate(names):
            text = self.tokenizer.decode([i])
            texts.append(name if "\ufffd" in text or not text else text)
        return texts

    @property
    def block_size(self) -> int | None:
        return getattr(self.model, "block_size", None)

    async def call(self, fn: Callable[..., R], *args: Any) -> R:
        """fn(*args) on this run's worker thread. A call still queued when its awaiting request is
        cancelled (the client went away) is dropped, not run."""
        return await asyncio.wrap_future(self.executor.submit(fn, *args))

    def describe(self) -> dict[str, Any]:
        """What `GET /api/runs` says about the run."""
        family, sample = self.family, self.config.sample
        return {
            "index": self.index, "name": self.name, "family": family.name, "summary": family.summary,
            "kind": "seq2seq" if self.seq2seq else "language model",
            "tokenizer": self.tokenizer.kind, "vocab_size": self.tokenizer.vocab_size,
            "block_size": self.block_size,
            "sample": {"temperature": sample.temperature, "top_k": sample.top_k, "top_p": sample.top_p,
                       "seed": sample.seed, "max_new_tokens": sample.max_new_tokens, "stop": sample.stop},
        }

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


def unique_names(paths: Sequence[Path]) -> list[str]:
    """Each run directory's name, with `-2`, `-3`, ... after the second and later of a repeated one."""
    seen: dict[str, int] = {}
    names = []
    for path in paths:
        base = path.resolve().name or "run"
        seen[base] = seen.get(base, 0) + 1
        names.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return names


def load_runs(paths: Sequence[str | Path]) -> list[ServedRun]:
    """Every run, loaded on the CPU; a run that cannot be loaded or shown (word vectors) raises its
    SeqlabError at once."""
    paths = [Path(p) for p in paths]
    runs = []
    for index, (path, name) in enumerate(zip(paths, unique_names(paths))):
        model, tokenizer, config = load_run(path)
        family = families.get(config.model.family)
        if not getattr(family, "language_model", True):
            raise SeqlabError(f"{path} is a {family.name} run, which holds vectors to query, not a model of "
                              f"text: seqlab serve shows language models and seq2seq runs")
        runs.append(ServedRun(index=index, name=name, path=path, model=model, tokenizer=tokenizer, config=config))
        log.info("serving %s as run %d (%r): a %s run", path, index, name, config.model.family)
    return runs


def model_parameters(run: ServedRun) -> int:
    """The parameter count of a run's model (0 for the counted families, which compute in numpy)."""
    parameters = getattr(run.model, "parameters", None)
    return sum(p.numel() for p in parameters()) if parameters is not None else 0


__all__ = ["ServedRun", "load_runs", "model_parameters", "unique_names"]
