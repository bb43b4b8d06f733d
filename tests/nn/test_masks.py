import pytest
import torch

from seqlab.nn.masks import causal_mask


def test_square_mask_is_lower_triangle():
    torch.testing.assert_close(causal_mask(5, 5), torch.ones(5, 5, dtype=torch.bool).tril())


@pytest.mark.parametrize("past", [1, 3])
def test_offset_mask_is_the_last_rows_of_the_full_mask(past):
    n_query = 4
    full = causal_mask(past + n_query, past + n_query)
    torch.testing.assert_close(causal_mask(n_query, past + n_query), full[past:])


def test_more_queries_than_keys_is_an_error():
    with pytest.raises(ValueError, match="n_query <= n_key"):
        causal_mask(3, 2)
