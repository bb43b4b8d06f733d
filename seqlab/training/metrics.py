"""The run's `metrics.csv` and its loss-curve plot `loss.png`.

Rows have the columns of `COLUMNS`. `split` is `train` or `val` for the estimates made at each
evaluation (the same fixed batches every time), and `batch` for the loss of the training batch at
every `log_every` steps, which the progress bar also shows.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from seqlab.files import atomic_path, atomic_write_text

COLUMNS = ("step", "split", "loss", "perplexity", "bits_per_char", "tokens_per_sec", "lr", "elapsed_s")


class MetricsLog:
    """Appends rows to a CSV file, one flush per row so that a killed run keeps what it logged."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.is_file():
            atomic_write_text(path, ",".join(COLUMNS) + "\n")

    def add(self, *, step: int, split: str, loss: float, bits_per_char: float, tokens_per_sec: float,
            lr: float, elapsed_s: float) -> None:
        row = [step, split, f"{loss:.6f}", f"{math.exp(min(loss, 80.0)):.4f}", f"{bits_per_char:.6f}",
               f"{tokens_per_sec:.1f}", f"{lr:.6g}", f"{elapsed_s:.2f}"]
        with open(self.path, "a", encoding="utf-8", newline="") as handle:
            csv.writer(handle).writerow(row)

    def rows(self) -> list[dict[str, str]]:
        with open(self.path, encoding="utf-8", newline="") as handle:
            return list(csv.DictReader(handle))

    def truncate_after(self, step: int) -> None:
        """Drop rows logged after `step` (a resumed run logs them again)."""
        kept = [row for row in self.rows() if int(row["step"]) <= step]
        with atomic_path(self.path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(kept)

    def last(self, split: str) -> dict[str, str] | None:
        rows = [row for row in self.rows() if row["split"] == split]
        return rows[-1] if rows else None


def plot_losses(rows: list[dict[str, str]], path: Path, title: str = "") -> None:
    """Loss against step: the raw batch losses faint, the train and val estimates bold."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    styles = {"batch": dict(color="0.7", lw=0.8, label="batch"),
              "train": dict(color="C0", lw=2, marker="o", ms=3, label="train"),
              "val": dict(color="C1", lw=2, marker="o", ms=3, label="val")}
    for split, style in styles.items():
        points = [(int(r["step"]), float(r["loss"])) for r in rows if r["split"] == split]
        if points:
            ax.plot(*zip(*points), **style)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats per token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
