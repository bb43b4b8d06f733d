"""The `seqlab` command: a thin layer over `seqlab.api`.

A user's mistake (a bad config, a missing file, a damaged run) prints one line on stderr and exits
with status 2; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from seqlab.errors import SeqlabError, TrainingInterrupted

log = logging.getLogger("seqlab")


class _DefaultsFormatter(argparse.HelpFormatter):
    """Help that ends each option's line with its default, unless the text already says it or there
    is none to say (None, a flag's False)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if "default" in text or default is None or default is False or default == argparse.SUPPRESS:
            return text  # --help and --version have SUPPRESS
        return f"{text} (default: %(default)s)" if text else "(default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _DefaultsFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # one line, not argparse's usage block
        raise SeqlabError(f"{message} (see '{self.prog} --help')")


def _train(args: argparse.Namespace, overrides: list[str]) -> int:
    from seqlab import api
    if args.config is None and not args.resume:
        raise SeqlabError("train needs a config file or preset name (see 'seqlab presets')")
    if args.from_weights and not args.resume:
        raise SeqlabError("--from-weights continues a run from its weights: add --resume")
    if args.dry_run:
        from seqlab.dryrun import render
        print(render(api.plan(args.config or "run", out=args.out, overrides=overrides, resume=args.resume,
                              overwrite=args.overwrite)))
        return 0
    from seqlab.training.distributed import world_from_env
    if args.resume and (done := api.nothing_to_train(args.config or "run", out=args.out, overrides=overrides,
                                                     from_weights=args.from_weights)) is not None:
        if world_from_env().main:
            print(done)
        return 0
    run_dir = api.train(args.config or "run", out=args.out, overrides=overrides, resume=args.resume,
                        overwrite=args.overwrite, from_weights=args.from_weights, progress=not args.no_progress)
    if world_from_env().main:  # under torchrun, rank 0 speaks for all
        print(f"run saved in {run_dir}  (next: {_next_command(run_dir)})")
    return 0


def _next_command(run_dir: Path) -> str:
    """What to run next with a run: translate for a seq2seq family (the registry says), else sample."""
    from seqlab import families
    from seqlab.runs import read_config
    config = read_config(run_dir)
    if config.task.kind != "lm":
        return f"seqlab eval {run_dir}, seqlab predict {run_dir} --text ..."
    if families.get(config.model.family).reads_pairs:
        import shlex
        return f"seqlab translate {run_dir} {shlex.quote(config.sample.prompt or 'TEXT')}"
    return f"seqlab sample {run_dir}"


def _read_text(path: str, what: str) -> str:
    """The text of the file `path`; "-" reads standard input."""
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SeqlabError(f"cannot read {what} file {path}: {exc}") from None


def _sample_options(args: argparse.Namespace, defaults):
    prompt = args.prompt
    if args.prompt_file is not None:
        prompt = _read_text(args.prompt_file, "prompt")
    given = {"prompt": prompt, "max_new_tokens": args.max_new_tokens, "temperature": args.temperature,
             "top_k": args.top_k, "top_p": args.top_p, "seed": args.seed, "num_samples": args.num_samples,
             "stop": args.stop}
    return replace(defaults, **{k: v for k, v in given.items() if v is not None})


def _sample(args: argparse.Namespace, overrides: list[str]) -> int:
    from seqlab import families
    from seqlab.runs import load_run
    from seqlab.training import resolve_device
    model, tokenizer, config = load_run(args.run_dir, resolve_device(args.device))
    families.require_language_model(config.model.family, "seqlab sample")
    _decode_threads(model, config)
    options = _sample_options(args, config.sample)
    if args.interactive:
        return _interactive(lambda turn, prompt: _write_samples(
            model, tokenizer, config, replace(options, prompt=prompt, seed=options.seed + turn), args.no_cache))
    _write_samples(model, tokenizer, config, options, args.no_cache)
    return 0


def _write_samples(model, tokenizer, config, options, no_cache: bool) -> None:
    """`options.num_samples` samples (or translations, for a seq2seq run) after `options.prompt`."""
    from seqlab import api, families
    if families.get(config.model.family).reads_pairs:  # the prompt is the source to translate
        from seqlab.seq2seq import translate
        for index in range(options.num_samples):
            print(translate(model, tokenizer, [options.prompt], max_new_tokens=options.max_new_tokens,
                            temperature=options.temperature, top_k=options.top_k or None, top_p=options.top_p,
                            seed=options.seed + index)[0])
        return
    if options.num_samples > 1:  # one batch: N samples for little more than the time of one
        texts = api.sample_many(model, tokenizer, options, use_cache=not no_cache)
        sys.stdout.write("\n---------------\n".join(texts) + "\n")
        return
    for piece in api.stream_sample(model, tokenizer, options, use_cache=not no_cache, echo_prompt=True):
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")


def _interactive(answer) -> int:
    """`sample -i`: a prompt a line from standard input, `answer(turn, prompt)` for each, until an
    empty line or the end of the input (Ctrl-D). On a terminal it asks with "> "."""
    terminal = sys.stdin.isatty()
    if terminal:
        print("one prompt a line; an empty line or Ctrl-D ends", file=sys.stderr)
    turn = 0
    while True:
        try:
            line = input("> ") if terminal else sys.stdin.readline()
        except EOFError:
            line = ""
        prompt = line.rstrip("\r\n")
        if not prompt:
            return 0
        answer(turn, prompt)
        sys.stdout.flush()
        turn += 1


def _check_sampling(args: argparse.Namespace) -> None:
    """translate's sampling options, checked as [sample] checks them: a bad one is a one-line error."""
    from seqlab.config import SampleConfig
    SampleConfig(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_k=args.top_k or 0,
                 top_p=1.0 if args.top_p is None else args.top_p)


def _translate(args: argparse.Namespace, overrides: list[str]) -> int:
    from seqlab import families
    from seqlab.runs import load_run
    from seqlab.seq2seq import translate
    from seqlab.training import resolve_device
    if (args.text is None) == (args.file is None):
        raise SeqlabError("translate needs a text or --file FILE (one source per line), not both")
    _check_sampling(args)
    sources = [args.text] if args.text is not None else _read_text(args.file, "source").splitlines()
    model, tokenizer, config = load_run(args.run_dir, resolve_device(args.device))
    _decode_threads(model, config)
    family = families.get(config.model.family)
    if not family.reads_pairs:
        raise SeqlabError(f"{args.run_dir} is a {family.name} language model: use seqlab sample")
    outputs = translate(model, tokenizer, sources, max_new_tokens=args.max_new_tokens,
                        temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed,
                        beam_size=args.beam, length_penalty=args.length_penalty)
    print("\n".join(outputs))
    if args.plot:
        from seqlab.inspect.alignment import plot_source_alignment
        path = plot_source_alignment(model, tokenizer, sources[0], args.plot, align=family.alignment)
        print(f"alignment of the first source saved in {path}", file=sys.stderr)
    return 0


def _decode_threads(model, config) -> None:
    """Threads for decoding one token per step (see seqlab.training.threads); the counted families
    (n-gram, HMM) run in numpy and are left alone."""
    from seqlab import families
    from seqlab.training.threads import use_threads
    if families.get(config.model.family).trained:
        use_threads(params=sum(p.numel() for p in model.parameters()), tokens=1)


def _eval(args: argparse.Namespace, overrides: list[str]) -> int:
    from seqlab import api
    result = api.evaluate(args.run_dir, corpus=args.corpus, split=args.split, device=args.device,
                          context=args.context, beam_size=args.beam, length_penalty=args.length_penalty)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>14}  {value:.4f}" if isinstance(value, float) else f"{key:>14}  {value}")
    return 0


def _predict(args: argparse.Namespace, overrides: list[str]) -> int:
    from seqlab import api
    result = api.predict(args.run_dir, args.text, device=args.device)
    if args.json:
        print(json.dumps(result))
    elif "label" in result:
        print(f"{result['label']}\t{result['probability']:.4f}")
    else:
        print(" ".join(f"{word}/{tag}" for word, tag in zip(result["words"], result["tags"])))
    return 0


def _merge(args: argparse.Namespace, overrides: list[str]) -> int:
    from seqlab import api
    out = api.merge(args.run_dir, args.out, overwrite=args.overwrite)
    print(f"merged run saved in {out}  (next: seqlab predict {out} --text ...)")
    return 0


def _info(args: argparse.Namespace, overrides: list[str]) -> int:
    from seqlab.catalog import render_info, run_info
    info = run_info(args.run_dir)
    print(json.dumps(info) if args.json else render_info(info))
    return 0


def _runs(args: argparse.Namespace, overrides: list[str]) -> int:
    from seqlab.catalog import render_runs, run_rows
    print(render_runs(run_rows(args.folder), args.folder))
    return 0


def _demo(args: argparse.Namespace, overrides: list[str]) -> int:
    from seqlab import api
    from seqlab.config import SampleConfig
    from seqlab.demo import demo_corpus
    corpus, instead = demo_corpus()  # tiny Shakespeare, or offline this Python's standard library
    if instead is None:
        print("seqlab demo: a 4-layer character-level GPT learns tiny Shakespeare (nanoGPT's CPU config, lr 2e-3)\n")
    else:
        print(f"seqlab demo: {instead}\n")
        overrides = [f"data.corpus={corpus}", *overrides]
    run_dir = api.train("shakespeare-char", out=args.out, overrides=overrides, overwrite=True)
    result = api.evaluate(run_dir)
    print(f"\nvalidation: loss {result['loss']:.4f} nats/char, {result['bits_per_char']:.3f} bits/char\n")
    model, tokenizer = api.load(run_dir)
    for index in range(2):
        print(f"---- sample {index + 1} ----")
        options = SampleConfig(max_new_tokens=args.tokens, seed=index)
        for piece in api.stream_sample(model, tokenizer, options):
            sys.stdout.write(piece)
            sys.stdout.flush()
        print()
    prompt = "ROMEO:" if instead is None else "def "
    print(f"\nthe run is in {run_dir}: loss.png, metrics.csv, samples.txt; try `seqlab sample {run_dir} "
          f"--prompt '{prompt}'`")
    return 0


def _experiment(args: argparse.Namespace, overrides: list[str]) -> int:
    from seqlab.data import load_corpus
    from seqlab.experiments import render_table, run_shannon, to_markdown
    from seqlab.files import atomic_write_text
    rows = run_shannon(load_corpus(args.corpus).text, length=args.length, seed=args.seed)
    print(render_table(rows))
    if args.out:
        path = Path(args.out) / "shannon.md"
        atomic_write_text(path, to_markdown(rows))
        print(f"\nsaved {path}")
    return 0


def _llm_table(args: argparse.Namespace, overrides: list[str]) -> int:
    from seqlab.experiments.llm_table import render_table, run_llm_table, write_reports
    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    results = run_llm_table(presets, out=args.out, steps=args.steps, overrides=overrides, resume=args.resume,
                            overwrite=args.overwrite, progress=not args.no_progress)
    print(render_table(results))
    print("\nsaved " + ", ".join(str(p) for p in write_reports(results, args.out)))
    print(f"each run is in {args.out}/PRESET; try `seqlab sample {results[0].run_dir}`")
    return 0


def _add_llm_table(experiments) -> None:
    from seqlab.experiments.llm_table import DECODER_PRESETS
    llm = experiments.add_parser(
        "llm-table", help="train the decoder presets alike and compare them",
        epilog="Any --section.key=value applies to every preset, e.g. --train.device=cuda")
    llm.add_argument("--presets", default=",".join(DECODER_PRESETS), help="comma-separated (default: all)")
    llm.add_argument("--steps", type=int, help="training steps of each preset (default: the presets' "
                                               "max_steps, 2000)")
    llm.add_argument("--out", default="runs/llm-table", help="one run per preset in OUT/PRESET, and the "
                                                             "reports (default runs/llm-table)")
    llm.add_argument("--resume", action="store_true", help="continue unfinished runs in --out, reuse finished ones")
    llm.add_argument("--overwrite", action="store_true", help="train the runs in --out again")
    llm.add_argument("--no-progress", action="store_true", help="no progress bars")
    llm.set_defaults(handler=_llm_table, overrides_allowed=True)


def _parens(args: argparse.Namespace, overrides: list[str]) -> int:
    from seqlab.experiments.parens import ParensSetup, render_table, run_parens, write_reports
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    n_val = min(1000, args.test_size)
    setup = ParensSetup(steps=args.steps, batch_size=args.batch_size, lr=args.lr, grad_clip=args.clip,
                        seed=args.seed, seeds=args.seeds,
                        eval_every=max(1, min(ParensSetup.eval_every, args.steps // 10)),
                        eval_batch_size=min(ParensSetup.eval_batch_size, n_val), n_train=args.train_size, n_val=n_val,
                        n_test=args.test_size)
    results = run_parens(models, out=args.out, setup=setup, progress=not args.no_progress, resume=args.resume)
    print(render_table(results))
    print("\nsaved " + ", ".join(str(p) for p in write_reports(results, args.out)))
    return 0


def _pos(args: argparse.Namespace, overrides: list[str]) -> int:
    from seqlab.data.conllu import locate_ud_ewt, read_conllu
    from seqlab.tagging import HMMTagger, cross_validate
    folder = Path(args.data) if args.data else locate_ud_ewt()
    train = read_conllu(folder / "en_ewt-ud-dev.conllu")
    if args.held_out:
        result, folds = cross_validate(train, smoothing=args.smoothing)
        print(f"bigram HMM tagger, 5 folds of UD English EWT dev ({len(train):,} sentences): each fifth "
              f"tagged after training on the rest ({result['n_words']:,} words in all)")
        _print_tag_accuracy(result)
        print("  per fold: " + ", ".join(f"{r['accuracy']:.4f}" for r in folds))
        return 0
    test = read_conllu(folder / "en_ewt-ud-test.conllu")
    tagger = HMMTagger().fit(train, smoothing=args.smoothing)
    result = tagger.accuracy(test)
    print(f"bigram HMM tagger, trained on UD English EWT dev ({len(train):,} sentences), Viterbi on test "
          f"({result['n_words']:,} words)")
    _print_tag_accuracy(result)
    if args.out:
        tagger.save(Path(args.out) / "tagger.json")
        print(f"saved {Path(args.out) / 'tagger.json'}")
    return 0


def _print_tag_accuracy(result: dict) -> None:
    print(f"  tag accuracy {result['accuracy']:.4f}: known words {result['known_accuracy']:.4f} "
          f"({result['n_known']:,}), unknown words {result['unknown_accuracy']:.4f} ({result['n_unknown']:,})")


def _add_pos(experiments) -> None:
    pos = experiments.add_parser("pos", help="part-of-speech tagging with a bigram HMM on UD English EWT")
    pos.add_argument("--data", help="the ud-english-ewt folder (default: found in the data folders)")
    pos.add_argument("--smoothing", type=float, default=0.01, help="add-k of the emissions (default 0.01)")
    pos.add_argument("--held-out", action="store_true",
                     help="score on held-out fifths of dev (5-fold, for tuning) instead of on test")
    pos.add_argument("--out", help="also save the tagger as OUT/tagger.json")
    pos.set_defaults(handler=_pos)


def _task_experiment(args: argparse.Namespace, overrides: list[str]) -> int:
    from seqlab.experiments.tasks import render_table, run_experiment, write_reports
    rows = [r.strip() for r in args.rows.split(",") if r.strip()] if args.rows else None
    columns = [c.strip() for c in args.columns.split(",") if c.strip()] if args.columns else None
    out = args.out or f"runs/{args.name}"
    results = run_experiment(args.name, out=out, steps=args.steps, folds=args.folds, rows=rows, columns=columns,
                             overrides=overrides, resume=args.resume, progress=not args.no_progress)
    print(render_table(args.name, results))
    print("\nsaved " + ", ".join(str(p) for p in write_reports(args.name, results, out)))
    return 0


def _add_task_experiments(experiments) -> None:
    from seqlab.experiments.tasks import EXPERIMENTS
    helps = {"sentiment": "MR sentence polarity: the families, from scratch and fine-tuned, beside Kim 2014",
             "tagging": "CoNLL-2000 POS and chunks, UD EWT UPOS: HMM, BiLSTM(-CRF), Transformer, fine-tuned",
             "mnist1d": "every neural family on MNIST-1D beside the paper's table"}
    for name, experiment in EXPERIMENTS.items():
        rows = ", ".join(dict.fromkeys(r.row for r in experiment.recipes))
        parser = experiments.add_parser(name, help=helps[name], epilog=f"rows: {rows}. Any --section.key=value "
                                                                        f"applies to every row, e.g. --train.device=cuda")
        parser.add_argument("--out", help=f"one run per row in OUT/ROW, and the reports (default runs/{name})")
        parser.add_argument("--steps", type=int, help="training steps of every row and pre-training (default: "
                                                      "each recipe's own; small values make a quick version)")
        if name == "sentiment":
            parser.add_argument("--folds", type=int, default=10, help="cross-validate on the first N of the 10 "
                                                                       "folds (default 10; 0: the seeded split)")
        else:
            parser.set_defaults(folds=0)
        parser.add_argument("--rows", help="comma-separated rows to run (default: all)")
        names = ", ".join(c for c, _ in experiment.columns)
        parser.add_argument("--columns", help=f"comma-separated data sets to run: {names} (default: all)")
        parser.add_argument("--resume", action="store_true", help="reuse the finished runs in --out with the "
                                                                  "same config, continue unfinished ones")
        parser.add_argument("--no-progress", action="store_true", help="no progress bars")
        parser.set_defaults(handler=_task_experiment, overrides_allowed=True)


def _add_parens(experiments) -> None:
    from seqlab.experiments.parens import MODELS, ParensSetup
    parens = experiments.add_parser(
        "parens", help="Elman, gated RNN, GRU, LSTM and a Transformer on coloured parentheses")
    parens.add_argument("--models", default=",".join(MODELS), help="comma-separated (default: all)")
    parens.add_argument("--steps", type=int, default=ParensSetup.steps,
                        help=f"training steps of each model (default {ParensSetup.steps})")
    parens.add_argument("--batch-size", type=int, default=ParensSetup.batch_size,
                        help=f"sequences per step (default {ParensSetup.batch_size}: online training)")
    parens.add_argument("--lr", type=float, default=ParensSetup.lr,
                        help=f"peak learning rate of Adam (default {ParensSetup.lr:g})")
    parens.add_argument("--clip", type=float, default=ParensSetup.grad_clip,
                        help="clip the gradient norm to this (default 0: no clipping)")
    parens.add_argument("--seed", type=int, default=0, help="data, batches and initial weights (the first seed)")
    parens.add_argument("--seeds", type=int, default=3, help="repeat the comparison with seeds SEED, SEED+1, ...: "
                                                            "the table shows mean ± sd (default 3)")
    parens.add_argument("--train-size", type=int, default=ParensSetup.n_train,
                        help=f"training sequences, drawn from with replacement (default {ParensSetup.n_train:,})")
    parens.add_argument("--test-size", type=int, default=2000, help="held-out sequences per range of lengths "
                                                                   "(default 2000; validation: up to 1000)")
    parens.add_argument("--out", default="runs/parens", help="one run per model in OUT/MODEL, and the "
                                                           "reports (default runs/parens)")
    parens.add_argument("--resume", action="store_true", help="keep the runs in --out that finished with the "
                                                             "same setup, train the rest")
    parens.add_argument("--no-progress", action="store_true", help="no progress bars")
    parens.set_defaults(handler=_parens)


def _compare(args: argparse.Namespace, overrides: list[str]) -> int:
    from seqlab.experiments.compare import render_table, run_compare, write_reports
    rows = run_compare(args.configs, out=args.out, overrides=overrides, sample_tokens=args.sample_tokens,
                       progress=not args.no_progress, models=args.models, corpus=args.corpus, prompt=args.prompt)
    print(render_table(rows))
    print("\nsaved " + ", ".join(str(p) for p in write_reports(rows, args.out)))
    return 0


def _presets(args: argparse.Namespace, overrides: list[str]) -> int:
    from seqlab.catalog import preset_rows, preset_toml, render_presets
    if args.action is None:
        print(render_presets(preset_rows()))
    elif args.action == "show" and args.name:
        print(preset_toml(args.name), end="")
    else:
        raise SeqlabError("presets takes nothing (the table) or 'show NAME' (a preset's resolved config)")
    return 0


def _import_hf(args: argparse.Namespace, overrides: list[str]) -> int:
    from seqlab.interop import import_hf_run
    run_dir = import_hf_run(args.hf_dir, args.out, tokenizer_file=args.tokenizer, overwrite=args.overwrite)
    print(f"run saved in {run_dir}  (next: seqlab sample {run_dir})")
    return 0


def _export_hf(args: argparse.Namespace, overrides: list[str]) -> int:
    from seqlab.interop import export_hf_run
    out = export_hf_run(args.run_dir, args.out, overwrite=args.overwrite)
    print(f"Hugging Face model saved in {out}  (AutoModelForCausalLM.from_pretrained({str(out)!r}))")
    return 0


def _inspect(args: argparse.Namespace, overrides: list[str]) -> int:
    from seqlab import families
    from seqlab.files import atomic_write_text
    from seqlab.inspect.report import inspect_text, write_figures
    from seqlab.runs import load_run
    text = args.text if args.text_file is None else _read_text(args.text_file, "text")
    if not text:
        raise SeqlabError("inspect needs a text: --text \"...\" or --file FILE")
    model, tokenizer, config = load_run(args.run_dir)
    families.require_language_model(config.model.family, "seqlab inspect")
    family = families.get(config.model.family)
    try:
        inspection = inspect_text(model, tokenizer, family, text)
    except ValueError as exc:
        raise SeqlabError(str(exc)) from None
    out = Path(args.out) if args.out else Path(args.run_dir) / "inspect.html"
    title = f"seqlab inspect {args.run_dir}"
    atomic_write_text(out, inspection.page(title=title, top_strings=tokenizer.token_strings(), top_k=args.top_k))
    print(f"wrote {out} ({out.stat().st_size:,} bytes): {inspection.summary()}")
    if args.png:
        figures = write_figures(inspection, args.png, title=Path(args.run_dir).name)
        print(f"wrote {len(figures)} figures in {args.png}")
    return 0


def _serve(args: argparse.Namespace, overrides: list[str]) -> int:
    from seqlab.serve import serve
    serve(args.run_dirs, host=args.host, port=args.port)
    return 0


def _embed(args: argparse.Namespace, overrides: list[str]) -> int:
    from seqlab.embeddings import WordVectors, plot_words
    from seqlab.embeddings.report import evaluation_table, frequent_words
    if not (args.neighbors or args.analogy or args.eval or args.plot is not None or args.export):
        raise SeqlabError("embed needs --neighbors WORD, --analogy A B C, --eval, --plot or --export FILE")
    if args.top is not None and args.top < 1:
        raise SeqlabError(f"--top must be at least 1, got {args.top}")
    vectors = WordVectors.from_run(args.run_dir)
    if args.neighbors:
        for word, score in vectors.most_similar([args.neighbors], topn=args.top or 10):
            print(f"{score:8.4f}  {word}")
    if args.analogy:
        a, b, c = args.analogy
        for method, answers in vectors.analogy(a, b, c, topn=5).items():
            print(f"{a} - {b} + {c}  ({method}):  " + ", ".join(f"{w} {s:.4f}" for w, s in answers))
    if args.eval:
        print("\n".join(evaluation_table(vectors)))
    if args.plot is not None:
        words = ([w.strip() for w in args.plot.split(",") if w.strip()] if args.plot
                 else frequent_words(args.run_dir, vectors, args.top or 100))
        out = args.out or str(Path(args.run_dir) / "embed")
        paths = plot_words(vectors, words, out, title=vectors.name)
        print("wrote " + ", ".join(str(p) for p in paths))
    if args.export:
        vectors.save_word2vec_format(args.export)
        print(f"wrote {args.export}: {len(vectors):,} vectors of {vectors.dim} (word2vec text format)")
    return 0


def _add_embed(commands) -> None:
    embed = commands.add_parser("embed", help="neighbours, analogies, evaluation, maps and export of a run's "
                                              "word vectors (word2vec, GloVe, or any LM's token embedding)")
    embed.add_argument("run_dir", help="a run directory (made by seqlab train or import-hf)")
    embed.add_argument("--neighbors", metavar="WORD", help="the nearest words by cosine")
    embed.add_argument("--analogy", nargs=3, metavar=("A", "B", "C"),
                       help="A - B + C by 3CosAdd and 3CosMul (king man woman -> queen)")
    embed.add_argument("--eval", action="store_true", help="WordSim353, SimLex-999, Google analogies")
    embed.add_argument("--plot", nargs="?", const="", metavar="WORDS",
                       help="PCA and t-SNE maps of these comma-separated words (none: the --top N most frequent)")
    embed.add_argument("--top", type=int, metavar="N", help="neighbours shown (default 10) or words mapped "
                                                            "(default 100)")
    embed.add_argument("--out", help="--plot: the PNG files' prefix (default RUN/embed: embed-pca.png, "
                                     "embed-tsne.png)")
    embed.add_argument("--export", metavar="FILE", help="write the vectors in the word2vec text format")
    embed.set_defaults(handler=_embed)


def _tokenize(args: argparse.Namespace, overrides: list[str]) -> int:
    from seqlab import pieces
    if args.fertility is not None:
        from seqlab.experiments.tables import text_table
        rows, setup = pieces.fertility(args.fertility or args.corpus, vocab_size=args.vocab_size,
                                       byte_fallback=not args.no_byte_fallback)
        print(setup)
        print("\n".join(text_table(["kind", "vocab", "tokens", "tokens/word", "bytes/token", "exact"], [
            [r.kind, str(r.vocab_size), f"{r.tokens:,}", f"{r.tokens_per_word:.3f}", f"{r.bytes_per_token:.3f}",
             "yes" if r.exact else "no"] for r in rows])))
        return 0
    if args.target is None or args.text is None:
        raise SeqlabError("tokenize needs RUN|KIND and TEXT (or --fertility [CORPUS])")
    tokenizer, what = pieces.tokenizer_for(args.target, corpus=args.corpus, vocab_size=args.vocab_size,
                                           byte_fallback=not args.no_byte_fallback)
    result = pieces.cut(tokenizer, args.text)
    print(f"{what} (vocab {tokenizer.vocab_size:,})")
    import os
    print(pieces.render(result, colour=sys.stdout.isatty() and not args.plain and not os.environ.get("NO_COLOR")))
    print(f"ids: {result.ids}")
    print(f"{len(args.text):,} characters, {result.n_bytes:,} bytes -> {len(result.ids):,} tokens, "
          f"{result.bytes_per_token:.2f} bytes per token; round trip {'exact' if result.exact else 'NOT exact'}")
    return 0


def _add_tokenize(commands) -> None:
    from seqlab.pieces import DEFAULT_CORPUS, DEFAULT_VOCAB_SIZE, TRAINED_KINDS
    tokenize = commands.add_parser("tokenize", help="how a tokenizer cuts a text, and each kind's fertility")
    tokenize.add_argument("target", nargs="?", metavar="RUN|KIND",
                          help=f"a run directory, or a kind to train: {', '.join(TRAINED_KINDS)}")
    tokenize.add_argument("text", nargs="?", help="the text to cut")
    tokenize.add_argument("--corpus", default=DEFAULT_CORPUS,
                          help=f"what a KIND is trained on (default {DEFAULT_CORPUS})")
    tokenize.add_argument("--vocab-size", type=int, default=DEFAULT_VOCAB_SIZE,
                          help=f"of a trained KIND (default {DEFAULT_VOCAB_SIZE})")
    tokenize.add_argument("--no-byte-fallback", action="store_true",
                          help="a trained char or word KIND without its 256 byte tokens, as tokenizer.byte_fallback "
                               "= false: unseen characters are <unk> (char), unknown words <unk> and spacing "
                               "normalised (word)")
    tokenize.add_argument("--plain", action="store_true", help="pieces separated by | instead of coloured")
    tokenize.add_argument("--fertility", nargs="?", const="", metavar="CORPUS",
                          help="tokens per word and bytes per token of every kind on held-out text of CORPUS "
                               "(default --corpus)")
    tokenize.set_defaults(handler=_tokenize)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="seqlab", description="Sequence models from n-grams to GPT: train, sample, evaluate.")
    from seqlab import __version__
    parser.add_argument("--version", action="version", version=f"seqlab {__version__}",
                        help="print seqlab's version and exit")
    parser.add_argument("--debug", action="store_true", help="show tracebacks (anywhere on the line)")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="only warnings and errors on stderr (anywhere on the line)")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="CPU threads for torch, anywhere on the line (default: chosen for the "
                             "model size and the cores other processes leave free)")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    train = commands.add_parser("train", help="train a model from a config file or preset",
                                epilog="Any --section.key=value overrides the config, e.g. --train.max_steps=500")
    train.add_argument("config", nargs="?", help="a TOML file or preset name (optional with --resume)")
    train.add_argument("--out", help="run directory (default runs/NAME)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    train.add_argument("--from-weights", action="store_true",
                       help="with --resume: continue from model.safetensors alone (fresh optimizer, the "
                            "weights' step) when the run's checkpoint in state/ is missing")
    train.add_argument("--overwrite", action="store_true",
                       help="replace an existing run in --out (kept in OUT/.replaced until the new run's "
                            "first checkpoint)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument("--dry-run", action="store_true",
                       help="print the resolved config, the parameter count and memory and time estimates, "
                            "then exit without creating the run directory")
    train.set_defaults(handler=_train, overrides_allowed=True)

    sample = commands.add_parser("sample", help="generate text from a trained run")
    sample.add_argument("run_dir", help="a run directory (made by seqlab train or import-hf)")
    group = sample.add_mutually_exclusive_group()
    group.add_argument("--prompt", help="text to continue (default: the run's sample.prompt)")
    group.add_argument("--prompt-file", metavar="FILE", help="a file whose text to continue; - reads standard input")
    group.add_argument("-i", "--interactive", action="store_true",
                       help="read a prompt a line from standard input and sample after each, until an empty "
                            "line or the end of the input (Ctrl-D)")
    sample.add_argument("--max-new-tokens", type=int, help="tokens to generate (default: the run's "
                                                           "sample.max_new_tokens)")
    sample.add_argument("--temperature", type=float, help="0 means greedy (default: the run's sample.temperature)")
    sample.add_argument("--top-k", type=int, help="keep the k likeliest tokens; 0 turns top-k off (default: the "
                                                  "run's sample.top_k)")
    sample.add_argument("--top-p", type=float, help="nucleus sampling; 1 turns it off (default: the run's "
                                                    "sample.top_p)")
    sample.add_argument("--seed", type=int, help="any integer (default: the run's sample.seed)")
    sample.add_argument("--num-samples", type=int, help="samples after the same prompt, drawn as one batch "
                                                        "(default: the run's sample.num_samples)")
    sample.add_argument("--stop", help="stop a sample when this text appears (default: the run's sample.stop)")
    sample.add_argument("--no-cache", action="store_true", help="recompute the context at every step")
    sample.add_argument("--device", default="cpu", help="auto, cpu, cuda or mps (default cpu)")
    sample.set_defaults(handler=_sample)

    evaluate = commands.add_parser("eval", help="loss, perplexity and bits per char of a run (accuracy and F1 "
                                                "of a task run)")
    evaluate.add_argument("run_dir", help="a run directory (made by seqlab train or import-hf)")
    evaluate.add_argument("--corpus", help="another corpus to evaluate on (default: the run's)")
    evaluate.add_argument("--split", choices=("val", "train", "test", "all"), default="val",
                          help="test: the held-out test pairs of parallel text, or a task run's test examples")
    evaluate.add_argument("--context", type=int, metavar="N",
                          help="windows of N tokens (default: the model's block_size; longer needs "
                               "positions that extrapolate, not learned ones)")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument("--beam", type=int, default=1, help="seq2seq: decode with beam search of this width "
                                                              "(default 1, greedy)")
    evaluate.add_argument("--length-penalty", type=float, default=1.0, help="seq2seq beam search: GNMT's alpha")
    evaluate.add_argument("--device", default="cpu", help="auto, cpu, cuda or mps")
    evaluate.set_defaults(handler=_eval)

    predict = commands.add_parser("predict", help="a task run's label (with its probability) or tags for a text")
    predict.add_argument("run_dir", help="a task run directory (task.kind = classify or tag)")
    predict.add_argument("--text", required=True, help="the text to classify or tag (a series run: numbers "
                                                       "separated by spaces or commas)")
    predict.add_argument("--json", action="store_true", help="print one JSON object (with every class's probability)")
    predict.add_argument("--device", default="cpu", help="auto, cpu, cuda or mps")
    predict.set_defaults(handler=_predict)

    merge = commands.add_parser("merge", help="fold a LoRA run's adapters into its base weights: a plain run")
    merge.add_argument("run_dir", help="a run trained with finetune.method = \"lora\"")
    merge.add_argument("--out", required=True, help="the run directory to write")
    merge.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    merge.set_defaults(handler=_merge)

    translate = commands.add_parser("translate", help="decode targets for sources with a seq2seq run")
    translate.add_argument("run_dir", help="a run directory (made by seqlab train or import-hf)")
    translate.add_argument("text", nargs="?", help="the source to translate")
    translate.add_argument("--file", help="a file of sources, one per line")
    translate.add_argument("--beam", type=int, default=1, help="beam width (default 1: greedy or sampled)")
    translate.add_argument("--length-penalty", type=float, default=1.0, help="beam search: GNMT's alpha")
    translate.add_argument("--temperature", type=float, default=0.0, help="0 (default) means greedy")
    translate.add_argument("--top-k", type=int, help="sample from the k likeliest tokens (with --temperature > 0)")
    translate.add_argument("--top-p", type=float, help="nucleus sampling (with --temperature > 0)")
    translate.add_argument("--seed", type=int, help="any integer")
    translate.add_argument("--max-new-tokens", type=int, default=256, help="the longest output, in tokens")
    translate.add_argument("--plot", metavar="PNG", help="also draw the attention between the first source "
                                                          "and its output (the Bahdanau figure)")
    translate.add_argument("--device", default="cpu", help="auto, cpu, cuda or mps")
    translate.set_defaults(handler=_translate)

    compare = commands.add_parser("compare", help="train language models of any family alike and compare them",
                                  epilog="--section.key=value overrides apply to every config, "
                                         "e.g. --train.max_steps=500")
    compare.add_argument("configs", nargs="*", help="preset names or TOML files")
    compare.add_argument("--models", default="", metavar="NAMES",
                         help="the ladder in shorthand, e.g. ngram-5,hmm-64,lstm,gpt: FAMILY[-SIZE] with FAMILY one "
                              "of ngram, hmm, rnn, gated, gru, lstm, gpt (SIZE: order, states or width)")
    compare.add_argument("--corpus", default="", help="train and measure every model on this corpus (a registered "
                                                      "name, file, folder or glob) instead of its config's")
    compare.add_argument("--out", default="runs/compare", help="one run per config, and the reports "
                                                               "(default runs/compare)")
    compare.add_argument("--sample-tokens", type=int, default=60, help="length of each row's sample")
    compare.add_argument("--prompt", help="every model samples after this text (default: the configs' "
                                          "sample.prompt when they share one, else the start of a line)")
    compare.add_argument("--no-progress", action="store_true", help="no progress bars")
    compare.set_defaults(handler=_compare, overrides_allowed=True)

    info = commands.add_parser("info", help="what a run directory holds")
    info.add_argument("run_dir", help="a run directory (made by seqlab train or import-hf)")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(handler=_info)

    runs = commands.add_parser("runs", help="a table of the runs in a folder: family, step, val bits/char, size, date")
    runs.add_argument("folder", nargs="?", default="runs", help="the folder to list, searched 3 folders deep")
    runs.set_defaults(handler=_runs)

    demo = commands.add_parser("demo", help="train the shakespeare-char preset and print samples")
    demo.add_argument("--out", default="runs/demo", help="the run directory (replaced if it holds a run)")
    demo.add_argument("--tokens", type=int, default=300, help="length of each sample")
    demo.set_defaults(handler=_demo, overrides_allowed=True)

    experiment = commands.add_parser("experiment", help="reproduce a classic result")
    experiments = experiment.add_subparsers(dest="name", required=True, parser_class=_Parser)
    shannon = experiments.add_parser("shannon", help="Shannon's 1948 approximations to English")
    shannon.add_argument("--corpus", default="shakespeare", help="registry name, file, folder or glob")
    shannon.add_argument("--length", type=int, default=300, help="characters per sample")
    shannon.add_argument("--seed", type=int, default=0, help="seed of the samples")
    shannon.add_argument("--out", help="also write the report as Markdown into this folder")
    shannon.set_defaults(handler=_experiment)
    _add_llm_table(experiments)
    _add_parens(experiments)
    _add_pos(experiments)
    _add_task_experiments(experiments)

    presets = commands.add_parser("presets", help="the shipped presets: family, parameters, steps, time, description",
                                  epilog="`seqlab presets show NAME` prints a preset's resolved config as TOML")
    presets.add_argument("action", nargs="?", choices=("show",), help="show: print one preset's resolved config")
    presets.add_argument("name", nargs="?", help="the preset to show")
    presets.set_defaults(handler=_presets)

    import_hf = commands.add_parser("import-hf", help="make a run from a Hugging Face GPT-2 or LLaMA folder")
    import_hf.add_argument("hf_dir", help="a save_pretrained folder (config.json, model.safetensors)")
    import_hf.add_argument("--out", required=True, help="the run directory to write")
    import_hf.add_argument("--tokenizer", help="a tokenizer.json to use instead of the folder's")
    import_hf.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    import_hf.set_defaults(handler=_import_hf)

    inspect = commands.add_parser("inspect", help="an HTML page of what a model computes over a text: surprisal, "
                                     "attention, neurons, HMM trellis, n-gram backoff")
    inspect.add_argument("run_dir", help="a run directory (made by seqlab train or import-hf)")
    inspect.add_argument("--text", default="", help="the text to run the model over")
    inspect.add_argument("--text-file", "--file", dest="text_file", help="read the text from this file")
    inspect.add_argument("--out", help="the HTML file to write (default RUN_DIR/inspect.html)")
    inspect.add_argument("--top-k", type=int, default=5, help="next-token predictions shown per position")
    inspect.add_argument("--png", metavar="DIR", help="also write the views as PNG figures into DIR")
    inspect.set_defaults(handler=_inspect)

    export_hf = commands.add_parser("export-hf", help="write a run as a Hugging Face save_pretrained folder")
    export_hf.add_argument("run_dir", help="a run directory (made by seqlab train or import-hf)")
    export_hf.add_argument("--out", required=True, help="the folder to write")
    export_hf.add_argument("--overwrite", action="store_true", help="replace a model already in --out")
    export_hf.set_defaults(handler=_export_hf)

    serve = commands.add_parser("serve", help="a local web playground over runs (see docs/serve.md)")
    serve.add_argument("run_dirs", nargs="+", metavar="RUN", help="the runs to serve, and only these")
    serve.add_argument("--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1: this "
                                                          "machine only; 0.0.0.0 opens it to the network)")
    serve.add_argument("--port", type=int, default=8000, help="default 8000; 0 picks a free one")
    serve.set_defaults(handler=_serve)
    _add_embed(commands)
    _add_tokenize(commands)
    return parser


def _split_overrides(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Dotted `--section.key=value` options, apart from the rest."""
    overrides = [a for a in argv if a.startswith("--") and "." in a.split("=", 1)[0]]
    return [a for a in argv if a not in overrides], overrides


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        return message if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {message}"


def _setup_logging(quiet: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    root = logging.getLogger("seqlab")
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING if quiet else logging.INFO)
    root.propagate = False


def _take_threads(argv: list[str]) -> list[str]:
    """Remove `--threads N` (or `--threads=N`), accepted anywhere on the line, and apply it."""
    from seqlab.training.threads import set_command_line_threads
    rest, i = [], 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--threads" or arg.startswith("--threads="):
            if arg == "--threads":
                if i + 1 >= len(argv):
                    raise SeqlabError("--threads needs a number of threads, e.g. --threads 1")
                value, i = argv[i + 1], i + 2
            else:
                value, i = arg.split("=", 1)[1], i + 1
            if not value.isdigit() or int(value) < 1:
                raise SeqlabError(f"--threads {value!r}: expected a positive number of CPU threads")
            set_command_line_threads(int(value))
            continue
        rest.append(arg)
        i += 1
    return rest


def _out_of_memory(exc: BaseException) -> str | None:
    """The one line to say for an allocation that failed (Python's MemoryError, torch's on a device or
    on the CPU), None when `exc` is not one."""
    torch = sys.modules.get("torch")
    text = str(exc).strip()
    if isinstance(exc, MemoryError):
        detail = text
    elif (torch is not None and isinstance(exc, torch.OutOfMemoryError)) or "can't allocate memory" in text:
        detail = text.splitlines()[0].split("DefaultCPUAllocator: ")[-1] if text else ""
    else:
        return None
    detail = f" ({detail})" if detail else ""
    return f"out of memory{detail}: try a smaller batch (train.batch_size), context (model.block_size) or model"


GLOBAL_FLAGS = ("--debug", "-q", "--quiet")  # taken from anywhere on the line (and --threads N, --version)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # The global flags are accepted anywhere on the line, not only before the command.
    debug, quiet = "--debug" in argv, "-q" in argv or "--quiet" in argv
    argv = [a for a in argv if a not in GLOBAL_FLAGS]
    try:
        argv = _take_threads(argv)
        rest, overrides = _split_overrides(argv)
        args = build_parser().parse_args(["--version"] if "--version" in rest else rest)
        _setup_logging(quiet)
        if overrides and not getattr(args, "overrides_allowed", False):
            raise SeqlabError(f"{args.command} takes no --section.key=value options (got {overrides[0]})")
        return args.handler(args, overrides)
    except TrainingInterrupted as exc:  # not an error: the run is saved and resumable, but not finished
        from seqlab.training.distributed import world_from_env
        if world_from_env().main:  # under torchrun, rank 0 speaks for all
            print(f"seqlab: {exc}", file=sys.stderr)
        return exc.exit_status  # 130 for SIGINT, 143 for SIGTERM, as a shell reports a process they killed
    except SeqlabError as exc:
        if debug:
            raise
        print(f"seqlab: error: {exc}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as exc:  # torch.OutOfMemoryError is a RuntimeError
        message = None if debug else _out_of_memory(exc)
        if message is None:  # any other RuntimeError is a bug: its traceback
            raise
        print(f"seqlab: error: {message}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `seqlab sample RUN | head`
        return 0
    except OSError as exc:
        if debug:
            raise
        print(f"seqlab: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("seqlab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
