"""Task runs: trained, loaded and merged through the same run directory as language models.

A task run directory holds what a language model's does (config.toml, tokenizer.json,
model.safetensors, state/, metrics.csv, loss.png), and:

    labels.json            the task's kind, its labels in order, the series' features (0 for text),
                           the tag given to words cut off by task.max_len, and the POS tags read
                           as input (task.pos_input) in index order
    adapters.safetensors   LoRA runs: the adapters and the new head alone, which `load_task_run`
                           puts onto the base run that train.init_from names
    confusion-SPLIT.png    written by `seqlab eval`

Series runs (real-valued inputs) have no tokenizer.json.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from seqlab import families, rundir
from seqlab.config import Config, FinetuneConfig
from seqlab.errors import CheckpointError, ConfigError, SeqlabError
from seqlab.files import atomic_write_text
from seqlab.nn.lora import merge_lora
from seqlab.runs import read_config, read_tokenizer, run_step, write_run_files
from seqlab.seeds import generator_seed
from seqlab.tasks import finetune
from seqlab.tasks.data import TaskBatches, TaskExamples, check_task_data, encode, load_examples
from seqlab.tasks.model import TaskModel
from seqlab.tokenizers import Tokenizer, train_tokenizer
from seqlab.training import Trainer, resolve_device
from seqlab.training.callbacks import Callback, default_callbacks
from seqlab.training.checkpoint import load_weights, save_weights
from seqlab.training.threads import use_threads

log = logging.getLogger(__name__)

LABELS_FILE = "labels.json"


@dataclass(frozen=True)
class TaskInfo:
    """labels.json: what the head predicts."""

    kind: str
    labels: tuple[str, ...]
    features: int = 0  # F of a series run; 0: token ids
    fill: str = ""  # the tag of words cut off by task.max_len (the most frequent training tag)
    pos: tuple[str, ...] = ()  # task.pos_input: the POS tags read with the words (index i + 1 is pos[i])

    def save(self, run_dir: Path) -> None:
        atomic_write_text(Path(run_dir) / LABELS_FILE, json.dumps(
            {"kind": self.kind, "labels": list(self.labels), "features": self.features, "fill": self.fill,
             "pos": list(self.pos)}, ensure_ascii=False, indent=1) + "\n")

    @classmethod
    def read(cls, run_dir: Path) -> TaskInfo:
        path = Path(run_dir) / LABELS_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(str(data["kind"]), tuple(str(x) for x in data["labels"]), int(data["features"]),
                       str(data.get("fill", "")), tuple(str(x) for x in data.get("pos", ())))
        except FileNotFoundError:
            raise CheckpointError(f"{path} is missing: a task run keeps its labels there") from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{path} is damaged: {exc}") from None


def check_task(config: Config) -> None:
    """What a task config asks of its family and data, checked before anything is read or built."""
    family = families.get(config.model.family)
    task = config.task
    if config.train.init_from and (not family.trained or family.reads_pairs):
        raise ConfigError(f"train.init_from starts a language model or a task head from a trained run; "
                          f"model.family = {family.name!r} is {'fitted' if not family.trained else 'a seq2seq model'}")
    if task.kind == "lm":
        if config.finetune.method == "lora":
            raise ConfigError('finetune.method = "lora" fine-tunes a task head (task.kind = "classify" or "tag") '
                              'on its base run; a language model fine-tunes with method = "full"')
        return
    hidden = family.hidden
    if hidden is None:
        able = ", ".join(f.name for f in families.FAMILIES.values() if f.hidden is not None)
        raise ConfigError(f"task.kind = {task.kind!r} reads a neural model's hidden states; model.family = "
                          f"{family.name!r} has none: choose one of {able}")
    if task.bidirectional and not hidden.bidirectional:
        able = ", ".join(f.name for f in families.FAMILIES.values() if f.hidden is not None and f.hidden.bidirectional)
        raise ConfigError(f"task.bidirectional = true: model.family = {family.name!r} reads left to right only; "
                          f"bidirectional families: {able}")
    if task.bidirectional and config.train.init_from and not hidden.attends_both_ways:
        log.info("the right-to-left reader of a bidirectional %s starts from fresh weights", family.name)
    if task.fold and task.data != "sentence-polarity":
        raise ConfigError(f"task.fold = {task.fold} picks a cross-validation fold of sentence-polarity, not of "
                          f"{task.data!r}: leave it at 0")
    check_task_data(task)


def max_tokens(config: Config) -> int:
    """task.max_len, or fewer when the family places only so many positions (learned positions)."""
    limit = families.get(config.model.family).line_limit(config.model)
    return min(config.task.max_len, limit) if limit is not None else config.task.max_len


def _texts(examples: TaskExamples, splits=("train", "val", "test")) -> str:
    parts = []
    for name in splits:
        for item in examples.split(name).inputs:
            parts.append(item if isinstance(item, str) else " ".join(item))
    return "\n".join(parts)


def task_tokenizer(config: Config, examples: TaskExamples) -> Tokenizer | None:
    """None for series; the base run's with init_from; else one fitted to the examples' texts: a char
    vocabulary from every split (as a language model's is from its whole corpus), the others from train."""
    if examples.series:
        return None
    base = finetune.base_dir(config)
    if base is not None:
        return read_tokenizer(base)
    options = config.tokenizer
    text = _texts(examples) if options.kind == "char" else _texts(examples, ("train",))
    return train_tokenizer(options.kind, text, vocab_size=options.vocab_size, unknown_token=options.unknown_token,
                           byte_fallback=options.byte_fallback)


def build_task_model(config: Config, info: TaskInfo, vocab_size: int) -> TaskModel:
    """A fresh task model of the run's family (no weights loaded, no adapters)."""
    family = families.get(config.model.family)
    task = config.task
    backbone = family.build_model(config.model, vocab_size)
    return TaskModel(backbone, family.hidden, config.model, kind=info.kind, n_labels=len(info.labels),
                     pooling=task.pooling, crf=task.crf, bidirectional=task.bidirectional, n_features=info.features,
                     n_pos=len(info.pos))


def _info(config: Config, examples: TaskExamples) -> TaskInfo:
    fill = ""
    if config.task.kind == "tag":
        fill = Counter(tag for tags in examples.train.targets for tag in tags).most_common(1)[0][0]
    pos = tuple(sorted({t for tags in examples.train.pos for t in tags})) if examples.train.pos is not None else ()
    return TaskInfo(config.task.kind, examples.labels, examples.n_features, fill, pos)


class _AdapterCallback(Callback):
    """adapters.safetensors beside each checkpoint of a LoRA run."""

    def on_checkpoint(self, trainer: Trainer) -> None:
        finetune.save_adapters(trainer.model, trainer.run_dir, step=trainer.step)


def train_task(config: Config, run_dir: Path, claim: rundir.RunClaim, *, continuing: bool, progress: bool,
               distributed: bool = False):
    """Train a task run into `run_dir` (claimed by the caller); returns the Trainer's result."""
    if distributed:
        raise SeqlabError("task runs train in one process: run seqlab train without torchrun")
    check_task(config)
    device = resolve_device(config.train.device)
    examples = load_examples(config.task)
    tokenizer = read_tokenizer(run_dir) if continuing and not examples.series else task_tokenizer(config, examples)
    info = _info(config, examples)
    if continuing and TaskInfo.read(run_dir) != info:
        raise CheckpointError(f"{run_dir}/{LABELS_FILE} does not match the data's labels: train it afresh with "
                              f"--overwrite")
    length = max_tokens(config)
    encoded = {split: encode(examples.split(split), kind=info.kind, labels=info.labels, tokenizer=tokenizer,
                             max_len=length, pos_tags=info.pos) for split in ("train", "val")}
    batches = TaskBatches(encoded["train"], encoded["val"], config.train.batch_size)
    torch.manual_seed(generator_seed(config.train.seed))
    model = build_task_model(config, info, tokenizer.vocab_size if tokenizer is not None else 1)
    finetune.prepare(model.backbone, config, load_base=not continuing)
    claim.start(fresh=not continuing)
    if tokenizer is not None:
        write_run_files(run_dir, config, tokenizer)
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "config.toml", _config_toml(config))
    info.save(run_dir)
    n_params = sum(p.numel() for p in model.parameters())
    n_trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    threads = use_threads(config.train.threads, params=n_params, tokens=config.train.batch_size * length)
    log.info("training a %s %s (%s parameters, %s trained) on %s: %d training examples, %d labels%s",
             config.model.family, "classifier" if info.kind == "classify" else "tagger", f"{n_params:,}",
             f"{n_trained:,}", device, len(examples.train), len(info.labels),
             f", {threads} thread(s)" if device.type == "cpu" else "")
    callbacks = [*default_callbacks(config.train, None, plot_title=_title(run_dir, config)), claim.callback()]
    if config.finetune.method == "lora":
        callbacks.append(_AdapterCallback())
    trainer = Trainer(model, batches, config.train, run_dir, device=device, progress=progress, callbacks=callbacks,
                      title=run_dir.name)
    return trainer.fit(resume=continuing)


def _config_toml(config: Config) -> str:
    from seqlab.config import config_to_toml
    return config_to_toml(config)


def _title(run_dir: Path, config: Config) -> str:
    what = "classifier" if config.task.kind == "classify" else "tagger"
    start = f", from {Path(config.train.init_from).name}" if config.train.init_from else ""
    return (f"{Path(run_dir).name}: {config.model.family} {what} on {Path(config.task.data).name}{start}, "
            f"{config.train.max_steps:,} steps")


def load_task_run(run_dir: str | Path, device: str | torch.device = "cpu"
                  ) -> tuple[TaskModel, Tokenizer | None, Config, TaskInfo]:
    """A task run's model (eval mode, on `device`), tokenizer (None for series), config and labels.
    A LoRA run is its base run's weights with its adapters put on them."""
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    if config.task.kind == "lm":
        raise SeqlabError(f"{run_dir} is a language model, not a task run: use seqlab sample or seqlab eval")
    info = TaskInfo.read(run_dir)
    tokenizer = read_tokenizer(run_dir) if (run_dir / "tokenizer.json").is_file() else None
    if tokenizer is None and info.features == 0:
        raise CheckpointError(f"{run_dir}/tokenizer.json is missing")
    model = build_task_model(config, info, tokenizer.vocab_size if tokenizer is not None else 1)
    if config.finetune.method == "lora":
        base = finetune.base_dir(config)
        if not (base / "model.safetensors").is_file():
            raise CheckpointError(f"{run_dir} holds LoRA adapters for the base run {base}, which has no "
                                  f"model.safetensors (moved or deleted?)")
        finetune.prepare(model.backbone, config, load_base=True, announce=False)
        finetune.load_adapters(model, run_dir)
    else:
        load_weights(model, run_dir / "model.safetensors")
    return model.to(device).eval(), tokenizer, config, info


def merge_run(run_dir: str | Path, out: str | Path, *, overwrite: bool = False) -> Path:
    """A plain run in `out`: the LoRA run's adapters folded into its base weights (`W + (α/r) B A`),
    loaded and used without the base run. Its [finetune] is the default (full)."""
    run_dir, out = Path(run_dir), Path(out)
    config = read_config(run_dir)
    if config.finetune.method != "lora":
        raise SeqlabError(f"{run_dir} has no adapters to merge (finetune.method = {config.finetune.method!r})")
    if out.resolve() == run_dir.resolve():
        raise SeqlabError("merge writes a new run: give --out another directory")
    with rundir.claim(out) as claim:
        rundir.check_new(out, overwrite=overwrite, hint="")
        model, tokenizer, config, info = load_task_run(run_dir)
        merged = merge_lora(model.backbone)
        merged_config = replace(config, finetune=FinetuneConfig())
        claim.start(fresh=True)
        if tokenizer is not None:
            write_run_files(out, merged_config, tokenizer)
        else:
            out.mkdir(parents=True, exist_ok=True)
            atomic_write_text(out / "config.toml", _config_toml(merged_config))
        info.save(out)
        step = run_step(run_dir)
        save_weights(model, out / "model.safetensors", metadata={"step": str(step or 0)})
        claim.commit()
    log.info("merged %d adapted layers of %s into %s", merged, run_dir, out)
    return out


__all__ = ["LABELS_FILE", "TaskInfo", "build_task_model", "check_task", "load_task_run", "merge_run",
           "task_tokenizer", "train_task"]
