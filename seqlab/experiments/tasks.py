"""Task experiments: our classifiers and taggers trained on real labelled data, beside the figures
the literature published for the same data.

    seqlab experiment sentiment   # MR (sentence polarity): accuracy, 10-fold mean
    seqlab experiment tagging     # CoNLL-2000 POS accuracy and chunk F1, UD English EWT UPOS
    seqlab experiment mnist1d     # MNIST-1D test accuracy

Each experiment is a list of `Recipe`s, one per row of its table: a complete task config (family,
size, steps) and, for the fine-tuned rows, the language model it starts from (a `Pretrain`,
trained once into OUT/pretrain-NAME and shared by the rows that name it). A row is trained as
`seqlab train` trains it, into OUT/ROW (OUT/ROW/fold-K for cross-validation), then scored on the
test split by `seqlab eval`'s own code; the HMM rows are `seqlab.tagging.HMMTagger`, fitted and
scored directly, and the NBSVM rows `seqlab.nbsvm.NBSVM`, alone or stacked with the neural run of
the same row (`seqlab.experiments.stacking`). Training seconds are the trainer's own measure (training steps only).

The published figures (`PUBLISHED`) are printed under ours, each with its source and how its
setting differs from ours where it does.

`--steps N` gives every row and pre-training N steps (a quick, smaller version of the table: the
test suite uses it), `--folds N` the first N of MR's 10 folds (0: its seeded 80/10/10 split), and
`--rows` and `--columns` a subset of the rows and data sets.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import logging
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from seqlab import api
from seqlab.config import Config
from seqlab.config.load import build_config, merge, parse_overrides
from seqlab.errors import SeqlabError
from seqlab.experiments import tables
from seqlab.experiments.tables import markdown_table, text_table
from seqlab.files import atomic_write_text
from seqlab.plots import pyplot, save_png
from seqlab.runs import read_config, run_step
from seqlab.training.metrics import MetricsLog

log = logging.getLogger(__name__)

Table = dict[str, dict[str, Any]]  # a config as TOML sections


@dataclass(frozen=True)
class Pretrain:
    """A language model some rows start from: trained once into OUT/pretrain-NAME."""

    name: str
    config: Table


@dataclass(frozen=True)
class Recipe:
    """One row of an experiment's table on one data set (`column` names the table's column)."""

    row: str
    column: str
    config: Table = field(default_factory=dict)
    pretrain: str = ""  # a Pretrain's name: train.init_from is set to its run
    folds: bool = False  # sentence-polarity: cross-validated over the folds
    hmm: str = ""  # "words" or "pos": an HMMTagger over the words or over the POS column, not a config
    nbsvm: str = ""  # "alone": an NBSVM, fitted (config: the task only); "stacked": the config's run stacked with one


@dataclass(frozen=True)
class Published:
    row: str
    column: str
    value: float  # in percent, as published
    source: str


@dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    columns: tuple[tuple[str, str], ...]  # (column, what it measures: "accuracy" or "f1")
    recipes: tuple[Recipe, ...]
    pretrains: tuple[Pretrain, ...] = ()
    published: tuple[Published, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class TaskResult:
    """One row on one column: the test figure (the mean over folds where cross-validated)."""

    experiment: str
    row: str
    column: str
    metric: str
    value: float  # a fraction (accuracy) or F1 in [0, 1]
    folds: tuple[float, ...]  # each fold's figure (one value without cross-validation)
    train_seconds: float  # the trainer's, summed over folds (pre-training not included)
    steps: int
    parameters: int
    run_dir: str


# ---- recipes --------------------------------------------------------------------------------------

def _sections(**sections: dict[str, Any]) -> Table:
    return {name: dict(values) for name, values in sections.items()}


WORD = {"kind": "word", "vocab_size": 20000, "byte_fallback": False}
CPU = {"device": "cpu", "weight_decay": 0.0}


# Taggers keep the 4,000 most frequent training words and spell the rest in bytes (byte fallback),
# so that rare training words teach the model how the spelling of an unknown word tells its tag:
# a BiLSTM-CRF of width 128 on UD EWT went from 85.6% test accuracy (20,000 words, the rest <unk>) to
# 88.1% (3,000 words and bytes), and the BiLSTM on CoNLL-2000 POS from 95.8% to 97.3% (docs/tasks.md).
TAG_WORDS = {"kind": "word", "vocab_size": 4000, "byte_fallback": True}


def _tagger(column: str, data: dict, model: dict, steps: int, lr: float, **task: Any) -> Table:
    return _sections(tokenizer=TAG_WORDS, model=model,
                     train={**CPU, "batch_size": 32, "max_steps": steps, "lr": lr, "warmup_steps": 50,
                            "eval_every": max(1, steps // 4)},
                     task={"kind": "tag", **data, **task})


BILSTM = {"family": "lstm", "n_layer": 1, "d_model": 256, "dropout": 0.3}
ENCODER = {"family": "transformer", "n_layer": 3, "n_head": 4, "d_model": 192, "block_size": 128,
           "dropout": 0.1, "position": "rope"}
BROWN_LSTM = Pretrain("brown-lstm", _sections(
    data={"corpus": "brown"}, tokenizer={"kind": "word", "vocab_size": 8000, "byte_fallback": True},
    model={"family": "lstm", "n_layer": 1, "d_model": 256, "block_size": 64, "dropout": 0.2},
    train={**CPU, "batch_size": 32, "max_steps": 2000, "lr": 0.003, "warmup_steps": 100, "eval_every": 500}))

TAG_SETS = {"CoNLL-2000 POS": {"data": "conll2000", "column": "pos"},
            "CoNLL-2000 chunks": {"data": "conll2000", "column": "chunks", "pos_input": True},
            "UD EWT UPOS": {"data": "ud-english-ewt"}}


def _tagging_recipes() -> tuple[Recipe, ...]:
    recipes = []
    for column, data in TAG_SETS.items():
        recipes.append(Recipe("bigram HMM", column, hmm="pos" if data.get("pos_input") else "words"))
        recipes.append(Recipe("BiLSTM", column, _tagger(column, data, BILSTM, 2000, 0.003, bidirectional=True)))
        recipes.append(Recipe("BiLSTM-CRF", column, _tagger(column, data, BILSTM, 2000, 0.003, bidirectional=True,
                                                            crf=True)))
        recipes.append(Recipe("Transformer encoder", column, _tagger(column, data, ENCODER, 2000, 0.001,
                                                                     bidirectional=True, crf=True)))
        tuned = _tagger(column, data, {}, 2000, 0.003, bidirectional=True, crf=True)
        del tuned["tokenizer"], tuned["model"]  # the pre-trained run's
        recipes.append(Recipe("BiLSTM-CRF from a Brown LM", column, tuned, pretrain=BROWN_LSTM.name))
    return tuple(recipes)


TAGGING = Experiment(
    name="tagging", title="Tagging: CoNLL-2000 (WSJ) and UD English EWT, test split",
    columns=(("CoNLL-2000 POS", "accuracy"), ("CoNLL-2000 chunks", "f1"), ("UD EWT UPOS", "accuracy")),
    recipes=_tagging_recipes(), pretrains=(BROWN_LSTM,),
    published=(
        Published("CRF (Sha & Pereira 2003)", "CoNLL-2000 chunks", 94.30, "words and POS as input"),
        Published("SENNA (Collobert et al. 2011)", "CoNLL-2000 chunks", 94.32,
                  "words, POS and capitalisation; embeddings from 852M words of Wikipedia and Reuters"),
        Published("SENNA (Collobert et al. 2011)", "CoNLL-2000 POS", 97.29,
                  "POS on WSJ sections 0-18 / 22-24, a larger training set than CoNLL-2000's 15-18"),
    ),
    note="chunks read the data's POS column as input, as the CoNLL-2000 shared task allowed; "
         "UD EWT trains on its dev file (2,001 sentences)")


def _classifier(data: dict, model: dict, steps: int, lr: float, batch: int = 32, **task: Any) -> Table:
    return _sections(tokenizer=WORD, model=model,
                     train={**CPU, "batch_size": batch, "max_steps": steps, "lr": lr, "warmup_steps": 20,
                            "eval_every": max(1, steps // 4)},
                     task={"kind": "classify", **data, **task})


MR = {"data": "sentence-polarity"}
BROWN_GPT = Pretrain("brown-gpt", _sections(
    data={"corpus": "brown"}, tokenizer={"kind": "word", "vocab_size": 30000, "byte_fallback": False},
    model={"family": "transformer", "n_layer": 2, "n_head": 4, "d_model": 192, "block_size": 64,
           "dropout": 0.1, "position": "rope"},
    train={**CPU, "batch_size": 32, "max_steps": 2000, "lr": 0.002, "warmup_steps": 100, "eval_every": 500}))


def _sentiment_recipes() -> tuple[Recipe, ...]:
    column = "MR"
    gru = {"family": "gru", "n_layer": 1, "d_model": 128, "dropout": 0.3}
    tuned = {"train": {**CPU, "batch_size": 32, "max_steps": 600, "lr": 0.001, "warmup_steps": 20,
                       "eval_every": 150},
             "task": {"kind": "classify", **MR, "pooling": "mean"}}
    def lora(*targets: str) -> Table:
        table = copy.deepcopy(tuned)
        table["train"]["lr"] = 0.003
        table["finetune"] = {"method": "lora", "rank": 8, "alpha": 16, "targets": list(targets)}
        return table

    linears = ("attn.qkv", "attn.out", "mlp.up", "mlp.down")
    return (
        Recipe("GRU", column, _classifier(MR, gru, 600, 0.003, pooling="mean"), folds=True),
        Recipe("NBSVM (n-grams 1..2 or 1..3)", column, _sections(task={"kind": "classify", **MR}), folds=True,
               nbsvm="alone"),
        Recipe("GRU stacked with NBSVM", column, _classifier(MR, gru, 600, 0.003, pooling="mean"), folds=True,
               nbsvm="stacked"),
        Recipe("BiGRU", column, _classifier(MR, gru, 600, 0.003, pooling="mean", bidirectional=True), folds=True),
        Recipe("WaveNet (CNN)", column, _classifier(MR, {"family": "wavenet", "n_layer": 4, "kernel_size": 3,
                                                        "dilation_cycle": 2, "d_embed": 128, "d_residual": 128,
                                                        "d_skip": 128, "dropout": 0.3},
                                                    600, 0.002, pooling="mean"), folds=True),
        Recipe("Transformer encoder", column, _classifier(MR, {**ENCODER, "n_layer": 2, "dropout": 0.3}, 600, 0.001,
                                                          pooling="mean", bidirectional=True), folds=True),
        Recipe("GPT-style Transformer from scratch", column,
               _classifier(MR, BROWN_GPT.config["model"], 600, 0.001, pooling="mean"), folds=True),
        Recipe("GPT-style Transformer from a Brown LM", column, tuned, pretrain=BROWN_GPT.name, folds=True),
        Recipe("GPT-style Transformer from a Brown LM (LoRA r8 on the linear layers)", column, lora(*linears),
               pretrain=BROWN_GPT.name, folds=True),
        Recipe("GPT-style Transformer from a Brown LM (LoRA r8 on the embedding)", column, lora("tok_emb"),
               pretrain=BROWN_GPT.name, folds=True),
        Recipe("GPT-style Transformer from a Brown LM (LoRA r8 on both)", column, lora("tok_emb", *linears),
               pretrain=BROWN_GPT.name, folds=True),
    )


SENTIMENT = Experiment(
    name="sentiment", title="Sentence polarity (MR, Pang & Lee 2005): test accuracy",
    columns=(("MR", "accuracy"),), recipes=_sentiment_recipes(), pretrains=(BROWN_GPT,),
    published=(
        Published("CNN-rand (Kim 2014)", "MR", 76.1, "10-fold cross-validation"),
        Published("CNN-static (Kim 2014)", "MR", 81.0, "word2vec vectors from 100 billion words of Google News"),
        Published("CNN-non-static (Kim 2014)", "MR", 81.5, "the same vectors, fine-tuned"),
        Published("NBSVM-bi (Wang & Manning 2012)", "MR", 79.4, "bigram features, 10-fold"),
        Published("MNB (Wang & Manning 2012)", "MR", 79.0, "bigram features, 10-fold"),
    ),
    note="a cross-validated row is the mean over the folds; 'from scratch' and 'from a Brown LM' "
         "are the same model and task steps")


def _series(model: dict, steps: int, lr: float, batch: int = 64, **task: Any) -> Table:
    return _sections(model=model, train={**CPU, "batch_size": batch, "max_steps": steps, "lr": lr,
                                         "warmup_steps": 50, "eval_every": max(1, steps // 6)},
                     task={"kind": "classify", "data": "mnist1d", **task})


MNIST1D = Experiment(
    name="mnist1d", title="MNIST-1D (Greydanus & Kobak 2020): test accuracy, 4,000 training series",
    columns=(("MNIST-1D", "accuracy"),),
    recipes=(
        Recipe("MLP (window of 40)", "MNIST-1D", _series({"family": "mlp", "context": 40, "d_embed": 16,
                                                          "d_hidden": 256, "n_layer": 2, "dropout": 0.2},
                                                         2000, 0.002)),
        Recipe("WaveNet (CNN)", "MNIST-1D", _series({"family": "wavenet", "n_layer": 6, "kernel_size": 3,
                                                     "dilation_cycle": 3, "d_embed": 64, "d_residual": 64,
                                                     "d_skip": 128, "dropout": 0.0}, 2000, 0.003, pooling="mean")),
        Recipe("GRU", "MNIST-1D", _series({"family": "gru", "n_layer": 1, "d_model": 128, "dropout": 0.0},
                                          2000, 0.003)),
        Recipe("LSTM", "MNIST-1D", _series({"family": "lstm", "n_layer": 1, "d_model": 128, "dropout": 0.0},
                                           2000, 0.003)),
        Recipe("Transformer encoder", "MNIST-1D", _series({"family": "transformer", "n_layer": 3, "n_head": 4,
                                                           "d_model": 96, "block_size": 64, "dropout": 0.0,
                                                           "position": "rope"},
                                                          2000, 0.001, pooling="mean", bidirectional=True)),
    ),
    published=(
        Published("logistic regression (paper)", "MNIST-1D", 32.0, "Greydanus & Kobak 2020, table 1"),
        Published("MLP (paper)", "MNIST-1D", 68.0, "Greydanus & Kobak 2020"),
        Published("CNN (paper)", "MNIST-1D", 94.0, "Greydanus & Kobak 2020"),
        Published("GRU (paper)", "MNIST-1D", 91.0, "Greydanus & Kobak 2020"),
        Published("human (paper)", "MNIST-1D", 96.0, "Greydanus & Kobak 2020"),
    ))

EXPERIMENTS = {e.name: e for e in (SENTIMENT, TAGGING, MNIST1D)}


# ---- running --------------------------------------------------------------------------------------

def _with(table: Table, **changes: dict[str, Any]) -> Table:
    out = copy.deepcopy(table)
    for section, values in changes.items():
        out.setdefault(section, {}).update(values)
    return out


def _scaled(table: Table, steps: int | None) -> Table:
    if steps is None:
        return table
    return _with(table, train={"max_steps": steps, "eval_every": max(1, steps // 2), "warmup_steps": min(
        table.get("train", {}).get("warmup_steps", 0), max(steps // 5, 0))})


def select(experiment: Experiment, rows: Sequence[str] | None = None,
           columns: Sequence[str] | None = None) -> list[Recipe]:
    """The recipes of the named rows and columns (None or empty: all of them)."""
    for asked, known, what in ((rows, [r.row for r in experiment.recipes], "row"),
                               (columns, [c for c, _ in experiment.columns], "column")):
        known = list(dict.fromkeys(known))
        unknown = [a for a in asked or () if a not in known]
        if unknown:
            raise SeqlabError(f"{experiment.name} has no {what} {unknown[0]!r}; its {what}s: {', '.join(known)}")
    return [r for r in experiment.recipes if (not rows or r.row in rows) and (not columns or r.column in columns)]


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-").replace("--", "-")


SCORES = "scores-test.json"  # a row's test scores, kept beside its run so that --resume need not score again


def _train(config: Config, run_dir: Path, *, resume: bool, progress: bool) -> bool:
    """Train into run_dir, or with `resume` reuse a finished run of the same config (True) or
    continue an unfinished one."""
    if resume and (run_dir / "config.toml").is_file():
        from seqlab.tasks.finetune import with_base

        if read_config(run_dir) != with_base(config):  # as saved: a fine-tuned run records its base's model
            raise SeqlabError(f"{run_dir} was trained with another config: choose another --out or drop --resume")
        if run_step(run_dir) == config.train.max_steps:
            return True
        api.train(config, out=run_dir, resume=True, progress=progress)
        return False
    (run_dir / SCORES).unlink(missing_ok=True)
    api.train(config, out=run_dir, overwrite=True, progress=progress)
    return False


def _test_scores(run_dir: Path, config: Config, reused: bool) -> dict:
    """`seqlab eval RUN --split test`'s figures, saved as SCORES; a reused run's saved ones."""
    from seqlab.tasks.evaluate import evaluate_task

    path = run_dir / SCORES
    if reused and path.is_file():
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            pass  # damaged: score again
    scores = evaluate_task(run_dir, split="test", device=config.train.device)
    atomic_write_text(path, json.dumps(scores) + "\n")
    return scores


def _seconds(run_dir: Path) -> float:
    last = MetricsLog(run_dir / "metrics.csv").last("batch")
    return float(last["elapsed_s"]) if last else math.nan


def run_experiment(name: str, *, out: str | Path, steps: int | None = None, folds: int = 10,
                   rows: Sequence[str] | None = None, columns: Sequence[str] | None = None,
                   overrides: Sequence[str] = (), resume: bool = False, progress: bool = True,
                   on_result: Callable[[TaskResult], None] | None = None) -> list[TaskResult]:
    """Train and score every row of experiment `name` (see the module docstring). `overrides`
    (dotted `section.key=value`, as `train.device=cuda`) apply to every row and pre-training."""
    if name not in EXPERIMENTS:
        raise SeqlabError(f"no task experiment {name!r}: {', '.join(EXPERIMENTS)}")
    if steps is not None and steps < 1:
        raise SeqlabError(f"--steps {steps}: the number of training steps must be positive")
    if not 0 <= folds <= 10:
        raise SeqlabError(f"--folds {folds}: 0 (the seeded split) to 10")
    experiment = EXPERIMENTS[name]
    out = Path(out)
    recipes = select(experiment, rows, columns)
    extra = parse_overrides(overrides)
    # Every config is built (and so checked) before anything trains.
    pre_configs = {p.name: build_config(merge(_scaled(p.config, steps), extra), f"pretrain {p.name}")
                   for p in experiment.pretrains if any(r.pretrain == p.name for r in recipes)}
    base = {p: out / f"pretrain-{p}" for p in pre_configs}
    configs = {}
    for r in recipes:
        if not r.hmm:
            table = merge(_scaled(r.config, steps), extra)
            if r.pretrain:
                table = _with(table, train={"init_from": str(base[r.pretrain].resolve())})
            configs[(r.row, r.column)] = table
    for p, config in pre_configs.items():
        log.info("%s: pre-training %s (%s, %d steps)", name, p, config.model.family, config.train.max_steps)
        _train(config, base[p], resume=resume, progress=progress)
    results = []
    for index, recipe in enumerate(recipes, start=1):
        log.info("%s %d/%d: %s on %s", name, index, len(recipes), recipe.row, recipe.column)
        metric = dict(experiment.columns)[recipe.column]
        run_dir = out / _slug(f"{recipe.column} {recipe.row}")
        if recipe.hmm:
            result = _hmm_row(experiment.name, recipe, metric, run_dir)
        else:
            table = configs[(recipe.row, recipe.column)]
            fold_numbers = (list(range(1, folds + 1)) if folds else [0]) if recipe.folds else [None]
            values, seconds, last_dir = [], 0.0, run_dir
            for fold in fold_numbers:
                fold_table = table if fold is None else _with(table, task={"fold": fold})
                fold_dir = run_dir if fold is None else run_dir / f"fold-{fold}"
                config = build_config(fold_table, f"{experiment.name} {recipe.row}")
                if recipe.nbsvm == "alone":
                    value, fold_seconds, parameters = _nbsvm_fold(config, fold_dir, stacked=False)
                else:
                    reused = _train(config, fold_dir, resume=resume, progress=progress)
                    if recipe.nbsvm == "stacked":  # scores test with the run's own predictions, stacked
                        value, fold_seconds, _ = _nbsvm_fold(config, fold_dir, stacked=True)
                    else:
                        value, fold_seconds = float(_test_scores(fold_dir, config, reused)[metric]), 0.0
                    fold_seconds += _seconds(fold_dir)
                values.append(value)
                seconds += fold_seconds
                last_dir = fold_dir
                log.info("%s%s: test %s %.4f", recipe.row, "" if fold is None else f", fold {fold}", metric,
                         values[-1])
            # The folds' models differ in weights only: one is loaded to count them.
            if recipe.nbsvm != "alone":
                parameters = _parameters(last_dir)
            result = TaskResult(experiment.name, recipe.row, recipe.column, metric, statistics.fmean(values),
                                tuple(values), seconds, 0 if recipe.nbsvm == "alone" else config.train.max_steps,
                                parameters, str(run_dir if recipe.folds else last_dir))
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


def _parameters(run_dir: Path) -> int:
    from seqlab.tasks.run import load_task_run
    model = load_task_run(run_dir)[0]
    return sum(p.numel() for p in model.parameters())


def _nbsvm_fold(config: Config, fold_dir: Path, *, stacked: bool) -> tuple[float, float, int]:
    """An NBSVM fitted on one fold (settings chosen on val, refitted on train + val), saved in
    fold_dir/nbsvm, alone or stacked with the trained run at fold_dir: (test accuracy, seconds
    fitting it and choosing the stacking weight, weights of the refitted model)."""
    from seqlab.experiments.stacking import fit_nbsvm, stack
    from seqlab.scoring.tasks import accuracy
    from seqlab.tasks.data import load_examples

    examples = load_examples(config.task)
    start = time.perf_counter()
    alone, refit, chosen = fit_nbsvm(examples)
    if stacked:
        value, weight = stack(fold_dir, examples, alone, refit)
    else:
        value = accuracy(examples.test.targets, refit.predict(examples.test.inputs))
    seconds = time.perf_counter() - start
    refit.save(fold_dir / "nbsvm")
    log.info("NBSVM n-grams 1..%d, C %g (val accuracy %.4f)%s: test accuracy %.4f", chosen["ngram"], chosen["C"],
             chosen["val_accuracy"], f", stacked at weight {weight:g}" if stacked else "", value)
    return value, seconds, refit.weights.numel() + refit.bias.numel()


def _hmm_row(experiment: str, recipe: Recipe, metric: str, run_dir: Path) -> TaskResult:
    """A bigram HMM tagger fitted on the training split and scored on test (no trainer: counting)."""
    from seqlab.data.conllu import TaggedSentence
    from seqlab.data.labelled import conll2000, ud_english_ewt
    from seqlab.scoring.tasks import accuracy, chunk_scores
    from seqlab.tagging import HMMTagger

    data = TAG_SETS[recipe.column]
    if data["data"] == "ud-english-ewt":
        splits = ud_english_ewt()
        train = list(splits.train) + list(splits.val)
        test = list(splits.test)
    else:
        splits = conll2000(data["column"])
        column = data["column"]
        symbols = "pos" if recipe.hmm == "pos" else "words"
        make = lambda s: TaggedSentence(tuple(getattr(s, symbols)), tuple(getattr(s, column)))  # noqa: E731
        train = [make(s) for s in [*splits.train, *splits.val]]
        test = [make(s) for s in splits.test]
    start = time.perf_counter()
    tagger = HMMTagger().fit(train)
    seconds = time.perf_counter() - start
    guessed = tagger.tag([s.words for s in test])
    true = [list(s.tags) for s in test]
    if metric == "f1":
        value = float(chunk_scores(true, guessed)["f1"])
    else:
        value = accuracy([t for row in true for t in row], [g for row in guessed for g in row])
    run_dir.mkdir(parents=True, exist_ok=True)
    tagger.save(run_dir / "tagger.json")
    return TaskResult(experiment, recipe.row, recipe.column, metric, value, (value,), seconds, 0, 0, str(run_dir))


# ---- reports --------------------------------------------------------------------------------------

def _cell(result: TaskResult | None) -> str:
    if result is None:
        return ""
    text = f"{100 * result.value:.2f}"
    if len(result.folds) > 1:
        text += f" ± {100 * statistics.stdev(result.folds):.2f}"
    return text


def _rows(experiment: Experiment, results: Sequence[TaskResult]) -> tuple[list[str], list[list[str]]]:
    columns = [c for c, _ in experiment.columns if any(r.column == c for r in results)]
    by = {(r.row, r.column): r for r in results}
    headers = ["model", *[f"{c} ({dict(experiment.columns)[c]})" for c in columns], "training s"]
    rows = []
    for row in dict.fromkeys(r.row for r in results):
        seconds = sum(by[(row, c)].train_seconds for c in columns if (row, c) in by)
        rows.append([row, *[_cell(by.get((row, c))) for c in columns], "" if math.isnan(seconds) else f"{seconds:,.0f}"])
    for p in experiment.published:
        if p.column in columns:
            rows.append([f"{p.row} *", *[f"{p.value:.2f}" if c == p.column else "" for c in columns], ""])
    return headers, rows


def _footer(experiment: Experiment, results: Sequence[TaskResult]) -> list[str]:
    folds = max((len(r.folds) for r in results), default=1)
    lines = [f"percent on the test split{f'; ± is the standard deviation over {folds} folds' if folds > 1 else ''}"]
    if experiment.note:
        lines.append(experiment.note)
    columns = {r.column for r in results}
    for p in experiment.published:
        if p.column in columns:
            lines.append(f"* {p.row}: published, {p.source}")
    return lines


def render_table(name: str, results: Sequence[TaskResult]) -> str:
    experiment = EXPERIMENTS[name]
    headers, rows = _rows(experiment, results)
    return "\n".join([experiment.title, "", *text_table(headers, rows), "", *_footer(experiment, results)])


def to_markdown(name: str, results: Sequence[TaskResult]) -> str:
    experiment = EXPERIMENTS[name]
    headers, rows = _rows(experiment, results)
    rows = [[row[0].replace(" *", " \\*"), *row[1:]] for row in rows]
    return "\n".join([f"{experiment.title}.", "", *markdown_table(headers, rows), "",
                      *["- " + line.replace("* ", "\\* ", 1) for line in _footer(experiment, results)]]) + "\n"


def to_csv(results: Sequence[TaskResult]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[f.name for f in fields(TaskResult)], lineterminator="\n")
    writer.writeheader()
    for r in results:
        writer.writerow({**asdict(r), "folds": " ".join(f"{v:.6f}" for v in r.folds)})
    return buffer.getvalue()


def from_csv(text: str) -> list[TaskResult]:
    """The results `to_csv` wrote (to redraw or merge reports)."""
    out = []
    for row in csv.DictReader(io.StringIO(text)):
        out.append(TaskResult(row["experiment"], row["row"], row["column"], row["metric"], float(row["value"]),
                              tuple(float(v) for v in row["folds"].split()), float(row["train_seconds"]),
                              int(row["steps"]), int(row["parameters"]), row["run_dir"]))
    return out


def figure(name: str, results: Sequence[TaskResult]):
    """One panel per column, a dot per row: ours (each fold as a small dot) and the published
    figures, in percent, on an axis fitted to them (dots, not bars, so the axis need not start at 0)."""
    plt = pyplot()
    experiment = EXPERIMENTS[name]
    columns = [c for c, _ in experiment.columns if any(r.column == c for r in results)]
    n_rows = max(sum(r.column == c for r in results) + sum(p.column == c for p in experiment.published)
                 for c in columns)
    fig, axes = plt.subplots(1, len(columns), figsize=(max(8.0, 5.5 * len(columns)), 0.4 * n_rows + 2.2),
                             dpi=110, squeeze=False)
    for ax, column in zip(axes[0], columns):
        ours = [r for r in results if r.column == column]
        theirs = [p for p in experiment.published if p.column == column]
        labels = [r.row for r in ours] + [p.row for p in theirs]
        values = [100 * r.value for r in ours] + [p.value for p in theirs]
        y = list(range(len(labels)))[::-1]
        ax.plot(values[:len(ours)], y[:len(ours)], "o", color="C0", ms=7, label="seqlab (test split)")
        ax.plot(values[len(ours):], y[len(ours):], "D", color="C1", ms=6, label="published")
        folds = [(100 * v, yi) for yi, r in zip(y, ours) if len(r.folds) > 1 for v in r.folds]
        if folds:
            ax.plot(*zip(*folds), ".", color="0.4", ms=3, label="one fold")
        for yi, v in zip(y, values):
            ax.annotate(f"{v:.1f}", (v, yi), xytext=(6, 0), textcoords="offset points", va="center", fontsize=8)
        spread = max(values) - min(values)
        ax.set_xlim(min(values) - 0.1 * spread - 1, min(100.0, max(values) + 0.25 * spread + 2))
        ax.set_ylim(-0.7, len(labels) - 0.3)
        ax.set_yticks(y, labels, fontsize=8)
        metric = dict(experiment.columns)[column]
        ax.set_xlabel(f"{'chunk F1' if metric == 'f1' else 'accuracy'} (%)")
        ax.set_ylabel("model")
        ax.set_title(column, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(experiment.title, fontsize=11)
    fig.tight_layout()
    return fig


def write_reports(name: str, results: Sequence[TaskResult], out: str | Path) -> list[Path]:
    """NAME.md, NAME.csv and NAME.png in `out`."""
    names = (f"{name}.md", f"{name}.csv", f"{name}.png")
    return tables.write_reports(out, names, to_markdown(name, results), to_csv(results),
                                lambda path: save_png(figure(name, results), path))


__all__ = ["EXPERIMENTS", "Experiment", "Pretrain", "Published", "Recipe", "TaskResult", "figure", "from_csv",
           "render_table",
           "run_experiment", "to_csv", "to_markdown", "write_reports"]
