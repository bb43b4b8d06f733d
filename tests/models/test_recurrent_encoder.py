"""The recurrent encoder: shapes, padding invariance, last-state pooling, and a classifier that learns."""

from __future__ import annotations

import pytest
import torch

from seqlab.data.parens import VOCAB_SIZE, ParensBatches, collate_parens, make_parens_dataset
from seqlab.models.encoder import SequenceClassifier, pool
from seqlab.models.recurrent_encoder import RECURRENT_KINDS, RecurrentEncoder, build_recurrent

V = 7


def make_encoder(kind: str, seed: int, **options) -> RecurrentEncoder:
    torch.manual_seed(seed)
    return RecurrentEncoder(kind, V, 6, 2, **options).double().eval()


@pytest.mark.parametrize("kind", RECURRENT_KINDS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_width_and_zero_states_at_padding(kind, bidirectional):
    encoder = make_encoder(kind, 0, bidirectional=bidirectional)
    assert encoder.d_model == 6 * (2 if bidirectional else 1)
    idx = torch.randint(V, (2, 5), generator=torch.Generator().manual_seed(0))
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    states = encoder(idx, mask)
    assert states.shape == (2, 5, encoder.d_model)
    assert torch.all(states[1, 3:] == 0)


@pytest.mark.parametrize("kind", RECURRENT_KINDS)
@pytest.mark.parametrize("seed", [0, 1])
def test_last_state_pooling_ignores_padding(kind, seed):
    """A padded sequence gives the classifier the same logits as the sequence alone, whatever the
    padding holds: the last real state is taken, and the recurrence never reads the padding."""
    torch.manual_seed(seed)
    classifier = SequenceClassifier(make_encoder(kind, seed), 3, pooling="last").double().eval()
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(V, (3, 8), generator=g)
    lengths = [8, 5, 1]
    mask = torch.arange(8)[None, :] < torch.tensor(lengths)[:, None]  # (B, T)
    logits, _ = classifier(idx, mask)
    other = idx.clone()
    other[~mask] = (other[~mask] + 1) % V  # different padding contents
    torch.testing.assert_close(classifier(other, mask)[0], logits, msg=f"seed {seed}")
    for row, n in enumerate(lengths):
        alone, _ = classifier(idx[row:row + 1, :n])  # no padding, no mask: the last position is real
        torch.testing.assert_close(logits[row:row + 1], alone, msg=f"seed {seed}, row {row}")


def test_last_pooling_takes_the_last_real_position():
    states = torch.arange(2 * 4 * 1, dtype=torch.float64).reshape(2, 4, 1)
    mask = torch.tensor([[True, True, False, False], [True, True, True, True]])
    assert pool(states, mask, "last").flatten().tolist() == [1.0, 7.0]
    assert pool(states, None, "last").flatten().tolist() == [3.0, 7.0]


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown recurrent kind"):
        build_recurrent("transformer", 4, 4, 1)


def test_classifier_learns_short_parentheses_above_chance():
    """A small GRU classifier beats chance on held-out short sequences after a few dozen steps."""
    seed = 3
    torch.manual_seed(seed)
    train = make_parens_dataset(1000, min_len=2, max_len=4, seed=seed)
    test_x, test_y = make_parens_dataset(400, min_len=2, max_len=4, seed=seed + 1)
    model = SequenceClassifier(RecurrentEncoder("gru", VOCAB_SIZE, 16, 1), 2, pooling="last")
    batches = ParensBatches(train, train, batch_size=32)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(seed)
    for _ in range(60):
        (idx, mask), y = batches.sample("train", g)
        _, loss = model(idx, mask, y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    idx, mask, y = collate_parens(test_x, test_y)
    accuracy = (model.predict(idx, mask) == y).float().mean().item()
    assert accuracy > 0.7, f"seed {seed}: accuracy {accuracy:.3f}"
