"""What ``seqlab embed`` shows: the evaluation table of a run's vectors, and its most frequent words.

    table = evaluation_table(WordVectors.from_run(run))   # lines: WordSim353, SimLex-999, analogies
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from seqlab.embeddings.evaluate import data_file, evaluate_analogies, evaluate_pairs
from seqlab.embeddings.vectors import WordVectors
from seqlab.errors import SeqlabError

log = logging.getLogger(__name__)

COUNT_CHARS = 2_000_000  # the head of a run's corpus whose tokens are counted for --plot --top


def evaluation_table(vectors: WordVectors) -> list[str]:
    """WordSim353 and SimLex-999 Spearman's ρ, then the Google analogy accuracy per section and in
    total (3CosAdd and 3CosMul), each with its coverage, as aligned text lines."""
    from seqlab.experiments.tables import text_table
    rows = []
    for label, name in (("WordSim353", "wordsim353"), ("SimLex-999", "simlex999")):
        score = evaluate_pairs(vectors, data_file(name))
        rho = f"{score.spearman:.4f}" if score.used >= 2 else "n/a"
        rows.append([f"{label} Spearman ρ", rho, "", f"{score.used}/{score.total}",
                     f"{score.coverage:.1%}"])
    for section in evaluate_analogies(vectors, data_file("analogies")):
        label = "analogies, total" if section.section == "Total accuracy" else f"  {section.section}"
        add, mul = ((f"{x:.4f}" if section.used else "n/a") for x in (section.accuracy_add, section.accuracy_mul))
        rows.append([label, add, mul,
                     f"{section.used}/{section.total}", f"{section.coverage:.1%}"])
    return text_table(["evaluation", "3CosAdd / ρ", "3CosMul", "used/total", "coverage"], rows)


def frequent_words(run_dir: str | Path, vectors: WordVectors, n: int) -> list[str]:
    """The ``n`` tokens most frequent in the head of the run's corpus that have a letter or digit
    in them (punctuation and whitespace crowd a map); by row order when the corpus is not at hand."""
    from seqlab.data import load_corpus
    from seqlab.runs import read_config, read_tokenizer
    if n < 1:
        raise SeqlabError(f"--top must be at least 1, got {n}")
    config, tokenizer = read_config(Path(run_dir)), read_tokenizer(Path(run_dir))
    order = np.arange(len(vectors))
    try:
        corpus = load_corpus(config.data.corpus)
        text = "".join(corpus.chunks(stop=min(COUNT_CHARS, corpus.n_chars)))
        counts = np.bincount(tokenizer.encode_array(text), minlength=len(vectors))[:len(vectors)]
        order = np.argsort(-counts, kind="stable")[:int((counts > 0).sum())]
    except SeqlabError as exc:  # a corpus moved away: row order (frequency order for word vocabularies)
        log.warning("cannot count the tokens of %s (%s); taking the first rows", config.data.corpus, exc)
    words = [w for w in (vectors.words[i] for i in order.tolist())
             if any(ch.isalnum() for ch in w) and not (w.startswith("<") and w.endswith(">"))]  # not <unk>, <U+000A>
    return words[:n]
