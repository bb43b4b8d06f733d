"""The run's `metrics.csv` and its loss-curve plot `loss.png`.

Rows have the columns of `COLUMNS`. `split` is `train` or `val` for the estimates made at each
evaluation (the same fixed batches every time), and `batch` for the loss of the training batch at
every `log_every` steps, which the progress bar also shows. `accuracy` is the estimates' top-1
accuracy (the fraction of targets the model's highest score predicts: next tokens for a language
model, labels for a classifier), empty on batch rows; a file written before the column existed gains
it, empty, when a run reopens it.

Reading checks every line (the header, a whole row, a step, numbers where numbers go): a damaged
file is a CheckpointError naming the line, never a traceback. `--resume` repairs one kind of damage
itself: a last line cut short (a write that a kill, a power cut or a full disk interrupted) is
dropped, with a warning, as the rows after the checkpoint are; damage anywhere else stops it, for
the user to fix or delete that line (or the file, whose rows are only a record of the run).
"""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass
from pathlib import Path

from seqlab.errors import CheckpointError
from seqlab.files import atomic_path, atomic_write_text
from seqlab.plots import pyplot, save_png

log = logging.getLogger(__name__)

COLUMNS = ("step", "split", "loss", "perplexity", "bits_per_char", "accuracy", "tokens_per_sec", "lr",
           "elapsed_s")


class MetricsLog:
    """Appends rows to a CSV file, one flush per row so that a killed run keeps what it logged.
    Opening it reads and writes nothing: the first `add` writes the header (or brings an older
    file's header up to date)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._header_checked = False

    def add(self, *, step: int, split: str, loss: float, bits_per_char: float, tokens_per_sec: float,
            lr: float, elapsed_s: float, accuracy: float | None = None) -> None:
        if not self._header_checked:
            self._check_header()
        row = [step, split, f"{loss:.6f}", f"{math.exp(min(loss, 80.0)):.4f}", f"{bits_per_char:.6f}",
               "" if accuracy is None else f"{accuracy:.6f}", f"{tokens_per_sec:.1f}", f"{lr:.6g}",
               f"{elapsed_s:.2f}"]
        with open(self.path, "a", encoding="utf-8", newline="") as handle:
            csv.writer(handle).writerow(row)

    def _check_header(self) -> None:
        if not self.path.is_file() or self.path.stat().st_size == 0:
            self.clear()
        else:
            with open(self.path, "rb") as handle:
                header = handle.readline().decode("utf-8", errors="replace").strip().split(",")
            if header != list(COLUMNS):  # an older run's file: rewrite it with today's columns
                self._write(self.rows())
        self._header_checked = True

    def rows(self) -> list[dict[str, str]]:
        return read_rows(self.path)

    def clear(self) -> None:
        """Start the file over: the header alone (a new run)."""
        atomic_write_text(self.path, ",".join(COLUMNS) + "\n")
        self._header_checked = True

    def truncate_after(self, step: int) -> None:
        """Drop rows logged after `step` (a resumed run logs them again), and a damaged last line
        (a write cut short), with a warning; other damage is a CheckpointError."""
        rows, damage = _parse(self.path)
        if damage is not None and not damage.last:
            raise damage.error(self.path)
        if damage is not None:
            log.warning("%s: dropped its line %d, damaged (%s): a write cut short", self.path, damage.line,
                        damage.reason)
        self._write([row for row in rows if int(row["step"]) <= step])
        self._header_checked = True

    def _write(self, rows: list[dict[str, str]]) -> None:
        with atomic_path(self.path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS, restval="", extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)

    def last(self, split: str) -> dict[str, str] | None:
        rows = [row for row in self.rows() if row["split"] == split]
        return rows[-1] if rows else None


def read_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a metrics file, as strings by column name; none when there is no file. A damaged
    file is a CheckpointError that names the line."""
    rows, damage = _parse(path)
    if damage is not None:
        raise damage.error(path)
    return rows


@dataclass
class _Damage:
    line: int  # from 1, the header's
    reason: str
    last: bool  # the file's last line: a write cut short

    def error(self, path: Path) -> CheckpointError:
        return CheckpointError(f"{path} is damaged at line {self.line} ({self.reason}): fix or delete that line "
                               f"(or the file: its rows are only a record of the run)")


_REQUIRED = ("step", "split", "loss")


def _parse(path: Path) -> tuple[list[dict[str, str]], _Damage | None]:
    """The file's valid rows, up to the first damaged line, and that line's damage (None when none)."""
    try:
        lines = path.read_bytes().split(b"\n")
    except FileNotFoundError:
        return [], None
    if lines[-1] == b"":
        lines.pop()
    if not lines:
        return [], None
    header, problem = _fields(lines[0])
    if problem is None and not (set(_REQUIRED) <= set(header) <= set(COLUMNS) and len(set(header)) == len(header)):
        problem = "not a metrics.csv header"
    if problem is not None:
        return [], _Damage(1, problem, last=len(lines) == 1)
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        fields, problem = _fields(line)
        if problem is None:
            row = dict(zip(header, fields))
            problem = _row_problem(row) if len(fields) == len(header) else (
                f"{len(fields)} fields, the header has {len(header)}")
        if problem is not None:
            return rows, _Damage(number, problem, last=number == len(lines))
        rows.append(row)
    return rows, None


def _fields(line: bytes) -> tuple[list[str], str | None]:
    try:
        text = line.rstrip(b"\r").decode("utf-8")
        return next(csv.reader([text]), []), None
    except UnicodeDecodeError:
        return [], "not UTF-8 text"
    except csv.Error as exc:
        return [], str(exc)


def _row_problem(row: dict[str, str]) -> str | None:
    """What is wrong with a row, if anything: a step that is not a whole number, no split, a loss or
    another number that is not one."""
    if not (row["step"].isascii() and row["step"].isdigit()):
        return f"step {row['step']!r} is not a whole number"
    if not row["split"].isidentifier():
        return f"split {row['split']!r} is not a name"
    for column in COLUMNS[2:]:
        value = row.get(column, "")
        if value == "" and column != "loss":
            continue
        try:
            float(value)
        except ValueError:
            return f"{column} {value!r} is not a number"
    return None


def plot_losses(rows: list[dict[str, str]], path: Path, title: str = "") -> None:
    """loss.png: `loss_figure(rows, title)` saved as `path`."""
    save_png(loss_figure(rows, title), path)


def loss_figure(rows: list[dict[str, str]], title: str = ""):
    """Loss against step (the raw batch losses faint, the train and val estimates bold) in nats per
    token, with bits per character on a second axis; the learning rate against step; and the
    estimates' accuracy against step, when the rows have any. `title`: the run, corpus and budget."""
    plt = pyplot()
    has_accuracy = any(r.get("accuracy") for r in rows)
    panels = 3 if has_accuracy else 2
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 4), dpi=110, squeeze=False,
                             gridspec_kw={"width_ratios": [1.6, 1] + ([1] if has_accuracy else [])})
    loss_ax, lr_ax = axes[0, 0], axes[0, 1]
    styles = {"batch": dict(color="0.7", lw=0.8, label="training batch"),
              "train": dict(color="C0", lw=2, marker="o", ms=3, label="train estimate"),
              "val": dict(color="C1", lw=2, marker="o", ms=3, label="val estimate")}
    for split, style in styles.items():
        points = [(int(r["step"]), float(r["loss"])) for r in rows if r["split"] == split]
        if points:
            loss_ax.plot(*zip(*points), **style)
    loss_ax.set_ylabel("loss (nats per token)")
    loss_ax.set_title("loss")
    factor = _bits_per_nat(rows)
    if factor is not None:  # bits per character = loss (nats per token) x factor, the val split's
        per = "token" if math.isclose(factor, 1 / math.log(2), rel_tol=1e-6) else "character"
        twin = loss_ax.secondary_yaxis("right", functions=(lambda x: x * factor, lambda x: x / factor))
        twin.set_ylabel(f"bits per {per}")
    lr_points = _lr_points(rows)
    if lr_points:
        lr_ax.plot(*zip(*lr_points), color="C2", lw=1.5, label="learning rate")
    lr_ax.set_ylabel("learning rate (AdamW step size)")
    lr_ax.set_title("learning-rate schedule")
    lr_ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    if has_accuracy:
        acc_ax = axes[0, 2]
        for split in ("train", "val"):
            points = [(int(r["step"]), float(r["accuracy"])) for r in rows
                      if r["split"] == split and r.get("accuracy")]
            if points:
                acc_ax.plot(*zip(*points), **styles[split])
        acc_ax.set_ylabel("accuracy (top-1, fraction)")
        acc_ax.set_title("accuracy")
    for ax in axes[0]:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle(title or "training curves")
    fig.tight_layout()
    return fig


def _bits_per_nat(rows: list[dict[str, str]]) -> float | None:
    """bits per character / loss of the last val (else train) row that has both: the factor that
    turns nats per token into bits per character; None when no row has both."""
    for split in ("val", "train", "batch"):
        for row in reversed(rows):
            if row["split"] == split and row.get("bits_per_char") and float(row["loss"]) > 0:
                return float(row["bits_per_char"]) / float(row["loss"])
    return None


def _lr_points(rows: list[dict[str, str]]) -> list[tuple[int, float]]:
    """(step, learning rate) from the batch rows (the rate of each logged step), else the estimates'."""
    for splits in (("batch",), ("train", "val")):
        points = sorted({int(r["step"]): float(r["lr"]) for r in rows if r["split"] in splits and r.get("lr")}.items())
        if points:
            return points
    return []
