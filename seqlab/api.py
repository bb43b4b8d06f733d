"""The Python API, which the CLI mirrors: train a run, load it, evaluate it, sample from it.

    import seqlab
    run_dir = seqlab.train("shakespeare-char", overrides=["train.max_steps=500"])
    model, tokenizer = seqlab.load(run_dir)
    ids = torch.tensor([tokenizer.encode("ROMEO:")])
    print(tokenizer.decode(model.generate(ids, max_new_tokens=200, temperature=0.8, top_k=200)[0]))
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqlab import families, seq2seq
from seqlab.config import Config, SampleConfig, load_config, override
from seqlab.data import (
    Corpus,
    LineBatches,
    LineData,
    TextSpan,
    TokenData,
    encode_cached,
    iter_eval_windows,
    load_corpus,
    prepare_lines,
    prepare_tokens,
    split_corpus,
)
from seqlab.errors import SeqlabError
from seqlab.families import build_model
from seqlab.families.common import evaluation_context
from seqlab.generate.sampling import generate, iter_generate
from seqlab.generate.stream import TextStream
from seqlab.models.contract import LanguageModel, model_device
from seqlab.runs import (
    load_run,
    prepare_run_dir,
    read_config,
    read_tokenizer,
    write_run_files,
)
from seqlab.tokenizers import (
    CharTokenizer,
    Tokenizer,
    source_vocab_size,
    train_tokenizer,
)
from seqlab.training import Trainer, distributed, resolve_device
from seqlab.training.metrics import MetricsLog
from seqlab.training.threads import ThreadGovernor, use_threads

log = logging.getLogger(__name__)

TOKENIZER_FIT_CHARS = 100_000_000  # BPE and word tokenizers learn from at most this much training text


def _resolve(config: Config | str | Path, overrides: Sequence[str]) -> Config:
    if isinstance(config, Config):
        config = override(config, overrides) if overrides else config
    else:
        config = load_config(config, overrides)
    families.check_data(config)
    return config


def _default_out(config: Config | str | Path) -> Path:
    name = Path(str(config)).stem if not isinstance(config, Config) else "run"
    return Path("runs") / name


def fit_tokenizer(config: Config, corpus: Corpus | str) -> Tokenizer:
    """The tokenizer of `config.tokenizer` fitted to `corpus` (or a text), read in pieces.

    The char vocabulary is the whole corpus's (as nanoGPT's), so validation has no unseen
    characters; BPE merges and word vocabularies are learned from the training part only, and
    from no more than its first `TOKENIZER_FIT_CHARS` characters, which hold a tokenizer's
    statistics long before a corpus stops fitting in memory.
    """
    if isinstance(corpus, str):
        corpus = Corpus("text", corpus, ())
    options = config.tokenizer
    kind = options.kind
    if kind == "char":
        return CharTokenizer.train(corpus.chunks(), unknown_token=options.unknown_token)
    if kind == "byte":  # nothing to learn: the 256 bytes
        return train_tokenizer(kind, "")
    train_part, _ = split_corpus(corpus, config.data.val_fraction)
    if len(train_part) > TOKENIZER_FIT_CHARS:
        log.info("fitting the %s tokenizer on the first %d of the %d training characters",
                 kind, TOKENIZER_FIT_CHARS, len(train_part))
    return train_tokenizer(kind, train_part.head(TOKENIZER_FIT_CHARS), vocab_size=options.vocab_size,
                           unknown_token=options.unknown_token)


def _resume_config(run_dir: Path, overrides: Sequence[str]) -> Config:
    saved = read_config(run_dir)
    config = override(saved, overrides) if overrides else saved
    for section in ("data", "tokenizer", "model"):
        if getattr(config, section) != getattr(saved, section):
            raise SeqlabError(f"--resume cannot change [{section}] of {run_dir}: only train.* and "
                              f"sample.* may differ from the saved config")
    return config


def train(config: Config | str | Path, *, out: str | Path | None = None, overrides: Sequence[str] = (),
          resume: bool = False, overwrite: bool = False, progress: bool = True) -> Path:
    """Train a model from a Config, a TOML file or a preset name; returns its run directory.

    Under torchrun (several processes) each process trains its share of every batch and rank 0
    alone writes the run directory (see `seqlab.training.distributed`)."""
    world = distributed.world_from_env()
    if not world.main:  # rank 0 reports for every process; the others' failures still raise
        logging.getLogger("seqlab").setLevel(max(logging.ERROR, logging.getLogger("seqlab").level))
    run_dir = Path(out) if out is not None else _default_out(config)
    tokenizer = None
    if resume and (run_dir / "config.toml").is_file():
        config = _resume_config(run_dir, overrides)
        tokenizer = read_tokenizer(run_dir)
    else:
        if resume and world.main:
            log.warning("%s has no run to resume: starting a new one", run_dir)
        config = _resolve(config, overrides)
        if world.main:
            prepare_run_dir(run_dir, overwrite=overwrite)
    family = families.get(config.model.family)
    if not family.trained:  # fitted by counting or EM: no trainer, no checkpoints
        if world.distributed:
            raise SeqlabError(f"model.family = {family.name!r} is fitted in one process: run it without torchrun")
        _fit_run(config, family, run_dir)
        return run_dir
    if family.reads_pairs:
        tokenizer, batches, val_pairs = seq2seq.seq2seq_batches(config, tokenizer)
        sampler = lambda m: seq2seq.sample_translations(m, tokenizer, val_pairs[:3])  # noqa: E731
    else:
        tokenizer, data = _lm_data(config, tokenizer)
        batches = _line_batches(config, family, data) if isinstance(data, LineData) else family.batches(config, data)
        sampler = lambda m: _eval_sample(m, tokenizer, config)  # noqa: E731
    if world.main:
        write_run_files(run_dir, config, tokenizer)
    torch.manual_seed(config.train.seed)
    model = build_model(config.model, tokenizer.vocab_size, source_vocab_size=source_vocab_size(tokenizer))
    device = distributed.start(world, resolve_device(config.train.device))
    n_params = sum(p.numel() for p in model.parameters())
    step_tokens = config.train.batch_size * (config.model.block_size or 1) // world.size
    threads = use_threads(config.train.threads, params=n_params, processes=world.size, tokens=step_tokens)
    log.info("training %s (%.2fM parameters) on %s%s", config.model.family, n_params / 1e6, device,
             f" with {threads} thread(s)" if device.type == "cpu" else "")
    # A single process on the CPU keeps adapting its threads to the machine; distributed ones keep their share.
    governor = (ThreadGovernor(config.train.threads, params=n_params, tokens=step_tokens)
                if device.type == "cpu" and not world.distributed else None)
    try:
        trainer = Trainer(model, batches, config.train, run_dir, device=device, progress=progress,
                          sampler=sampler, title=run_dir.name, world=world, threads=governor)
        result = trainer.fit(resume=resume)
    finally:
        distributed.stop(world)
    if result.interrupted:
        log.warning("stopped at step %d with a checkpoint; continue with: seqlab train --out %s --resume",
                    result.step, run_dir)
    return run_dir


def _lm_data(config: Config, tokenizer: Tokenizer | None) -> tuple[Tokenizer, TokenData | LineData]:
    """The tokenizer (fitted to the corpus unless given) and the token ids of a language model's
    splits: one stream of text, or its lines (`data.sequences`)."""
    corpus = load_corpus(config.data.corpus)  # read in pieces below, never whole
    if tokenizer is None:
        tokenizer = fit_tokenizer(config, corpus)
    if config.data.sequences == "lines":
        data = _lines(corpus, tokenizer, config)
        log.info("corpus %s: %d train / %d val / %d test lines", config.data.corpus, len(data.train),
                 len(data.val), len(data.test))
        return tokenizer, data
    data = prepare_tokens(corpus, tokenizer, config.data.val_fraction)
    log.info("corpus %s: %d train / %d val tokens", config.data.corpus, len(data.train), len(data.val))
    return tokenizer, data


def _lines(corpus: Corpus, tokenizer: Tokenizer, config: Config) -> LineData:
    """The corpus's lines, shuffled and split as makemore does (`seqlab.data.lines`)."""
    f = config.data.val_fraction
    return prepare_lines(corpus.text, tokenizer, seed=config.data.line_seed, fractions=(1 - 2 * f, f, f))


def _line_batches(config: Config, family: families.Family, data: LineData) -> LineBatches:
    settings = config.model
    return LineBatches(data, config.train.batch_size, left_pad=family.line_padding(settings),
                       max_len=family.line_limit(settings))


def _fit_run(config: Config, family: families.Family, run_dir: Path) -> None:
    """Fit a counted or EM-fitted family to the training split, save it in `run_dir` and log its
    validation loss as one `val` row of metrics.csv."""
    tokenizer, data = _lm_data(config, None)
    write_run_files(run_dir, config, tokenizer)
    start = time.perf_counter()
    model = family.fit(config, data, tokenizer.vocab_size)
    seconds = time.perf_counter() - start
    family.save(model, run_dir)
    if isinstance(data, LineData):
        total, count = family.score_lines(model, data.val, data.boundary, config.model)
        scores = _scores(total, count, count, data.val_chars)
    else:
        total, count, _ = family.score(model, data.val, "cpu", None)
        scores = _scores(total, count, len(data.val), data.val_chars)
    MetricsLog(run_dir / "metrics.csv").add(
        step=0, split="val", loss=scores["loss"], bits_per_char=scores["bits_per_char"],
        tokens_per_sec=len(data.train) / max(seconds, 1e-9), lr=0.0, elapsed_s=seconds)
    log.info("%s fitted to %d tokens in %.2f s; val %.4f bits/char", family.name, len(data.train), seconds,
             scores["bits_per_char"])


def _scores(total: float, count: int, n_tokens: int, n_chars: int) -> dict[str, float | int]:
    """Loss (nats per predicted token), perplexity and bits per character of `count` predictions
    summing to `total` nats, over a text of `n_tokens` tokens and `n_chars` characters."""
    loss = total / count
    # Every token but the first is predicted (the counted families predict the first too): count
    # the characters of the tokens that are.
    chars = n_chars * count / n_tokens
    return {"loss": loss, "perplexity": math.exp(min(loss, 700.0)), "bits_per_char": total / math.log(2) / chars,
            "tokens": count}


def _eval_sample(model: nn.Module, tokenizer: Tokenizer, config: Config) -> str:
    """The short sample written to samples.txt at each evaluation."""
    options = replace(config.sample, max_new_tokens=config.train.sample_tokens, num_samples=1)
    return "".join(stream_sample(model, tokenizer, options))


def load(run_dir: str | Path, device: str = "cpu") -> tuple[LanguageModel, Tokenizer]:
    """The trained model of a run (eval mode) and its tokenizer. Every family's model fulfils the
    model contract (`seqlab.models.contract.LanguageModel`) and has `generate`; a seq2seq model
    translates instead (`seqlab.seq2seq.translate`)."""
    model, tokenizer, _ = load_run(run_dir, resolve_device(device))
    return model, tokenizer


def prompt_ids(tokenizer: Tokenizer, prompt: str, block_size: int | None) -> list[int]:
    """The prompt's token ids; an empty prompt starts from a newline, as nanoGPT's sampler does.
    A model with `block_size` None (recurrent) takes the whole prompt."""
    ids = tokenizer.encode(prompt or "\n")
    if block_size is not None and len(ids) > block_size:
        log.warning("the prompt has %d tokens and the model's context is %d: only its last %d are used",
                    len(ids), block_size, block_size)
        ids = ids[-block_size:]
    return ids


def stream_sample(model: nn.Module, tokenizer: Tokenizer, options: SampleConfig, *, use_cache: bool = True,
                  sample_index: int = 0, echo_prompt: bool = False) -> Iterator[str]:
    """Text of one sample as it is generated, ending at `options.stop`; the prompt first if `echo_prompt`."""
    ids = prompt_ids(tokenizer, options.prompt, model.block_size)
    if echo_prompt and options.prompt:
        yield options.prompt
    idx = torch.tensor([ids], dtype=torch.long, device=model_device(model))
    stream = TextStream(tokenizer, stop=options.stop)
    tokens = iter_generate(model, idx, options.max_new_tokens, temperature=options.temperature,
                           top_k=options.top_k or None, top_p=options.top_p, use_cache=use_cache,
                           seed=options.seed + sample_index)
    for column in tokens:
        piece = stream.push(column.tolist())
        if piece:
            yield piece
        if stream.stopped:
            break
    tail = stream.flush()
    if tail:
        yield tail


def sample_many(model: nn.Module, tokenizer: Tokenizer, options: SampleConfig, *,
                use_cache: bool = True) -> list[str]:
    """`options.num_samples` samples after the same prompt, generated together as one batch (one
    forward per token for all of them), each cut after `options.stop`. Rows draw from one seeded
    generator, so the samples differ from those `stream_sample` draws one at a time."""
    ids = prompt_ids(tokenizer, options.prompt, model.block_size)
    idx = torch.tensor([ids] * options.num_samples, dtype=torch.long, device=model_device(model))  # (N, T)
    out = generate(model, idx, options.max_new_tokens, temperature=options.temperature,
                   top_k=options.top_k or None, top_p=options.top_p, use_cache=use_cache, seed=options.seed)
    texts = []
    for row in out[:, len(ids):].tolist():
        stream = TextStream(tokenizer, stop=options.stop)
        texts.append(options.prompt + stream.push(row) + stream.flush())
    return texts


@torch.inference_mode()
def stream_nats(logits_of: Callable[[Tensor], Tensor], tokens: np.ndarray, block_size: int, *,
                batch_size: int = 32, device: torch.device | str = "cpu") -> tuple[float, int]:
    """Summed cross-entropy (nats) over every predicted token of `tokens`, and how many there are.

    Non-overlapping windows of `block_size`: every token after the first is predicted once.
    `logits_of` maps x (B, T) to logits (B, T, V).
    """
    total, count = 0.0, 0
    for x, y in iter_eval_windows(tokens, block_size, batch_size):
        logits = logits_of(x.to(device))  # (B, T, V)
        total += F.cross_entropy(logits.flatten(0, 1).float(), y.to(device).flatten(), reduction="sum").item()
        count += y.numel()
    return total, count


@torch.inference_mode()
def evaluate(run_dir: str | Path, *, corpus: str | None = None, split: str = "val", device: str = "cpu",
             batch_size: int = 32, context: int | None = None, beam_size: int = 1,
             length_penalty: float = 1.0) -> dict[str, float | int | str]:
    """Loss, perplexity and bits per character of a run over a whole split of a corpus.

    The split is cut as in training (the last `data.val_fraction` of the text); `split="all"` takes the
    whole text. The family's scoring reads it (see `seqlab.families.common`): windows of `context`
    tokens (default: the model's `block_size`) that do not overlap, so every token is predicted once
    (a context longer than training's needs positions that extrapolate); for a recurrent model one
    stream with its hidden state carried across windows, exact whatever the window; for the counted
    families one stream in which every token is predicted. A seq2seq run is scored on its pairs.
    """
    model, tokenizer, config = load_run(run_dir, resolve_device(device))
    family = families.get(config.model.family)
    if family.trained:  # whole batches of windows (or pairs) per forward
        use_threads(config.train.threads, params=sum(p.numel() for p in model.parameters()),
                    tokens=batch_size * (context or config.model.block_size))
    if family.reads_pairs:
        if corpus is not None or context is not None:
            raise SeqlabError("a seq2seq run is evaluated on its own pairs: drop --corpus and --context")
        splits = seq2seq.config_pairs(config)
        if split not in splits:
            raise SeqlabError(f"split {split!r}: this run has {', '.join(splits)} pairs")
        return {"data": config.data.task or config.data.pairs, "split": split,
                **seq2seq.evaluate_pairs(model, tokenizer, splits[split], batch_size=batch_size, beam_size=beam_size,
                                         length_penalty=length_penalty, bleu=seq2seq.natural_language(config))}
    if config.data.sequences == "lines":
        if context is not None:
            raise SeqlabError("a run on lines scores every line whole: drop --context")
        return _evaluate_lines(model, tokenizer, config, family, corpus=corpus, split=split)
    if split == "test":
        raise SeqlabError("a language model's corpus has train and val splits (and all), not test")
    if context is not None and not family.context_option:
        raise SeqlabError(f"a {family.name} run scores the split as one stream: drop --context")
    if context is not None:
        evaluation_context(model, context)  # a bad context fails before the corpus is read
    # Read and encoded in pieces through the token cache, as in training (whose entries it reuses).
    source = load_corpus(corpus or config.data.corpus)
    text = (TextSpan(source, 0, source.n_chars) if split == "all"
            else dict(zip(("train", "val"), split_corpus(source, config.data.val_fraction)))[split])
    tokens = encode_cached(text, tokenizer)
    if len(tokens) < 2:
        raise SeqlabError(f"the {split} split has {len(tokens)} token(s): nothing to evaluate")
    total, count, window = family.score(model, tokens, model_device(model), context)
    return {"corpus": corpus or config.data.corpus, "split": split,
            **_scores(total, count, len(tokens), len(text)), "chars": len(text),
            **({"context": window} if window is not None else {})}


def _evaluate_lines(model, tokenizer: Tokenizer, config: Config, family: families.Family, *, corpus: str | None,
                    split: str) -> dict[str, float | int | str]:
    """`evaluate` for a run on lines: every next token of every line of the split, its closing
    boundary included (makemore's loss), the lines split as in training."""
    if split not in ("train", "val", "test", "all"):
        raise SeqlabError(f"split {split!r}: a run on lines has train, val, test and all")
    data = _lines(load_corpus(corpus or config.data.corpus), tokenizer, config)
    lines = data.train + data.val + data.test if split == "all" else data.lines(split)
    chars = sum(data.chars(s) for s in ("train", "val", "test")) if split == "all" else data.chars(split)
    if not lines:
        raise SeqlabError(f"the {split} split has no lines: nothing to evaluate")
    total, count = family.score_lines(model, lines, data.boundary, config.model)
    return {"corpus": corpus or config.data.corpus, "split": split, **_scores(total, count, count, chars),
            "chars": chars, "lines": len(lines)}
