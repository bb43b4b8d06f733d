"""Shared inputs for the tokenizer tests: nasty strings, seeded random Unicode, Tiny Shakespeare."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

NASTY = [
    "", " ", "  ", "a", " leading space", "trailing space ", "multiple   spaces  inside",
    "\ttabs\t\tand\t", "\n", "\n\n\n", "a\nb\n", "windows\r\nline\r\nends\r\n", "\r", "\r\r\n\n\r",
    "  \n  \n", "x  \ny", "a\n\n  b \n c\n\n\n", "end with spaces and newline  \n",
    "emoji 🎉👍🏽 👨‍👩‍👧 🏳️‍🌈", "combining e\u0301 n\u0303 a\u0308\u0301\u0323",
    "precomposed é ñ vs decomposed e\u0301", "CJK 中文字 日本語のテキスト 한국어",
    "NUL \x00 and controls \x01\x02\x1b\x1f\x7f \x80\x9f", "\x00", "\x00\x00\n\x00",
    "unicode spaces \u00a0\u2000\u2003\u3000 \u2028\u2029\x85", "\ufeffBOM at start",
    "\ufffd replacement char", "noncharacters \uffff \ufffe \U0010ffff \U000e0001",
    "RTL עברית العربية mixed", "zero\u200bwidth\u200djoiner\u200c",
    "Ⅻ ½ ² ℌ ﬁ ligature (NFKC bait)",
    "contractions: it's we're they've I'm we'll he'd 'S 'T", "numbers 1234567890 3.14 ١٢٣",
    "punctuation!!! ... ??? --- ((()))", "'''", "mathematical 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟘𝟙",
    "a" * 300, " " * 50, "\n" * 40 + "x", "Ω≈ç√∫˜µ≤≥÷", "¡™£¢∞§¶•ªº–≠",
]


def random_unicode(rng: random.Random, length: int) -> str:
    """Random code points from ASCII, controls, 2-byte, 3-byte and astral planes (no surrogates),
    with plenty of whitespace so that GPT-2's whitespace rules are exercised."""
    pieces = []
    for _ in range(length):
        r = rng.random()
        if r < 0.25:
            cp = rng.randint(0x20, 0x7E)
        elif r < 0.40:
            cp = ord(rng.choice(" \n\t\r\u3000\u00a0"))
        elif r < 0.47:
            cp = rng.randint(0x00, 0x1F)
        elif r < 0.62:
            cp = rng.randint(0x80, 0x7FF)
        elif r < 0.80:
            cp = rng.choice([rng.randint(0x800, 0xD7FF), rng.randint(0xE000, 0xFFFF)])
        else:
            cp = rng.randint(0x10000, 0x10FFFF)
        pieces.append(chr(cp))
    return "".join(pieces)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Tests that take `nasty_text` run once per string of NASTY.
    if "nasty_text" in metafunc.fixturenames:
        metafunc.parametrize("nasty_text", NASTY, ids=[f"nasty{i}" for i in range(len(NASTY))])


@pytest.fixture(scope="session")
def all_nasty() -> str:
    """Every nasty string, concatenated."""
    return "".join(NASTY)


@pytest.fixture(scope="session")
def random_text():
    """``random_text(seed, length)``: seeded random Unicode (see ``random_unicode``)."""
    return lambda seed, length: random_unicode(random.Random(seed), length)


SHAKESPEARE = Path("/work/shared/data/tinyshakespeare.txt")


@pytest.fixture(scope="session")
def shakespeare() -> str:
    """The full Tiny Shakespeare text, or a skip where the file is not on this machine."""
    if not SHAKESPEARE.is_file():
        pytest.skip(f"{SHAKESPEARE} not present")
    return SHAKESPEARE.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def mixed_corpus() -> str:
    """A training corpus for byte-level BPE with multi-byte characters and odd whitespace."""
    rng = random.Random(1234)
    english = "the quick brown fox jumps over the lazy dog.\n  It's there, isn't it?\r\n" * 40
    return english + "".join(NASTY) * 5 + random_unicode(rng, 5000)
