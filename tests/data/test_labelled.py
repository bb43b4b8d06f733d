"""The labelled data sets: sizes as their sources document them, folds that partition the data,
the universal tag map, and MNIST-1D generated in code without touching numpy's global state."""

from __future__ import annotations

import numpy as np
import pytest

from seqlab.data import labelled, paths
from seqlab.errors import DataError

REAL_DIRS = [folder for _, folder in paths.data_search_dirs()]  # read before the data tests isolate them


@pytest.fixture
def needs(monkeypatch):
    """Point $SEQLAB_DATA at the real data folder that holds `folder`, or skip saying why."""
    def find(folder: str) -> None:
        for root in REAL_DIRS:
            if (root / folder).is_dir():
                monkeypatch.setenv("SEQLAB_DATA", str(root))
                return
        pytest.skip(f"{folder} is in none of the data folders ({', '.join(map(str, REAL_DIRS))})")
    return find


def test_sentence_polarity_has_5331_of_each_and_folds_partition_it(needs):
    needs("sentence-polarity")
    examples = labelled.sentence_polarity()
    assert sum(e.label == "pos" for e in examples) == 5331 and sum(e.label == "neg" for e in examples) == 5331
    folds = labelled.polarity_folds(examples, n_folds=10, seed=0)
    tested = [id(e) for fold in folds for e in fold.test]
    assert sorted(tested) == sorted(id(e) for e in examples)  # every example tested exactly once
    for fold in folds:
        assert len(fold.train) + len(fold.val) + len(fold.test) == len(examples)
        assert not {id(e) for e in fold.test} & {id(e) for e in fold.train}
    split = labelled.polarity_split(examples, seed=0)
    assert (len(split.train), len(split.val), len(split.test)) == (8530, 1066, 1066)
    assert labelled.polarity_split(examples, seed=0).test == split.test  # seeded


def test_conll2000_token_counts_match_the_shared_task(needs):
    needs("conll2000")
    chunks = labelled.conll2000("chunks")
    assert sum(len(s.words) for s in (*chunks.train, *chunks.val)) == 211_727
    assert sum(len(s.words) for s in chunks.test) == 47_377
    assert "B-NP" in chunks.labels and "O" in chunks.labels
    pos = labelled.conll2000("pos")
    assert "NN" in pos.labels and len(pos.train) == len(chunks.train)
    with pytest.raises(DataError, match="column"):
        labelled.conll2000("ner")


def test_brown_maps_every_tag_to_the_universal_set(needs):
    needs("brown")
    sentences = labelled.brown_sentences()
    assert sum(len(s.words) for s in sentences) > 1_100_000
    universal = {"ADJ", "ADP", "ADV", "CONJ", "DET", "NOUN", "NUM", "PRT", "PRON", "VERB", ".", "X"}
    assert {tag for s in sentences[:2000] for tag in s.tags} <= universal
    assert sentences[0].words[:2] == ("The", "Fulton") and sentences[0].tags[:2] == ("DET", "NOUN")


def test_ud_english_ewt_upos(needs):
    needs("ud-english-ewt")
    splits = labelled.ud_english_ewt()
    assert "NOUN" in splits.labels and len(splits.labels) == 17
    assert len(splits.train) > len(splits.val) > 0


def test_mnist1d_is_generated_seeded_and_leaves_numpy_alone():
    pytest.importorskip("mnist1d")
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    splits = labelled.mnist1d()
    assert np.array_equal(np.random.get_state()[1], before)
    assert splits.train.x.shape[1:] == (40, 1) and len(splits.train) + len(splits.val) == 4000
    assert len(splits.test) == 1000 and set(np.unique(splits.test.y)) == set(range(10))
    again = labelled.mnist1d()
    assert np.array_equal(again.test.x, splits.test.x)


def test_unknown_set_is_an_error_that_lists_the_names():
    with pytest.raises(DataError, match="sentence-polarity"):
        labelled.load_labelled("imdb")
