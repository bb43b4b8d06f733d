import pytest
import torch

from seqlab.nn.kv_cache import KVCache


def test_empty_preallocates_layer_major_storage():
    cache = KVCache.empty(3, 2, 4, 16, 8, dtype=torch.float64)
    assert cache.k.shape == cache.v.shape == (3, 2, 4, 16, 8)
    assert cache.k.dtype == torch.float64
    assert (cache.length, cache.n_layer, cache.batch_size, cache.max_len) == (0, 3, 2, 16)


def test_layer_append_writes_in_place_and_returns_the_filled_prefix():
    torch.manual_seed(0)
    cache = KVCache.empty(2, 1, 2, 8, 4)
    k_ptr, v_ptr = cache.k.data_ptr(), cache.v.data_ptr()
    first_k, first_v = torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 4)
    cache.layer(1).append(first_k, first_v)
    cache.advance(3)
    new_k, new_v = torch.randn(1, 2, 2, 4), torch.randn(1, 2, 2, 4)
    all_k, all_v = cache.layer(1).append(new_k, new_v)
    cache.advance(2)

    assert (cache.k.data_ptr(), cache.v.data_ptr()) == (k_ptr, v_ptr)
    torch.testing.assert_close(all_k, torch.cat([first_k, new_k], dim=2))
    torch.testing.assert_close(all_v, torch.cat([first_v, new_v], dim=2))
    torch.testing.assert_close(cache.k[1, :, :, :5], all_k)
    assert all_k.data_ptr() == cache.k[1].data_ptr()  # a view, not a copy
    assert cache.length == 5


def test_overflow_is_an_error():
    cache = KVCache.empty(1, 1, 1, 4, 2)
    cache.advance(3)
    with pytest.raises(ValueError, match="overflow"):
        cache.layer(0).append(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2))
    with pytest.raises(ValueError, match="overflow"):
        cache.advance(2)


def test_a_new_cache_over_the_same_storage_starts_empty():
    cache = KVCache.empty(1, 1, 1, 4, 2)
    cache.advance(4)
    restarted = KVCache(cache.k, cache.v, length=0)
    assert restarted.length == 0 and restarted.k.data_ptr() == cache.k.data_ptr()
