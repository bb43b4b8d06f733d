"""The LLM table end to end on a tiny budget: two presets trained alike through the CLI, one run per
preset, and reports (table, CSV, Markdown, PNG) whose rows agree with the runs themselves."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import math

import pytest

import seqlab
from seqlab.cli import main
from seqlab.config import load_config
from seqlab.errors import SeqlabError
from seqlab.experiments.llm_table import LLMResult, describe, run_llm_table

SEED = 11
PRESETS = ("gpt3", "llama")  # learned positions and tied embeddings; rotary, RMSNorm, untied
STEPS = 3




def _tiny(corpus) -> list[str]:
    """Overrides that shrink every preset alike: a small model on a small text, a few steps."""
    return [f"--data.corpus={corpus}", "--data.val_fraction=0.2", "--model.n_layer=1", "--model.n_head=2",
            "--model.d_model=16", "--model.block_size=16", "--train.batch_size=4", "--train.eval_steps=2",
            "--train.sample_tokens=0", "--train.device=cpu", f"--train.seed={SEED}"]


@pytest.fixture(scope="module")
def table(tmp_path_factory, word_corpus):
    """The experiment run once through the CLI: (out folder, printed text, overrides)."""
    root = tmp_path_factory.mktemp("llm-table")
    corpus = word_corpus(root / "corpus.txt", seed=SEED, size=3000)
    out = root / "out"
    overrides = _tiny(corpus)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SEQLAB_CACHE", str(root / "cache"))
        stdout = io.StringIO()  # capsys is function-scoped: redirect by hand
        with contextlib.redirect_stdout(stdout):
            code = main(["experiment", "llm-table", "--presets", ",".join(PRESETS), "--steps", str(STEPS),
                         "--out", str(out), "--no-progress", *overrides])
        assert code == 0
        yield out, stdout.getvalue(), overrides


def _csv_rows(out) -> list[dict[str, str]]:
    with open(out / "llm-table.csv", encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_csv_has_one_row_per_preset_with_finite_numbers(table):
    out, _, _ = table
    rows = _csv_rows(out)
    assert [r["preset"] for r in rows] == list(PRESETS)
    assert list(rows[0]) == [f.name for f in dataclasses.fields(LLMResult)]
    for row in rows:
        for key in ("val_loss", "val_bits_per_char", "tokens_per_sec", "train_seconds"):
            assert math.isfinite(float(row[key])) and float(row[key]) > 0, (SEED, key, row)
        assert int(row["parameters"]) > 0
    # The same token budget for every preset: steps × batch × context.
    assert {int(r["train_tokens"]) for r in rows} == {STEPS * 4 * 16}


def test_rows_agree_with_the_runs(table):
    out, _, overrides = table
    for row in _csv_rows(out):
        run_dir = out / row["preset"]
        assert row["run_dir"] == str(run_dir)
        config = load_config(row["preset"], [*overrides, f"train.max_steps={STEPS}"])
        assert seqlab.runs.read_config(run_dir) == config
        assert row["variant"] == describe(config.model)
        model, _ = seqlab.load(run_dir)
        assert int(row["parameters"]) == model.num_parameters()  # a tied output layer counted once
        # The bits per char are the whole validation split's, as `seqlab eval` computes them.
        assert float(row["val_bits_per_char"]) == pytest.approx(seqlab.evaluate(run_dir)["bits_per_char"],
                                                                rel=1e-9)


def test_printed_table_and_markdown_name_every_preset(table):
    out, printed, _ = table
    markdown = (out / "llm-table.md").read_text(encoding="utf-8")
    table_lines = [line for line in markdown.splitlines() if line.startswith("|")]
    assert len(table_lines) == 2 + len(PRESETS)  # header, rule, one row per preset
    for row in _csv_rows(out):
        bpc = f"{float(row['val_bits_per_char']):.4f}"
        assert any(line.startswith(f"| {row['preset']} |") and bpc in line for line in table_lines)
        assert any(line.startswith(row["preset"]) and bpc in line for line in printed.splitlines())
    assert "llm-table.md" in printed and "llm-table.png" in printed


def test_figure_is_a_png(table):
    out, _, _ = table
    assert (out / "llm-table.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_each_run_can_be_sampled(table, capsys):
    out, _, _ = table
    assert main(["sample", str(out / PRESETS[1]), "--max-new-tokens", "20", "--seed", str(SEED)]) == 0
    assert len(capsys.readouterr().out) >= 20


def test_existing_runs_need_resume_or_overwrite(table):
    out, _, overrides = table
    with pytest.raises(SeqlabError, match="--resume"):
        run_llm_table(PRESETS, out=out, steps=STEPS, overrides=overrides, progress=False)
    with pytest.raises(SeqlabError, match="another config"):
        run_llm_table(PRESETS, out=out, steps=STEPS + 1, overrides=overrides, resume=True, progress=False)


def test_resume_reuses_finished_runs(table):
    out, _, overrides = table
    before = {p: (out / p / "metrics.csv").read_text() for p in PRESETS}
    results = run_llm_table(PRESETS, out=out, steps=STEPS, overrides=overrides, resume=True, progress=False)
    assert {p: (out / p / "metrics.csv").read_text() for p in PRESETS} == before  # nothing retrained
    rows = _csv_rows(out)
    assert [r.val_bits_per_char for r in results] == [float(row["val_bits_per_char"]) for row in rows]


@pytest.mark.parametrize("presets, steps, message", [(("gpt3", "gpt3"), STEPS, "more than once"),
                                                     (("gpt3", "gpt4"), STEPS, "gpt4"),
                                                     (("gpt3",), 0, "positive"), ((), STEPS, "no presets"),
                                                     (("gpt3", "t5"), STEPS, "decoder-only")])
def test_bad_requests_fail_before_any_training(tmp_path, presets, steps, message):
    with pytest.raises(SeqlabError, match=message):
        run_llm_table(presets, out=tmp_path / "out", steps=steps, progress=False)
    assert not (tmp_path / "out").exists()
