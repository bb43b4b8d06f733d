"""Sequence-to-sequence runs: their pairs, translation (greedy, sampled or beam search) and evaluation.

The high-level counterpart of `seqlab.api` for the seq2seq families (`model.family` =
"encoder_decoder", the Transformer, or "rnn_seq2seq", `Seq2SeqRNN`): `api.train`, `api.evaluate`,
`seqlab sample` and `seqlab translate` come here for such runs. Pairs come from a generated task
(`data.task`; see `seqlab.data.seq2seq`) or from parallel text (`data.pairs`; see
`seqlab.data.parallel`). Both models offer `stepper_for(src, src_mask)` (the sources encoded once)
and `forward(src, tgt_in, src_mask, tgt_mask, targets)`, which is all this module uses.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from seqlab.config import Config
from seqlab.data.parallel import (
    locate_eng_fra,
    locate_multi30k,
    multi30k,
    read_tsv,
    split_pairs,
)
from seqlab.data.seq2seq import (
    BOS,
    EOS,
    EncodedPairs,
    Pair,
    Seq2SeqBatches,
    collate,
    encode_pairs,
    generate_task,
    pairs_text,
)
from seqlab.errors import ConfigError, SeqlabError
from seqlab.generate.beam import beam_search
from seqlab.generate.sampling import generate
from seqlab.scoring.bleu import corpus_bleu
from seqlab.tokenizers import PairTokenizer, Tokenizer, source_side, train_tokenizer

log = logging.getLogger(__name__)

PARALLEL_SEED = 0  # the split of a single TSV file: fixed, so training and evaluation see the same one


def config_pairs(config: Config) -> dict[str, list[Pair]]:
    """The pairs of a run's config by split: train and val, and test for parallel text."""
    data = config.data
    if data.task:
        # The data seed is fixed (not train.seed): every run of a task, and its evaluation, sees the same pairs.
        train, val = generate_task(data.task, data.task_examples, seed=0, min_len=data.task_min_len,
                                   max_len=data.task_max_len, val_fraction=data.val_fraction)
        return {"train": train, "val": val}
    max_pairs = data.max_pairs or None
    if data.pairs == "multi30k":
        splits = multi30k(locate_multi30k(), source=data.source_lang, target=data.target_lang)
        if max_pairs:
            splits["train"] = splits["train"][:max_pairs]
        return splits
    if data.pairs:
        path = locate_eng_fra() if data.pairs == "eng-fra" else Path(data.pairs)
        train, val, test = split_pairs(read_tsv(path, max_pairs=max_pairs), val_fraction=data.val_fraction,
                                       test_fraction=data.val_fraction, seed=PARALLEL_SEED)
        return {"train": train, "val": val, "test": test}
    raise ConfigError(f"model.family = \"{config.model.family}\" trains on (source, target) pairs: set data.task "
                      "to one of copy, reverse, sort, addition, dates, or data.pairs to eng-fra, multi30k or "
                      "a TSV file")


def task_pairs(config: Config) -> tuple[list[Pair], list[Pair]]:
    """The (train, val) pairs a run's config names."""
    splits = config_pairs(config)
    return splits["train"], splits["val"]


def natural_language(config: Config) -> bool:
    """Whether a run's pairs are parallel text (scored with BLEU too), not a generated task."""
    return bool(config.data.pairs)


def seq2seq_batches(config: Config, tokenizer: Tokenizer | None
                    ) -> tuple[Tokenizer, Seq2SeqBatches, list[Pair]]:
    """The tokenizer (fitted to the training and validation pairs unless given), the batch source, and
    the validation pairs (what `sample_translations` shows a few of)."""
    train, val = task_pairs(config)
    if tokenizer is None:
        tokenizer = fit_tokenizer(config, train + val)
    block = config.model.block_size
    batches = Seq2SeqBatches(_encode(train, tokenizer, block), _encode(val, tokenizer, block), config.train.batch_size,
                             group_by_length=config.data.group_by_length)
    log.info("%s: %d train / %d val pairs", config.data.task or config.data.pairs, len(train), len(val))
    return tokenizer, batches, val


def fit_tokenizer(config: Config, pairs: Sequence[Pair]) -> Tokenizer:
    """One tokenizer fitted to both sides (`tokenizer.shared`), or a `PairTokenizer` of one per side;
    the target side always learns BOS and EOS."""
    kind, size, fallback = config.tokenizer.kind, config.tokenizer.vocab_size, config.tokenizer.byte_fallback
    if config.tokenizer.shared:
        return train_tokenizer(kind, pairs_text(pairs), vocab_size=size, byte_fallback=fallback)
    sources = "".join(f"{s}{EOS}" for s, _ in pairs)
    targets = "".join(f"{BOS}{t}{EOS}" for _, t in pairs)
    return PairTokenizer(train_tokenizer(kind, sources, vocab_size=size, byte_fallback=fallback),
                         train_tokenizer(kind, targets, vocab_size=size, byte_fallback=fallback))


def _encode(pairs: Sequence[Pair], tokenizer: Tokenizer, block_size: int) -> EncodedPairs:
    """`encode_pairs` with the run's tokenizer: the target side's ids, and the source side's."""
    return encode_pairs(pairs, tokenizer.encode, block_size=block_size, encode_source=source_side(tokenizer).encode)


def _decode(model: nn.Module, src: torch.Tensor, src_mask: torch.Tensor, encoded: EncodedPairs, *,
            max_new_tokens: int, beam_size: int = 1, length_penalty: float = 1.0, stepper=None,
            **sampling) -> list[list[int]]:
    """Target ids (without BOS and EOS) decoded for the sources src (B, S) (model in eval mode): beam
    search when beam_size > 1, else greedy or sampled through the generation loop, with `stepper`
    when the sources are already encoded."""
    max_new_tokens = min(max_new_tokens, model.block_size - 1)
    if beam_size > 1:
        best = beam_search(model, src, src_mask, bos=encoded.bos, eos=encoded.eos, beam_size=beam_size,
                           max_new_tokens=max_new_tokens, length_penalty=length_penalty)
        return [h.tokens for h in best]
    stepper = stepper or model.stepper_for(src, src_mask)
    start = torch.full((src.shape[0], 1), encoded.bos, dtype=torch.long, device=src.device)
    out = generate(stepper, start, max_new_tokens, **sampling)
    return [row[:row.index(encoded.eos)] if encoded.eos in row else row for row in out[:, 1:].tolist()]


@torch.inference_mode()
def translate(model: nn.Module, tokenizer: Tokenizer, sources: Sequence[str], *, max_new_tokens: int = 64,
              temperature: float = 0.0, top_k: int | None = None, top_p: float | None = None,
              seed: int | None = None, beam_size: int = 1, length_penalty: float = 1.0,
              batch_size: int = 64) -> list[str]:
    """Decode a target for each source, stopping at the end token: greedy with temperature 0, sampled
    otherwise, or beam search of width `beam_size` (> 1) with GNMT's `length_penalty`."""
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        outputs: list[str] = []
        for start in range(0, len(sources), batch_size):
            chunk = sources[start:start + batch_size]
            encoded = _encode([(s, "") for s in chunk], tokenizer, model.block_size)
            (src, _, src_mask, _), _ = collate(encoded, range(len(chunk)))
            ids = _decode(model, src.to(device), src_mask.to(device), encoded, max_new_tokens=max_new_tokens,
                          beam_size=beam_size, length_penalty=length_penalty, temperature=temperature, top_k=top_k,
                          top_p=top_p, seed=seed)
            outputs += [tokenizer.decode(row) for row in ids]
        return outputs
    finally:
        model.train(was_training)


def sample_translations(model: nn.Module, tokenizer: Tokenizer, pairs: Sequence[Pair]) -> str:
    """Sources with the model's greedy outputs beside the expected targets (the sample written at each
    evaluation during training, from a few validation pairs chosen once)."""
    outputs = translate(model, tokenizer, [s for s, _ in pairs], max_new_tokens=model.block_size)
    return "\n".join(f"{s} → {o}   (expected {t})" for (s, t), o in zip(pairs, outputs))


@torch.inference_mode()
def evaluate_pairs(model: nn.Module, tokenizer: Tokenizer, pairs: Sequence[Pair], *, batch_size: int = 64,
                   beam_size: int = 1, length_penalty: float = 1.0, bleu: bool = False) -> dict[str, float | int]:
    """Teacher-forced loss (nats per target token, end token included); exact match and token accuracy
    (position by position, over the reference's tokens) of greedy or beam decoding; and, with `bleu`,
    corpus BLEU of the decoded texts (sacreBLEU's defaults: 13a tokenization, exponential smoothing)."""
    if not pairs:
        raise SeqlabError("no pairs to evaluate")
    was_training = model.training
    model.eval()
    try:
        return _score_pairs(model, tokenizer, pairs, batch_size, beam_size, length_penalty, bleu)
    finally:
        model.train(was_training)


def _score_pairs(model: nn.Module, tokenizer: Tokenizer, pairs: Sequence[Pair], batch_size: int,
                 beam_size: int, length_penalty: float, bleu: bool) -> dict[str, float | int]:
    device = next(model.parameters()).device
    encoded = _encode(pairs, tokenizer, model.block_size)
    total, count, exact, right, tokens, outputs = 0.0, 0, 0, 0, 0, []
    for start in range(0, len(pairs), batch_size):
        indices = range(start, min(start + batch_size, len(pairs)))
        inputs, targets = collate(encoded, indices)
        src, tgt_in, src_mask, tgt_mask = (t.to(device) for t in inputs)
        # The sources are encoded once, for both the teacher-forced loss and greedy decoding.
        stepper = model.stepper_for(src, src_mask)
        logits = stepper.teacher_forced(tgt_in, tgt_mask)
        total += F.cross_entropy(logits.flatten(0, 1).float(), targets.to(device).flatten(), ignore_index=-1,
                                 reduction="sum").item()
        count += int((targets >= 0).sum())
        decoded = _decode(model, src, src_mask, encoded, max_new_tokens=model.block_size, beam_size=beam_size,
                          length_penalty=length_penalty, stepper=stepper, temperature=0.0)
        for i, got in zip(indices, decoded):
            expected = encoded.targets[i]
            exact += got == expected
            right += sum(a == b for a, b in zip(got, expected))
            tokens += len(expected)
        outputs += [tokenizer.decode(row) for row in decoded]
    loss = total / count
    scores: dict[str, float | int] = {
        "loss": loss, "perplexity": math.exp(loss), "bits_per_token": loss / math.log(2),
        "exact_match": exact / len(pairs), "token_accuracy": right / max(tokens, 1), "pairs": len(pairs),
        "beam_size": beam_size}
    if bleu:
        result = corpus_bleu(outputs, [t for _, t in pairs])
        scores["bleu"], scores["bleu_signature"] = result.score, result.signature  # sacreBLEU's
    return scores


__all__ = ["BOS", "EOS", "config_pairs", "evaluate_pairs", "natural_language", "sample_translations",
           "seq2seq_batches", "task_pairs", "translate"]
