"""Maps of word vectors: the words placed in 2-D by PCA and by t-SNE, each labelled.

PCA (the two directions of largest variance of the centred vectors, by SVD) keeps distances' large
structure and is deterministic; t-SNE (van der Maaten & Hinton 2008; scikit-learn's ``TSNE``,
seeded) keeps each word's neighbourhood and is what the lectures' embedding maps show.

    N words · D vector width
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from seqlab.embeddings.vectors import WordVectors
from seqlab.errors import SeqlabError
from seqlab.plots import pyplot, save_png


def pca_2d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (N, 2) coordinates of the rows of ``x`` (N, D) on its first two principal axes, and the
    fraction of the variance each axis explains."""
    centred = x - x.mean(axis=0, keepdims=True)  # (N, D)
    _, s, vt = np.linalg.svd(centred.astype(np.float64), full_matrices=False)
    signs = np.sign(vt[:2, np.argmax(np.abs(vt[:2]), axis=1)].diagonal())  # a fixed sign per axis
    coords = centred @ (vt[:2].T * signs)  # (N, 2)
    variance = s ** 2
    return coords, variance[:2] / max(variance.sum(), 1e-30)


def tsne_2d(x: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """The (N, 2) t-SNE coordinates of the rows of ``x`` (cosine distances, PCA start, seeded)."""
    from sklearn.manifold import TSNE
    perplexity = float(min(30, max(1, (len(x) - 1) // 3)))
    # Exact gradients up to a thousand words: faster there than Barnes-Hut's tree, and not approximate.
    method = "exact" if len(x) <= 1000 else "barnes_hut"
    return TSNE(n_components=2, perplexity=perplexity, metric="cosine", init="pca", random_state=seed,
                method=method).fit_transform(x.astype(np.float64))


def plot_words(vectors: WordVectors, words: list[str], out: str | Path, *, title: str,
               seed: int = 0) -> list[Path]:
    """Write ``OUT-pca.png`` and ``OUT-tsne.png``: ``words`` placed by each method, labelled."""
    if len(words) < 3:
        raise SeqlabError(f"a map needs at least 3 words, got {len(words)}")
    rows = vectors.normed[[vectors.index_of(w) for w in words]]  # (N, D): cosine geometry
    coords, explained = pca_2d(rows)
    out = Path(out)
    pca_path, tsne_path = out.with_name(out.name + "-pca.png"), out.with_name(out.name + "-tsne.png")
    _draw(coords, words, pca_path, title=f"{title}: PCA of {len(words)} vectors",
          axes=(f"PC 1 ({explained[0]:.0%} of the variance)", f"PC 2 ({explained[1]:.0%} of the variance)"))
    _draw(tsne_2d(rows, seed=seed), words, tsne_path, title=f"{title}: t-SNE of {len(words)} vectors",
          axes=("t-SNE 1", "t-SNE 2"))
    return [pca_path, tsne_path]


def _draw(coords: np.ndarray, words: list[str], path: Path, *, title: str, axes: tuple[str, str]) -> None:
    plt = pyplot()
    size = 6 + min(8, len(words) / 25)
    fig, ax = plt.subplots(figsize=(size, size), dpi=110)
    ax.scatter(coords[:, 0], coords[:, 1], s=12, color="tab:blue", alpha=0.7)
    for (x, y), word in zip(coords.tolist(), words):
        ax.annotate(word, (x, y), xytext=(3, 2), textcoords="offset points", fontsize=8)
    ax.set_title(title)
    ax.set_xlabel(axes[0])
    ax.set_ylabel(axes[1])
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_png(fig, path)
