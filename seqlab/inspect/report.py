"""`seqlab inspect RUN --text ...`: trace a run over a text, write the HTML page and the figures.

`inspect_text` traces a language model over the text, or a seq2seq model over its greedy translation
of the text (the text is the source; the trace's tokens are the decoder's input, BOS first, so row j
of the cross-attention is the one that produced target token j). The family's declaration says
which probes run (`Family.traced`) and how a seq2seq model decodes (`Family.alignment`).
`write_figures` draws the page's views as PNG files: surprisal, every attention head, the neurons
that track features of the text, the HMM trellis, the n-gram backoff.

Dimensions: T tokens · S source tokens · L layers · H heads · U units · K HMM states.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from seqlab.inspect.induction import induction_scores, mirrored_mass
from seqlab.inspect.page import INDUCTION_MARK, feature_units, inspect_page, text_features
from seqlab.inspect.trace import Trace, trace
from seqlab.plots import pyplot, save_png


@dataclass
class Inspection:
    """A trace with the text of its tokens (and of its source, for a seq2seq model)."""

    trace: Trace
    tokens: list[str]
    source: list[str] | None = None

    def page(self, *, title: str, top_strings: list[str], top_k: int = 10) -> str:
        n_source = None if self.source is None else len(self.source)
        return inspect_page(self.trace, self.tokens, title=title, source=self.source, top_strings=top_strings,
                            top_k=top_k, n_source=n_source)


    def summary(self) -> str:
        """One line: the views traced, the induction heads (score at least `INDUCTION_MARK`) or the
        best head's score, and for cross-attention the mass on the mirrored source position."""
        t = self.trace
        views = ["surprisal", *(f"attention {kind} {tuple(w.shape)}" for kind, w in t.attention.items()),
                 *(f"{name} ({acts.shape[1]})" for name, acts in t.activations.items())]
        views += ["HMM trellis"] * bool(t.hmm) + ["n-gram backoff"] * bool(t.ngram)
        if "self" in t.attention and not torch.isnan(scores := induction_scores(t)).all():
            heads = [(float(scores[l, h]), l, h) for l in range(scores.shape[0]) for h in range(scores.shape[1])]
            marked = sorted((h for h in heads if h[0] >= INDUCTION_MARK), reverse=True) or [max(heads)]
            label = "induction heads" if marked[0][0] >= INDUCTION_MARK else "no induction head; best"
            views.append(f"{label}: " + ", ".join(f"layer {l} head {h} ({s:.3f})" for s, l, h in marked))
        if "cross" in t.attention and self.source is not None:
            mass = mirrored_mass(t.attention["cross"], len(self.source))  # (L, H)
            views.append(f"cross-attention on the mirrored source position: {float(mass[-1].mean()):.3f} "
                         f"(last layer, mean of heads)")
        return f"{len(t.tokens)} tokens; " + "; ".join(views)


def inspect_text(model, tokenizer, family, text: str, *, max_len: int = 256) -> Inspection:
    """Trace `model` (of the family declared by `family`) over `text`; see the module docstring."""
    if not text:
        raise ValueError("the text is empty: nothing to inspect")
    if family.reads_pairs:
        from seqlab.data.seq2seq import BOS, EOS
        from seqlab.tokenizers import source_side

        src_side = source_side(tokenizer)
        src = src_side.encode(text)
        bos, eos = tokenizer.encode(BOS)[0], tokenizer.encode(EOS)[0]
        target, _ = family.alignment(model, src, bos, eos, max_len)
        ids = [bos, *target]
        result = trace(model, ids, source=src, probes=family.traced)
        return Inspection(result, [tokenizer.decode([i]) for i in ids], [src_side.decode([i]) for i in src])
    ids = tokenizer.encode(text)
    return Inspection(trace(model, ids, probes=family.traced), [tokenizer.decode([i]) for i in ids])


def _label(token: str) -> str:
    return repr(token)[1:-1].replace(" ", "␣") if token.strip() != token or not token else token


def write_figures(inspection: Inspection, folder: str | Path, *, title: str = "") -> list[Path]:
    """The page's views as PNG files in `folder` (created); returns their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    plt = pyplot()
    t, tokens = inspection.trace, inspection.tokens
    labels = [_label(s) for s in tokens]
    written = []

    def save(fig, name: str) -> None:
        if fig.get_layout_engine() is None:
            fig.tight_layout()
        save_png(fig, folder / name)
        written.append(folder / name)

    T = len(tokens)
    fig, ax = plt.subplots(figsize=(max(6, 0.18 * T), 3), dpi=100)
    s = np.nan_to_num(t.surprisal.numpy(), nan=0.0)
    bars = ax.bar(range(T), s, color=plt.cm.Reds(s / max(s.max(), 1e-9)))
    ax.set(title=f"{title} surprisal per token".strip(), xlabel="token", ylabel="surprisal (bits)")
    ax.set_xticks(range(T), labels, fontsize=6, rotation=90)
    fig.colorbar(plt.cm.ScalarMappable(cmap="Reds", norm=plt.Normalize(0, float(s.max()))), ax=ax, label="bits")
    del bars
    save(fig, "surprisal.png")

    for kind, w in t.attention.items():
        L, H = w.shape[:2]
        scores = (induction_scores(t) if kind == "self" else
                  mirrored_mass(w, None if inspection.source is None else len(inspection.source)) if kind == "cross"
                  else None)
        fig, axes = plt.subplots(L, H, figsize=(1.8 * H + 1, 1.8 * L + 0.6), dpi=110, squeeze=False,
                                 layout="constrained")
        for l in range(L):
            for h in range(H):
                ax = axes[l, h]
                image = ax.imshow(w[l, h].numpy(), cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
                score = "" if scores is None or torch.isnan(scores[l, h]) else f" {float(scores[l, h]):.2f}"
                ax.set_title(f"L{l} H{h}{score}", fontsize=7)
                ax.set_xticks([]), ax.set_yticks([])
                if h == 0:
                    ax.set_ylabel("query", fontsize=7)
                if l == L - 1:
                    ax.set_xlabel("key", fontsize=7)
        what = {"self": "induction score", "cross": "mass on the mirrored source position"}.get(kind)
        fig.suptitle(f"{title} {kind} attention, every layer x head" + (f" ({what})" if what else ""), fontsize=9)
        fig.colorbar(image, ax=axes, shrink=0.6, label="attention weight")
        save(fig, f"attention-{kind}.png")
        best = (0, 0) if scores is None or torch.isnan(scores).all() else divmod(int(torch.nan_to_num(scores, -1).argmax()), H)
        queries = inspection.source if kind == "encoder" else tokens
        keys = tokens if kind == "self" else inspection.source
        fig, ax = plt.subplots(figsize=(max(4, 0.16 * len(keys) + 2), max(3.5, 0.16 * len(queries) + 1)), dpi=110)
        image = ax.imshow(w[best].numpy(), cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
        ax.set_xticks(range(len(keys)), [_label(k) for k in keys], fontsize=6, rotation=90)
        ax.set_yticks(range(len(queries)), [_label(q) for q in queries], fontsize=6)
        ax.set(title=f"{kind} attention, layer {best[0]} head {best[1]}", xlabel="key", ylabel="query")
        fig.colorbar(image, ax=ax, label="attention weight")
        save(fig, f"attention-{kind}-head.png")

    features = text_features(tokens)
    for name, acts in t.activations.items():
        if acts.shape[0] != T:
            continue
        found = feature_units(acts, features, top=1)
        if not found:
            continue
        units = [(f, best[0]["unit"], best[0]["r"]) for f, best in found.items()]
        scale = acts.abs().amax(0).clamp(min=1e-8)
        rows = np.stack([(acts[:, u] / scale[u]).numpy() for _, u, _ in units])  # (features, T)
        fig, ax = plt.subplots(figsize=(max(6, 0.16 * T), 1 + 0.5 * len(units)), dpi=110)
        image = ax.imshow(rows, cmap="bwr", vmin=-1, vmax=1, aspect="auto", interpolation="nearest")
        ax.set_yticks(range(len(units)), [f"unit {u}: {f} (r={r})" for f, u, r in units], fontsize=7)
        ax.set_xticks(range(T), labels, fontsize=6, rotation=90)
        ax.set(title=f"{name}: the units that track features of the text", xlabel="token")
        fig.colorbar(image, ax=ax, label="activation / its largest magnitude")
        save(fig, f"neurons-{name}.png")

    if t.hmm:
        post = t.hmm["posteriors"].numpy().T  # (K, T)
        fig, ax = plt.subplots(figsize=(max(6, 0.16 * T), 1 + 0.25 * post.shape[0]), dpi=110)
        image = ax.imshow(post, cmap="Blues", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
        ax.plot(range(T), t.hmm["viterbi"].numpy(), color="#d62728", linewidth=1.5, label="Viterbi path")
        ax.set_xticks(range(T), labels, fontsize=6, rotation=90)
        ax.set(title="HMM trellis: state posteriors and the Viterbi path", xlabel="token", ylabel="hidden state")
        ax.legend(loc="upper right", fontsize=7)
        fig.colorbar(image, ax=ax, label="P(state | text)")
        save(fig, "hmm-trellis.png")

    if t.ngram:
        weights = t.ngram["weights"].numpy().T  # (n + 1, T)
        fig, ax = plt.subplots(figsize=(max(6, 0.16 * T), 3), dpi=110)
        image = ax.imshow(weights, cmap="Oranges", vmin=0, vmax=1, aspect="auto", origin="lower", interpolation="nearest")
        ax.plot(range(T), t.ngram["order"].numpy(), "k.-", linewidth=1, label="answering order")
        ax.set_xticks(range(T), labels, fontsize=6, rotation=90)
        ax.set(title="n-gram backoff: interpolation weight of each order", xlabel="token", ylabel="order (0 = uniform)")
        ax.legend(loc="upper right", fontsize=7)
        fig.colorbar(image, ax=ax, label="interpolation weight")
        save(fig, "ngram-backoff.png")
    return written


__all__ = ["Inspection", "inspect_text", "write_figures"]
