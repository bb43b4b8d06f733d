"""Tests of `seqlab.data.conllu` and `seqlab.tagging.HMMTagger`: the CoNLL-U reader on a hand-made
file, a deterministic toy grammar the tagger must recover exactly, the unknown-word classes,
save/load, and accuracy on UD English EWT when the data is present."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from seqlab.data import conllu
from seqlab.data.conllu import TaggedSentence, locate_ud_ewt, read_conllu
from seqlab.errors import DataError
from seqlab.tagging import WORD_KINDS, HMMTagger, SuffixModel, dev_folds, word_kind

UD_EWT = Path("/work/shared/data/ud-english-ewt")


def _line(i: str, form: str, upos: str) -> str:
    return "\t".join([i, form, form.lower(), upos, "_", "_", "0", "dep", "_", "_"])


SAMPLE = "\n".join([
    "# newdoc id = toy",
    "# text = I don't know.",
    _line("1", "I", "PRON"),
    _line("2-3", "don't", "_"),  # multiword token: skipped, its parts follow
    _line("2", "do", "AUX"),
    _line("3", "n't", "PART"),
    _line("4", "know", "VERB"),
    _line("4.1", "it", "PRON"),  # empty node: skipped
    _line("5", ".", "PUNCT"),
    "",
    "# text = Go",
    _line("1", "Go", "VERB"),  # the last sentence has no closing blank line
])


def test_reader_parses_words_and_tags_skipping_comments_multiword_and_empty_nodes(tmp_path):
    path = tmp_path / "toy.conllu"
    path.write_text(SAMPLE, encoding="utf-8")
    assert read_conllu(path) == [
        TaggedSentence(("I", "do", "n't", "know", "."), ("PRON", "AUX", "PART", "VERB", "PUNCT")),
        TaggedSentence(("Go",), ("VERB",)),
    ]


def test_reader_names_file_and_line_of_a_malformed_line(tmp_path):
    path = tmp_path / "bad.conllu"
    lines = SAMPLE.split("\n")
    lines[4] = "2\tdo\tAUX"  # line 5: three columns
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.conllu:5: expected 10 tab-separated columns, got 3"):
        read_conllu(path)


def test_reader_rejects_missing_and_empty_files(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_conllu(tmp_path / "absent.conllu")
    (tmp_path / "empty.conllu").write_text("# only a comment\n\n", encoding="utf-8")
    with pytest.raises(DataError, match="no sentences"):
        read_conllu(tmp_path / "empty.conllu")


def test_locate_ud_ewt_finds_the_folder_or_names_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setattr(conllu, "data_search_dirs", lambda: [("first", tmp_path / "a"),
                                                               ("second", tmp_path / "b")])
    with pytest.raises(DataError, match=r"a \(first\), .*b \(second\)") as info:
        locate_ud_ewt()
    assert "\n" not in str(info.value)
    (tmp_path / "b" / "ud-english-ewt").mkdir(parents=True)
    assert locate_ud_ewt() == tmp_path / "b" / "ud-english-ewt"


def _toy_corpus(seed: int, n: int) -> list[TaggedSentence]:
    """Sentences of a deterministic grammar: DET NOUN VERB (DET NOUN) PUNCT, each word one tag."""
    rng = random.Random(seed)
    det, noun, verb = ["the", "a", "every"], ["dog", "cat", "bird", "fish"], ["sees", "likes", "eats"]
    out = []
    for _ in range(n):
        words = [rng.choice(det), rng.choice(noun), rng.choice(verb)]
        tags = ["DET", "NOUN", "VERB"]
        if rng.random() < 0.5:
            words += [rng.choice(det), rng.choice(noun)]
            tags += ["DET", "NOUN"]
        out.append(TaggedSentence(tuple(words + ["."]), tuple(tags + ["PUNCT"])))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tagger_recovers_a_deterministic_grammar(seed):
    tagger = HMMTagger().fit(_toy_corpus(seed, 200))
    test = _toy_corpus(seed + 100, 50)
    assert tagger.tag([s.words for s in test]) == [list(s.tags) for s in test], f"seed={seed}"
    result = tagger.accuracy(test)
    assert result["accuracy"] == 1.0 and result["n_unknown"] == 0, f"seed={seed}"


@pytest.mark.parametrize("word, expected", [
    ("1999", "num"), ("3.5%", "num"), ("?!", "punct"), (":)", "punct"), ("NASA", "upper"),
    ("Running", "cap"), ("running", "lower"), ("well-known", "lower"), ("http://x.org/a", "web"),
    ("www.enron.com", "web"), ("jane.doe@enron.com", "web"), ("A", "cap"),
])
def test_word_kinds(word, expected):
    assert word_kind(word) == expected
    assert expected in WORD_KINDS


def test_suffix_model_abstracts_successively_from_the_prior_to_the_longest_known_suffix():
    # Two tags; rare tokens "ran" (tag 1) once and "tan" (tag 0) three times; prior weight 1.
    model = SuffixModel(2, prior_weight=1.0).fit({("ran", "lower", 1): 1, ("tan", "lower", 0): 3})
    prior = np.array([4.0, 2.0]) / 6  # add-one tag counts of all rare tokens
    # "", "n", "an" all hold the 4 tokens (3, 1); "fan" stops at "an", unknown "f" + "an".
    expected = prior
    for _ in range(3):
        expected = (np.array([3.0, 1.0]) + expected) / (4 + 1)
    assert np.allclose(model.tag_probs("fan", "lower"), expected)
    assert np.allclose(model.tag_probs("ran", "lower"), (np.array([0.0, 1.0]) + expected) / 2)
    assert np.allclose(model.tag_probs("fan", "cap"), prior)  # no "cap" trie: the prior
    short = SuffixModel(2, max_length=1, prior_weight=1.0).fit(model.tokens)  # "" and "n" only
    assert np.allclose(short.tag_probs("ran", "lower"), ([3, 1] + ([3, 1] + prior) / 5) / 5)


def test_unknown_words_use_the_suffix_model():
    # Rare words train the suffix tries: "-ing" words only ever appear as VERB, capitalised ones as PROPN.
    train = [TaggedSentence(("they", f"{stem}ing", "."), ("PRON", "VERB", "PUNCT"))
             for stem in ["walk", "talk", "sing", "read", "jump", "eat"]]
    train += [TaggedSentence(("they", "like", name, "."), ("PRON", "VERB", "PROPN", "PUNCT"))
              for name in ["Anna", "Bob", "Cleo", "Dan"]]
    train += [TaggedSentence(("they", "like", "tea", "."), ("PRON", "VERB", "NOUN", "PUNCT"))] * 2
    tagger = HMMTagger().fit(train, smoothing=0.01)
    assert not tagger.is_known("swimming") and tagger.is_known("They")  # lowercase fallback
    assert tagger.tag([["They", "like", "Zoe", "."], ["they", "swimming", "."]]) == [
        ["PRON", "VERB", "PROPN", "PUNCT"], ["PRON", "VERB", "PUNCT"]]


def test_rare_means_rare_with_the_lowercased_form():
    # "Tea" occurs once but "tea" often: at test time "Tea" would be known (lowercase fallback),
    # so it must not train the suffix model; "Zed" would be unknown, so it does.
    train = [TaggedSentence(("Tea", "and", "Zed"), ("NOUN", "CCONJ", "PROPN"))]
    train += [TaggedSentence(("tea", "."), ("NOUN", "PUNCT"))] * 5
    tagger = HMMTagger(rare_count=3).fit(train)
    assert {w for w, _, _ in tagger.suffixes.tokens} == {"and", "Zed"}


def test_dev_folds_hold_out_every_sentence_once():
    sentences = _toy_corpus(5, 130)
    folds = dev_folds(sentences, n_folds=5, block=10)
    held = [s for _, h in folds for s in h]
    assert sorted(map(id, held)) == sorted(map(id, sentences))
    for train, h in folds:
        assert len(train) + len(h) == len(sentences) and not set(map(id, train)) & set(map(id, h))
    assert [len(h) for _, h in folds] == [30, 30, 30, 20, 20]  # 13 blocks of 10


def test_save_load_gives_identical_tags(tmp_path):
    tagger = HMMTagger().fit(_toy_corpus(3, 100))
    tagger.save(tmp_path / "tagger.json")
    loaded = HMMTagger.load(tmp_path / "tagger.json")
    words = [s.words for s in _toy_corpus(4, 30)] + [["the", "unicorn", "flies", "."]]
    assert loaded.tag(words) == tagger.tag(words)
    assert loaded.words == tagger.words and loaded.tags == tagger.tags
    assert loaded.suffixes.tokens == tagger.suffixes.tokens
    assert np.array_equal(loaded.unknown_log_emission("unicorn"), tagger.unknown_log_emission("unicorn"))


def test_tagger_rejects_bad_input(tmp_path):
    with pytest.raises(DataError, match="not fitted"):
        HMMTagger().tag([["a"]])
    with pytest.raises(DataError, match="non-empty"):
        HMMTagger().fit(_toy_corpus(0, 10)).tag([[]])
    with pytest.raises(DataError, match="prior_weight > 0"):
        HMMTagger(prior_weight=0)
    (tmp_path / "x.json").write_text('{"format": "other"}', encoding="utf-8")
    with pytest.raises(DataError, match="not a version-2 seqlab.hmm-tagger document"):
        HMMTagger.load(tmp_path / "x.json")


@pytest.mark.skipif(not UD_EWT.is_dir(), reason=f"{UD_EWT} is absent")
def test_ud_ewt_test_accuracy_after_training_on_dev():
    # Under 1 s. Measured 0.9083 (22792 / 25094 words; known 0.9380, unknown 0.7549) with the
    # defaults, which were tuned on held-out fifths of dev only (`seqlab experiment pos --held-out`:
    # 0.8996). The bar is 0.90; this floor sits just under the measured value.
    tagger = HMMTagger().fit(read_conllu(UD_EWT / "en_ewt-ud-dev.conllu"))
    result = tagger.accuracy(read_conllu(UD_EWT / "en_ewt-ud-test.conllu"))
    assert result["accuracy"] >= 0.905, result


def _write_toy_ud(folder: Path, n: int) -> None:
    folder.mkdir()
    for name in ("en_ewt-ud-dev.conllu", "en_ewt-ud-test.conllu"):
        text = "\n\n".join("\n".join(_line(str(i), w, t) for i, (w, t) in enumerate(zip(s.words, s.tags), 1))
                             for s in _toy_corpus(0, n))
        (folder / name).write_text(text + "\n", encoding="utf-8")


def test_experiment_pos_through_the_cli(tmp_path, capsys):
    from seqlab.cli import main

    _write_toy_ud(tmp_path / "ud", 60)
    assert main(["experiment", "pos", "--data", str(tmp_path / "ud"), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "tag accuracy 1.0000" in printed and (tmp_path / "out" / "tagger.json").is_file()


def test_experiment_pos_held_out_scores_folds_of_dev(tmp_path, capsys):
    from seqlab.cli import main

    _write_toy_ud(tmp_path / "ud", 130)
    (tmp_path / "ud" / "en_ewt-ud-test.conllu").unlink()  # the held-out score never reads test
    assert main(["experiment", "pos", "--data", str(tmp_path / "ud"), "--held-out"]) == 0
    printed = capsys.readouterr().out
    assert "5 folds" in printed and "tag accuracy 1.0000" in printed and "per fold: 1.0000, " in printed


def test_dev_folds_need_a_block_per_fold():
    with pytest.raises(DataError, match="at least 10 sentences"):
        dev_folds(_toy_corpus(0, 9), n_folds=5, block=2)
