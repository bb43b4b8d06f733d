"""Word vectors against gensim's KeyedVectors on the same random vectors: neighbours, 3CosAdd and
3CosMul answers and scores, WordSim353 / SimLex-999 / analogy evaluation with gensim's OOV handling,
the word2vec text export, and the PCA map against scikit-learn."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from torch import nn

from seqlab.embeddings import (
    UnknownWord,
    WordVectors,
    data_file,
    embedding_matrix,
    evaluate_analogies,
    evaluate_pairs,
    pca_2d,
    plot_words,
    token_names,
)
from seqlab.embeddings.evaluate import read_analogies
from seqlab.errors import SeqlabError
from seqlab.tokenizers import train_tokenizer

gensim_kv = pytest.importorskip("gensim.models.keyedvectors")
SEED = 20
D = 24


@pytest.fixture(scope="module")
def vocabulary() -> list[str]:
    """The words of the three evaluation files, a tenth left out (OOV), some in a second case (the
    case-insensitive lookup must take the first), in a seeded random order."""
    rng = np.random.default_rng(SEED)
    words: list[str] = []
    for name in ("wordsim353", "simlex999"):
        for line in data_file(name).read_text(encoding="utf-8").splitlines():
            if not line.startswith("#"):
                words += line.split("\t")[:2]
    for _, questions in read_analogies(data_file("analogies")):
        words += [w.lower() for q in questions for w in q]
    words = list(dict.fromkeys(words))
    rng.shuffle(words)
    kept = words[:int(0.9 * len(words))]
    variants = [w.capitalize() for w in kept[:300] if w.capitalize() != w]
    return kept + variants


@pytest.fixture(scope="module")
def both(vocabulary):
    """Our WordVectors and gensim's KeyedVectors on the same float32 vectors; a planted analogy
    offset makes some questions right, so accuracy is not zero."""
    rng = np.random.default_rng(SEED)
    x = rng.standard_normal((len(vocabulary), D)).astype(np.float32)
    index = {w: i for i, w in enumerate(vocabulary)}
    for _, questions in read_analogies(data_file("analogies"))[:4]:
        for a, b, c, d in (tuple(w.lower() for w in q) for q in questions[::7]):
            if all(w in index for w in (a, b, c, d)):
                x[index[d]] = x[index[b]] - x[index[a]] + x[index[c]] + 0.1 * rng.standard_normal(D)
    kv = gensim_kv.KeyedVectors(D)
    kv.add_vectors(vocabulary, x)
    return WordVectors(vocabulary, x), kv


@pytest.fixture(scope="module")
def small_analogies(tmp_path_factory) -> str:
    """The first 40 questions of each section of the Google set (the whole set takes seconds)."""
    lines = []
    for section, questions in read_analogies(data_file("analogies")):
        lines += [f": {section}", *(" ".join(q) for q in questions[:40])]
    path = tmp_path_factory.mktemp("analogies") / "questions.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def test_neighbours_equal_gensims(both) -> None:
    ours, kv = both
    rng = np.random.default_rng(SEED)
    for i in rng.choice(len(ours), 20, replace=False).tolist():
        word = ours.words[i]
        got, want = ours.most_similar([word], topn=10), kv.most_similar(word, topn=10)
        assert [w for w, _ in got] == [w for w, _ in want], word
        np.testing.assert_allclose([s for _, s in got], [s for _, s in want], rtol=0, atol=2e-6)
        assert word not in [w for w, _ in got]


def test_analogies_equal_gensims_3cosadd_and_3cosmul(both) -> None:
    ours, kv = both
    rng = np.random.default_rng(SEED + 1)
    for _ in range(20):
        a, b, c = (ours.words[i] for i in rng.choice(len(ours), 3, replace=False).tolist())
        answers = ours.analogy(a, b, c, topn=5)
        add = kv.most_similar(positive=[a, c], negative=[b], topn=5)
        mul = kv.most_similar_cosmul(positive=[a, c], negative=[b], topn=5)
        for got, want in ((answers["3CosAdd"], add), (answers["3CosMul"], mul)):
            assert [w for w, _ in got] == [w for w, _ in want], (a, b, c)
            np.testing.assert_allclose([s for _, s in got], [s for _, s in want], rtol=1e-5, atol=2e-6)
            assert not {a, b, c} & {w for w, _ in got}


@pytest.mark.parametrize("name", ["wordsim353", "simlex999"])
def test_word_pairs_equal_gensims(both, name: str) -> None:
    ours, kv = both
    score = evaluate_pairs(ours, data_file(name))
    pearson, spearman, oov_ratio = kv.evaluate_word_pairs(data_file(name))
    assert score.spearman == pytest.approx(spearman[0], abs=1e-6)
    assert score.pearson == pytest.approx(pearson[0], abs=1e-6)
    assert 100 * (1 - score.coverage) == pytest.approx(oov_ratio, abs=1e-9)
    assert 0 < score.used < score.total


def test_analogy_accuracy_equals_gensims_per_section(both, small_analogies: str) -> None:
    ours, kv = both
    sections = evaluate_analogies(ours, small_analogies)
    _, reference = kv.evaluate_word_analogies(small_analogies)
    assert [s.section for s in sections] == [r["section"] for r in reference]
    for got, want in zip(sections, reference):
        assert got.correct_add == len(want["correct"]), got.section
        assert got.used == len(want["correct"]) + len(want["incorrect"]), got.section
    total = sections[-1]
    assert total.correct_add > 0 and total.used < total.total  # planted answers; some questions OOV


def test_export_loads_in_gensim_with_the_same_neighbours(both, tmp_path) -> None:
    ours, _ = both
    path = tmp_path / "vectors.txt"
    ours.save_word2vec_format(path)
    loaded = gensim_kv.KeyedVectors.load_word2vec_format(str(path), binary=False)
    assert loaded.index_to_key == ours.words
    np.testing.assert_array_equal(loaded.vectors, ours.vectors)  # 9 digits give float32 back exactly
    for word in ours.words[:10]:
        assert [w for w, _ in loaded.most_similar(word, topn=5)] == [w for w, _ in ours.most_similar([word], topn=5)]


def test_unknown_word_is_one_line_with_a_suggestion(both) -> None:
    ours, _ = both
    word = next(w for w in ours.words if len(w) > 5 and w.islower())
    with pytest.raises(UnknownWord, match=f"did you mean '{word}'") as err:
        ours.most_similar([word[:-1] + "q"])
    assert "\n" not in str(err.value)


def test_zero_row_has_cosine_zero_not_nan() -> None:
    vectors = WordVectors(["a", "b", "c"], np.array([[1, 0], [0, 0], [1, 1]], dtype=np.float32))
    assert vectors.similarity("a", "b") == 0.0
    assert [w for w, _ in vectors.most_similar(["a"], topn=2)] == ["c", "b"]


def test_missing_gensim_is_a_one_line_error(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "gensim.test.utils", None)
    with pytest.raises(SeqlabError, match="ships with gensim: pip install gensim"):
        data_file("wordsim353")


def test_pca_matches_scikit_learn_and_maps_are_written(both, tmp_path) -> None:
    from sklearn.decomposition import PCA
    ours, _ = both
    words = ours.words[:40]
    x = ours.normed[:40].astype(np.float64)
    coords, explained = pca_2d(x)
    reference = PCA(n_components=2).fit(x)
    np.testing.assert_allclose(explained, reference.explained_variance_ratio_, rtol=1e-6)
    np.testing.assert_allclose(np.abs(coords), np.abs(reference.transform(x)), atol=1e-6)
    paths = plot_words(ours, words, tmp_path / "map", title="random")
    assert [p.name for p in paths] == ["map-pca.png", "map-tsne.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)


class _Vectors(nn.Module):
    """The word-vector family contract: word_vectors() -> (V, D)."""

    def __init__(self) -> None:
        super().__init__()
        self.centre = nn.Parameter(torch.randn(5, 3, generator=torch.Generator().manual_seed(SEED)))

    def word_vectors(self) -> torch.Tensor:
        return self.centre * 2


def test_embedding_matrix_of_word_vector_models_lms_and_others() -> None:
    model = _Vectors()
    torch.testing.assert_close(embedding_matrix(model, 5), model.centre.detach() * 2)
    lm = nn.Sequential()
    lm.tok_emb = nn.Embedding(7, 4)
    torch.testing.assert_close(embedding_matrix(lm, 7), lm.tok_emb.weight.detach())
    seq2seq = nn.Module()
    seq2seq.src_emb = nn.Embedding(9, 2)
    torch.testing.assert_close(embedding_matrix(seq2seq, 9), seq2seq.src_emb.weight.detach())
    with pytest.raises(SeqlabError, match="no token embedding"):
        embedding_matrix(nn.Linear(2, 2), 2)


@pytest.mark.parametrize("kind", ["char", "byte", "bpe", "wordpiece", "unigram", "word"])
def test_token_names_are_distinct_and_whitespace_free(kind: str) -> None:
    text = "Hi, class हैलो क्लास 同学们好\n the king and the queen\tran " * 30
    tokenizer = train_tokenizer(kind, text, vocab_size=520)
    names = token_names(tokenizer)
    assert len(names) == tokenizer.vocab_size == len(set(names))
    assert not any(ch.isspace() for name in names for ch in name)
