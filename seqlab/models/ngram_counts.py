"""N-gram counting and the statistics of interpolated modified Kneser–Ney smoothing, in numpy.

Counting is vectorised: every k-gram (w1 … wk) over the alphabet of B = V + 2 symbols (the V token
ids, BOS = V, EOS = V + 1) is one int64 key, the base-B number w1·B^(k-1) + … + wk. One
`np.unique(..., return_counts=True)` per order gives the sorted table of k-grams and their counts;
lookups are `np.searchsorted` into that sorted array. Prefixes and suffixes are integer arithmetic
on keys: the context of a k-gram is `key // B`, its lower-order suffix is `key % B^(k-1)`.

Modified Kneser–Ney follows Chen & Goodman (1998), "An Empirical Study of Smoothing Techniques for
Language Modeling", §3 (interpolated, three discounts D1, D2, D3+ per order), building on Kneser &
Ney (1995): the highest order uses raw counts, every lower order uses continuation counts
N1+(· w_{i-k+1}^i), the number of distinct left extensions.

Dimensions: N number of distinct k-grams of one order · C number of contexts (k-1-grams) · B = V + 2.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def stream_windows(x: np.ndarray, history: np.ndarray, order: int, base: int) -> list[np.ndarray]:
    """Keys of the k-gram ending at each position, for k = 1..order; each (T,) int64.

    `history[t]` is how many tokens before t belong to t's stream. Key k at t is only meaningful
    where `history[t] >= k - 1`; elsewhere it is a harmless value below B^k (callers mask it).
    """
    keys = [x.astype(np.int64)]
    for _ in range(1, order):
        shifted = np.empty_like(keys[-1])
        shifted[0] = 0
        shifted[1:] = keys[-1][:-1]
        keys.append(shifted * base + x)  # (T,) the k-gram ending at t = (k-1)-gram ending at t-1, then x[t]
    return keys


def lookup(table: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of `query` keys in the sorted `table`, and whether each was found."""
    if len(table) == 0:
        return np.zeros(len(query), np.int64), np.zeros(len(query), bool)
    idx = np.minimum(np.searchsorted(table, query), len(table) - 1)
    return idx, table[idx] == query


def count_ngrams(x: np.ndarray, history: np.ndarray, order: int,
                 base: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(sorted keys, raw counts) of every k-gram inside one stream, for k = 0..order.

    Order 0 is the empty gram (key 0) counted once per position.
    """
    tables = [(np.zeros(1, np.int64), np.array([len(x)], np.int64))]
    for k, keys in enumerate(stream_windows(x, history, order, base), start=1):
        unique, counts = np.unique(keys[history >= k - 1], return_counts=True)
        tables.append((unique, counts.astype(np.int64)))
    return tables


def discounts(counts: np.ndarray) -> np.ndarray:
    """[0, D1, D2, D3+] from the counts of counts n1..n4 of `counts` (Chen & Goodman eq. 26).

    Y = n1 / (n1 + 2 n2), D1 = 1 - 2Y n2/n1, D2 = 2 - 3Y n3/n2, D3+ = 3 - 4Y n4/n3.
    Degenerate counts of counts (a zero denominator, as on tiny corpora) make a discount undefined;
    it then falls back to Y (absolute discounting, Ney et al. 1994), or to 0.5 when Y itself is
    undefined. Every D_j is finally clipped into [0, j], so that no count goes negative.
    """
    n = np.array([np.count_nonzero(counts == j) for j in range(1, 5)], np.float64)
    y = n[0] / (n[0] + 2 * n[1]) if n[0] + 2 * n[1] > 0 else 0.5
    out = np.zeros(4)
    for j in (1, 2, 3):
        ratio = n[j] / n[j - 1] if n[j - 1] > 0 else np.nan
        d = j - (j + 1) * y * ratio
        out[j] = np.clip(y if np.isnan(d) else d, 0.0, j)
    return out


@dataclass(frozen=True)
class OrderTable:
    """Everything one order needs at scoring time, aligned with its sorted `keys` (N,).

    As a predicted k-gram h·w: `raw` c(hw) and `kn_numerator` max(a(hw) - D(a), 0), where a is the
    raw count at the highest order and the continuation count below it. As a context h for order
    k + 1: `raw_total` Σ_w c(hw), `kn_inv_total` 1 / Σ_w a(hw) (0 when that sum is 0) and
    `kn_gamma` (D1 N1(h·) + D2 N2(h·) + D3+ N3+(h·)) / Σ_w a(hw).
    """

    keys: np.ndarray
    raw: np.ndarray
    kn_numerator: np.ndarray
    raw_total: np.ndarray
    kn_inv_total: np.ndarray
    kn_gamma: np.ndarray


def _predictable(keys: np.ndarray, counts: np.ndarray, base: int) -> np.ndarray:
    """Counts with every gram that ends in BOS zeroed: BOS is padding, never an outcome."""
    return np.where(keys % base == base - 2, 0, counts)


def continuation_counts(keys: np.ndarray, higher_keys: np.ndarray, k: int, base: int) -> np.ndarray:
    """N1+(· g) for each k-gram g in `keys`: the distinct (k+1)-grams in `higher_keys` ending in g."""
    idx = np.searchsorted(keys, higher_keys % base ** k)  # every suffix of a seen gram was seen
    return np.bincount(idx, minlength=len(keys)).astype(np.int64)


def _context_stats(keys: np.ndarray, higher_keys: np.ndarray, higher_adjusted: np.ndarray,
                   higher_raw: np.ndarray, d: np.ndarray, base: int) -> tuple[np.ndarray, ...]:
    """(raw_total, kn_inv_total, kn_gamma) of each gram in `keys` as a context of the next order."""
    idx = np.searchsorted(keys, higher_keys // base)  # (N_higher,) row of each gram's context
    raw_total = np.bincount(idx, weights=higher_raw, minlength=len(keys))
    kn_total = np.bincount(idx, weights=higher_adjusted, minlength=len(keys))
    mass = d[np.minimum(higher_adjusted, 3)] * (higher_adjusted > 0)  # D_j for each a(hw) >= 1
    left_over = np.bincount(idx, weights=mass, minlength=len(keys))
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_total = np.where(kn_total > 0, 1.0 / kn_total, 0.0)
    return raw_total, inv_total, left_over * inv_total


def build_tables(raw_tables: list[tuple[np.ndarray, np.ndarray]], base: int) -> list[OrderTable]:
    """Scoring tables for orders 0..n from the raw (keys, counts) of `count_ngrams`."""
    n = len(raw_tables) - 1
    raw = [_predictable(keys, counts, base) for keys, counts in raw_tables]
    adjusted = [raw[n] if k == n else _predictable(
        raw_tables[k][0], continuation_counts(raw_tables[k][0], raw_tables[k + 1][0], k, base), base)
        for k in range(n + 1)]
    tables = []
    for k in range(n + 1):
        keys = raw_tables[k][0]
        d = discounts(adjusted[k][adjusted[k] > 0]) if k > 0 else np.zeros(4)
        numerator = np.maximum(adjusted[k] - d[np.minimum(adjusted[k], 3)], 0.0)
        if k < n:
            d_next = discounts(adjusted[k + 1][adjusted[k + 1] > 0])
            stats = _context_stats(keys, raw_tables[k + 1][0], adjusted[k + 1], raw[k + 1], d_next, base)
        else:
            stats = (np.zeros(len(keys)),) * 3
        tables.append(OrderTable(keys, raw[k], numerator, *stats))
    return tables
