"""Experiments: small, reproducible studies built from the library's models.

    rows = run_shannon(load_corpus("shakespeare").text)
    print(render_table(rows))
"""

from seqlab.experiments.shannon import (
    Approximation,
    render_table,
    run_shannon,
    to_markdown,
    word_tokens,
)

__all__ = ["Approximation", "render_table", "run_shannon", "to_markdown", "word_tokens"]
