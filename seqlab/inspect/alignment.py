"""Attention alignments of encoder–decoders, as heatmaps (Bahdanau, Cho & Bengio 2015, figure 3).

`rnn_alignment` decodes one source greedily with a `Seq2SeqRNN` and collects, for each target token
it emits, the attention weights over the source positions that produced it. The weights come from the
stepper's explicit state (`RNNDecoderState.attention`), so nothing is stored on the model.

`transformer_alignment` does the same for the Transformer `EncoderDecoder`: greedy decoding, then one
teacher-forced pass over the decoded target with forward hooks on every decoder layer's
cross-attention (asked for its weights), giving one (T, S) map per layer and head.
`plot_source_alignment` picks the right one for a model and draws every map into one PNG.

`plot_alignment_grid` draws (T, S) weight matrices as grey-scale images (white = weight 1), rows the
target tokens and columns the source tokens, and writes them as one PNG atomically; `plot_alignment`
draws one.

Dimensions: T target tokens · S source tokens · V target vocab.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from seqlab.models.encoder_decoder import EncoderDecoder
from seqlab.models.seq2seq_rnn import Seq2SeqRNN
from seqlab.plots import pyplot, save_png


def rnn_alignment(model: Seq2SeqRNN, src_ids: Sequence[int] | Tensor, bos: int, eos: int,
                  max_len: int) -> tuple[list[int], Tensor]:
    """Greedy decoding of one source → (target ids, weights (T, S)): at most `max_len` tokens, the end
    token included when emitted; row t holds the attention weights that produced target token t."""
    if max_len < 1:
        raise ValueError(f"max_len must be at least 1, got {max_len}")
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            device = next(model.parameters()).device
            src = torch.as_tensor(src_ids, dtype=torch.long, device=device).reshape(1, -1)  # (1, S)
            stepper = model.stepper_for(src)  # one unpadded source: no mask
            state = stepper.new_state(1, device)
            token = torch.full((1, 1), bos, dtype=torch.long, device=device)
            target: list[int] = []
            rows: list[Tensor] = []
            for _ in range(max_len):
                logits, state = stepper.step(token, state)  # (1, V)
                token = logits.argmax(dim=-1, keepdim=True)  # (1, 1), ties to the lowest id
                target.append(int(token))
                rows.append(state.attention[0])  # (S,)
                if target[-1] == eos:
                    break
            weights = torch.stack(rows).clone()  # (T, S), an ordinary tensor outside inference mode
    finally:
        model.train(was_training)
    return target, weights


@torch.inference_mode()
def transformer_alignment(model: EncoderDecoder, src_ids: Sequence[int] | Tensor, bos: int, eos: int,
                          max_len: int) -> tuple[list[int], Tensor]:
    """Greedy decoding of one source → (target ids, weights (L, H, T, S)): layer l, head h, row t holds
    the cross-attention weights of the position that predicted target token t."""
    from seqlab.generate.sampling import generate

    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        src = torch.as_tensor(list(src_ids), dtype=torch.long, device=device)[None]  # (1, S)
        mask = torch.ones_like(src, dtype=torch.bool)
        start = torch.full((1, 1), bos, dtype=torch.long, device=device)
        row = generate(model.stepper_for(src, mask), start, max(1, min(max_len, model.block_size - 1)),
                       temperature=0.0)[0, 1:].tolist()
        target = row[:row.index(eos) + 1] if eos in row else row
        captured: list[Tensor] = []
        hooks = []
        for block in model.blocks:  # ask each cross-attention for its weights, keep them
            attn = block.cross_attn
            hooks.append(attn.register_forward_pre_hook(
                lambda module, args, kwargs: (args, {**kwargs, "need_weights": True}), with_kwargs=True))
            hooks.append(attn.register_forward_hook(lambda module, args, output: captured.append(output[1])))
        try:
            tgt_in = torch.tensor([[bos, *target[:-1]]], device=device)  # (1, T): what predicted each token
            model(src, tgt_in, mask, torch.ones_like(tgt_in, dtype=torch.bool))
        finally:
            for hook in hooks:
                hook.remove()
        weights = torch.stack([w[0] for w in captured]).clone()  # (L, H, T, S)
    finally:
        model.train(was_training)
    return target, weights


def rnn_panels(model, src_ids: list[int], bos: int, eos: int, max_len: int) -> tuple[list[int], dict[str, Tensor]]:
    """`rnn_alignment` as named panels: the RNN decoder's one attention map."""
    target, weights = rnn_alignment(model, src_ids, bos, eos, max_len)
    return target, {"attention": weights}


def transformer_panels(model, src_ids: list[int], bos: int, eos: int, max_len: int
                       ) -> tuple[list[int], dict[str, Tensor]]:
    """`transformer_alignment` as named panels: every layer's cross-attention heads."""
    target, maps = transformer_alignment(model, src_ids, bos, eos, max_len)  # (L, H, T, S)
    return target, {f"layer {l} head {h}": maps[l, h] for l in range(maps.shape[0]) for h in range(maps.shape[1])}


def plot_source_alignment(model: torch.nn.Module, tokenizer, source: str, path: str | Path, *,
                          align: Callable[..., tuple[list[int], dict[str, Tensor]]], max_len: int = 256) -> Path:
    """Decode `source` greedily and draw its attention maps into the PNG `path`; `align` is the
    family's (`rnn_panels`: the RNN's one map, `transformer_panels`: a grid of every Transformer
    layer's cross-attention heads). Returns the path."""
    from seqlab.data.seq2seq import BOS, EOS
    from seqlab.tokenizers import source_side

    bos, eos = tokenizer.encode(BOS)[0], tokenizer.encode(EOS)[0]
    src_ids = source_side(tokenizer).encode(source)
    target, panels = align(model, src_ids, bos, eos, max_len)
    source_tokens = [source_side(tokenizer).decode([i]) for i in src_ids]
    plot_alignment_grid(panels, source_tokens, [tokenizer.decode([i]) for i in target], path, title=f"{source!r}")
    return Path(path)


def plot_alignment_grid(panels: dict[str, Tensor | np.ndarray], source_tokens: Sequence[str],
                        target_tokens: Sequence[str], path: str | Path, *, title: str = "") -> None:
    """Several (T, S) maps side by side (up to 4 a row), each titled by its key, as one PNG."""
    save_png(alignment_figure(panels, source_tokens, target_tokens, title=title), path)


def alignment_figure(panels: dict[str, Tensor | np.ndarray], source_tokens: Sequence[str],
                     target_tokens: Sequence[str], *, title: str = ""):
    """The figure of `plot_alignment_grid`: the maps, their axes named, and one colour bar (the
    attention weight, 0 to 1) for all of them."""
    T, S = len(target_tokens), len(source_tokens)
    maps = {}
    for name, weights in panels.items():  # every shape checked before a figure is opened
        w = weights.detach().cpu().double().numpy() if isinstance(weights, Tensor) else np.asarray(weights, float)
        if w.shape != (T, S):
            where = f" (map {name!r})" if name else ""
            raise ValueError(f"weights of shape {w.shape}{where} need {w.shape[0]} target and {w.shape[1]} source "
                             f"tokens, got {T} and {S}")
        maps[name] = w
    plt = pyplot()
    from matplotlib.colors import Normalize

    columns = min(4, len(maps))
    rows = -(-len(maps) // columns)
    fig, axes = plt.subplots(rows, columns, squeeze=False, dpi=110, layout="constrained",
                             figsize=(columns * (1.5 + 0.3 * S) + 1.0, rows * (2.5 + 0.3 * T)))  # + the colour bar
    for ax in axes.flat[len(maps):]:
        ax.axis("off")
    scale = Normalize(vmin=0.0, vmax=1.0)  # one scale for every map: one colour bar explains them all
    image = None
    for ax, (name, w) in zip(axes.flat, maps.items()):
        image = ax.imshow(w, cmap="gray", norm=scale, aspect="equal")
        ax.set_xticks(range(S), [_label(s) for s in source_tokens], rotation=90, fontsize=7)
        ax.set_yticks(range(T), [_label(t) for t in target_tokens], fontsize=7)
        ax.xaxis.tick_top()
        ax.xaxis.set_label_position("top")
        ax.set_xlabel("source token (attended to)", fontsize=7)
        ax.set_ylabel("target token (emitted)", fontsize=7)
        ax.set_title(name, fontsize=8)
    fig.suptitle(f"attention alignment: {title}" if title else "attention alignment")
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8).set_label("attention weight (0 to 1)", fontsize=8)
    return fig


def plot_alignment(weights: Tensor | np.ndarray, source_tokens: Sequence[str], target_tokens: Sequence[str],
                   path: str | Path, *, title: str = "") -> None:
    """Write weights (T, S) as a PNG heatmap: rows the target tokens, columns the source tokens."""
    plot_alignment_grid({"": weights}, source_tokens, target_tokens, path, title=title)


def _label(token: str) -> str:
    """A visible tick label: whitespace as escapes (the BOS tab, the EOS newline) or ␣ (a space)."""
    if token and token.strip() == token:
        return token
    return repr(token)[1:-1].replace(" ", "␣") or "∅"


__all__ = ["plot_alignment", "plot_alignment_grid", "plot_source_alignment", "rnn_alignment",
           "transformer_alignment"]
