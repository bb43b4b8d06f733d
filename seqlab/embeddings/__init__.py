"""Word vectors of any run: neighbours, analogies, the standard evaluations, maps and export.

    wv = WordVectors.from_run("runs/brown-w2v")        # word2vec, GloVe, or any LM's token embedding
    wv.most_similar(["king"], topn=5)                   # cosine neighbours
    wv.analogy("king", "man", "woman")                  # king − man + woman, by 3CosAdd and 3CosMul
    evaluate_pairs(wv, data_file("wordsim353"))         # Spearman's ρ, as gensim computes it
    wv.save_word2vec_format("vectors.txt")              # gensim's KeyedVectors.load_word2vec_format reads it
"""

from seqlab.embeddings.evaluate import (
    PairScore,
    SectionScore,
    data_file,
    evaluate_analogies,
    evaluate_pairs,
)
from seqlab.embeddings.plots import pca_2d, plot_words, tsne_2d
from seqlab.embeddings.vectors import UnknownWord, WordVectors, embedding_matrix, token_names

__all__ = ["PairScore", "SectionScore", "UnknownWord", "WordVectors", "data_file", "embedding_matrix",
           "evaluate_analogies", "evaluate_pairs", "pca_2d", "plot_words", "token_names", "tsne_2d"]
