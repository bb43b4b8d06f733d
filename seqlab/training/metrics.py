"""The run's `metrics.csv` and its loss-curve plot `loss.png`.

Rows have the columns of `COLUMNS`. `split` is `train` or `val` for the estimates made at each
evaluation (the same fixed batches every time), and `batch` for the loss of the training batch at
every `log_every` steps, which the progress bar also shows. `accuracy` is the estimates' top-1
accuracy (the fraction of targets the model's highest score predicts: next tokens for a language
model, labels for a classifier), empty on batch rows; a file written before the column existed gains
it, empty, when a run reopens it.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from seqlab.files import atomic_path, atomic_write_text
from seqlab.plots import pyplot, save_png

COLUMNS = ("step", "split", "loss", "perplexity", "bits_per_char", "accuracy", "tokens_per_sec", "lr",
           "elapsed_s")


class MetricsLog:
    """Appends rows to a CSV file, one flush per row so that a killed run keeps what it logged."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.is_file():
            atomic_write_text(path, ",".join(COLUMNS) + "\n")
        else:
            with open(path, encoding="utf-8", newline="") as handle:
                header = handle.readline().strip().split(",")
            if header != list(COLUMNS):  # an older run's file: rewrite it with today's columns
                self._write(self.rows())

    def add(self, *, step: int, split: str, loss: float, bits_per_char: float, tokens_per_sec: float,
            lr: float, elapsed_s: float, accuracy: float | None = None) -> None:
        row = [step, split, f"{loss:.6f}", f"{math.exp(min(loss, 80.0)):.4f}", f"{bits_per_char:.6f}",
               "" if accuracy is None else f"{accuracy:.6f}", f"{tokens_per_sec:.1f}", f"{lr:.6g}",
               f"{elapsed_s:.2f}"]
        with open(self.path, "a", encoding="utf-8", newline="") as handle:
            csv.writer(handle).writerow(row)

    def rows(self) -> list[dict[str, str]]:
        return read_rows(self.path)

    def truncate_after(self, step: int) -> None:
        """Drop rows logged after `step` (a resumed run logs them again)."""
        self._write([row for row in self.rows() if int(row["step"]) <= step])

    def _write(self, rows: list[dict[str, str]]) -> None:
        with atomic_path(self.path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS, restval="", extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)

    def last(self, split: str) -> dict[str, str] | None:
        rows = [row for row in self.rows() if row["split"] == split]
        return rows[-1] if rows else None


def read_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a metrics file, as strings by column name; none when there is no file."""
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            return list(csv.DictReader(handle))
    except FileNotFoundError:
        return []


def plot_losses(rows: list[dict[str, str]], path: Path, title: str = "") -> None:
    """Loss against step: the raw batch losses faint, the train and val estimates bold; beside it the
    estimates' accuracy against step, when the rows have any."""
    plt = pyplot()

    has_accuracy = any(r.get("accuracy") for r in rows)
    fig, axes = plt.subplots(1, 2 if has_accuracy else 1, figsize=(12 if has_accuracy else 7, 4), dpi=110,
                             squeeze=False)
    ax = axes[0, 0]
    styles = {"batch": dict(color="0.7", lw=0.8, label="batch"),
              "train": dict(color="C0", lw=2, marker="o", ms=3, label="train"),
              "val": dict(color="C1", lw=2, marker="o", ms=3, label="val")}
    for split, style in styles.items():
        points = [(int(r["step"]), float(r["loss"])) for r in rows if r["split"] == split]
        if points:
            ax.plot(*zip(*points), **style)
    ax.set_ylabel("loss (nats per token)")
    if has_accuracy:
        for split in ("train", "val"):
            points = [(int(r["step"]), float(r["accuracy"])) for r in rows
                      if r["split"] == split and r.get("accuracy")]
            if points:
                axes[0, 1].plot(*zip(*points), **styles[split])
        axes[0, 1].set_ylabel("accuracy (top-1)")
    for ax in axes[0]:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    save_png(fig, path)
