"""NGramLM (interpolated modified Kneser–Ney) on tiny Shakespeare characters: build time, scoring
chars/s and validation bits per char for orders 3, 5 and 7, against KenLM's `lmplz` on the same split.

The validation text is scored as one stream (no sentence boundaries), each char predicted from up
to order - 1 previous chars, bits/char = -Σ ln p / ln 2 / n_chars: the setting of the KenLM numbers.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from benchmarks.common import print_table, save
from seqlab.data import load_corpus, split_text
from seqlab.models.ngram import NGramLM
from seqlab.tokenizers import train_tokenizer

KENLM_BITS_PER_CHAR = {5: 2.252, 7: 2.188}  # lmplz -o N, modified Kneser-Ney, same split


def _measure(order: int, train: np.ndarray, val: np.ndarray, vocab_size: int,
             repeats: int) -> dict[str, float]:
    builds, rates = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        lm = NGramLM(order, vocab_size).fit(train)
        builds.append(time.perf_counter() - start)
        start = time.perf_counter()
        log_probs = lm.log_probs(val)
        rates.append(len(val) / (time.perf_counter() - start))
    bits = float(-log_probs.sum() / np.log(2) / len(val))
    return {"build_s": statistics.median(builds), "chars_per_s": statistics.median(rates),
            "bits_per_char": bits}


def run(orders: tuple[int, ...] = (3, 5, 7), repeats: int = 3) -> dict:
    text = load_corpus("shakespeare").text
    tokenizer = train_tokenizer("char", text)
    train_text, val_text = split_text(text, 0.1)
    train, val = tokenizer.encode_array(train_text), tokenizer.encode_array(val_text)
    results = {order: _measure(order, train, val, tokenizer.vocab_size, repeats) for order in orders}
    rows = []
    for order, r in results.items():
        kenlm = KENLM_BITS_PER_CHAR.get(order)
        versus = f"{100 * (r['bits_per_char'] / kenlm - 1):+.2f}%" if kenlm else "-"
        rows.append([str(order), f"{r['build_s']:.2f}", f"{r['chars_per_s']:,.0f}",
                     f"{r['bits_per_char']:.4f}", f"{kenlm:.3f}" if kenlm else "-", versus])
    print_table(f"n-gram LM, modified Kneser-Ney, tiny Shakespeare chars ({len(train):,} train / "
                f"{len(val):,} val, median of {repeats})", rows,
                ["order", "build s", "score chars/s", "bits/char", "KenLM", "vs KenLM"])
    payload = {"repeats": repeats, "n_train": len(train), "n_val": len(val),
               "kenlm_bits_per_char": KENLM_BITS_PER_CHAR,
               "results": {str(order): r for order, r in results.items()}}
    save("ngram", payload)
    return payload


if __name__ == "__main__":
    run()
