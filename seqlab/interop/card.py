"""The model card (`README.md`) of an exported run: what the model is, the data it learned from, its
validation figures, how to load it, the full config, and the commands that made it.

The figures are the run's own records: the last `val` row of metrics.csv (the trainer's estimate at
its last evaluation), named as such; the card makes no claim that the run did not measure.
"""

from __future__ import annotations

from pathlib import Path

from seqlab import families
from seqlab.config import Config
from seqlab.config.load import config_to_toml
from seqlab.tokenizers import Tokenizer
from seqlab.training.metrics import read_rows


def model_card(run_dir: Path, out: Path, config: Config, tokenizer: Tokenizer, *, parameters: int,
               step: int | None, with_tokenizer: bool) -> str:
    """The README.md text for the export of `run_dir` into `out`."""
    model, data, train = config.model, config.data, config.train
    lines = [f"# {run_dir.name}", "",
             _architecture(model, parameters) + " trained with seqlab on "
             f"`{data.corpus}`, exported as a Hugging Face `save_pretrained` folder.", "",
             "## Use", "", "```python",
             "from transformers import AutoModelForCausalLM" + (", AutoTokenizer" if with_tokenizer else ""),
             f'model = AutoModelForCausalLM.from_pretrained("{out}")']
    if with_tokenizer:
        lines += [f'tokenizer = AutoTokenizer.from_pretrained("{out}")',
                  f'ids = tokenizer({config.sample.prompt or chr(10)!r}, return_tensors="pt").input_ids',
                  "print(tokenizer.decode(model.generate(ids, max_new_tokens=200, do_sample=True, top_k=200)[0]))"]
    lines += ["```", ""]
    if not with_tokenizer:
        lines += [f"The run's {tokenizer.kind} tokenizer has no `tokenizer.json` form: encode text with seqlab's "
                  f"(`{run_dir}/tokenizer.json`).", ""]
    lines += ["## Data", "",
              f"- corpus: `{data.corpus}`, the last {data.val_fraction:.0%} held out for validation",
              f"- tokenizer: {tokenizer.kind}, {tokenizer.vocab_size} ids", "",
              "## Results", "", *_results(run_dir), "",
              "## Training", "",
              f"- steps: {step if step is not None else 'unknown'} of train.max_steps = {train.max_steps:,}, "
              f"batches of {train.batch_size} × {model.block_size} tokens",
              f"- AdamW, learning rate {train.lr:g} (warm-up {train.warmup_steps} steps, cosine to {train.min_lr:g}), "
              f"weight decay {train.weight_decay:g}, seed {train.seed}", "",
              "## Made by", "", "```sh",
              f"seqlab train {run_dir}/config.toml --out {run_dir}   # the training (the config below)",
              f"seqlab export-hf {run_dir} --out {out}", "```", "",
              "## Config (config.toml of the run)", "", "```toml", config_to_toml(config).rstrip("\n"), "```", ""]
    return "\n".join(lines)


def _architecture(model, parameters: int) -> str:
    """The model in a few words: a Transformer's layers, heads, width and context, or (a model
    without attention heads, such as Mamba) its family's summary, layers and width."""
    if getattr(model, "n_head", None) is None:
        summary = families.get(model.family).summary
        return f"A {summary} ({model.n_layer} layers, width {model.d_model}; {parameters:,} parameters)"
    return (f"A decoder-only Transformer ({model.n_layer} layers, {model.n_head} heads, width {model.d_model}, "
            f"context {model.block_size} tokens; {parameters:,} parameters)")


def _results(run_dir: Path) -> list[str]:
    """The validation figures of the run's last evaluation, from its metrics.csv."""
    rows = [r for r in read_rows(run_dir / "metrics.csv") if r["split"] == "val"]
    if not rows:
        return ["No evaluation was recorded (metrics.csv has no `val` row); `seqlab eval RUN` measures one."]
    last = rows[-1]
    lines = ["| at step | val loss (nats per token) | val bits per character | val perplexity (per token) |",
             "|---:|---:|---:|---:|",
             f"| {last['step']} | {float(last['loss']):.4f} | {float(last['bits_per_char']):.4f} | "
             f"{float(last['perplexity']):.2f} |", "",
             "The trainer's estimate at its last evaluation (`train.eval_steps` batches of the validation split); "
             "`seqlab eval RUN` scores the whole split."]
    return lines
