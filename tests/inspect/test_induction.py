"""Induction scores and mirrored mass (seqlab.inspect.induction) on hand-built attention tensors."""

import math

import torch

from seqlab.inspect.induction import induction_scores, induction_targets, mirrored_mass


def test_induction_targets_are_the_tokens_after_the_previous_occurrence():
    #        0  1  2  3  4  5  6
    tokens = [5, 6, 7, 5, 6, 7, 7]
    # 5 at 3 → 1 (after the 5 at 0); 6 at 4 → 2; 7 at 5 → 3; 7 at 6: previous 7 at 5, 5 + 1 = 6 is itself
    assert induction_targets(tokens) == [(3, 1), (4, 2), (5, 3)]


def test_induction_scores_of_a_hand_built_tensor():
    tokens = [1, 2, 3, 4, 1, 2, 3, 4]  # a random sequence written twice, length 4
    T = len(tokens)
    induction = torch.zeros(T, T)
    previous = torch.zeros(T, T)
    for t in range(T):
        previous[t, max(t - 1, 0)] = 1.0  # a previous-token head
        induction[t, t - 3 if t >= 4 else 0] = 1.0  # from t to t - 4 + 1 in the repeated half
    half = induction.clone()
    half[4:] = 0.5 * induction[4:] + 0.5 * previous[4:]
    attention = torch.stack([torch.stack([previous, induction]), torch.stack([half, previous])])  # (2, 2, T, T)
    scores = induction_scores((attention, tokens), positions=range(4, 8))
    torch.testing.assert_close(scores, torch.tensor([[0.0, 1.0], [0.5, 0.0]]))
    assert torch.isnan(induction_scores((attention, [1, 2, 3, 4, 5, 6, 7, 8]))).all()  # no repeats: undefined


def test_mirrored_mass_of_a_hand_built_cross_attention():
    S = 5
    mirror = torch.eye(S).flip(1)  # row j puts all its weight on S - 1 - j
    uniform = torch.full((S, S), 1 / S)
    cross = torch.stack([torch.stack([mirror, uniform, 0.9 * mirror + 0.1 * uniform])])  # (1, 3, S, S)
    torch.testing.assert_close(mirrored_mass(cross), torch.tensor([[1.0, 0.2, 0.92]]))
    # a target longer than the source (its end token): only the first S rows count
    longer = torch.cat([mirror, torch.zeros(1, S)])  # (S + 1, S)
    assert math.isclose(float(mirrored_mass(longer)), 1.0)
    # a source whose last position is not a source token: n_source mirrors within the first 4
    four = torch.zeros(4, S)
    four[torch.arange(4), 3 - torch.arange(4)] = 1.0
    assert math.isclose(float(mirrored_mass(four, n_source=4)), 1.0)
