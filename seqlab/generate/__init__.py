"""Generation: sampling filters and one autoregressive loop for every model family."""

from seqlab.generate.sampling import (
    Stepper,
    filter_logits,
    generate,
    iter_generate,
    sample_next,
)
from seqlab.generate.stream import TextStream

__all__ = ["Stepper", "TextStream", "filter_logits", "generate", "iter_generate", "sample_next"]
