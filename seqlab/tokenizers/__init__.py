"""Tokenizers: text to integer ids and back, exactly, behind one interface (``Tokenizer``).

Seven kinds; all but ``hf`` are trained here:

- ``char``: one id per character of the training text (char-rnn, nanoGPT's shakespeare_char),
  exact for every text with byte fallback;
- ``byte``: one id per UTF-8 byte, 256 ids, nothing to learn (ByT5; byte-level BPE's alphabet);
- ``bpe``: byte-level BPE (GPT-2), trained with the Hugging Face ``tokenizers`` library;
- ``wordpiece``: byte-level WordPiece (BERT's greedy longest-match pieces), exact for every text;
- ``unigram``: byte-level Unigram (SentencePiece's default model), exact for every text;
- ``word``: the most frequent words and punctuation marks plus ``<unk>`` (classic translation
  models); exact for every text with byte fallback, else only for text spaced the way it decodes
  (see ``word``);
- ``hf``: any Hugging Face ``tokenizer.json`` (a pretrained model's own), never trained here; its
  round trip is only as exact as that tokenizer's.

    tok = train_tokenizer("char", text, byte_fallback=True)
    tok.save(run_dir / "tokenizer.json")
    tok = load_tokenizer(run_dir / "tokenizer.json")
    assert tok.decode(tok.encode(text)) == text

Byte fallback (``seqlab.tokenizers.fallback``) gives char and word 256 byte tokens for what their
vocabulary cannot spell; the byte-level kinds (byte, bpe, wordpiece, unigram) need none. A config's
``tokenizer.byte_fallback`` is true unless it says otherwise; ``train_tokenizer`` takes it as given.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from seqlab.errors import TokenizerError
from seqlab.tokenizers.base import Tokenizer
from seqlab.tokenizers.bpe import BPETokenizer
from seqlab.tokenizers.byte import ByteTokenizer
from seqlab.tokenizers.char import CharTokenizer
from seqlab.tokenizers.hf import HFTokenizer
from seqlab.tokenizers.pair import PairTokenizer, source_side, source_vocab_size
from seqlab.tokenizers.unigram import UnigramTokenizer
from seqlab.tokenizers.word import WordTokenizer
from seqlab.tokenizers.wordpiece import WordPieceTokenizer

__all__ = ["BPETokenizer", "ByteTokenizer", "CharTokenizer", "HFTokenizer", "PairTokenizer", "Tokenizer",
           "UnigramTokenizer", "WordPieceTokenizer", "WordTokenizer", "load_tokenizer", "source_side", "source_vocab_size", "tokenizer_from_dict",
           "train_tokenizer"]

log = logging.getLogger(__name__)

KINDS: dict[str, type[Tokenizer]] = {"char": CharTokenizer, "byte": ByteTokenizer,
                                     "bpe": BPETokenizer, "hf": HFTokenizer, "word": WordTokenizer,
                                     "pair": PairTokenizer, "wordpiece": WordPieceTokenizer,
                                     "unigram": UnigramTokenizer}


def _unknown_kind(kind: object) -> TokenizerError:
    return TokenizerError(f"unknown tokenizer kind {kind!r}; choose one of "
                          f"{', '.join(repr(k) for k in KINDS)}")


def train_tokenizer(kind: str, text: str, *, vocab_size: int = 512,
                    unknown_token: bool = False, byte_fallback: bool = False) -> Tokenizer:
    """A tokenizer of ``kind`` fitted to ``text``.

    ``vocab_size`` is used by bpe (the 256 bytes plus the merges to learn), wordpiece and unigram
    (the whole vocabulary, its byte pieces included) and word (the cap on specials, words and byte
    tokens); ``unknown_token`` by char only (byte and bpe cover every text; word always has ``<unk>``);
    ``byte_fallback`` by char and word (the other kinds are byte-level already).
    """
    if kind == "char":
        return CharTokenizer.train(text, unknown_token=unknown_token, byte_fallback=byte_fallback)
    if kind == "byte":
        return ByteTokenizer.train(text)
    if kind == "bpe":
        return BPETokenizer.train(text, vocab_size=vocab_size)
    if kind == "word":
        return WordTokenizer.train(text, vocab_size=vocab_size, byte_fallback=byte_fallback)
    if kind == "wordpiece":
        return WordPieceTokenizer.train(text, vocab_size=vocab_size)
    if kind == "unigram":
        return UnigramTokenizer.train(text, vocab_size=vocab_size)
    if kind == "pair":
        raise TokenizerError("a pair tokenizer is made of two trained ones (tokenizer.shared = false in a "
                             "seq2seq config), not trained itself")
    if kind == "hf":
        raise TokenizerError("the hf tokenizer kind is a pretrained model's tokenizer.json, read by "
                             "seqlab import-hf, not trained; choose char, byte, bpe, wordpiece, unigram or word to train one")
    raise _unknown_kind(kind)


def tokenizer_from_dict(d: dict[str, Any]) -> Tokenizer:
    """Rebuild a tokenizer from ``Tokenizer.to_dict()``."""
    if not isinstance(d, dict):
        raise TokenizerError(f"a tokenizer description must be a JSON object, not "
                             f"{type(d).__name__}; save the tokenizer again with seqlab")
    if "kind" not in d:
        raise TokenizerError("tokenizer description has no 'kind' field; "
                             f"add one of {', '.join(repr(k) for k in KINDS)}")
    if d["kind"] not in KINDS:
        raise _unknown_kind(d["kind"])
    return KINDS[d["kind"]].from_dict(d)


def load_tokenizer(path: str | os.PathLike[str]) -> Tokenizer:
    """Read a tokenizer written by ``Tokenizer.save``; every problem names the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TokenizerError(f"tokenizer file {path} does not exist; "
                             "check the path or train the tokenizer first") from None
    except (OSError, UnicodeDecodeError) as err:
        raise TokenizerError(f"cannot read tokenizer file {path} ({err}); "
                             "check the file or train the tokenizer again") from None
    try:
        d = json.loads(text)
    except json.JSONDecodeError as err:
        raise TokenizerError(f"tokenizer file {path} is not valid JSON ({err.msg} at line "
                             f"{err.lineno} column {err.colno}); train the tokenizer again "
                             "or restore the file") from None
    try:
        tokenizer = tokenizer_from_dict(d)
    except TokenizerError as err:
        raise TokenizerError(f"tokenizer file {path}: {err}") from None
    log.debug("loaded %s tokenizer (vocab_size %d) from %s", tokenizer.kind,
              tokenizer.vocab_size, path)
    return tokenizer
