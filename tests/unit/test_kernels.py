"""The batch kernels against plain per-group numpy on the same data."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.core.kernels import EdgeGrid, bucket_codes, fold_codes, fold_numeric
from monitor.drift.summary import NumericSummary


@pytest.mark.parametrize("seed", range(5))
def test_bucket_codes_equal_numeric_summary_bucket_codes(seed):
    rng = np.random.default_rng(seed)
    summaries = [NumericSummary(np.sort(rng.choice(np.arange(-5.0, 5.0, 0.5), size=e,
                                                   replace=False)))
                 for e in (1, 2, 7, 12)]
    n = 3000
    x = rng.choice(np.arange(-6.0, 6.0, 0.25), size=(len(summaries), n))  # hits edges exactly
    x[rng.random(x.shape) < 0.05] = np.nan
    x[rng.random(x.shape) < 0.02] = np.inf
    x[rng.random(x.shape) < 0.02] = -np.inf
    widths = [s.search_edges.shape[0] for s in summaries]
    search = np.full((len(summaries), max(widths)), np.inf)
    for j, s in enumerate(summaries):
        search[j, :widths[j]] = s.search_edges
    offsets = np.array([0, 100, 200, 300])
    got = bucket_codes(x, search, np.array(widths), offsets)
    for j, s in enumerate(summaries):
        assert got[j].tolist() == (s.bucket_codes(x[j]) + offsets[j]).tolist()


def test_fold_numeric_and_fold_codes_equal_per_group_numpy():
    rng = np.random.default_rng(7)
    n, groups = 500, [np.flatnonzero(rng.random(500) < p) for p in (1.0, 0.3, 0.5)]
    from monitor.core.grouped import layer_arrays

    codes, owners = layer_arrays(groups, n)
    x = rng.normal(size=(2, n))
    c = rng.integers(0, 5, (2, n))
    c[:, :10] = 5  # "not finite" codes past ends
    ends = np.array([5, 5])
    shift = np.array([0.1, -0.2])
    hist = np.zeros((3, 6), dtype=np.int64)
    s1, s2 = np.zeros((3, 2)), np.zeros((3, 2))
    lo, hi = np.full((3, 2), np.inf), np.full((3, 2), -np.inf)
    fold_numeric(x, c, ends, shift, codes, owners, hist, s1, s2, lo, hi)
    hist2 = np.zeros((3, 6), dtype=np.int64)
    fold_codes(c, codes, owners, hist2)
    for g, rows in enumerate(groups):
        want = np.bincount(c[:, rows].ravel(), minlength=6)
        assert hist[g].tolist() == want.tolist() == hist2[g].tolist()
        for f in range(2):
            ok = rows[c[f, rows] < ends[f]]
            d = x[f, ok] - shift[f]
            assert s1[g, f] == pytest.approx(d.sum(), rel=1e-12, abs=1e-12)
            assert s2[g, f] == pytest.approx((d * d).sum(), rel=1e-12)
            assert (lo[g, f], hi[g, f]) == (x[f, ok].min(), x[f, ok].max())


def _layered(seed: int, n: int = 400):
    from monitor.core.grouped import layer_arrays

    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(rng.random(n) < p) for p in (1.0, 0.3, 0.5, 0.0, 0.05)]
    return rng, groups, layer_arrays(groups, n)


@pytest.mark.parametrize("seed", range(3))
def test_fold_sums_and_reservoir_candidates_equal_per_group_numpy(seed):
    from monitor.core.kernels import fold_sums, reservoir_candidates

    rng, groups, layers = _layered(seed)
    values = rng.normal(size=(3, 400))
    out = np.ones((len(groups), 3))
    fold_sums(values, *layers, out)
    keys, bar = rng.random(400), rng.random(len(groups))
    got_g, got_r = reservoir_candidates(keys, bar, *layers)
    want_g, want_r = [], []
    for g, rows in enumerate(groups):
        assert out[g].tolist() == pytest.approx((1 + values[:, rows].sum(axis=1)).tolist())
        r = rows[keys[rows] < bar[g]]
        want_g += [g] * len(r)
        want_r += r.tolist()
    assert (got_g.tolist(), got_r.tolist()) == (want_g, want_r)


def _candidates_by_lexsort(keys, bar, codes, groups):
    g_all, r_all = [], []
    for layer in range(codes.shape[0]):
        for local, g in enumerate(groups[layer]):
            if g >= 0:
                r = np.flatnonzero(codes[layer] == local)
                r = r[keys[r] < bar[g]]
                g_all += [g] * len(r)
                r_all += r.tolist()
    order = np.lexsort((r_all, g_all))
    return np.array(g_all)[order].tolist(), np.array(r_all)[order].tolist()


@pytest.mark.parametrize("offset", [0, 2**15 - 2, 2**20])
def test_reservoir_candidates_sorted_as_lexsort_even_with_a_group_in_two_layers(offset):
    from monitor.core.kernels import reservoir_candidates

    rng = np.random.default_rng(5)
    codes = rng.integers(0, 3, (3, 300))
    groups = np.array([[0, 1, -1], [2, 0, -1], [1, 3, 2]])  # 0, 1, 2 in two layers
    groups = np.where(groups >= 0, groups + offset, -1)
    bar = np.zeros(offset + 4)
    bar[offset:] = rng.random(4)
    keys = rng.random(300)
    for layers in (groups, groups[:1], groups[1:2]):  # in two layers; one layer each
        got_g, got_r = reservoir_candidates(keys, bar, codes[:len(layers)], layers)
        assert (got_g.tolist(), got_r.tolist()) == _candidates_by_lexsort(
            keys, bar, codes[:len(layers)], layers)


def test_folds_over_several_chunks_equal_one_chunk(monkeypatch):
    import monitor.core.kernels as k

    rng, _, layers = _layered(11, n=1000)
    x = rng.normal(size=(2, 1000))
    c = rng.integers(0, 6, (2, 1000))
    ends = np.array([5, 5])

    def run():
        out = [np.zeros((5, 6), dtype=np.int64), np.zeros((5, 2)), np.zeros((5, 2)),
               np.full((5, 2), np.inf), np.full((5, 2), -np.inf)]
        k.fold_numeric(x, c, ends, np.zeros(2), *layers, *out)
        return out

    whole = run()
    monkeypatch.setattr(k, "CHUNK", 7)
    for a, b in zip(whole, run(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def _nasty_edges(rng, kind):
    if kind == "quantiles":
        return np.unique(np.quantile(rng.lognormal(0, 2, 5000), np.linspace(0, 1, 21)))
    if kind == "crowded":  # most edges in a tiny span, one far away: binary-searched
        return np.sort(np.r_[1.0 + np.arange(30) * 1e-9, 1e6])
    if kind == "tiny":
        return 1e-300 * np.arange(1.0, 6.0)
    if kind == "one":
        return np.array([rng.normal()])
    if kind == "none":
        return np.zeros(0)
    return np.sort(rng.choice(np.arange(-5.0, 5.0, 0.5), size=12, replace=False))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("block", [1 << 14, 333])  # one pass; blocks, the last one partial
def test_bucket_codes_grid_equals_searchsorted_on_nasty_edges(seed, block, monkeypatch):
    monkeypatch.setattr(EdgeGrid, "BLOCK", block)
    rng = np.random.default_rng(100 + seed)
    kinds = ["quantiles", "crowded", "tiny", "one", "none", "grid"]
    edges = [_nasty_edges(rng, k) for k in kinds]
    search = []
    for e in edges:  # as NumericSummary: the last edge closed
        s = e.copy()
        if s.shape[0]:
            s[-1] = np.nextafter(s[-1], np.inf)
        search.append(s)
    widths = [s.shape[0] for s in search]
    padded = np.full((len(search), max(widths)), np.inf)
    for j, s in enumerate(search):
        padded[j, :widths[j]] = s
    n = 4000
    x = np.empty((len(search), n))
    for j, s in enumerate(search):
        pool = np.r_[s, np.nextafter(s, np.inf), np.nextafter(s, -np.inf), 0.0, -1e308, 1e308,
                     5e-324, -5e-324] if s.shape[0] else np.array([0.0, 1.0, -1e308])
        x[j] = np.where(rng.random(n) < 0.5, rng.choice(pool, n),
                        rng.normal(s.mean() if s.shape[0] else 0, s.std() + 1 if s.shape[0]
                                   else 1, n))
    x[rng.random(x.shape) < 0.03] = np.nan
    x[rng.random(x.shape) < 0.01] = np.inf
    x[rng.random(x.shape) < 0.01] = -np.inf
    offsets = np.arange(len(search)) * 1000
    got = bucket_codes(x, padded, np.array(widths), offsets)
    for j, s in enumerate(search):
        want = np.searchsorted(s, x[j], side="right") + offsets[j]
        e = s.shape[0]
        want[x[j] == -np.inf] = offsets[j] + e + 1
        want[x[j] == np.inf] = offsets[j] + e + 2
        want[np.isnan(x[j])] = offsets[j] + e + 3
        np.testing.assert_array_equal(got[j], want, err_msg=kinds[j])


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("chunk", [1 << 16, 97])
def test_fold_numeric_from_running_extremes_equals_per_group_numpy(seed, chunk, monkeypatch):
    """Extremes start at earlier batches' (finite, some tight, some loose, some ±inf), the
    groups of a layer cut a column (buckets) or not, records come in several chunks: the sums
    are bincount's bit for bit, the extremes and histograms exact."""
    from monitor.core import kernels
    from monitor.core.grouped import layer_arrays

    monkeypatch.setattr(kernels, "CHUNK", chunk)
    rng = np.random.default_rng(300 + seed)
    n, n_cols = 1200, 3
    x = rng.normal(size=(n_cols, n))
    cut = np.digitize(x[0], [-0.5, 0.5])  # a layer of buckets of column 0
    groups = [np.arange(n)] + [np.flatnonzero(cut == b) for b in range(3)] + [
        np.flatnonzero(rng.random(n) < p) for p in (0.4, 0.02, 0.0)]
    codes, owners = layer_arrays(groups, n)
    c = rng.integers(0, 5, (n_cols, n))
    c[:, rng.random(n) < 0.03] = 5  # not finite
    ends, shift = np.full(n_cols, 5), rng.normal(size=n_cols)
    g = len(groups)
    lo0 = np.where(rng.random((g, n_cols)) < 0.5, rng.normal(-2.5, 1, (g, n_cols)), 0.0)
    hi0 = np.where(rng.random((g, n_cols)) < 0.5, rng.normal(2.5, 1, (g, n_cols)), 0.0)
    if seed % 2:
        lo0[2], hi0[2] = np.inf, -np.inf  # a new group
    else:  # tight: near each group's own extremes, a few values beyond
        for k, rows in enumerate(groups):
            if rows.shape[0]:
                lo0[k] = np.sort(x[:, rows], axis=1)[:, min(3, rows.shape[0] - 1)]
                hi0[k] = np.sort(x[:, rows], axis=1)[:, max(-4, -rows.shape[0])]
    reduced = []
    monkeypatch.setattr(kernels, "_group_extremes",
                        lambda *a, f=kernels._group_extremes: reduced.append(1) or f(*a))
    hist = np.zeros((g, 6), dtype=np.int64)
    s1, s2 = np.zeros((g, n_cols)), np.zeros((g, n_cols))
    lo, hi = lo0.copy(), hi0.copy()
    fold_numeric(x, c, ends, shift, codes, owners, hist, s1, s2, lo, hi)
    for k, rows in enumerate(groups):
        assert hist[k].tolist() == np.bincount(c[:, rows].ravel(), minlength=6).tolist()
        for f in range(n_cols):
            ok = rows[c[f, rows] < ends[f]]
            d = x[f, ok] - shift[f]
            parts = [ok[(ok >= a) & (ok < a + chunk)] for a in range(0, n, chunk)]
            want1 = want2 = 0.0
            for p in parts:  # chunk by chunk, each a bincount (record order) from 0
                dp = x[f, p] - shift[f]
                want1 += np.bincount(np.zeros(p.shape[0], np.int64), weights=dp,
                                     minlength=1)[0]
                want2 += np.bincount(np.zeros(p.shape[0], np.int64), weights=dp * dp,
                                     minlength=1)[0]
            assert s1[k, f] == want1 and s2[k, f] == want2
            assert s1[k, f] == pytest.approx(d.sum(), rel=1e-12, abs=1e-12)
            assert lo[k, f] == min(lo0[k, f], x[f, ok].min(initial=np.inf))
            assert hi[k, f] == max(hi0[k, f], x[f, ok].max(initial=-np.inf))
    if seed % 2 == 0:  # the overall layer went by candidates only, the buckets were reduced
        assert 0 < len(reduced) < codes.shape[0] * (n // chunk + 1)


@pytest.mark.parametrize("p", [1.0, 0.4])
def test_one_layer_sums_equal_the_membership_product_bit_for_bit(p):
    """One layer is summed by ``np.bincount`` a column at a time (no ``scipy.sparse`` and no
    terms matrix in an overall-only build): the bits of the membership product, for a group
    holding every record or some, over several chunks."""
    from monitor.core.grouped import layer_arrays
    from monitor.core.kernels import CHUNK, _membership_matrix

    rng = np.random.default_rng(3)
    n = CHUNK + 2000
    codes, owners = layer_arrays([np.flatnonzero(rng.random(n) < p)], n)
    x = rng.lognormal(0, 3, (3, n)) * rng.choice([-1.0, 1.0], (3, n))
    c = rng.integers(0, 6, (3, n))  # code 5: not finite
    ends, shift = np.array([5, 5, 5]), np.array([0.5, -2.0, 0.0])
    out = [np.zeros((2, 6), np.int64), np.zeros((2, 3)), np.zeros((2, 3)),
           np.full((2, 3), np.inf), np.full((2, 3), -np.inf)]
    fold_numeric(x, c, ends, shift, codes, owners, *out)
    s1, s2 = np.zeros((2, 3)), np.zeros((2, 3))
    for start in range(0, n, CHUNK):
        sl = slice(start, start + CHUNK)
        d = np.where(c[:, sl] < 5, x[:, sl] - shift[:, None], 0.0).T
        sums = _membership_matrix(codes[:, sl], owners, 2) @ np.hstack([d, d * d])
        s1 += sums[:, :3]
        s2 += sums[:, 3:]
    assert (out[1].tobytes(), out[2].tobytes()) == (s1.tobytes(), s2.tobytes())


@pytest.mark.parametrize("bins", [2, 7, 1000, 1024, 1 << 20])
def test_score_bins_by_grid_equal_searchsorted(bins):
    """ScoreHistogram's bins through the edge grid: ``searchsorted`` on every edge, beside
    it, outside ``[0, 1]``, at ``±inf`` and NaN (the last bin), and on random scores."""
    from monitor.core.metrics.ranking import bin_edges, score_bins

    rng = np.random.default_rng(bins)
    e = bin_edges(bins)
    pool = np.r_[e, np.nextafter(e, 2.0), np.nextafter(e, -1.0), -0.0, -5e-324, 5.0, -5.0,
                 np.inf, -np.inf, np.nan, 1e308, -1e308]
    for s in (np.r_[pool, rng.random(3000), rng.choice(pool, 3000)], rng.random(50),
              np.zeros(0)):
        want = np.clip(np.searchsorted(e, s, side="right") - 1, 0, bins - 1)
        got = score_bins(s, bins)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("n_cols", [1, 2, 17])
def test_one_layer_sums_by_records_equal_bincount_bit_for_bit(n_cols):
    """The one-layer sums (record × column reductions): a group holding every record, two
    windows one after the other, groups interleaved, records in no group; values that
    cancel, sums of ``-0.0`` only, huge and tiny magnitudes — bincount's bits, group by
    group and column by column."""
    from monitor.core.grouped import layer_arrays

    rng = np.random.default_rng(n_cols)
    n = 3000
    x = rng.lognormal(0, 4, (n_cols, n)) * rng.choice([-1.0, 1.0], (n_cols, n))
    x[:, :40] = -0.0
    x[:, 40:60] = 1e150
    x[:, 60:80] = -1e150
    c = rng.integers(0, 6, (n_cols, n))  # code 5: not finite
    c[:, :40] = 0
    ends, shift = np.full(n_cols, 5), np.where(rng.random(n_cols) < 0.5, 0.0, 0.25)
    half = np.arange(n) < 1700
    cases = [[np.arange(n)], [np.flatnonzero(half), np.flatnonzero(~half)],
             [np.arange(40), np.flatnonzero(half)[40:]],
             [np.flatnonzero(rng.random(n) < p) for p in (0.2, 0.3)]]
    for groups in cases:
        disjoint = [np.setdiff1d(g, np.concatenate(groups[:i])) if i else g
                    for i, g in enumerate(groups)]
        codes, owners = layer_arrays(disjoint, n)
        assert codes.shape[0] == 1
        out = [np.zeros((len(disjoint), 6), np.int64), np.zeros((len(disjoint), n_cols)),
               np.zeros((len(disjoint), n_cols)), np.full((len(disjoint), n_cols), np.inf),
               np.full((len(disjoint), n_cols), -np.inf)]
        fold_numeric(x, c, ends, shift, codes, owners, *out)
        for g, rows in enumerate(disjoint):
            assert out[0][g].tolist() == np.bincount(c[:, rows].ravel(), minlength=6).tolist()
            for f in range(n_cols):
                d = np.where(c[f, rows] < 5, x[f, rows] - shift[f], 0.0)
                zero = np.zeros(rows.shape[0], np.int64)
                want1 = np.bincount(zero, weights=d, minlength=1)[0]
                want2 = np.bincount(zero, weights=d * d, minlength=1)[0]
                assert out[1][g, f].tobytes() == want1.tobytes()
                assert out[2][g, f].tobytes() == want2.tobytes()


@pytest.mark.parametrize("offset", [1000, 40_000])
def test_blocked_bucket_codes_are_int16_where_they_fit(offset, monkeypatch):
    """Coded in blocks (a reference), the codes are int16 when every code fits, else int32;
    the same codes as one pass (int32) either way."""
    rng = np.random.default_rng(7)
    edges = np.sort(rng.normal(size=(3, 20)), axis=1)
    x = rng.normal(size=(3, 5000))
    x[0, :10], x[1, :10], x[2, :10] = np.nan, np.inf, -np.inf
    offsets = np.arange(3) * offset
    one = bucket_codes(x, edges, np.full(3, 20), offsets)
    monkeypatch.setattr(EdgeGrid, "BLOCK", 333)
    blocked = bucket_codes(x, edges, np.full(3, 20), offsets)
    assert one.dtype == np.int32
    assert blocked.dtype == (np.int16 if offset == 1000 else np.int32)
    np.testing.assert_array_equal(blocked, one)


def test_reservoir_candidates_of_one_group_as_lexsort():
    """One group (every candidate of it, rows ascending) is returned unsorted: still
    lexsort's order; the same group in two layers (each row twice) still goes the sort."""
    from monitor.core.kernels import reservoir_candidates

    rng = np.random.default_rng(8)
    keys = rng.random(300)
    codes = np.zeros((2, 300), dtype=np.int64)
    bar = np.array([0.4])
    for layers in (np.array([[0]]), np.array([[0], [0]])):
        got_g, got_r = reservoir_candidates(keys, bar, codes[:len(layers)], layers)
        want = _candidates_by_lexsort(keys, bar, codes[:len(layers)], layers)
        assert (got_g.tolist(), got_r.tolist()) == want
        assert len(want[1]) == len(layers) * int((keys < 0.4).sum())
