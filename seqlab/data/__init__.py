"""Data: corpora (registry, files, folders, globs), the train/val split, the token cache, batches.

    corpus = load_corpus("shakespeare")              # files are read in pieces, never whole
    data = prepare_tokens(corpus, tokenizer, val_fraction=0.1)   # ids memory-mapped from the cache
    x, y = sample_batch(data.train, batch_size=12, block_size=64, generator=torch.Generator())
"""

from seqlab.data.batches import Batches, BatchSource, LMBatches, iter_eval_windows, sample_batch
from seqlab.data.cache import (
    TokenData,
    encode_cached,
    encode_pieces,
    prepare_tokens,
    token_dtype,
)
from seqlab.data.corpus import Corpus, TextSpan, load_corpus, split_corpus, split_text
from seqlab.data.lines import LineBatches, LineData, iter_line_batches, line_nats, prepare_lines, split_lines
from seqlab.data.tbptt import TBPTTBatches

__all__ = [
    "BatchSource",
    "Batches",
    "LMBatches",
    "LineBatches",
    "LineData",
    "Corpus",
    "TBPTTBatches",
    "TextSpan",
    "TokenData",
    "encode_cached",
    "encode_pieces",
    "iter_eval_windows",
    "iter_line_batches",
    "line_nats",
    "load_corpus",
    "prepare_lines",
    "prepare_tokens",
    "sample_batch",
    "split_corpus",
    "split_lines",
    "split_text",
    "token_dtype",
]
