"""Mamba (Gu & Dao 2023): selective state spaces, trained in parallel over a window with the state
carried between windows (truncated BPTT, as the recurrent families), decoded one token at a time
at a constant cost."""

from __future__ import annotations

from contextlib import ExitStack

import torch
from torch import Tensor

from seqlab.data import TBPTTBatches
from seqlab.families.base import Family, HiddenStates, Shorthand
from seqlab.families.common import score_carried
from seqlab.models.mamba import MambaConfig, MambaLM


@torch.inference_mode()
def residual_units(model: MambaLM, ids: Tensor) -> dict[str, Tensor]:
    """Each block's output, the residual stream after it, over ids (1, T): (T, D) each, recorded
    through forward hooks."""
    outputs: dict[str, Tensor] = {}
    with ExitStack() as stack:
        for i, layer in enumerate(model.layers):
            def hook(_module, _args, output, name=f"layers.{i} residual"):
                outputs[name] = output[0][0].float().cpu()  # (x (B, T, D), state) -> (T, D)
            stack.callback(layer.register_forward_hook(hook).remove)
        model(ids)
    return outputs


def mamba_states(model: MambaLM, x: Tensor, mask: Tensor, both_ways: bool) -> Tensor:
    """x (B, T, D) → the final-norm residual stream (B, T, D), from the zero state."""
    for layer in model.layers:
        x = layer(x)[0]  # (x (B, T, D), state)
    return model.norm_f(x)


MAMBA = Family(
    name="mamba",
    summary="Mamba (Gu & Dao 2023): selective state-space blocks, a chunked parallel scan, constant-cost decoding",
    settings=MambaConfig,
    build=lambda settings, vocab, _source: MambaLM(settings, vocab),
    # Consecutive windows of parallel streams, the SSM and convolution state carried between them.
    batches=lambda config, data: TBPTTBatches(data, config.train.batch_size, config.model.block_size,
                                              shift=config.data.shift_streams),
    score=score_carried,
    units=residual_units,
    exports_hf=True,
    shorthand=(Shorthand("mamba", "mamba", "d_model"),),
    hidden=HiddenStates(read=mamba_states, embed_width=lambda settings: settings.d_model,
                        width=lambda settings: settings.d_model),
)
