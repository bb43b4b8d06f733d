"""WaveNet (van den Oord et al. 2016): causal dilated convolutions with gated units, residual and
skip connections, decoded incrementally with a queue of past inputs per layer."""

from __future__ import annotations

from contextlib import ExitStack

import torch
from torch import Tensor

from seqlab.data import LMBatches
from seqlab.families.base import Family, HiddenStates, Shorthand
from seqlab.families.common import score_sliding
from seqlab.models.wavenet import WaveNetConfig, WaveNetLM


@torch.inference_mode()
def residual_units(model: WaveNetLM, ids: Tensor) -> dict[str, Tensor]:
    """Each layer's residual output over ids (1, T), (T, R), recorded through forward hooks."""
    outputs: dict[str, Tensor] = {}
    with ExitStack() as stack:
        for i, layer in enumerate(model.layers):
            def hook(_module, _args, output, name=f"layers.{i} residual"):
                outputs[name] = output[0][0].transpose(0, 1).float().cpu()  # (B, R, T) -> (T, R)
            stack.callback(layer.register_forward_hook(hook).remove)
        model(ids)
    return outputs


def wavenet_states(model: WaveNetLM, x: Tensor, mask: Tensor, both_ways: bool) -> Tensor:
    """x (B, T, E) → the output stack's hidden layer, relu(hidden(relu(Σ skips))), (B, T, S): what
    its last 1×1 convolution turns into logits. Causal: positions before the start read zeros."""
    x = model.input_conv(x.transpose(1, 2))  # (B, R, T)
    skips = 0
    for layer in model.layers:
        x, skip = layer(x)  # (B, R, T), (B, S, T)
        skips = skips + skip
    hidden = torch.relu(model.head.hidden(torch.relu(skips)))  # (B, S, T)
    return hidden.transpose(1, 2)  # (B, T, S)


WAVENET = Family(
    name="wavenet",
    summary="WaveNet (van den Oord et al. 2016): causal dilated convolutions, gated units, skip connections",
    settings=WaveNetConfig,
    build=lambda settings, vocab, _source: WaveNetLM(settings, vocab),
    batches=lambda config, data: LMBatches(data, config.train.batch_size, config.model.block_size),
    score=score_sliding,
    line_padding=lambda settings: settings.receptive_field - 1,  # a whole receptive field at every prediction
    units=residual_units,
    traced=("neurons", "residual"),
    context_option=False,
    shorthand=(Shorthand("wavenet", "shakespeare-char-wavenet", "d_residual"),),
    hidden=HiddenStates(read=wavenet_states, embed_width=lambda settings: settings.d_embed,
                        width=lambda settings: settings.d_skip),
)
