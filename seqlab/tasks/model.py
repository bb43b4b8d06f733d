"""Task heads on any neural family: sequence classification and token tagging.

    ids → backbone.tok_emb ┐                                        ┌ classify: pooling → head → (B, C)
                           ├ x (B, T, E) → hidden states (B, T, D) ─┤
    features → input_proj ─┘   (the family's `HiddenStates`)        └ tag: at each word's last token
                                                                       → head → (B, W, K) [→ CRF]

The backbone is the family's language model, whole (its output layer is not read), so a run that
starts from another (`train.init_from`) loads that run's weights as they are, and a merged LoRA
run is a plain one again. The registry's `HiddenStates` says how the family turns input vectors
into states; `task.bidirectional` adds the right-to-left reading where the family has one (the
Transformer's attention unmasked, or a recurrent family's second stack over the reversed rows,
whose states are concatenated: D' = 2D).

With `task.pos_input`, each token's word's POS tag is embedded (`pos_emb`, index 0 a zero vector
for padding and unseen tags) and added to the token's vector, as a word embedding and a feature
embedding are summed in Collobert et al. 2011's tagger.

Real-valued series (F features per step) enter through `input_proj`, a linear map F → E in place
of the token embedding (Graves 2012's input layer): every family reads them the same way.

Tagging predicts at the last token of each word (its first and only one with a word tokenizer):
emissions (B, W, K); the loss is the per-word cross-entropy, or with `crf` the linear-chain CRF's
−log P(tags | x) summed over the sentences and divided by their words, so the learning rate means
the same with and without it. Decoding is per-word argmax, or the CRF's Viterbi.

Parameter names: `backbone.*` (the language model's own), `input_proj`, `pos_emb`, `reverse.*`, `pooling.*`,
`head`, `crf.{transitions,start,end}`.

Dimensions: B batch · T tokens or steps · F features · E input width · D hidden width · W words ·
C classes · K tags.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqlab.families.base import HiddenStates
from seqlab.models.crf import LinearChainCRF
from seqlab.nn.pooling import build_pooling

TaskKind = Literal["classify", "tag"]


def reversed_rows(x: Tensor, mask: Tensor) -> Tensor:
    """Each row's real positions in reverse order, padding left after them: x (B, T, ...) with the
    mask (B, T) → (B, T, ...). Its own inverse."""
    T = x.shape[1]
    lengths = mask.sum(dim=1, keepdim=True)  # (B, 1)
    positions = torch.arange(T, device=x.device).expand(x.shape[0], T)  # (B, T)
    index = torch.where(positions < lengths, lengths - 1 - positions, positions)  # (B, T)
    index = index.view(*index.shape, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(1, index)


class TaskModel(nn.Module):
    """A classifier or tagger over a family's backbone (see the module docstring)."""

    def __init__(self, backbone: nn.Module, hidden: HiddenStates, settings, *, kind: TaskKind, n_labels: int,
                 pooling: str = "last", crf: bool = False, bidirectional: bool = False, n_features: int = 0,
                 n_pos: int = 0) -> None:
        super().__init__()
        if n_labels < 2:
            raise ValueError(f"a task needs at least 2 labels, got {n_labels}")
        self.kind = kind
        self.backbone = backbone
        self.hidden = hidden  # functions, not modules: nothing registered
        width = hidden.width(settings)
        self.input_proj = nn.Linear(n_features, hidden.embed_width(settings)) if n_features else None
        self.pos_emb = None
        if n_pos:
            self.pos_emb = nn.Embedding(n_pos + 1, hidden.embed_width(settings), padding_idx=0)
            nn.init.normal_(self.pos_emb.weight, std=0.02)
            with torch.no_grad():
                self.pos_emb.weight[0].zero_()
        self.reverse = hidden.reverse(settings) if bidirectional and hidden.reverse is not None else None
        self.both_ways = bidirectional and self.reverse is None  # the attention reads both ways
        width = 2 * width if self.reverse is not None else width
        self.pooling = build_pooling(pooling, width) if kind == "classify" else None
        self.head = nn.Linear(width, n_labels)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)
        self.crf = LinearChainCRF(n_labels) if crf else None

    def states(self, mask: Tensor, ids: Tensor | None = None, features: Tensor | None = None,
               pos_ids: Tensor | None = None) -> Tensor:
        """ids (B, T) or features (B, T, F), mask (B, T), pos_ids (B, T) → hidden states (B, T, D')."""
        x = self.backbone.tok_emb(ids) if features is None else self.input_proj(features)  # (B, T, E)
        if self.pos_emb is not None:
            if pos_ids is None:
                raise ValueError("this tagger reads each word's POS tag: give pos_ids")
            x = x + self.pos_emb(pos_ids)
        h = self.hidden.read(self.backbone, x, mask, self.both_ways)  # (B, T, D)
        if self.reverse is not None:
            back = reversed_rows(self.reverse(reversed_rows(x, mask)), mask)  # (B, T, D): position t read from the end
            h = torch.cat([h, back], dim=-1)  # (B, T, 2D)
        return h

    def scores(self, mask: Tensor, ids: Tensor | None = None, features: Tensor | None = None,
               words: Tensor | None = None, pos_ids: Tensor | None = None) -> Tensor:
        """Class logits (B, C), or tag emissions (B, W, K) at the words' last tokens."""
        h = self.states(mask, ids, features, pos_ids)
        if self.kind == "classify":
            return self.head(self.pooling(h, mask))  # (B, C)
        at_words = h.gather(1, words.unsqueeze(-1).expand(-1, -1, h.shape[-1]))  # (B, W, D')
        return self.head(at_words)  # (B, W, K)

    def forward(self, mask: Tensor, ids: Tensor | None = None, features: Tensor | None = None,
                words: Tensor | None = None, word_mask: Tensor | None = None, pos_ids: Tensor | None = None,
                targets: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """(scores, mean loss or None): targets (B,) classes, or (B, W) tags with -1 on padding."""
        scores = self.scores(mask, ids, features, words, pos_ids)
        if targets is None:
            return scores, None
        if self.kind == "classify":
            return scores, F.cross_entropy(scores.float(), targets)
        if self.crf is None:
            return scores, F.cross_entropy(scores.flatten(0, 1).float(), targets.flatten(), ignore_index=-1)
        nll = self.crf.nll(scores.float(), targets.clamp(min=0), word_mask)  # (B,)
        return scores, nll.sum() / word_mask.sum().clamp(min=1)

    @torch.no_grad()
    def predict(self, mask: Tensor, ids: Tensor | None = None, features: Tensor | None = None,
                words: Tensor | None = None, word_mask: Tensor | None = None, pos_ids: Tensor | None = None) -> list:
        """Classify: the class probabilities of each row, (B, C) as lists. Tag: each row's tag
        indices over its words (Viterbi with a CRF, else the best tag of each word)."""
        scores = self.scores(mask, ids, features, words, pos_ids).float()
        if self.kind == "classify":
            return scores.softmax(dim=-1).tolist()
        if self.crf is not None:
            return self.crf.decode(scores, word_mask)
        best = scores.argmax(dim=-1)  # (B, W)
        return [row[:n].tolist() for row, n in zip(best, word_mask.sum(dim=1).tolist())]


__all__ = ["TaskModel", "reversed_rows"]
