"""WaveNet (van den Oord et al. 2016): causal dilated convolutions with gated units, residual and
skip connections, decoded incrementally with a queue of past inputs per layer."""

from __future__ import annotations

from contextlib import ExitStack

import torch
from torch import Tensor

from seqlab.data import LMBatches
from seqlab.families.base import Family, Shorthand
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
)
