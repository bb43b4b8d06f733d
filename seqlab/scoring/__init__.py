"""Scores: corpus BLEU through sacreBLEU, and the scores of classification and tagging runs."""

from seqlab.scoring.bleu import BLEUScore, corpus_bleu
from seqlab.scoring.tasks import accuracy, chunk_scores, confusion_matrix, macro_f1

__all__ = ["BLEUScore", "accuracy", "chunk_scores", "confusion_matrix", "corpus_bleu", "macro_f1"]
