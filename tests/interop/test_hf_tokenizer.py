"""The `hf` tokenizer kind (`seqlab.tokenizers.hf`): a pretrained model's tokenizer.json behind
seqlab's interface, byte-level and otherwise, saved and loaded like every kind."""

from __future__ import annotations

import codecs

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, processors

from seqlab.errors import TokenizerError
from seqlab.tokenizers import HFTokenizer, load_tokenizer, train_tokenizer

TEXTS = ["To be, or not to be, that is the question.", "Café, naïve, façade: 中文 too.",
         "the lazy dog"]


def test_byte_level_round_trip_and_streaming(tiny_tokenizer_json):
    tok = HFTokenizer.from_file(tiny_tokenizer_json)
    reference = Tokenizer.from_file(str(tiny_tokenizer_json))
    for text in TEXTS:
        ids = tok.encode(text)
        assert ids == reference.encode(text).ids
        assert tok.encode_array(text).tolist() == ids
        assert tok.decode(ids) == text == reference.decode(ids)
        # One token at a time through an incremental UTF-8 decoder, as `seqlab sample` streams: the
        # exact bytes of each token put split characters (ç, 中) back together.
        decoder = codecs.getincrementaldecoder("utf-8")()
        assert "".join(decoder.decode(tok.decode_bytes([i])) for i in ids) + decoder.decode(b"", final=True) == text


def test_padded_vocabulary_and_save_load(tmp_path, tiny_tokenizer_json):
    own = HFTokenizer.from_file(tiny_tokenizer_json).vocab_size
    tok = HFTokenizer.from_file(tiny_tokenizer_json, vocab_size=own + 6)
    assert tok.vocab_size == own + 6 and len(tok.token_strings()) == own + 6
    assert tok.decode([own + 5]) == "" and tok.decode_bytes([own + 5]) == b""
    tok.save(tmp_path / "tokenizer.json")
    loaded = load_tokenizer(tmp_path / "tokenizer.json")
    assert loaded == tok and loaded.kind == "hf" and loaded.vocab_size == own + 6
    assert loaded.encode(TEXTS[0]) == tok.encode(TEXTS[0])
    with pytest.raises(TokenizerError, match="out of range"):
        tok.decode([own + 6])
    with pytest.raises(TokenizerError, match=f"has {own} ids, more than vocab_size {own - 1}"):
        HFTokenizer.from_file(tiny_tokenizer_json, vocab_size=own - 1)


def test_other_tokenizers_decode_through_hf_and_add_no_special_tokens():
    vocab = {"[UNK]": 0, "<s>": 1, "hello": 2, "world": 3, "!": 4}
    hf = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    hf.pre_tokenizer = pre_tokenizers.Whitespace()
    hf.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    tok = HFTokenizer(hf)
    assert hf.encode("hello world!").ids == [1, 2, 3, 4]  # the tokenizer itself adds <s> ...
    assert tok.encode("hello world!") == [2, 3, 4]  # ... seqlab never does
    assert tok.decode([2, 3, 4]) == hf.decode([2, 3, 4], skip_special_tokens=False)
    assert tok.decode_bytes([2, 3]) == tok.decode([2, 3]).encode("utf-8")
    assert tok.token_strings()[:3] == ["[UNK]", "<s>", "hello"]


def test_unreadable_files_are_one_line_errors(tmp_path):
    with pytest.raises(TokenizerError, match="does not exist"):
        HFTokenizer.from_file(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"model": 3}')
    with pytest.raises(TokenizerError, match=r"bad\.json: not a tokenizer\.json"):
        HFTokenizer.from_file(bad)


def test_hf_kind_is_not_trained():
    with pytest.raises(TokenizerError, match="not trained"):
        train_tokenizer("hf", "some text")
