"""Byte-level subword tokenizers on the Hugging Face ``tokenizers`` library: the part WordPiece and
Unigram share.

WordPiece (BERT) and Unigram (SentencePiece's default model) lose information as usually set up: a
normalizer lower-cases or strips accents, whitespace is dropped (BERT) or folded into ``▁``
(SentencePiece, so a literal ``▁`` decodes to a space), and a character never seen in training
becomes ``[UNK]``. seqlab's ``wordpiece`` and ``unigram`` kinds are exact instead, for every Unicode
text, by working on bytes as GPT-2's byte-level BPE does (Radford et al. 2019):

- no normalizer;
- the pre-tokenizer maps the UTF-8 bytes of the text to GPT-2's 256 printable byte symbols and
  splits them by GPT-2's regex into words, with each space kept on the word that follows it
  (``" class"`` is one word, ``Ġclass``) and whitespace runs as words of their own;
- all 256 byte symbols are in every vocabulary, so nothing is ever unknown;
- decoding maps each id back to its bytes through the inverse byte table (``decode_bytes``), not
  through the library's decoders.

SentencePiece's own answer, byte fallback (unknown characters as ``<0xXX>`` pieces), keeps the
pieces readable but is not exact here: a text that contains the seven characters ``<0x41>`` could
be read as the byte piece for ``A``. Byte symbols leave no such ambiguity.
"""

from __future__ import annotations

from typing import Any, ClassVar

from tokenizers import Tokenizer as HFTokenizer

from seqlab.errors import TokenizerError
from seqlab.tokenizers.base import printable
from seqlab.tokenizers.bpe import HFBytesTokenizer, bytes_to_unicode

N_BYTES = 256


def byte_alphabet() -> list[str]:
    """GPT-2's 256 byte symbols, in byte order."""
    table = bytes_to_unicode()
    return [table[b] for b in range(N_BYTES)]


class ByteLevelSubwords(HFBytesTokenizer):
    """A ``tokenizers.Tokenizer`` whose tokens are strings of byte symbols (a WordPiece
    continuation token also carries ``continuation``, a prefix outside the byte symbols)."""

    kind: ClassVar[str]
    model_type: ClassVar[str]  # the tokenizer.json model type, "WordPiece" or "Unigram"
    continuation: ClassVar[str] = ""

    @property
    def continues(self) -> tuple[bool, ...]:
        """Per id, whether it continues a word (WordPiece's ``##`` pieces); all False for Unigram."""
        return tuple(self._continues)

    def token_strings(self) -> list[str]:
        # A continuation piece is shown with BERT's "##"; a piece may be part of a character (U+FFFD).
        return [("##" if cont else "") + printable(b.decode("utf-8", errors="replace"))
                for b, cont in zip(self._bytes_of_id, self._continues)]

    @classmethod
    def _refuse_inexact(cls, hf_dict: dict[str, Any]) -> None:
        """Refuse settings under which ``decode(encode(text)) == text`` would not hold."""
        model, pre = hf_dict.get("model") or {}, hf_dict.get("pre_tokenizer") or {}
        problems = []
        if model.get("type") != cls.model_type:
            problems.append(f"model type {model.get('type')!r} is not {cls.model_type}")
        if hf_dict.get("normalizer") is not None:
            problems.append("it has a normalizer")
        if hf_dict.get("added_tokens"):
            problems.append("it has added (special) tokens")
        steps = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
        first = steps[0] if steps else {}
        if first.get("type") != "ByteLevel" or first.get("add_prefix_space") or not first.get("use_regex"):
            problems.append("its pre-tokenizer does not start with ByteLevel (regex, no prefix space)")
        if problems:
            raise TokenizerError(f"{cls.kind} tokenizer is not exact byte-level {cls.model_type}: "
                                 f"{'; '.join(problems)}; train it with seqlab (tokenizer.kind = \"{cls.kind}\")")

    def _read_tables(self, hf: HFTokenizer) -> list[bytes]:
        """Id -> its bytes; and `_continues`, id -> whether it continues a word (WordPiece's prefixed
        pieces)."""
        byte_of_char = {c: b for b, c in bytes_to_unicode().items()}
        vocab = hf.get_vocab(with_added_tokens=False)
        if any(c not in vocab for c in byte_of_char):
            raise TokenizerError(f"{self.kind} vocabulary lacks some of the 256 byte symbols; "
                                 f"train it with seqlab (tokenizer.kind = \"{self.kind}\")")
        size = max(vocab.values()) + 1
        table, continues = [b""] * size, [False] * size
        for token, i in vocab.items():
            body = token
            if self.continuation and token.startswith(self.continuation):
                body, continues[i] = token[len(self.continuation):], True
            if not body or any(c not in byte_of_char for c in body):
                raise TokenizerError(f"{self.kind} token {token!r} (id {i}) is not made of byte-level "
                                     f"symbols; train the tokenizer with seqlab (tokenizer.kind = \"{self.kind}\")")
            table[i] = bytes(byte_of_char[c] for c in body)
        self._continues = continues
        return table
