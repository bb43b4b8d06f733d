"""seqlab's char and byte tokenizers as Hugging Face `tokenizer.json` files, so that an exported
character-level run is usable from `transformers` alone (`AutoTokenizer.from_pretrained(folder)`).

Both are written with the `tokenizers` library's own pieces, and give the same ids as seqlab's:

- **char**: a BPE model whose vocabulary is the characters, with no merges and no pre-tokenizer.
  BPE starts from the code points of its input and merges nothing, so each character becomes its
  id (`CharTokenizer`'s id order); the `Fuse` decoder joins the pieces with nothing between them. A
  run trained with `unknown_token` gets `<unk>` as its last id, as in seqlab (where it decodes to
  U+FFFD; in `transformers` to "<unk>"). A run with byte fallback gets the BPE model's own
  `byte_fallback` (as LLaMA's tokenizer.json has it): the byte tokens `<0x00>` … `<0xFF>` with
  seqlab's ids, which an unseen character is encoded to, and the `ByteFallback` decoder before `Fuse`
  turning them back into text, so every text gets seqlab's ids and decodes as in seqlab. (With no
  merges, BPE never joins the characters of a text such as `<0x41>` into a byte token.)
- **byte**: GPT-2's byte-level scheme without merges: the `ByteLevel` pre-tokenizer (no prefix space,
  no splitting regex) maps each UTF-8 byte b to GPT-2's printable stand-in for b, which has id b.

`tokenizer_config.json` names the plain `PreTrainedTokenizerFast` (so `AutoTokenizer` does not pick
a model-specific class with its own preprocessing) and turns off the clean-up of spaces before
punctuation, which would change the decoded text.

Word-level tokenizers are not exported: seqlab's word splitting (a Python regex) and its spacing on
decode have no exact counterpart among `tokenizers`' components.
"""

from __future__ import annotations

import json
from typing import Any

from seqlab.errors import TokenizerError
from seqlab.tokenizers import ByteTokenizer, CharTokenizer, Tokenizer
from seqlab.tokenizers.fallback import byte_token_strings

UNKNOWN = "<unk>"


def exportable(tokenizer: Tokenizer) -> bool:
    """Whether `tokenizer` has a tokenizer.json form written here (char and byte kinds)."""
    return isinstance(tokenizer, (CharTokenizer, ByteTokenizer))


def tokenizer_json(tokenizer: Tokenizer) -> dict[str, Any]:
    """The tokenizer.json content of a char or byte tokenizer."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers

    if isinstance(tokenizer, CharTokenizer):
        vocab = {c: i for i, c in enumerate(tokenizer.chars)}
        unk = None
        if tokenizer.unknown_token:
            vocab[UNKNOWN] = tokenizer.unknown_id
            unk = UNKNOWN
        offset = tokenizer.byte_fallback_offset
        if offset is not None:
            vocab.update({name: offset + b for b, name in enumerate(byte_token_strings())})
        hf = HFTokenizer(models.BPE(vocab=vocab, merges=[], unk_token=unk, byte_fallback=offset is not None))
        hf.decoder = decoders.Fuse() if offset is None else decoders.Sequence([decoders.ByteFallback(),
                                                                               decoders.Fuse()])
    elif isinstance(tokenizer, ByteTokenizer):
        stand_in = byte_stand_ins()
        hf = HFTokenizer(models.BPE(vocab={stand_in[b]: b for b in range(256)}, merges=[]))
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
        hf.decoder = decoders.ByteLevel()
    else:
        raise TokenizerError(f"a {tokenizer.kind} tokenizer has no tokenizer.json form (char, byte, bpe and hf "
                             f"tokenizers have)")
    return json.loads(hf.to_str())


def tokenizer_config(tokenizer: Tokenizer, max_length: int | None = None) -> dict[str, Any]:
    """tokenizer_config.json: the generic fast tokenizer, no added special tokens, no clean-up;
    `max_length`, the model's context, when it has one."""
    config: dict[str, Any] = {"tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": False}
    if max_length is not None:
        config["model_max_length"] = max_length
    if isinstance(tokenizer, CharTokenizer) and tokenizer.unknown_token:
        config["unk_token"] = UNKNOWN
    return config


def byte_stand_ins() -> dict[int, str]:
    """GPT-2's printable character for each byte: the printable Latin-1 bytes stand for themselves,
    the others (controls, space, soft hyphen...) for code points from 256 up, in byte order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    stand_in = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in stand_in:
            stand_in[b] = chr(256 + extra)
            extra += 1
    return stand_in
