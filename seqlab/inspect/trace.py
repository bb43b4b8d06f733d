"""Tracing: what every family of the ladder computes inside, recorded over one text.

    with tracing(model) as recorder:        # forward hooks, removed on exit (even on error)
        model(ids)                          # any forward; recorder.attention(), .activations() ...
    t = trace(model, ids)                   # a `Trace`: all of it, plus the next-token distributions

`tracing` installs forward hooks on the layers of `seqlab.nn` and `seqlab.models` it finds (never on a
model class: a family's probes are chosen by its registry entry, `Family.traced`), records what
they compute during the block and stores nothing on the modules. Each probe is named:

| probe | records | from |
|---|---|---|
| `attention` | weights (layers, heads, T, S) under "self" (causal), "encoder" (bidirectional), "cross" | every `SelfAttention` / `CrossAttention` of a Transformer block, asked for its weights, so the fused SDPA kernel is swapped for the explicit softmax(QKᵀ/√Dh + bias + mask) inside the block only; any position scheme (the bias and rotation are the layer's own); grouped/multi-query keys already repeated to every query head. An RNN decoder's source attention is one layer of one head. |
| `states` | "layer{l}.hidden" (and "layer{l}.cell" for an LSTM) (T, D·H) | every recurrent stack (`seqlab.nn.RNN/GRU/LSTM/GatedRNN`): the cell equations rerun layer by layer on the hook's inputs, since the fused kernel returns only the top layer |
| `neurons` | "layer{i}.mlp" (T, F) the MLP neurons of a Transformer block (the input of its down projection, so gated MLPs included); "layer{i}.hidden" an MLP language model's hidden layer; "layer{i}.gate" WaveNet's gated units tanh(f)·σ(g) | |
| `residual` | "resid.{i}" (T, D) the residual stream entering block i ("resid.{L}" leaving the last); WaveNet's "layer{i}.residual" | |
| `router` | "probs" (layers, T, E) and "experts" (layers, T, k) of each mixture-of-experts layer | the router's logits |
| `trellis` | `Trace.hmm`: "posteriors" (T, K) P(z_t = k given the whole text), "viterbi" (T,) the most probable path | `HMM.posteriors`, `HMM.viterbi` |
| `backoff` | `Trace.ngram`: "order" (T,) the longest k-gram seen in training, "weights" (T, n + 1) each order's weight in the interpolation, "share" (T, n + 1) each order's part of the token's probability | `NGramLM.interpolation` |

Names inside an encoder–decoder are prefixed with the part ("encoder.", "decoder."). Sequences
other than the target (an encoder's source) are S long instead of T.

`trace` adds, for every family, the next-token log-probabilities after each prefix and each
token's surprisal in bits: from one forward for a module (checked by the tests against the model's
`step`), from the contract's `step` for the counted models.

Dimensions: T tokens · S source tokens · V vocab · L layers · H heads · D width · K HMM states · E experts.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from seqlab.models.contract import model_device
from seqlab.models.mlp import HiddenLayer
from seqlab.models.wavenet import GatedResidualLayer
from seqlab.nn.attention import AttentionInputs, CrossAttention, SelfAttention
from seqlab.nn.block import Block
from seqlab.nn.recurrent import _StackedRecurrent
from seqlab.nn.rnn_attention import SourceAttention

PROBES = ("attention", "states", "neurons", "residual", "router", "trellis", "backoff")


@dataclass
class Trace:
    """What `trace` recorded over one text (see the module docstring for every key)."""

    tokens: list[int]
    log_probs: Tensor  # (T, V) float32: log p(next token | tokens[: t + 1])
    surprisal: Tensor  # (T,) bits: -log2 p(tokens[t] | tokens[:t]); nan at t = 0
    attention: dict[str, Tensor] = field(default_factory=dict)  # kind -> (L, H, T, S)
    activations: dict[str, Tensor] = field(default_factory=dict)  # name -> (T, U)
    hmm: dict[str, Tensor] = field(default_factory=dict)
    ngram: dict[str, Tensor] = field(default_factory=dict)
    router: dict[str, Tensor] = field(default_factory=dict)
    source: list[int] | None = None  # a seq2seq model's source ids

    def to_json(self, top_k: int = 10) -> dict:
        """JSON-safe lists: the top `top_k` next tokens (ids, probabilities) per position instead of
        the whole vocabulary, weights rounded to 4 decimals, nan as None."""
        k = min(top_k, self.log_probs.shape[-1])
        top = self.log_probs.exp().topk(k, dim=-1)  # (T, k)
        return {
            "tokens": list(self.tokens), "source": self.source,
            "top_ids": top.indices.tolist(), "top_probs": _rounded(top.values, 4),
            "surprisal": _rounded(self.surprisal, 4),
            "attention": {name: _rounded(w, 4) for name, w in self.attention.items()},
            "activations": {name: _rounded(a, 4) for name, a in self.activations.items()},
            "hmm": {name: _rounded(v, 4) for name, v in self.hmm.items()},
            "ngram": {name: _rounded(v, 4) for name, v in self.ngram.items()},
            "router": {name: _rounded(v, 4) for name, v in self.router.items()},
        }


def _rounded(x: Tensor, digits: int) -> list:
    """A tensor as nested lists, floats rounded, nan and inf as None (JSON has neither)."""
    if not x.is_floating_point():
        return x.tolist()
    a = np.round(x.detach().double().cpu().numpy(), digits)
    return np.where(np.isfinite(a), a, None).tolist() if a.ndim else (float(a) if np.isfinite(a) else None)


class Recorder:
    """What the hooks of `tracing` write, one list of pieces per name; assembled on demand."""

    def __init__(self) -> None:
        self.pieces: dict[tuple[str, ...], list[Tensor]] = defaultdict(list)

    def add(self, key: tuple[str, ...], value: Tensor) -> None:
        self.pieces[key].append(value.detach().float().cpu())

    def _joined(self, key: tuple[str, ...], dim: int) -> Tensor:
        return torch.cat(self.pieces[key], dim=dim)  # pieces of a step-by-step decoder, in time order

    def attention(self) -> dict[str, Tensor]:
        """kind -> (L, H, T, S): every layer's weights of the first sequence of the batch."""
        layers: dict[str, dict[int, Tensor]] = defaultdict(dict)
        for key in self.pieces:
            if key[0] == "attention":
                layers[key[1]][int(key[2])] = self._joined(key, dim=-2)[0]  # (H, T, S)
        return {kind: torch.stack([by_layer[i] for i in sorted(by_layer)]) for kind, by_layer in layers.items()}

    def activations(self) -> dict[str, Tensor]:
        """name -> (T, U) of the first sequence of the batch."""
        return {key[1]: self._joined(key, dim=1)[0] for key in self.pieces if key[0] == "activation"}

    def router(self) -> dict[str, Tensor]:
        keys = sorted((k for k in self.pieces if k[0] == "router"), key=lambda k: int(k[1]))
        if not keys:
            return {}
        probs = torch.stack([self._joined(k, dim=0) for k in keys])  # (L, N, E), N = B·T
        top_k = int(keys[0][2])
        return {"probs": probs, "experts": probs.topk(top_k, dim=-1).indices}


@contextmanager
def tracing(model: object, probes: Sequence[str] = PROBES) -> Iterator[Recorder]:
    """Forward hooks for `probes` on the layers of `model` while the block runs; yields the
    `Recorder` they write into. The hooks are removed on exit, also when the block raises."""
    unknown = set(probes) - set(PROBES)
    if unknown:
        raise ValueError(f"unknown probe(s) {sorted(unknown)}: expected some of {', '.join(PROBES)}")
    recorder = Recorder()
    with ExitStack() as stack:
        if isinstance(model, nn.Module):
            for name in probes:
                for handle in _INSTALLERS.get(name, _none)(model, recorder):
                    stack.callback(handle.remove)
        yield recorder


def _none(model: nn.Module, recorder: Recorder) -> list:
    return []


# ---- the hook-based probes ----------------------------------------------------------------------

def _block_lists(model: nn.Module) -> Iterator[tuple[str, nn.ModuleList]]:
    """(prefix, blocks) for every list of Transformer blocks: prefix "" for a model's own, else the
    owner's path and a dot ("encoder.")."""
    for path, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) and all(isinstance(b, Block) for b in module):
            owner = path.rpartition(".")[0]
            yield (owner + "." if owner else ""), module


def _is_causal(inputs: AttentionInputs, n_query: int, n_key: int) -> bool:
    """Whether the attention's own mask forbids every key after its query (queries are the last
    n_query of n_key positions)."""
    if inputs.mask is None:
        return inputs.causal
    later = torch.ones(n_query, n_key, dtype=torch.bool, device=inputs.mask.device).triu(n_key - n_query + 1)
    if not later.any():
        return True
    mask = inputs.mask.expand(*inputs.mask.shape[:-2], n_query, n_key)
    return bool((mask[..., later] <= torch.finfo(mask.dtype).min / 2).all())


def _attention_hooks(model: nn.Module, recorder: Recorder) -> list:
    handles = []

    def ask_weights(module, args, kwargs):  # the explicit path, which returns the weights
        return args, {**kwargs, "need_weights": True}

    for prefix, blocks in _block_lists(model):
        for i, block in enumerate(blocks):
            for attn in (block.attn, getattr(block, "cross_attn", None)):
                if not isinstance(attn, (SelfAttention, CrossAttention)):
                    continue

                def keep(module, args, kwargs, output, i=i):
                    weights = output[1]  # (B, H, T, S)
                    if isinstance(module, CrossAttention):
                        kind = "cross"
                    else:
                        causal = _is_causal(args[1] if len(args) > 1 else kwargs["inputs"], *weights.shape[-2:])
                        kind = "self" if causal else "encoder"
                    recorder.add(("attention", kind, str(i)), weights)
                handles.append(attn.register_forward_pre_hook(ask_weights, with_kwargs=True))
                handles.append(attn.register_forward_hook(keep, with_kwargs=True))
    for module in model.modules():
        if isinstance(module, SourceAttention):  # an RNN decoder's attention over its source
            def keep_source(module, args, output):
                weights = output[1]  # (B, S) for one query, or (B, T, S)
                rows = weights[:, None, None] if weights.dim() == 2 else weights[:, None]  # (B, 1, T, S)
                recorder.add(("attention", "cross", "0"), rows)
            handles.append(module.register_forward_hook(keep_source))
    return handles


def _residual_hooks(model: nn.Module, recorder: Recorder) -> list:
    handles = []
    for prefix, blocks in _block_lists(model):
        for i, block in enumerate(blocks):
            handles.append(block.register_forward_pre_hook(
                lambda m, args, name=f"{prefix}resid.{i}": recorder.add(("activation", name), args[0])))
        handles.append(blocks[-1].register_forward_hook(
            lambda m, args, out, name=f"{prefix}resid.{len(blocks)}": recorder.add(("activation", name), out)))
    for path, module in model.named_modules():
        if isinstance(module, GatedResidualLayer):
            name = f"layer{path.rpartition('.')[2]}.residual"
            handles.append(module.register_forward_hook(
                lambda m, args, out, name=name: recorder.add(("activation", name), out[0].transpose(1, 2))))
    return handles


def _neuron_hooks(model: nn.Module, recorder: Recorder) -> list:
    handles = []
    for prefix, blocks in _block_lists(model):
        for i, block in enumerate(blocks):
            down = getattr(block.mlp, "down", None)
            if isinstance(down, nn.Module):  # a dense MLP: its neurons are what `down` reads
                handles.append(down.register_forward_pre_hook(
                    lambda m, args, name=f"{prefix}layer{i}.mlp": recorder.add(("activation", name), args[0])))
    for path, module in model.named_modules():
        index = path.rpartition(".")[2]
        if isinstance(module, HiddenLayer):
            handles.append(module.register_forward_hook(
                lambda m, args, out, name=f"layer{index}.hidden": recorder.add(("activation", name), out)))
        elif isinstance(module, GatedResidualLayer):  # the gated units z = tanh(f)·σ(g), read by `skip`
            handles.append(module.skip.register_forward_pre_hook(
                lambda m, args, name=f"layer{index}.gate": recorder.add(("activation", name),
                                                                         args[0].transpose(1, 2))))
    return handles


def _router_hooks(model: nn.Module, recorder: Recorder) -> list:
    handles = []
    for _, blocks in _block_lists(model):
        for i, block in enumerate(blocks):
            router, top_k = getattr(block.mlp, "router", None), getattr(block.mlp, "top_k", None)
            if isinstance(router, nn.Module) and top_k:
                handles.append(router.register_forward_hook(
                    lambda m, args, out, key=("router", str(i), str(top_k)):
                        recorder.add(key, torch.softmax(out.float(), dim=-1))))  # (N, E)
    return handles


def _state_hooks(model: nn.Module, recorder: Recorder) -> list:
    handles = []
    for path, module in model.named_modules():
        if isinstance(module, _StackedRecurrent):
            owner = path.removesuffix("rnn").rstrip(".")  # RNNLM's `rnn` → "", a decoder's `decoder.rnn` → "decoder"
            prefix = owner + "." if owner else ""

            def keep(stack, args, kwargs, output, prefix=prefix):
                x = args[0]
                hx = args[1] if len(args) > 1 else kwargs.get("hx")
                for name, value in layer_states(stack, x, hx).items():
                    recorder.add(("activation", prefix + name), value)
            handles.append(module.register_forward_hook(keep, with_kwargs=True))
    return handles


def layer_states(stack: _StackedRecurrent, x: Tensor, hx=None) -> dict[str, Tensor]:
    """Every layer's hidden (and cell) state at every step, the cell equations of `seqlab.nn.cells`
    rerun on the stack's input x ((B, T, F) batch-first, else (T, B, F)) from hx: "layer{l}.hidden"
    (B, T, D·H), directions side by side, and "layer{l}.cell" for an LSTM. The top layer's hidden
    state is the stack's output (tests check it)."""
    if x.dim() == 2:  # unbatched
        x = x.unsqueeze(0 if stack.batch_first else 1)
        hx = None if hx is None else tuple(s.unsqueeze(1) for s in (hx if isinstance(hx, tuple) else (hx,)))
    seq = x.transpose(0, 1) if stack.batch_first else x  # (T, B, F)
    state = stack._initial_state(hx, seq)
    out: dict[str, Tensor] = {}
    layer_input, weights = seq, stack._flat_weights()  # eval mode: the weights as they are
    for layer in range(stack.num_layers):
        per_direction: list[list[Tensor]] = []
        for direction in range(stack.num_directions):
            index = layer * stack.num_directions + direction
            inputs, step = stack._stepper(layer_input, stack._weights(weights, index), fast=False)
            s = tuple(part[index] for part in state)
            steps: list[tuple[Tensor, ...]] = [()] * inputs.shape[0]
            for t in (range(inputs.shape[0] - 1, -1, -1) if direction else range(inputs.shape[0])):
                s = step(inputs[t], s)
                steps[t] = s
            per_direction.append([torch.stack([st[k] for st in steps]) for k in range(len(s))])  # (T, B, H) each
        parts = [torch.cat([d[k] for d in per_direction], dim=-1) for k in range(len(per_direction[0]))]
        out[f"layer{layer}.hidden"] = parts[0].transpose(0, 1)  # (B, T, D·H)
        if len(parts) > 1:
            out[f"layer{layer}.cell"] = parts[1].transpose(0, 1)
        layer_input = parts[0]  # eval mode: no dropout between layers
    return out


_INSTALLERS = {"attention": _attention_hooks, "states": _state_hooks, "neurons": _neuron_hooks,
               "residual": _residual_hooks, "router": _router_hooks}


# ---- the computed probes (counted models) ---------------------------------------------------------

def _hmm_probe(model, ids: list[int]) -> dict[str, Tensor]:
    if not (hasattr(model, "posteriors") and hasattr(model, "viterbi")):
        return {}
    x = np.asarray(ids, dtype=np.int64)
    path, _ = model.viterbi(x)
    return {"posteriors": torch.from_numpy(np.asarray(model.posteriors(x))).float(),
            "viterbi": torch.from_numpy(np.asarray(path, dtype=np.int64))}


def _ngram_probe(model, ids: list[int]) -> dict[str, Tensor]:
    if not hasattr(model, "interpolation"):
        return {}
    order, weights, share = model.interpolation(np.asarray(ids, dtype=np.int64))
    return {"order": torch.from_numpy(order), "weights": torch.from_numpy(weights).float(),
            "share": torch.from_numpy(share).float()}


_COMPUTED = {"trellis": ("hmm", _hmm_probe), "backoff": ("ngram", _ngram_probe)}  # probe -> (Trace field, how)


# ---- the whole trace ----------------------------------------------------------------------------

def trace(model, tokens: Sequence[int] | Tensor, *, source: Sequence[int] | Tensor | None = None,
          probes: Sequence[str] = PROBES) -> Trace:
    """Run `model` once over `tokens` (ids, (T,)) and record `probes` (default: all that apply) and
    the next-token distributions. `source`: a seq2seq model's source ids; `tokens` are then the
    decoder's input (starting with its BOS token). The model is put in eval mode for the trace and
    restored after."""
    ids = [int(i) for i in (tokens.tolist() if isinstance(tokens, Tensor) else tokens)]
    if not ids:
        raise ValueError("no tokens to trace")
    limit = getattr(model, "block_size", None)
    if source is None and limit is not None and len(ids) > limit:
        raise ValueError(f"{len(ids)} tokens, but the model places at most {limit}; trace a shorter text")
    was_training = getattr(model, "training", False)
    if isinstance(model, nn.Module):
        model.eval()
    try:
        with torch.inference_mode(), tracing(model, probes) as recorder:
            logits = _next_token_logits(model, ids, source)
        result = Trace(tokens=ids, log_probs=torch.log_softmax(logits.float(), dim=-1).cpu(),
                       surprisal=torch.empty(0), source=None if source is None else [int(i) for i in source])
        if isinstance(model, nn.Module):
            result.attention, result.activations = recorder.attention(), recorder.activations()
            result.router = recorder.router()
    finally:
        if isinstance(model, nn.Module):
            model.train(was_training)
    for name in probes:  # the counted models' probes read the model's own methods
        if name in _COMPUTED:
            field_name, probe = _COMPUTED[name]
            setattr(result, field_name, probe(model, ids))
    chosen = result.log_probs[:-1].gather(-1, torch.tensor(ids[1:])[:, None])[:, 0]  # (T - 1,)
    result.surprisal = torch.cat([torch.tensor([math.nan]), -chosen / math.log(2)])
    return result


def _next_token_logits(model, ids: list[int], source) -> Tensor:
    """(T, V): one forward of a module (a seq2seq one teacher-forced on `source`), else the
    contract's `step` token by token with the state carried."""
    device = model_device(model)
    idx = torch.tensor([ids], device=device)  # (1, T)
    if source is not None:
        src = torch.as_tensor(list(source), dtype=torch.long, device=device)[None]  # (1, S)
        return model(src, idx)[0][0]
    if isinstance(model, nn.Module):
        return model(idx)[0][0]
    state = model.new_state(1, device)
    rows = []
    for t in range(len(ids)):
        logits, state = model.step(idx[:, t:t + 1], state)  # (1, V)
        rows.append(logits[0].float())
    return torch.stack(rows)


__all__ = ["PROBES", "Recorder", "Trace", "layer_states", "trace", "tracing"]
