"""The hidden-state contract of every neural family, and the task heads on top of it.

The contract's reading must be the language model's own forward up to its output layer: the test
maps the states through that layer and compares with the model's logits, family by family. Then
the invariants heads rely on: a causal reading ignores what follows (padding included), the
bidirectional Transformer ignores padding, a reversed row reversed again is the row."""

import pytest
import torch

from seqlab import families
from seqlab.tasks.model import TaskModel, reversed_rows

TINY = {
    "mlp": {"context": 3, "d_embed": 4, "d_hidden": 12},
    "wavenet": {"n_layer": 3, "d_embed": 6, "d_residual": 8, "d_skip": 10},
    "rnn": {"n_layer": 2, "d_model": 12},
    "gated": {"n_layer": 1, "d_model": 12},
    "gru": {"n_layer": 2, "d_model": 12},
    "lstm": {"n_layer": 2, "d_model": 12},
    "mamba": {"n_layer": 2, "d_model": 12, "d_state": 4},
    "transformer": {"n_layer": 2, "n_head": 2, "d_model": 12, "block_size": 16},
}
# The output layer each family puts on the states the contract reads: (model, states (B, T, D)) -> logits.
OUTPUT = {
    "mlp": lambda m, h: m.lm_head(h),
    "wavenet": lambda m, h: m.head.out(h.transpose(1, 2)).transpose(1, 2),
    "rnn": lambda m, h: m.lm_head(h), "gated": lambda m, h: m.lm_head(h), "gru": lambda m, h: m.lm_head(h),
    "lstm": lambda m, h: m.lm_head(h), "mamba": lambda m, h: m.lm_head(h), "transformer": lambda m, h: m.lm_head(h),
}
VOCAB = 11


def test_every_neural_family_declares_its_hidden_states():
    with_states = {name for name, family in families.FAMILIES.items() if family.hidden is not None}
    assert with_states == set(TINY)


def _model(name):
    family = families.get(name)
    settings = family.settings(family=name, **TINY[name])
    torch.manual_seed(0)
    return family, settings, family.build_model(settings, VOCAB).double().eval()


@pytest.mark.parametrize("name", list(TINY))
def test_the_states_are_the_language_models_forward_without_its_output_layer(name):
    family, settings, model = _model(name)
    ids = torch.randint(VOCAB, (3, 9), generator=torch.Generator().manual_seed(1))
    mask = torch.ones(3, 9, dtype=torch.bool)
    states = family.hidden.read(model, model.tok_emb(ids), mask, False)
    assert states.shape == (3, 9, family.hidden.width(settings))
    assert model.tok_emb.weight.shape[1] == family.hidden.embed_width(settings)
    torch.testing.assert_close(OUTPUT[name](model, states), model(ids)[0])


@pytest.mark.parametrize("name", list(TINY))
def test_a_causal_reading_ignores_what_follows(name):
    family, settings, model = _model(name)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 10, family.hidden.embed_width(settings), generator=g, dtype=torch.float64)
    changed = x.clone()
    changed[:, 6:] = torch.randn(2, 4, x.shape[-1], generator=g, dtype=torch.float64)
    mask = torch.ones(2, 10, dtype=torch.bool)
    before = family.hidden.read(model, x, mask, False)[:, :6]
    torch.testing.assert_close(family.hidden.read(model, changed, mask, False)[:, :6], before)


def test_the_bidirectional_transformer_reads_ahead_but_never_the_padding():
    family, settings, model = _model("transformer")
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 8, 12, generator=g, dtype=torch.float64)
    mask = torch.tensor([[True] * 5 + [False] * 3, [True] * 8])
    other = x.clone()
    other[0, 5:] = torch.randn(3, 12, generator=g, dtype=torch.float64)  # row 0's padding
    h = family.hidden.read(model, x, mask, True)
    torch.testing.assert_close(family.hidden.read(model, other, mask, True)[0, :5], h[0, :5])
    ahead = x.clone()
    ahead[1, 7] = torch.randn(12, generator=g, dtype=torch.float64)  # a real token late in row 1 changes those before
    assert not torch.allclose(family.hidden.read(model, ahead, mask, True)[1, 0], h[1, 0])


def test_reversed_rows_reverse_each_rows_real_positions_and_undo_themselves():
    x = torch.arange(10.0).view(2, 5, 1)
    mask = torch.tensor([[True, True, True, False, False], [True] * 5])
    r = reversed_rows(x, mask)
    assert r[:, :, 0].tolist() == [[2, 1, 0, 3, 4], [9, 8, 7, 6, 5]]
    torch.testing.assert_close(reversed_rows(r, mask), x)


def _task_model(name, **options):
    family, settings, backbone = _model(name)
    return TaskModel(backbone.float(), family.hidden, settings, **options)


@pytest.mark.parametrize("name", list(TINY))
def test_a_classifier_and_a_tagger_on_every_family(name):
    ids = torch.randint(VOCAB, (3, 7), generator=torch.Generator().manual_seed(4))
    mask = torch.tensor([[True] * 7, [True] * 4 + [False] * 3, [True] * 2 + [False] * 5])
    classifier = _task_model(name, kind="classify", n_labels=3, pooling="attention")
    logits, loss = classifier(mask, ids=ids, targets=torch.tensor([0, 1, 2]))
    assert logits.shape == (3, 3) and loss.ndim == 0
    words = torch.tensor([[1, 3, 6], [0, 3, 0], [1, 0, 0]])
    word_mask = torch.tensor([[True] * 3, [True, True, False], [True, False, False]])
    tagger = _task_model(name, kind="tag", n_labels=4, crf=True)
    targets = torch.tensor([[0, 1, 2], [3, 0, -1], [2, -1, -1]])
    emissions, loss = tagger(mask, ids=ids, words=words, word_mask=word_mask, targets=targets)
    assert emissions.shape == (3, 3, 4) and torch.isfinite(loss)
    loss.backward()
    assert [len(row) for row in tagger.predict(mask, ids=ids, words=words, word_mask=word_mask)] == [3, 2, 1]


@pytest.mark.parametrize("name", ["lstm", "transformer"])
def test_a_bidirectional_tagger_reads_the_words_after_each_word(name):
    tagger = _task_model(name, kind="tag", n_labels=3, bidirectional=True).eval()
    ids = torch.randint(VOCAB, (1, 6), generator=torch.Generator().manual_seed(5))
    mask = torch.ones(1, 6, dtype=torch.bool)
    words = torch.tensor([[0, 5]])
    first = tagger.scores(mask, ids=ids, words=words)[0, 0]
    later = ids.clone()
    later[0, 5] = (later[0, 5] + 1) % VOCAB
    assert not torch.allclose(tagger.scores(mask, ids=later, words=words)[0, 0], first)


def test_real_valued_series_enter_through_the_input_projection():
    model = _task_model("gru", kind="classify", n_labels=2, n_features=3, pooling="mean")
    features = torch.randn(4, 9, 3)
    logits, _ = model(torch.ones(4, 9, dtype=torch.bool), features=features)
    assert logits.shape == (4, 2) and model.input_proj.in_features == 3
