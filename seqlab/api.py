"""The Python API, which the CLI mirrors: train a run, load it, evaluate it, sample from it.

    import seqlab
    run_dir = seqlab.train("shakespeare-char", overrides=["train.max_steps=500"])
    model, tokenizer = seqlab.load(run_dir)
    ids = torch.tensor([tokenizer.encode("ROMEO:")])
    print(tokenizer.decode(model.generate(ids, max_new_tokens=200, temperature=0.8, top_k=200)[0]))
"""

from __future__ import annotations

import gc
import logging
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Iterator, Sequence

import torch
from torch import Tensor, nn

from seqlab import families, rundir, seq2seq
from seqlab.budget import check_budget, check_generation
from seqlab.config import Config, SampleConfig, load_config, override
from seqlab.data import (
    Corpus,
    LineBatches,
    LineData,
    TextSpan,
    TokenData,
    encode_cached,
    load_corpus,
    prepare_lines,
    prepare_tokens,
    split_corpus,
)
from seqlab.errors import SeqlabError, TokenizerError, TrainingInterrupted
from seqlab.families import build_model
from seqlab.families.common import evaluation_context, stream_nats  # stream_nats: benchmarks use it
from seqlab.generate.sampling import iter_generate
from seqlab.generate.stream import TextStream
from seqlab.models.contract import LanguageModel, model_device
from seqlab.runs import (
    check_resumable,
    load_run,
    missing_state,
    read_config,
    read_tokenizer,
    run_step,
    write_run_files,
)
from seqlab.seeds import generator_seed
from seqlab.tasks import finetune
from seqlab.tasks.run import check_task, train_task
from seqlab.tokenizers import (
    CharTokenizer,
    Tokenizer,
    source_vocab_size,
    train_tokenizer,
)
from seqlab.training import Trainer, distributed, resolve_device
from seqlab.training.callbacks import default_callbacks
from seqlab.training.checkpoint import latest_checkpoint, load_weights
from seqlab.training.metrics import MetricsLog
from seqlab.training.threads import ThreadGovernor, use_threads
from seqlab.training.trainer import TrainResult

log = logging.getLogger(__name__)

TOKENIZER_FIT_CHARS = 100_000_000  # BPE and word tokenizers learn from at most this much training text


def _resolve(config: Config | str | Path, overrides: Sequence[str]) -> Config:
    if isinstance(config, Config):
        config = override(config, overrides) if overrides else config
    else:
        config = load_config(config, overrides)
    families.check_data(config)
    config = finetune.with_base(config)  # train.init_from: the base run's [model] and [tokenizer]
    check_task(config)
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
        return CharTokenizer.train(corpus.chunks(), unknown_token=options.unknown_token,
                                   byte_fallback=options.byte_fallback)
    if kind == "byte":  # nothing to learn: the 256 bytes
        return train_tokenizer(kind, "")
    train_part, _ = split_corpus(corpus, config.data.val_fraction)
    if len(train_part) > TOKENIZER_FIT_CHARS:
        log.info("fitting the %s tokenizer on the first %d of the %d training characters",
                 kind, TOKENIZER_FIT_CHARS, len(train_part))
    return train_tokenizer(kind, train_part.head(TOKENIZER_FIT_CHARS), vocab_size=options.vocab_size,
                           unknown_token=options.unknown_token, byte_fallback=options.byte_fallback)


def _resume_config(run_dir: Path, overrides: Sequence[str]) -> Config:
    saved = read_config(run_dir)
    config = override(saved, overrides) if overrides else saved
    for section in ("data", "tokenizer", "model", "task", "finetune"):
        if getattr(config, section) != getattr(saved, section):
            raise SeqlabError(f"--resume cannot change [{section}] of {run_dir}: only train.* and "
                              f"sample.* may differ from the saved config")
    if config.train.init_from != saved.train.init_from:
        raise SeqlabError(f"--resume cannot change train.init_from of {run_dir}")
    return config


def _run_config(config: Config | str | Path, run_dir: Path, overrides: Sequence[str], *, resume: bool,
                overwrite: bool, from_weights: bool, main: bool) -> tuple[Config, Tokenizer | None, bool]:
    """The config of the run to train in `run_dir`, its tokenizer when the run there is continued
    (else None), and whether it is. Refuses, before any long work, a run directory that a new run
    would take without `overwrite`."""
    if resume and (run_dir / "config.toml").is_file():
        return _resume_config(run_dir, overrides), read_tokenizer(run_dir), True
    if from_weights:
        raise SeqlabError(f"--from-weights continues the weights of a run: it goes with --resume, and {run_dir} "
                          f"holds no run")
    if resume and main:
        log.warning("%s has no run to resume: starting a new one", run_dir)
    config = _resolve(config, overrides)
    if main:
        rundir.check_new(run_dir, overwrite=overwrite)
    return config, None, False


def _check_resume(run_dir: Path, from_weights: bool) -> None:
    """Refuse to resume what cannot be continued as it was (`seqlab.runs.check_resumable`); say so
    when the run has no checkpoint yet and starts from step 0."""
    check_resumable(run_dir, from_weights=from_weights)
    if not from_weights and missing_state(run_dir) is not None:
        log.warning("%s has nothing trained yet (no checkpoint, no weights): training it from step 0", run_dir)


def nothing_to_train(config: Config | str | Path = "run", *, out: str | Path | None = None,
                     overrides: Sequence[str] = (), from_weights: bool = False) -> str | None:
    """When `train(config, out=out, overrides=overrides, resume=True)` would train nothing (the run
    in `out` has reached its `train.max_steps`), the one line that says so; otherwise None."""
    run_dir = Path(out) if out is not None else _default_out(config)
    if not (run_dir / "config.toml").is_file():
        return None
    with rundir.claim(run_dir, held=distributed.world_from_env().main):  # a live run is refused, not reported on
        resumed = _resume_config(run_dir, overrides)
        if not families.get(resumed.model.family).trained:
            return None
        check_resumable(run_dir, from_weights=from_weights)  # a missing state is named before any step is read
        return _finished(run_dir, resumed, from_weights)


def _finished(run_dir: Path, config: Config, from_weights: bool) -> str | None:
    """The line saying that the run in `run_dir` has nothing left to train, or None."""
    if from_weights:
        step = run_step(run_dir)
    else:
        checkpoint = latest_checkpoint(run_dir)
        step = checkpoint.step if checkpoint is not None else None
    end, budget = config.train.max_steps, config.train.budget_seconds
    if budget is not None and not from_weights and checkpoint is not None and step < end:
        spent = float(checkpoint.trainer.get("wall_seconds", 0.0))
        if spent >= budget:
            return (f"nothing to train: {run_dir} has used its train.max_minutes = {config.train.max_minutes:g} "
                    f"({spent / 60:.1f} min, step {step}); to train on, resume with a larger --train.max_minutes")
    if step is None or step < end:
        return None
    return (f"nothing to train: {run_dir} has reached step {step} of train.max_steps = {end}; to train on, "
            f"resume with a larger --train.max_steps (e.g. --train.max_steps={2 * end})")


def _weights_step(model: nn.Module, run_dir: Path) -> int:
    """`--resume --from-weights`: load the run's weights into `model`; returns the step they were
    saved at (0 when not recorded), where training goes on with a fresh optimizer."""
    load_weights(model, run_dir / "model.safetensors")
    step = run_step(run_dir) or 0
    log.warning("continuing %s from its weights at step %d with a fresh optimizer and random state "
                "(--from-weights)", run_dir, step)
    return step


def train(config: Config | str | Path, *, out: str | Path | None = None, overrides: Sequence[str] = (),
          resume: bool = False, overwrite: bool = False, from_weights: bool = False, progress: bool = True) -> Path:
    """Train a model from a Config, a TOML file or a preset name; returns its run directory.

    The run directory is locked first and for the whole training (`seqlab.rundir`), so a second
    trainer is refused at once; everything the run needs (config, corpus, tokenizer, device, model)
    is then checked before anything in the directory is created or replaced; the run `overwrite`
    replaces is kept aside until the new run's first checkpoint (and put back if it fails before).
    `resume` continues from the run's checkpoint, and refuses a run whose weights exist but whose
    checkpoint is missing; `from_weights` (with `resume`) continues from the weights alone, with a
    fresh optimizer, at the step they were saved at.

    SIGINT (Ctrl-C) or SIGTERM stops the training at the end of its step with a checkpoint, and
    then raises `seqlab.errors.TrainingInterrupted` (its `signum`, `step`, and `exit_status` 130 or
    143): an interrupted run never returns as if finished (`seqlab.training.signals`).

    Under torchrun (several processes) each process trains its share of every batch and rank 0
    alone holds and writes the run directory (see `seqlab.training.distributed`)."""
    world = distributed.world_from_env()
    if not world.main:  # rank 0 reports for every process; the others' failures still raise
        logging.getLogger("seqlab").setLevel(max(logging.ERROR, logging.getLogger("seqlab").level))
    run_dir = Path(out) if out is not None else _default_out(config)
    with rundir.claim(run_dir, held=world.main) as claim:
        config, tokenizer, continuing = _run_config(config, run_dir, overrides, resume=resume, overwrite=overwrite,
                                                    from_weights=from_weights, main=world.main)
        family = families.get(config.model.family)
        if not family.trained:  # fitted by counting or EM: no trainer, no checkpoints
            if world.distributed or from_weights:
                raise SeqlabError(f"model.family = {family.name!r} is fitted in one pass, in one process: run it "
                                  f"without torchrun and --from-weights")
            if continuing:
                log.warning("a %s run is fitted in one pass: --resume fits %s again", family.name, run_dir)
            _fit_run(config, family, run_dir, claim)
            return run_dir
        if continuing and world.main:
            _check_resume(run_dir, from_weights)
        if continuing and (done := _finished(run_dir, config, from_weights)) is not None:
            if world.main:
                log.warning("%s", done)
            return run_dir
        result = _train_model(config, family, tokenizer, run_dir, claim, world=world, continuing=continuing,
                              from_weights=from_weights, progress=progress)
    if result.interrupted:  # by SIGINT or SIGTERM, after its checkpoint: the caller must know it did not finish
        raise TrainingInterrupted(result.signal, result.step, run_dir)
    return run_dir


def _train_model(config: Config, family: families.Family, tokenizer: Tokenizer | None, run_dir: Path,
                 claim: rundir.RunClaim, *, world: distributed.World, continuing: bool, from_weights: bool,
                 progress: bool) -> TrainResult:
    """Everything a trained family's run needs, checked (device, data, tokenizer, budget, model);
    then the run directory written (`claim.start`) and the model trained into it. A task run
    (`task.kind` classify or tag) is trained by `seqlab.tasks.run.train_task`."""
    if config.task.kind != "lm":
        if from_weights:
            raise SeqlabError("--from-weights continues a language model; resume a task run from its checkpoint")
        return train_task(config, run_dir, claim, continuing=continuing, progress=progress,
                          distributed=world.distributed)
    device = resolve_device(config.train.device)
    if family.reads_pairs:
        tokenizer, batches, val_pairs = seq2seq.seq2seq_batches(config, tokenizer)
        sampler = lambda m: seq2seq.sample_translations(m, tokenizer, val_pairs[:3])  # noqa: E731
    else:
        if tokenizer is None and config.train.init_from:  # the base run's vocabulary, to use its weights
            tokenizer = read_tokenizer(finetune.base_dir(config))
        tokenizer, data = _lm_data(config, tokenizer)
        batches = _line_batches(config, family, data) if isinstance(data, LineData) else family.batches(config, data)
        sampler = lambda m: _eval_sample(m, tokenizer, config)  # noqa: E731
    check_budget(config, tokenizer.vocab_size, source_vocab_size=source_vocab_size(tokenizer))  # before building
    torch.manual_seed(generator_seed(config.train.seed))
    model = build_model(config.model, tokenizer.vocab_size, source_vocab_size=source_vocab_size(tokenizer))
    start_step = _weights_step(model, run_dir) if from_weights else None
    finetune.prepare(model, config, load_base=not continuing)  # train.init_from, [finetune]
    claim.start(fresh=not continuing)  # everything is checked: from here on the run directory changes
    if world.main:
        write_run_files(run_dir, config, tokenizer)
    device = distributed.start(world, device)
    n_params = sum(p.numel() for p in model.parameters())
    step_tokens = config.train.batch_size * (config.model.block_size or 1) // world.size
    threads = use_threads(config.train.threads, params=n_params, processes=world.size, tokens=step_tokens)
    log.info("training %s (%.2fM parameters) on %s%s", config.model.family, n_params / 1e6, device,
             f" with {threads} thread(s)" if device.type == "cpu" else "")
    # A single process on the CPU keeps adapting its threads to the machine; distributed ones keep their share.
    governor = (ThreadGovernor(config.train.threads, params=n_params, tokens=step_tokens)
                if device.type == "cpu" and not world.distributed else None)
    trainer = None
    try:
        trainer = Trainer(model, batches, config.train, run_dir, device=device, progress=progress,
                          callbacks=[*default_callbacks(config.train, sampler, plot_title=plot_title(run_dir, config)),
                                     claim.callback()],
                          title=run_dir.name, world=world, threads=governor)
        if start_step is not None:
            trainer.step = start_step  # fit goes on from there, as from a checkpoint
        return trainer.fit(resume=continuing and not from_weights)
    finally:
        # DDP's reducer goes before its process group: freed after it, it would join gloo's threads
        # holding the GIL, which one of them may need (a deadlock at exit; pytorch/pytorch#56297).
        trainer = None
        if world.distributed:
            gc.collect()
        distributed.stop(world)


def plot_title(run_dir: Path, config: Config) -> str:
    """loss.png's title: the run, its family and corpus, and its budget in steps and tokens."""
    train = config.train
    block = getattr(config.model, "block_size", None) or 0  # windows of block_size tokens, where it has one
    tokens = train.batch_size * train.grad_accum_steps * block * train.max_steps
    if train.budget_seconds is not None:
        budget = f"{train.max_minutes:g} min"
    else:
        budget = f"{train.max_steps:,} steps" + (f" ({tokens / 1e6:.3g}M tokens)" if tokens else "")
    corpus = Path(config.data.corpus).name or config.data.corpus
    return f"{Path(run_dir).name}: {config.model.family} on {corpus}, {budget}"


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


def _fit_run(config: Config, family: families.Family, run_dir: Path, claim: rundir.RunClaim) -> None:
    """Fit a counted or EM-fitted family to the training split, save it in `run_dir` and log its
    validation loss as one `val` row of metrics.csv. What `run_dir` held is replaced (always: a fit
    starts afresh), once the new model is saved."""
    tokenizer, data = _lm_data(config, None)
    claim.start(fresh=True)
    write_run_files(run_dir, config, tokenizer)
    start = time.perf_counter()
    model = family.fit(config, data, tokenizer.vocab_size)
    seconds = time.perf_counter() - start
    family.save(model, run_dir)
    _log_fit(config, family, model, data, run_dir, seconds)
    claim.commit()


def _log_fit(config: Config, family: families.Family, model, data: TokenData | LineData, run_dir: Path,
             seconds: float) -> None:
    """The fitted model's validation loss, logged and written as the `val` row of metrics.csv."""
    if not family.language_model:  # word vectors: nothing to score a split with
        log.info("%s fitted to %d tokens in %.2f s", family.name, len(data.train), seconds)
        return
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
    """The prompt's token ids. An empty prompt starts from a newline, as nanoGPT's sampler does, when
    the vocabulary has one (its ids decode to exactly "\\n"); otherwise (a char vocabulary of a
    text without newlines) from token id 0, the first token of the vocabulary, so sampling always
    has a start. A model with `block_size` None (recurrent) takes the whole prompt."""
    ids = tokenizer.encode(prompt) if prompt else _start_ids(tokenizer)
    if block_size is not None and len(ids) > block_size:
        log.warning("the prompt has %d tokens and the model's context is %d: only its last %d are used",
                    len(ids), block_size, block_size)
        ids = ids[-block_size:]
    return ids


def _start_ids(tokenizer: Tokenizer) -> list[int]:
    """The ids of a newline where the vocabulary has one, else [0] (see `prompt_ids`)."""
    try:
        ids = tokenizer.encode("\n")
    except TokenizerError:  # a char vocabulary without "\n"
        return [0]
    return ids if ids and tokenizer.decode(ids) == "\n" else [0]  # not an unknown token standing for it


def stream_sample(model: nn.Module, tokenizer: Tokenizer, options: SampleConfig, *, use_cache: bool = True,
                  sample_index: int = 0, echo_prompt: bool = False) -> Iterator[str]:
    """Text of one sample as it is generated, ending at `options.stop`; the prompt first if `echo_prompt`.
    It holds a bounded amount of memory however many tokens it makes (the loop keeps the model's
    context, the stream the text it has not yielded yet)."""
    ids = prompt_ids(tokenizer, options.prompt, model.block_size)
    check_generation(model, tokenizer.vocab_size, rows=1, prompt_tokens=len(ids),
                     new_tokens=options.max_new_tokens, keep_all=False)
    if echo_prompt and options.prompt:
        yield options.prompt
    idx = torch.tensor([ids], dtype=torch.long, device=model_device(model))
    stream = TextStream(tokenizer, stop=options.stop)
    tokens = iter_generate(model, idx, options.max_new_tokens, temperature=options.temperature,
                           top_k=options.top_k or None, top_p=options.top_p, use_cache=use_cache,
                           seed=options.seed + sample_index)
    try:
        for column in tokens:
            piece = stream.push(column.tolist())
            if piece:
                yield piece
            if stream.stopped:
                break
    finally:
        tokens.close()  # the model's train/eval mode back now, not when the iterator is collected
    tail = stream.flush()
    if tail:
        yield tail


SAMPLE_CHUNK = 32  # new tokens `sample_many` decodes at a time: how soon after its stop string a row is seen


def sample_many(model: nn.Module, tokenizer: Tokenizer, options: SampleConfig, *,
                use_cache: bool = True) -> list[str]:
    """`options.num_samples` samples after the same prompt, generated together as one batch (one
    forward per token for all of them), each cut after `options.stop`. Rows draw from one seeded
    generator, so the samples differ from those `stream_sample` draws one at a time.

    Each row is decoded as its tokens arrive and stops at its stop string; the batch ends when every
    row has stopped (or at `max_new_tokens`). Sizes are checked first (`seqlab.budget`): without a
    stop string every row keeps all its tokens; with one, rows keep their text until they stop, and
    a batch that fills the memory before they all do ends with an error."""
    ids = prompt_ids(tokenizer, options.prompt, model.block_size)
    n = options.num_samples
    limit = check_generation(model, tokenizer.vocab_size, rows=n, prompt_tokens=len(ids),
                             new_tokens=options.max_new_tokens, keep_all=not options.stop)
    idx = torch.tensor([ids], dtype=torch.long, device=model_device(model)).expand(n, -1)  # (N, T)
    streams = [TextStream(tokenizer, stop=options.stop) for _ in range(n)]
    texts = [[options.prompt] for _ in range(n)]
    columns = iter_generate(model, idx, options.max_new_tokens, temperature=options.temperature,
                            top_k=options.top_k or None, top_p=options.top_p, use_cache=use_cache,
                            seed=options.seed)
    block: list[Tensor] = []  # the new columns (N,) not decoded yet
    kept = 0  # tokens taken by rows that had not stopped
    try:
        for made, column in enumerate(columns, 1):
            block.append(column)
            if len(block) < SAMPLE_CHUNK and made < options.max_new_tokens:
                continue
            kept += _push_rows(streams, texts, torch.stack(block, dim=1).tolist())  # (N, chunk)
            block.clear()
            if options.stop and all(stream.stopped for stream in streams):
                break
            if limit is not None and kept > limit:
                raise SeqlabError(f"the {n:,} samples hold {kept:,} tokens and not all of them reached the stop "
                                  f"string {options.stop!r}: this machine has room for about {limit:,}; "
                                  f"lower max_new_tokens or num_samples")
    finally:
        columns.close()
    return ["".join(text) + stream.flush() for text, stream in zip(texts, streams)]


def _push_rows(streams: list[TextStream], texts: list[list[str]], rows: list[list[int]]) -> int:
    """Each row's new tokens into its stream and its text's pieces, skipping rows that stopped;
    returns how many tokens the others took."""
    taken = 0
    for stream, text, row in zip(streams, texts, rows):
        if not stream.stopped:
            text.append(stream.push(row))
            taken += len(row)
    return taken


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
    A task run (classify, tag) reports accuracy and F1 on its labelled split (`seqlab.tasks.evaluate`).
    """
    if read_config(Path(run_dir)).task.kind != "lm":
        if corpus is not None or context is not None or beam_size != 1:
            raise SeqlabError("a task run is evaluated on its own labelled data: drop --corpus, --context and --beam")
        from seqlab.tasks.evaluate import evaluate_task
        return evaluate_task(run_dir, split=split, device=device)
    model, tokenizer, config = load_run(run_dir, resolve_device(device))
    family = families.get(config.model.family)
    if not family.language_model:  # word vectors: the family's own evaluation (word similarity, analogies)
        if corpus is not None or context is not None or split != "val":
            raise SeqlabError(f"a {family.name} run is evaluated on the word-similarity and analogy sets: "
                              "drop --corpus, --context and --split")
        if family.evaluation is None:
            families.require_language_model(family.name, "eval")
        return family.evaluation(model, tokenizer)
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


def predict(run_dir: str | Path, text: str, *, device: str = "cpu") -> dict:
    """What a task run says of `text`: a classifier's label, its probability and every class's; a
    tagger's words (the text split at white space) and their tags (`seqlab.tasks.evaluate`)."""
    from seqlab.tasks.evaluate import predict_text
    return predict_text(run_dir, text, device=device)


def merge(run_dir: str | Path, out: str | Path, *, overwrite: bool = False) -> Path:
    """Write `out`: the LoRA run `run_dir` with its adapters folded into its base run's weights,
    a plain run that needs no base (`seqlab.tasks.run.merge_run`)."""
    from seqlab.tasks.run import merge_run
    return merge_run(run_dir, out, overwrite=overwrite)


def plan(config: Config | str | Path, *, out: str | Path | None = None, overrides: Sequence[str] = (),
         resume: bool = False, overwrite: bool = False, timed: bool = True):
    """`seqlab train --dry-run`: the resolved config and the estimates of a training (a
    `seqlab.dryrun.TrainingPlan`), with nothing in the run directory created or changed.

    The data is read and the tokenizer fitted as training would (the token cache may gain entries),
    so what would stop the training stops this too; then `timed` trains a few steps of a fresh
    model, in memory only, to time them (`seqlab.dryrun`)."""
    from seqlab import dryrun
    from seqlab.config import preset_names
    from seqlab.config.presets import preset_info

    run_dir = Path(out) if out is not None else _default_out(config)
    continuing = resume and (run_dir / "config.toml").is_file()
    if continuing:
        resolved, tokenizer = _resume_config(run_dir, overrides), read_tokenizer(run_dir)
    else:
        resolved, tokenizer = _resolve(config, overrides), None
        rundir.check_new(run_dir, overwrite=overwrite)
    is_preset = isinstance(config, str) and config in preset_names() and not Path(config).is_file()
    info = preset_info(config) if is_preset and not continuing else None
    family = families.get(resolved.model.family)
    if resolved.task.kind != "lm":
        raise SeqlabError("--dry-run estimates a language model's training; train a task run with a small "
                          "--train.max_steps to time it")
    start = time.perf_counter()
    if family.reads_pairs:
        tokenizer, batches, _ = seq2seq.seq2seq_batches(resolved, tokenizer)
    else:
        tokenizer, data = _lm_data(resolved, tokenizer)
        batches = (_line_batches(resolved, family, data) if isinstance(data, LineData)
                   else family.batches(resolved, data) if family.trained else None)
    data_seconds = time.perf_counter() - start
    source = source_vocab_size(tokenizer)
    seconds_per_step = None
    if family.trained and timed:
        check_budget(resolved, tokenizer.vocab_size, source_vocab_size=source)
        torch.manual_seed(generator_seed(resolved.train.seed))
        model = build_model(resolved.model, tokenizer.vocab_size, source_vocab_size=source)
        use_threads(resolved.train.threads, params=sum(p.numel() for p in model.parameters()),
                    tokens=resolved.train.batch_size * (resolved.model.block_size or 1))
        seconds_per_step = dryrun.time_steps(model, batches, resolved, run_dir,
                                             resolve_device(resolved.train.device))
    return dryrun.estimate(resolved, run_dir=run_dir, vocab_size=tokenizer.vocab_size, source_vocab_size=source,
                           continuing=continuing, start_step=(run_step(run_dir) or 0) if continuing else 0,
                           preset=(config, info) if info is not None else None, data_seconds=data_seconds,
                           timed=seconds_per_step)
