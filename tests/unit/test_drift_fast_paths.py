"""Fast paths of the drift summaries: bottom-k reservoir, grouped updates, derived columns."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

# ---- bottom-k reservoir -----------------------------------------------------------------

def test_reservoir_keeps_the_values_with_the_k_smallest_keys():
    from monitor.drift.summary import Reservoir

    r = Reservoir(50, seed=3)
    rng = np.random.default_rng(3)  # the same stream of keys, drawn independently
    x = np.arange(400, dtype=np.float64)
    for part in np.array_split(x, 7):
        r.update(part)
    keys = np.concatenate([rng.random(p.shape[0]) for p in np.array_split(x, 7)])
    assert sorted(r.values.tolist()) == sorted(x[np.argsort(keys)[:50]].tolist())
    assert np.array_equal(np.sort(r.keys), np.sort(keys)[:50]) and r.n == 400


def test_reservoir_merge_is_the_bottom_k_of_the_union_in_any_order():
    from monitor.drift.summary import Reservoir

    parts = []
    for j in range(4):
        r = Reservoir(30, seed=[7, j])
        r.update(np.arange(j * 100, j * 100 + 100, dtype=np.float64))
        parts.append(r)
    a, b = parts[0].copy(), parts[3].copy()
    for p in parts[1:]:
        a.merge(p)
    for p in (parts[2], parts[1], parts[0]):
        b.merge(p)
    assert sorted(a.values.tolist()) == sorted(b.values.tolist()) and a.n == b.n == 400
    union = np.concatenate([p.keys for p in parts])
    assert np.array_equal(np.sort(a.keys), np.sort(union)[:30])


def test_reservoir_state_round_trip_and_states_without_keys():
    import json

    from monitor.drift.summary import Reservoir

    r = Reservoir(20, seed=1)
    r.update(np.arange(100, dtype=np.float64))
    again = Reservoir.from_state(json.loads(json.dumps(r.to_state())))
    r.update(np.arange(100, 200, dtype=np.float64))
    again.update(np.arange(100, 200, dtype=np.float64))
    assert again.to_state() == r.to_state()
    old = r.to_state()
    del old["keys"]  # written by the previous (hypergeometric) reservoir
    legacy = Reservoir.from_state(old)
    assert legacy.keys.shape == (20,) and np.all((legacy.keys > 0) & (legacy.keys < 1))
    assert legacy.values.tolist() == r.values.tolist()
    # keys of a 20-sample of 200 values: the 20 smallest of 200 uniforms (mean 20/201 at most)
    assert legacy.keys.max() < 0.5


def test_legacy_keys_are_the_order_statistics_of_uniforms():
    from monitor.drift.summary import _bottom_keys

    rng = np.random.default_rng(0)
    tops = np.array([_bottom_keys(rng, 10, 1000).max() for _ in range(3000)])
    # the 10th smallest of 1000 uniforms is Beta(10, 991)
    assert stats.kstest(tops, stats.beta(10, 991).cdf).pvalue > 0.001


# ---- per-batch codes shared by the groups (ModelColumns.derived) -----------------------------

def _cols(n, rng):
    from monitor.core.metrics.base import ModelColumns

    x = rng.normal(size=n)
    x[rng.random(n) < 0.05] = np.nan
    x[:3] = [np.inf, -np.inf, np.nan]
    y = rng.normal(size=n)
    c = rng.choice(np.array(["a", "b", "c", "zz", None], object), n)
    score = rng.random(n)
    return ModelColumns(score=score, predicted=(score > 0.5).astype(float),
                   label=np.where(rng.random(n) < 0.3, np.nan, (rng.random(n) < 0.4) * 1.0),
                   outcome=np.zeros(n, np.int8), features={"x": x, "y": y, "c": c})


def test_derived_arrays_are_computed_once_per_batch_and_indexed_per_group():
    rng = np.random.default_rng(2)
    cols = _cols(1000, rng)
    calls = []

    def square(c):
        calls.append(len(c))
        return c.features["y"] ** 2

    rows = np.flatnonzero(rng.random(1000) < 0.3)
    part = cols.take(rows)
    inner = part.take(np.arange(0, rows.shape[0], 2))
    assert np.array_equal(inner.derived("sq", square), inner.features["y"] ** 2)
    assert np.array_equal(part.derived("sq", square), part.features["y"] ** 2)
    assert calls == [1000]


@pytest.mark.parametrize("seed", range(3))
def test_grouped_feature_summaries_equal_one_summary_per_column(seed):
    """FeatureSummaries over the groups of a batch (block path, shared codes) give the same
    counts as updating each summary alone, moments to rounding, and uniform samples."""
    from monitor.drift.features import PREDICTION, FeatureSummaries
    from monitor.drift.summary import CategoricalSummary, NumericSummary

    rng = np.random.default_rng(seed)
    edges = np.linspace(-2, 2, 9)

    def fresh():
        return FeatureSummaries("binary", {
            "x": NumericSummary(edges, 40, [seed, 0]), "y": NumericSummary(edges, 40, [seed, 1]),
            "c": CategoricalSummary(["a", "b"]),
            PREDICTION: NumericSummary(np.linspace(0, 1, 5), 40, [seed, 2])})

    cols = _cols(3000, rng)
    groups = rng.integers(0, 5, 3000)
    grouped = {g: fresh() for g in range(5)}
    for _ in range(2):  # twice: the second pass finds full reservoirs
        for g in range(5):
            grouped[g].update(cols.take(np.flatnonzero(groups == g)), label=False)
    for g in range(5):
        alone = fresh()
        part = np.flatnonzero(groups == g)
        for _ in range(2):
            for name in ("x", "y", "c"):
                alone[name].update(cols.features[name][part])
            alone[PREDICTION].update(cols.score[part])
        for name in ("x", "y", "c", PREDICTION):
            a, b = grouped[g][name].to_state(), alone[name].to_state()
            for key in ("counts", "missing", "nonfinite", "mismatches", "n", "min", "max"):
                assert a.get(key) == b.get(key), (g, name, key)
            if name != "c":
                assert grouped[g][name].mean == pytest.approx(alone[name].mean, abs=1e-12)
                assert grouped[g][name].m2 == pytest.approx(alone[name].m2, rel=1e-12)
                sample = grouped[g][name].sample
                assert sample.shape == (40,) and np.all(np.isfinite(sample))
                assert grouped[g][name].reservoir.n == alone[name].reservoir.n
                src = cols.features[name][part] if name != PREDICTION else cols.score[part]
                assert np.isin(sample, src).all()


def test_take_with_a_boolean_mask_equals_take_with_positions():
    rng = np.random.default_rng(4)
    cols = _cols(500, rng)
    mask = rng.random(500) < 0.4
    by_mask, by_rows = cols.take(mask), cols.take(np.flatnonzero(mask))
    stack = lambda c: np.stack([c.features["x"], c.features["y"]])  # noqa: E731
    assert np.array_equal(by_mask.derived("xy", stack, axis=1),
                          by_rows.derived("xy", stack, axis=1), equal_nan=True)
    inner = by_mask.take(np.arange(0, int(mask.sum()), 3))
    assert inner.features["c"].tolist() == cols.features["c"][mask][::3].tolist()
    assert inner.feature_dtype("y") == np.float64 and inner.feature_dtype("nope") is None


@pytest.mark.parametrize("seed", range(3))
def test_update_groups_over_overlapping_groups_equals_each_summary_alone(seed):
    """FeatureSummaries.update_groups over overlapping groups (three slice rules; the compiled
    one-pass kernels, the shared reservoir keys) against every summary updated alone from its
    group's values: counts, missing, extremes exactly; moments to rounding; each reservoir a
    sample of its group's finite values of the right size; labels too."""
    from monitor.drift.features import LABEL, PREDICTION, FeatureSummaries
    from monitor.drift.summary import CategoricalSummary, NumericSummary

    rng = np.random.default_rng(seed)
    edges = np.linspace(-2, 2, 9)

    def fresh(i):
        return FeatureSummaries("binary", {
            "x": NumericSummary(edges, 30, [seed, i, 0]),
            "y": NumericSummary(edges, 30, [seed, i, 1]),
            "c": CategoricalSummary(["a", "b"]),
            PREDICTION: NumericSummary(np.linspace(0, 1, 5), 30, [seed, i, 2]),
            LABEL: CategoricalSummary(["0", "1"])})

    n = 2000
    groups = []
    for values in (1, 4, 3):
        codes = rng.integers(-1, values, n) if values > 1 else np.zeros(n, int)
        groups += [np.flatnonzero(codes == v) for v in range(values)]
    grouped = [fresh(i) for i in range(len(groups))]
    alone = [fresh(i) for i in range(len(groups))]
    seen = {name: [set() for _ in groups] for name in ("x", "y")}
    for rep in range(3):  # the later passes find full reservoirs
        cols = _cols(n, np.random.default_rng([seed, rep]))
        for name in seen:
            for g, rows in enumerate(groups):
                seen[name][g] |= set(cols.features[name][rows].tolist())
        FeatureSummaries.update_groups(cols, list(zip(grouped, groups, strict=True)))
        lab = cols.labelled()
        FeatureSummaries.update_label_groups(
            cols, [(s, rows[lab[rows]]) for s, rows in zip(grouped, groups, strict=True)])
        for s, rows in zip(alone, groups, strict=True):
            for name in ("x", "y", "c"):
                s[name].update(cols.features[name][rows])
            s[PREDICTION].update(cols.score[rows])
            s[LABEL].update(cols.label[rows][lab[rows]])
    for g, (a, b) in enumerate(zip(grouped, alone, strict=True)):
        for name in ("x", "y", "c", PREDICTION, LABEL):
            sa, sb = a[name].to_state(), b[name].to_state()
            for key in ("counts", "missing", "nonfinite", "mismatches", "n", "min", "max"):
                assert sa.get(key) == sb.get(key), (g, name, key)
            if isinstance(a[name], NumericSummary):
                assert a[name].mean == pytest.approx(b[name].mean, rel=1e-12, abs=1e-12)
                assert a[name].m2 == pytest.approx(b[name].m2, rel=1e-10)
                assert a[name].reservoir.n == b[name].reservoir.n
                sample = a[name].sample
                assert sample.shape[0] == min(30, b[name].n)
                assert np.all(np.isfinite(sample))
                assert np.unique(sample).shape == sample.shape
                if name in seen:
                    assert set(sample.tolist()) <= seen[name][g]


def test_update_groups_samples_uniformly_from_every_group():
    """Values 0..1999 arrive in 20 batches into two overlapping groups (all records; the
    even ones) with k = 20: each group's inclusion per block of positions must be uniform
    (chi-squared), also once the reservoirs are full and only a few keys enter."""
    from monitor.core.metrics.base import ModelColumns
    from monitor.drift.features import FeatureSummaries
    from monitor.drift.summary import NumericSummary

    n_items, k, reps = 2000, 20, 300
    hits = {"all": np.zeros(80), "even": np.zeros(80)}
    edges = np.linspace(0, n_items, 11)
    for rep in range(reps):
        sums = {g: FeatureSummaries("binary", {"v": NumericSummary(edges, k, [rep, i])})
                for i, g in enumerate(hits)}
        for part in np.split(np.arange(n_items, dtype=np.float64), 20):
            m = part.shape[0]
            cols = ModelColumns(np.full(m, np.nan), np.full(m, np.nan), np.full(m, np.nan),
                           np.zeros(m, np.int8), {"v": part})
            FeatureSummaries.update_groups(cols, [(sums["all"], np.arange(m)),
                                                  (sums["even"], np.arange(0, m, 2))])
        for g, s in sums.items():
            sample = s["v"].sample
            assert sample.shape == (k,) and np.unique(sample).shape == (k,)
            if g == "even":
                assert np.all(sample % 2 == 0)
            hits[g] += np.bincount((sample // 25).astype(int), minlength=80)
    for h in hits.values():
        assert stats.chisquare(h).pvalue > 0.001
