"""`make bench`: every benchmark, side by side with its reference; tables printed, JSON saved in
benchmarks/results/."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import (
    bench_hf_generate,
    bench_hmm,
    bench_inspect,
    bench_mamba,
    bench_nanogpt,
    bench_ngram,
    bench_rnn,
    bench_sample,
    bench_scaling,
    bench_serve,
    bench_train,
    bench_wavenet,
    bench_word2vec,
)
from benchmarks.common import RESULTS, machine_line


def main() -> None:
    print(f"machine: {machine_line()}")
    train = bench_train.run()
    bench_nanogpt.run()  # only with NANOGPT=path: nanoGPT's own train.py beside the preset
    sample = bench_sample.run()
    hf_generate = bench_hf_generate.run()
    scaling = bench_scaling.run()  # a few minutes (Mamba and n = 4096 included); also writes scaling.png
    rnn = bench_rnn.run()
    wavenet = bench_wavenet.run()
    mamba = bench_mamba.run()  # Mamba vs the same-size Transformer, training tokens/s
    bench_ngram.run()
    bench_serve.run()  # the browser part skips, saying so, without Chromium
    bench_inspect.run()  # the 512-token, 16-head inspect page in Chromium (sizes only without it)
    word2vec = bench_word2vec.run()  # about 10 minutes: gensim, seqlab and GloVe trained 3 times each
    bench_hmm.run()  # last and longest: hmmlearn's log-space fit alone takes minutes
    print(f"\ntraining: seqlab / nanogpt-style = {train['ratio_seqlab_vs_reference']:.2f}x; "
          f"sampling (1 thread): KV cache / recompute = {sample['cache_speedup']:.2f}x, "
          f"/ nanogpt-style = {sample['cache_vs_nanogpt_style']:.2f}x; "
          f"greedy generation: seqlab / transformers = {hf_generate['ratio_seqlab_vs_hf']:.2f}x; "
          f"LSTM training: seqlab / torch.nn = {rnn['ratio_seqlab_vs_torch']:.2f}x "
          f"({rnn['ratio_seqlab_vs_torch_with_dropout']:.2f}x with dropout); "
          f"decoding at context {scaling['lengths'][-1]}: KV cache / recompute = "
          f"{scaling['cache_speedup_at_longest']:.0f}x; WaveNet decoding: queues / recompute = "
          f"{wavenet['cache_speedup']:.1f}x; Mamba / Transformer training tokens/s = "
          f"{mamba['ratio_mamba_vs_transformer']:.2f}x (bar >= 0.5x); Mamba decode time/token ∝ "
          f"n^{scaling['mamba_exponent_all_lengths']:.3f} (bar < 0.05); word2vec words/s: seqlab / gensim = "
          f"{word2vec['ratio_seqlab_vs_gensim']:.2f}x (bar >= 1x), quality bars "
          f"{'met' if all(word2vec['passed'].values()) else 'missed'}")
    print(f"results saved in {RESULTS}")


if __name__ == "__main__":
    main()
