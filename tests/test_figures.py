"""Every PNG seqlab writes is fit to be shown: each figure is built through the function that writes
it, on tiny inputs, caught at `save_png`, and checked by `seqlab.plots.figure_problems` (a title,
labelled axes, a legend or colour bar where colours carry meaning, bars from zero).

A new PNG writer adds one test here: call it under `saved_figures(monkeypatch, its_module)` and
assert `not figure_problems(fig)` for each figure caught."""

from __future__ import annotations

import math

import pytest

from seqlab import plots
from seqlab.experiments import compare, llm_table, parens
from seqlab.inspect import alignment
from seqlab.training import metrics


def saved_figures(monkeypatch, *modules) -> list:
    """The figures the modules hand to `save_png` from now on (saved as they would be, then kept)."""
    caught = []

    def save(fig, path):
        caught.append(fig)
        with plots.atomic_path(plots.Path(path)) as tmp:
            fig.savefig(tmp, format="png")

    for module in modules:
        monkeypatch.setattr(module, "save_png", save)
    return caught


def assert_fit(figures, count=1):
    assert len(figures) == count
    for fig in figures:
        assert plots.figure_problems(fig) == []
        plots.check_figure(fig)
        plots.pyplot().close(fig)


def metric_rows(steps=100, accuracy=False):
    rows = []
    for step in range(0, steps + 1, 10):
        loss = 3.0 - step / steps
        rows.append({"step": str(step), "split": "batch", "loss": f"{loss + 0.1}", "bits_per_char": "",
                     "accuracy": "", "lr": f"{1e-3 * (1 - step / (2 * steps))}"})
        if step % 50 == 0:
            for split in ("train", "val"):
                rows.append({"step": str(step), "split": split, "loss": f"{loss}",
                             "bits_per_char": f"{loss / math.log(2) * 0.9}", "lr": "0.001",
                             "accuracy": f"{0.5 + step / 400}" if accuracy else ""})
    return rows


# ---- the checker itself ------------------------------------------------------------------------


def test_the_checker_finds_what_a_bare_figure_lacks():
    plt = plots.pyplot()
    fig, (lines, bars) = plt.subplots(1, 2)
    lines.plot([0, 1], [1, 2])
    lines.plot([0, 1], [2, 1])
    bars.barh(["a", "b"], [3.6, 3.7])
    bars.set_xlim(3.5, 3.8)
    image_fig, image_ax = plt.subplots()
    image_ax.imshow([[0, 1], [1, 0]])
    problems = plots.figure_problems(fig) + plots.figure_problems(image_fig)
    assert any("no title" in p for p in problems)
    assert any("no x-axis label" in p for p in problems) and any("no y-axis label" in p for p in problems)
    assert any("2 colours without a legend" in p for p in problems)
    assert any("bars do not start at zero" in p for p in problems)
    assert any("without a colour bar" in p for p in problems)
    with pytest.raises(ValueError, match="not fit to be shown"):
        plots.check_figure(fig)
    plt.close(fig)
    plt.close(image_fig)


# ---- every writer --------------------------------------------------------------------------------


@pytest.mark.parametrize("accuracy", [False, True])
def test_loss_png(tmp_path, monkeypatch, accuracy):
    figures = saved_figures(monkeypatch, metrics)
    metrics.plot_losses(metric_rows(accuracy=accuracy), tmp_path / "loss.png", "run: gru on corpus.txt, 100 steps")
    fig = figures[0]
    loss_ax, lr_ax = fig.axes[:2]
    assert fig._suptitle.get_text() == "run: gru on corpus.txt, 100 steps"
    assert "nats per token" in loss_ax.get_ylabel()
    assert [c.get_ylabel() for c in loss_ax.child_axes] == ["bits per character"]  # 0.9 chars a token
    assert lr_ax.get_ylabel().startswith("learning rate") and len(lr_ax.lines[0].get_xdata()) == 11
    assert_fit(figures)


def test_compare_png(tmp_path, monkeypatch):
    figures = saved_figures(monkeypatch, compare)
    rows = [compare.CompareRow(name=n, family=f, size=s, train_seconds=1.0, bits_per_char=b, tokens_per_sec=1.0,
                               sample="", corpus="/data/tinyshakespeare.txt", steps=steps)
            for n, f, s, b, steps in [("ngram-5", "ngram", 900, 2.3, 0), ("gpt", "transformer", 800, 2.1, 300),
                                      ("lstm", "lstm", 700, 2.2, 300)]]
    compare.plot(rows, tmp_path / "compare.png")
    title = figures[0]._suptitle.get_text()
    assert "tinyshakespeare.txt" in title and "300 training steps" in title and "lower is better" in title
    assert figures[0].axes[0].get_ylim()[0] == 0
    assert_fit(figures)


def test_llm_table_png(tmp_path, monkeypatch):
    figures = saved_figures(monkeypatch, llm_table)
    results = []
    for i, name in enumerate(["gpt3", "llama"]):
        run = tmp_path / name
        run.mkdir()
        log = metrics.MetricsLog(run / "metrics.csv")
        for step in (0, 50, 100):
            log.add(step=step, split="val", loss=2.6 - step / 200 - i / 20, bits_per_char=3.7 - step / 100 - i / 20,
                    tokens_per_sec=1.0, lr=1e-3, elapsed_s=1.0)
        results.append(llm_table.LLMResult(preset=name, variant="", parameters=10, active_parameters=10,
                                           train_tokens=1000, val_loss=1.9, val_bits_per_char=3.65 - i / 20,
                                           tokens_per_sec=1.0, train_seconds=1.0, run_dir=str(run)))
    llm_table.plot(results, tmp_path / "llm-table.png")
    bars = figures[0].axes[1]
    assert bars.get_xlim()[0] == 0  # not 3.60: lengths compare
    assert_fit(figures)


def test_parens_png(tmp_path, monkeypatch):
    figures = saved_figures(monkeypatch, parens)
    results = [parens.ParensResult(model=m, seed=s, parameters=100, steps=100, train_seconds=1.0,
                                   test_accuracy={"2-60": 0.9}, loss_curve=[(0, 0.7), (100, 0.3 + s / 10)],
                                   accuracy_curve=[(0, 0.5), (100, 0.9 - s / 10)])
               for m in ("lstm", "transformer") for s in (0, 1)]
    parens.plot(results, tmp_path / "parens.png")
    assert_fit(figures)


def test_alignment_png(tmp_path, monkeypatch):
    figures = saved_figures(monkeypatch, alignment)
    weights = {"layer 0 head 0": [[0.7, 0.3], [0.2, 0.8], [0.5, 0.5]], "layer 0 head 1": [[1, 0], [0, 1], [1, 0]]}
    alignment.plot_alignment_grid(weights, ["a", "b"], ["x", "y", "\n"], tmp_path / "alignment.png", title="'ab'")
    fig = figures[0]
    assert len([a for a in fig.axes if getattr(a, "_colorbar", None) is not None]) == 1  # one scale for all
    assert_fit(figures)
