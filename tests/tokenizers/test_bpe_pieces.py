"""BPE learns from bounded pieces of its text (`training_pieces`): the same words, hence the same
merges, as from the whole text, and memory that does not grow with the length of a line."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from tokenizers import pre_tokenizers

import seqlab.tokenizers.bpe as bpe_module
from seqlab.tokenizers import BPETokenizer
from seqlab.tokenizers.bpe import _TRAIN_CUT, training_pieces

# Spaces, and whitespace the regex's \s takes, beside every kind of character.
SPACES = "".join(f"{a}{ws}{b}" for a in ["x", ".", "é", "7", "'", "中", "\u00a0", "\u3000", "\t"]
                 for ws in [" ", "  ", " \t", "\u2003", " \u0085"]
                 for b in ["y", "'s", "7", "\n", " ", "\u00a0", "中"])


def words(text: str) -> list[str]:
    """The pieces GPT-2's regex splits `text` into (the words BPE counts)."""
    return [w for w, _ in pre_tokenizers.ByteLevel(add_prefix_space=False).pre_tokenize_str(text)]


def test_every_training_cut_keeps_the_words(all_nasty: str, random_text) -> None:
    text = SPACES + all_nasty + "the quick brown fox: isn't it? 12 34\n  x\n" + random_text(5, 1500) + SPACES
    whole = words(text)
    cuts = [m.start() for m in _TRAIN_CUT.finditer(text)]
    assert len(cuts) > 100
    for i in cuts:
        assert words(text[:i]) + words(text[i:]) == whole, (i, text[i - 3:i + 3])


@pytest.mark.parametrize("limit", [1, 2, 7, 64, 1000])
def test_pieces_rejoin_within_the_limit(all_nasty: str, random_text, limit: int) -> None:
    text = all_nasty + random_text(2, 3000) + "a" * 500 + " b" * 300
    pieces = list(training_pieces(text, limit))
    assert "".join(pieces) == text and all(0 < len(p) <= limit for p in pieces)


def test_pieces_of_ordinary_text_learn_the_same_merges(shakespeare: str, monkeypatch) -> None:
    text = shakespeare[:150_000].replace("\n", " ")  # one line
    monkeypatch.setattr(bpe_module, "TRAIN_PIECE_CHARS", len(text))  # the text whole: one piece
    whole = BPETokenizer.train(text, vocab_size=400)
    monkeypatch.setattr(bpe_module, "TRAIN_PIECE_CHARS", 300)  # 500+ pieces
    assert len(list(training_pieces(text, 300))) > 500
    assert BPETokenizer.train(text, vocab_size=400).to_dict() == whole.to_dict()


def test_fitting_a_5_mb_line_holds_little_memory() -> None:
    """Given whole, a line of 5 MB took ~500 MB more to fit (~100 bytes a character); in pieces, a few
    tens of MB. Run in a 2 GiB address space, the growth of the peak resident size measured."""
    limit = 2 << 30
    code = textwrap.dedent(f"""
        import random, resource
        resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
        from seqlab.tokenizers import BPETokenizer
        rng = random.Random(0)
        vocab = ["the", "king", "of", "Denmark", "my", "lord", "is", "dead", "and", "to", "be", "or", "not"]
        text = " ".join(rng.choice(vocab) for _ in range(1_200_000))[:5_000_000]  # no newline
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        BPETokenizer.train(text, vocab_size=290)
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
    """)
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert child.returncode == 0, child.stderr
    growth_kib = int(child.stdout)
    assert growth_kib < 150 * 1024, f"peak resident size grew by {growth_kib // 1024} MiB"
