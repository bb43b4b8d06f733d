"""Scoring and using a task run: `seqlab eval` on a split, `seqlab predict` on a text.

`evaluate_task` predicts every example of a split (val by default; train and test too) and reports:

- `accuracy`: of the classes, or of the tags over every word;
- `macro_f1`: the unweighted mean of each label's F1 (scikit-learn's macro average);
- tagging with IOB tags (B-X, I-X): `f1`, `precision`, `recall` over chunks by the CoNLL
  definition (`seqlab.scoring.tasks.chunk_scores`, equal to seqeval's);
- the confusion matrix as `confusion-SPLIT.png` in the run directory (rows: true labels, columns:
  predicted, scikit-learn's layout).

A word cut off by task.max_len is given the run's most frequent training tag (labels.json's fill),
so every word of the split is scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from seqlab.errors import SeqlabError
from seqlab.plots import pyplot, save_png
from seqlab.scoring.tasks import accuracy, chunk_scores, confusion_matrix, macro_f1
from seqlab.tasks.data import Encoded, Labelled, collate, encode, load_examples
from seqlab.tasks.model import TaskModel
from seqlab.tasks.run import load_task_run, max_tokens
from seqlab.training.threads import use_threads
from seqlab.models.contract import model_device


@torch.inference_mode()
def predict_encoded(model: TaskModel, encoded: Encoded, batch_size: int = 64) -> list:
    """The model's prediction for each example, in order (see `TaskModel.predict`)."""
    device = model_device(model)
    out: list = []
    for start in range(0, len(encoded), batch_size):
        inputs, _ = collate(encoded, range(start, min(start + batch_size, len(encoded))))
        out += model.predict(**{key: value.to(device) for key, value in inputs.items()})
    return out


def is_iob(labels: Sequence[str]) -> bool:
    """Whether tags are chunk tags (B-X / I-X, with O), so that chunk F1 applies."""
    return any(label.startswith(("B-", "I-")) for label in labels) and all(
        label == "O" or label[:2] in ("B-", "I-", "E-", "S-") for label in labels)


def evaluate_task(run_dir: str | Path, *, split: str = "val", device: str = "cpu",
                  batch_size: int = 64) -> dict:
    """Accuracy, macro-F1 (and chunk F1 for IOB tags) of a task run on `split`, and its confusion
    matrix drawn as confusion-SPLIT.png in the run directory (see the module docstring)."""
    model, tokenizer, config, info = load_task_run(run_dir, device)
    examples = load_examples(config.task).split(split)
    use_threads(config.train.threads, params=sum(p.numel() for p in model.parameters()),
                tokens=batch_size * max_tokens(config))
    encoded = encode(examples, kind=info.kind, labels=info.labels, tokenizer=tokenizer, max_len=max_tokens(config),
                     with_targets=False, pos_tags=info.pos)
    predicted = predict_encoded(model, encoded, batch_size)
    result: dict = {"data": config.task.data, "split": split, "examples": len(examples)}
    if info.kind == "classify":
        true = list(examples.targets)
        guess = [info.labels[int(np.argmax(p))] for p in predicted]
    else:
        true_rows = [list(tags) for tags in examples.targets]
        guess_rows = [[info.labels[i] for i in row] + [info.fill] * (len(tags) - len(row))
                      for row, tags in zip(predicted, true_rows)]
        true = [t for row in true_rows for t in row]
        guess = [g for row in guess_rows for g in row]
        result["words"] = len(true)
    result["accuracy"] = accuracy(true, guess)
    result["macro_f1"] = macro_f1(true, guess, labels=sorted(set(true) | set(guess)))
    if info.kind == "tag" and is_iob(info.labels):
        result.update(chunk_scores(true_rows, guess_rows))
    path = Path(run_dir) / f"confusion-{split}.png"
    plot_confusion(confusion_matrix(true, guess, info.labels), info.labels, path,
                   title=f"{Path(run_dir).name}: {split} ({len(examples):,} examples, {len(true):,} "
                         f"{'predictions' if info.kind == 'classify' else 'words'}), accuracy {result['accuracy']:.4f}")
    result["confusion"] = str(path)
    return result


def plot_confusion(counts: np.ndarray, labels: Sequence[str], path: Path, *, title: str) -> Path:
    """The confusion matrix (rows true, columns predicted) as a heat map with a colour bar, each
    row's counts as its share of that label (so rare labels read as clearly as common ones)."""
    plt = pyplot()
    n = len(labels)
    size = min(4 + 0.28 * n, 16)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    ticks = range(n)
    ax.set_xticks(ticks, labels, rotation=90 if n > 6 else 0, fontsize=8 if n > 20 else 10)
    ax.set_yticks(ticks, labels, fontsize=8 if n > 20 else 10)
    ax.set_xlabel("predicted label")
    ax.set_ylabel("true label")
    if n <= 12:  # the counts themselves fit in the cells
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f"{counts[i, j]:,}", ha="center", va="center",
                        color="white" if share[i, j] > 0.5 else "black", fontsize=9)
    fig.colorbar(image, ax=ax, label="share of the true label's examples")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    save_png(fig, path)
    return path


def parse_series(text: str, features: int) -> np.ndarray:
    """A series typed on the command line: numbers separated by spaces or commas, F per step."""
    try:
        values = [float(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise SeqlabError(f"a series run reads numbers separated by spaces or commas, got {text[:40]!r}") from None
    if not values or len(values) % features or not np.isfinite(values).all():
        raise SeqlabError(f"a series run reads finite numbers, {features} per step; got {len(values)}")
    return np.asarray(values, dtype=np.float32).reshape(-1, features)


def predict_text(run_dir: str | Path, text: str, *, device: str = "cpu") -> dict:
    """What a task run says of one input: {"label", "probability", "probabilities"} for a
    classifier, {"words", "tags"} for a tagger (the text split at white space; a tagger that reads
    POS tags takes each word as WORD/POS, split at its last slash)."""
    if not text.strip():
        raise SeqlabError("predict needs a non-empty --text")
    model, tokenizer, config, info = load_task_run(run_dir, device)
    length = max_tokens(config)
    if info.kind == "classify":
        item = parse_series(text, info.features) if tokenizer is None else text
        encoded = encode(Labelled([item], []), kind="classify", labels=info.labels, tokenizer=tokenizer,
                         max_len=length, with_targets=False)
        probabilities = predict_encoded(model, encoded)[0]
        best = int(np.argmax(probabilities))
        return {"label": info.labels[best], "probability": probabilities[best],
                "probabilities": dict(zip(info.labels, probabilities))}
    words = tuple(text.split())
    pos = None
    if info.pos:
        pairs = [word.rpartition("/") for word in words]
        if any(not w or not p for w, _, p in pairs):
            raise SeqlabError(f"{Path(run_dir).name} reads each word's POS tag: write the words as WORD/POS, "
                              f"as in 'He/PRP reckons/VBZ'")
        words, pos = tuple(w for w, _, _ in pairs), (tuple(p for _, _, p in pairs),)
    encoded = encode(Labelled([words], [], pos), kind="tag", labels=info.labels, tokenizer=tokenizer, max_len=length,
                     with_targets=False, pos_tags=info.pos)
    row = predict_encoded(model, encoded)[0]
    tags = [info.labels[i] for i in row] + [info.fill] * (len(words) - len(row))
    return {"words": list(words), "tags": tags}


__all__ = ["evaluate_task", "is_iob", "parse_series", "plot_confusion", "predict_encoded", "predict_text"]
