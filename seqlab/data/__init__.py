"""Data: corpora (registry, files, folders, globs), the train/val split, the token cache, batches.

    corpus = load_corpus("shakespeare")
    data = prepare_tokens(corpus.text, tokenizer, val_fraction=0.1)
    x, y = sample_batch(data.train, batch_size=12, block_size=64, generator=torch.Generator())
"""

from seqlab.data.batches import iter_eval_windows, sample_batch
from seqlab.data.cache import TokenData, encode_cached, prepare_tokens, token_dtype
from seqlab.data.corpus import Corpus, load_corpus, split_text
from seqlab.data.tbptt import TBPTTBatches

__all__ = [
    "Corpus",
    "TBPTTBatches",
    "TokenData",
    "encode_cached",
    "iter_eval_windows",
    "load_corpus",
    "prepare_tokens",
    "sample_batch",
    "split_text",
    "token_dtype",
]
