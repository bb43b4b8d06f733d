"""Neuron activations over a text, as a self-contained HTML page (Karpathy, Johnson & Fei-Fei 2015,
"Visualizing and Understanding Recurrent Networks"; the char-rnn "cell that tracks quotes").

`trace_neurons` runs a model once over a text and records, at every position,
  - the activation of every hidden unit of each traced layer: the hidden state of a recurrent
    layer (`seqlab.nn.RNN/GRU/LSTM/GatedRNN`), or the MLP neurons (after the nonlinearity) of each
    Transformer block;
  - the model's top next-token predictions and their probabilities.
Activations are captured with forward hooks inside a context manager, so nothing is stored on the
model (STYLE.md, habit 8).

`neuron_page` writes the page: the text with each character's background coloured by the chosen
unit's activation (blue negative, red positive, scaled by the unit's largest magnitude), a layer
picker, a unit slider with previous/next buttons, units ordered by how much they vary, and on hover
the top predictions at that position. Everything (data, style, script) is inline: the page opens
offline from the file.

Dimensions: T positions · U units of a layer · K top predictions.
"""

from __future__ import annotations

import html
import json
import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch
from torch import Tensor, nn

from seqlab.models.contract import model_device
from seqlab.nn.recurrent import _StackedRecurrent
from seqlab.tokenizers import Tokenizer


@dataclass
class NeuronTrace:
    """What `trace_neurons` recorded for one text."""

    tokens: list[str]  # the text of each position's token
    layers: dict[str, Tensor] = field(default_factory=dict)  # layer name → activations (T, U)
    top_tokens: list[list[str]] = field(default_factory=list)  # (T, K): the likeliest next tokens
    top_probs: list[list[float]] = field(default_factory=list)  # (T, K)


def traced_modules(model: nn.Module) -> dict[str, nn.Module]:
    """The modules whose outputs are the model's hidden units, by readable name."""
    found: dict[str, nn.Module] = {}
    for name, module in model.named_modules():
        if isinstance(module, _StackedRecurrent):
            found[f"{name} hidden state"] = module
        elif name.endswith(".activation"):  # a Transformer's MLP, an MLP language model's hidden layers
            found[f"{name.removesuffix('.activation')} neurons"] = module
    return found


@contextmanager
def _recording(modules: dict[str, nn.Module]) -> Iterator[dict[str, Tensor]]:
    """Forward hooks that store each module's (first) output under its name while the block runs."""
    outputs: dict[str, Tensor] = {}
    handles = []
    for name, module in modules.items():
        def hook(module: nn.Module, args: tuple, output, name: str = name) -> None:
            out = output[0] if isinstance(output, tuple) else output
            if isinstance(module, _StackedRecurrent) and not module.batch_first:
                out = out.transpose(0, 1)  # (T, B, U) → (B, T, U)
            outputs[name] = out.detach()
        handles.append(module.register_forward_hook(hook))
    try:
        yield outputs
    finally:
        for handle in handles:
            handle.remove()


def hooked_units(model: nn.Module, ids: Tensor) -> dict[str, Tensor]:
    """The hidden units of `model` over ids (1, T), by layer name, (T, U) each: the outputs of the
    modules `traced_modules` finds, recorded through forward hooks during one forward."""
    modules = traced_modules(model)
    if not modules:
        return {}
    with _recording(modules) as outputs:
        model(ids)
    return {name: out[0].float().cpu() for name, out in outputs.items()}


@torch.inference_mode()
def next_token_logits(model, ids: Tensor) -> Tensor:
    """The model's next-token logits after every prefix of ids (1, T), (T, V), through the model
    contract: one step per token with the state carried (so any family's model serves)."""
    state = model.new_state(1, ids.device)
    rows = []
    for t in range(ids.shape[1]):
        logits, state = model.step(ids[:, t:t + 1], state)  # (1, V)
        rows.append(logits[0].float())
    return torch.stack(rows)  # (T, V)


@torch.inference_mode()
def trace_neurons(model, tokenizer: Tokenizer, text: str, *, top_k: int = 5,
                  units: Callable[[object, Tensor], dict[str, Tensor]] = hooked_units) -> NeuronTrace:
    """Run `model` over `text` and record the units `units` finds (named activations (T, U); a
    family's registry entry says which) and the top next-token predictions at each position."""
    ids = tokenizer.encode(text)
    if not ids:
        raise ValueError("the text is empty: nothing to inspect")
    limit = model.block_size
    if limit is not None and len(ids) > limit:
        raise ValueError(f"the text has {len(ids)} tokens but the model places at most {limit}; "
                         f"inspect a shorter text")
    if hasattr(model, "eval"):
        model.eval()
    idx = torch.tensor([ids], device=model_device(model))
    layers = units(model, idx)
    log_probs = torch.log_softmax(next_token_logits(model, idx).cpu(), dim=-1)  # (T, V)
    probs = log_probs.exp()
    top = probs.topk(min(top_k, probs.shape[-1]), dim=-1)  # (T, K)
    names = tokenizer.token_strings()
    # Each token's surprisal, -log2 p(token | the tokens before it); the first has no prediction.
    surprisal = -log_probs[:-1].gather(-1, torch.tensor(ids[1:])[:, None]) / math.log(2)  # (T-1, 1)
    return NeuronTrace(
        tokens=[tokenizer.decode([i]) for i in ids],
        layers={"surprisal (bits)": torch.cat([torch.zeros(1, 1), surprisal]), **layers},
        top_tokens=[[names[i] for i in row] for row in top.indices.tolist()],
        top_probs=[[round(p, 4) for p in row] for row in top.values.tolist()],
    )


def _page_data(trace: NeuronTrace) -> dict:
    layers = []
    for name, acts in trace.layers.items():
        order = acts.std(dim=0).argsort(descending=True).tolist()  # the most varying units first
        scale = acts.abs().amax(dim=0).clamp(min=1e-8)  # (U,): each unit coloured on its own range
        layers.append({"name": name, "order": order, "scale": [round(s, 4) for s in scale.tolist()],
                       # (U, T), rounded: the page's size is dominated by these numbers
                       "acts": [[round(a, 3) for a in unit] for unit in acts.T.tolist()]})
    return {"tokens": trace.tokens, "layers": layers, "top_tokens": trace.top_tokens, "top_probs": trace.top_probs}


def neuron_page(trace: NeuronTrace, *, title: str = "seqlab inspect") -> str:
    """The self-contained HTML page for a trace."""
    data = json.dumps(_page_data(trace), ensure_ascii=False).replace("</", "<\\/")  # safe inside <script>
    return _TEMPLATE.replace("{{TITLE}}", html.escape(title)).replace("{{DATA}}", data)


_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{TITLE}}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5em; max-width: 70em; }
#controls { display: flex; gap: 1em; align-items: center; flex-wrap: wrap; margin-bottom: 1em; }
#text { font-family: ui-monospace, monospace; white-space: pre-wrap; line-height: 1.6; font-size: 15px; }
#text span { border-radius: 2px; }
/* The hover panel stays in view however long the text: fixed at the window's lower right, with room
   kept below the text so that it never covers the last lines. */
body { padding-bottom: 12em; }
#info { font-family: ui-monospace, monospace; position: fixed; right: 1em; bottom: 1em; z-index: 10;
        width: 26em; max-height: 40vh; overflow: auto; padding: .5em; background: #f6f6f6f0;
        border: 1px solid #ccc; border-radius: 4px; white-space: pre; box-shadow: 0 2px 8px #0002; }
#legend { display: flex; gap: .5em; align-items: center; margin-bottom: .8em; font-size: 13px; }
#legend .bar { width: 14em; height: .9em; border: 1px solid #ccc;
               background: linear-gradient(to right, rgb(0,0,255), rgb(255,255,255), rgb(255,0,0)); }
</style></head><body>
<h2>{{TITLE}}</h2>
<div id="controls">
  <label>layer <select id="layer"></select></label>
  <button id="prev">&larr;</button>
  <label>unit rank <input id="rank" type="range" min="0" value="0"></label>
  <button id="next">&rarr;</button>
  <span id="unit"></span>
</div>
<div id="legend"><span>colour: the unit's activation</span><span id="low"></span><span class="bar"></span>
  <span id="high"></span><span>(blue negative, white 0, red positive; each unit on its own range)</span></div>
<div id="text"></div>
<div id="info">hover a character: its activation and the model's top next-character predictions</div>
<script>
const DATA = {{DATA}};
const layerSel = document.getElementById("layer"), rank = document.getElementById("rank");
const textDiv = document.getElementById("text"), info = document.getElementById("info");
DATA.layers.forEach((l, i) => layerSel.add(new Option(l.name + " (" + l.order.length + " units)", i)));
const spans = DATA.tokens.map((tok, t) => {
  const s = document.createElement("span");
  s.textContent = tok;
  s.onmouseenter = () => show(t);
  textDiv.appendChild(s);
  return s;
});
function current() { const l = DATA.layers[layerSel.value]; return [l, l.order[rank.value]]; }
function colour(a) {  // a in [-1, 1]: blue for negative, red for positive
  const v = Math.round(255 * (1 - Math.abs(a)));
  return a >= 0 ? `rgb(255,${v},${v})` : `rgb(${v},${v},255)`;
}
function draw() {
  const [l, u] = current();
  rank.max = l.order.length - 1;
  document.getElementById("unit").textContent = `unit ${u} (rank ${rank.value} by variation)`;
  spans.forEach((s, t) => { s.style.background = colour(l.acts[u][t] / l.scale[u]); });
  document.getElementById("low").textContent = (-l.scale[u]).toPrecision(3);
  document.getElementById("high").textContent = "+" + l.scale[u].toPrecision(3);
}
function show(t) {
  const [l, u] = current();
  const rows = DATA.top_tokens[t].map((tok, k) =>
    `${JSON.stringify(tok).padEnd(12)} ${(100 * DATA.top_probs[t][k]).toFixed(1).padStart(5)}%`);
  info.textContent = `position ${t} ${JSON.stringify(DATA.tokens[t])}: unit ${u} = ${l.acts[u][t]}\\n` +
    "next-token predictions:\\n" + rows.join("\\n");
}
layerSel.onchange = () => { rank.value = 0; draw(); };
rank.oninput = draw;
document.getElementById("prev").onclick = () => { rank.value = Math.max(0, +rank.value - 1); draw(); };
document.getElementById("next").onclick = () => { rank.value = Math.min(+rank.max, +rank.value + 1); draw(); };
draw();
</script></body></html>
"""
