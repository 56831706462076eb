"""Window summaries: bins vs numpy, moments, merge == one pass, state round trip, reservoir."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from monitor.core.metrics.base import ModelColumns
from monitor.drift.errors import DriftError
from monitor.drift.features import LABEL, PREDICTION, FeatureSummaries
from monitor.drift.summary import CategoricalSummary, NumericSummary, Reservoir

EDGES = np.array([-1.0, -0.3, 0.0, 0.4, 1.2])


def _numeric(x, k=50, seed=0):
    s = NumericSummary(EDGES, sample_size=k, seed=seed)
    s.update(x)
    return s


def test_bins_match_numpy_histogram_and_moments_match_numpy():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(size=997), EDGES, [np.nan, np.nan, np.inf, -np.inf]])
    s = _numeric(x)
    finite = x[np.isfinite(x)]
    present = x[~np.isnan(x)]
    assert s.counts[1:-1].tolist() == np.histogram(finite, EDGES)[0].tolist()
    assert s.counts[0] == np.count_nonzero(present < EDGES[0])
    assert s.counts[-1] == np.count_nonzero(present > EDGES[-1])
    assert s.missing == 2 and s.nonfinite == 2 and s.present == present.shape[0]
    assert s.n == finite.shape[0]
    assert s.mean == pytest.approx(finite.mean(), rel=1e-12)
    assert s.std == pytest.approx(finite.std(), rel=1e-12)
    assert (s.min, s.max) == (finite.min(), finite.max())
    assert np.isin(s.sample, finite).all() and s.sample.shape[0] == 50


def test_object_column_counts_type_mismatches():
    s = _numeric(np.array([1.0, "2.5", "abc", None, {"a": 1}, 3], dtype=object))
    assert s.mismatches == 2 and s.missing == 3 and s.n == 3
    assert s.mean == pytest.approx((1 + 2.5 + 3) / 3)


def test_bad_edges_are_refused():
    with pytest.raises(DriftError, match="strictly increasing"):
        NumericSummary([0.0, 0.0, 1.0])


def _split_update(values, cuts, make):
    whole = make(0)
    whole.update(values)
    parts = []
    for i, chunk in enumerate(np.split(values, sorted(cuts))):
        p = make(i + 1)
        p.update(chunk)
        parts.append(p)
    merged = parts[0]
    for p in parts[1:]:
        merged.merge(p)
    return whole, merged


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.floats(-5, 5), st.sampled_from([np.nan, np.inf, -np.inf, 0.4])),
                max_size=200),
       st.lists(st.integers(0, 200), max_size=4))
def test_numeric_merge_equals_one_pass(values, cuts):
    x = np.array(values, dtype=np.float64)
    cuts = [min(c, x.shape[0]) for c in cuts]
    whole, merged = _split_update(x, cuts, lambda seed: NumericSummary(EDGES, 20, seed))
    for key in ("counts", "missing", "nonfinite", "n", "min", "max"):
        assert merged.to_state()[key] == whole.to_state()[key]
    assert merged.mean == pytest.approx(whole.mean, abs=1e-9)
    assert merged.m2 == pytest.approx(whole.m2, rel=1e-9, abs=1e-9)
    finite = x[np.isfinite(x)]
    assert merged.reservoir.n == finite.shape[0]
    assert merged.sample.shape[0] == min(20, finite.shape[0])
    # a sample of the data: every value drawn at most as often as it occurs
    vals, counts = np.unique(merged.sample, return_counts=True)
    for v, c in zip(vals, counts, strict=True):
        assert c <= np.count_nonzero(finite == v)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(["a", "b", "c", "zz"]), st.none(),
                          st.integers(0, 3), st.floats(0, 2), st.just(np.nan)), max_size=100),
       st.lists(st.integers(0, 100), max_size=3))
def test_categorical_merge_equals_one_pass(values, cuts):
    x = np.array([*values, None], dtype=object)[:-1]
    cuts = [min(c, x.shape[0]) for c in cuts]
    whole, merged = _split_update(x, cuts, lambda _: CategoricalSummary(["a", "b", "1"]))
    assert merged.to_state() == whole.to_state()
    assert whole.total == len(values)


def test_categorical_counts_against_pandas():
    import pandas as pd

    rng = np.random.default_rng(3)
    x = rng.choice(np.array(["a", "b", "c", "d", None], dtype=object), size=5000)
    s = CategoricalSummary(["b", "a"])
    s.update(x)
    vc = pd.Series(x).value_counts()
    assert s.counts.tolist() == [vc["b"], vc["a"], vc["c"] + vc["d"]]
    assert s.missing == pd.isna(x).sum() and s.mismatches == 0


def test_categorical_keys_and_mismatches():
    s = CategoricalSummary(["a", "1", "0"])
    s.update(np.array(["a", 1, 1.0, "1", np.int64(1), True, 2.5, [1], None, np.nan, False],
                      dtype=object))
    assert s.counts.tolist() == [1, 5, 1, 2]
    assert s.missing == 2 and s.mismatches == 2


@pytest.mark.parametrize("values", [[0.0, 1.0, np.nan], [-0.0, 0.0, 1.0], [-0.0], [1.0],
                                    [np.nan], [], [0.0, 2.0, np.nan], [0.5, 1.0, np.inf]])
def test_float_category_codes_equal_the_object_values(values):
    """Float columns (labels) are coded without hashing — 0/1 labels without a sort: the
    same codes as the same values as Python objects (``0.0``/``-0.0`` key ``"0"``)."""
    rng = np.random.default_rng(len(values))
    x = rng.choice(np.array(values, dtype=np.float64), 300) if values else np.zeros(0)
    for vocab in (["0", "1"], ["1", "2"], ["a"]):
        s = CategoricalSummary(vocab)
        want = s.category_codes(np.array([None if v != v else v for v in x], dtype=object))
        assert s.category_codes(x).tolist() == want.tolist()


def test_state_round_trip_is_json_and_continues_identically():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=3000), rng.normal(size=3000)
    s = _numeric(a, k=100, seed=9)
    restored = NumericSummary.from_state(json.loads(json.dumps(s.to_state())))
    assert restored.to_state() == s.to_state()
    s.update(b)
    restored.update(b)
    assert restored.to_state() == s.to_state()  # same random stream after a restart
    c = CategoricalSummary(["x"])
    c.update(np.array(["x", "y", None], dtype=object))
    assert CategoricalSummary.from_state(json.loads(json.dumps(c.to_state()))).to_state() \
        == c.to_state()


def test_merge_refuses_other_bins():
    with pytest.raises(DriftError, match="different bin edges"):
        NumericSummary([0.0, 1.0]).merge(NumericSummary([0.0, 2.0]))
    with pytest.raises(DriftError, match="different vocabularies"):
        CategoricalSummary(["a"]).merge(CategoricalSummary(["b"]))


def test_reservoir_is_uniform_over_split_and_merged_streams():
    """Each of N items must land in the k-sample with probability k/N, whatever the split.

    2000 repetitions with random batch sizes and a merge tree; the inclusion counts of the N
    items are tested with a chi-squared goodness-of-fit test against k/N each (inclusions
    within one repetition are negatively correlated, which only makes the test conservative).
    """
    n_items, k, reps = 60, 12, 2000
    rng = np.random.default_rng(11)
    counts = np.zeros(n_items)
    items = np.arange(n_items, dtype=np.float64)
    for r in range(reps):
        cuts = np.sort(rng.choice(np.arange(1, n_items), size=4, replace=False))
        parts = []
        for j, chunk in enumerate(np.split(items, cuts)):
            res = Reservoir(k, seed=[r, j])
            for sub in np.array_split(chunk, 2):
                res.update(sub)
            parts.append(res)
        left, right = parts[0], parts[-1]
        for p in parts[1:3]:
            left.merge(p)
        right.merge(parts[3])
        left.merge(right)
        assert left.values.shape[0] == k and np.unique(left.values).shape[0] == k
        counts[left.values.astype(int)] += 1
    expected = np.full(n_items, reps * k / n_items)
    assert stats.chisquare(counts, expected).pvalue > 0.001
    # and a non-uniform sampler would fail: keeping the first k items always
    biased = np.where(np.arange(n_items) < k, reps, 0.0)
    assert stats.chisquare(biased + 1e-9, expected).pvalue < 1e-6


def _columns(n, rng, task):
    if task == "multiclass":
        pred = rng.integers(-1, 3, n)
        label = rng.integers(-1, 3, n)
        score = rng.random(n)
    elif task == "binary":
        score = rng.random(n)
        pred = (score >= 0.5).astype(float)
        label = np.where(rng.random(n) < 0.2, np.nan, (rng.random(n) < 0.3).astype(float))
    else:
        score = np.full(n, np.nan)
        pred = rng.normal(size=n)
        label = pred + rng.normal(size=n)
    return ModelColumns(score=score, predicted=pred, label=label, outcome=np.zeros(n, np.int8),
                   features={"x": rng.normal(size=n),
                             "c": rng.choice(np.array(["u", "v", "w"], object), n)})


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_feature_summaries_route_columns_and_merge(task):
    rng = np.random.default_rng(5)
    classes = ["cat", "dog", "eel"]
    pred_kind = CategoricalSummary(classes) if task == "multiclass" else NumericSummary(EDGES)
    label_kind = NumericSummary(EDGES) if task == "regression" else (
        CategoricalSummary(classes if task == "multiclass" else ["0", "1"]))
    fs = FeatureSummaries(task, {"x": NumericSummary(EDGES), "c": CategoricalSummary(["u"]),
                                 PREDICTION: pred_kind, LABEL: label_kind})
    cols = _columns(400, rng, task)
    one = fs.empty_like(1)
    one.update(cols, classes=classes)
    a, b = fs.empty_like(2), fs.empty_like(3)
    a.update(cols.take(np.arange(150)), classes=classes)
    b.update(cols.take(np.arange(150, 400)), classes=classes)
    a.merge(b)
    for name in one:
        assert a[name].to_state()["counts"] == one[name].to_state()["counts"]
    assert one["c"].counts.tolist() == [np.count_nonzero(cols.features["c"] == "u"),
                                        np.count_nonzero(cols.features["c"] != "u")]
    if task == "multiclass":
        want = [np.count_nonzero(cols.predicted == i) for i in range(3)] + [0]
        assert one[PREDICTION].counts.tolist() == want
        assert one[LABEL].missing == np.count_nonzero(cols.label < 0)
    elif task == "binary":
        assert one[PREDICTION].n == 400 and one[PREDICTION].mean == pytest.approx(
            cols.score.mean())
        assert one[LABEL].counts.tolist() == [np.count_nonzero(cols.label == 0),
                                              np.count_nonzero(cols.label == 1), 0]
    else:
        assert one[LABEL].mean == pytest.approx(cols.label.mean())
    again = FeatureSummaries.from_state(json.loads(json.dumps(one.to_state())))
    assert again.to_state() == one.to_state()
    missing_feature = fs.empty_like(4)
    missing_feature.update(ModelColumns(cols.score, cols.predicted, cols.label, cols.outcome, {}),
                           classes=classes)
    assert missing_feature["x"].missing == 400 and missing_feature["c"].missing == 400


@pytest.mark.parametrize("sizes", [(5000, 40), (40, 5000), (3000, 3000), (10, 20), (0, 50)])
def test_reservoir_merge_is_the_bottom_k_of_the_union_in_either_order(sizes):
    """``merge`` (either side the larger, samples selected or values still waiting) keeps
    exactly the k smallest keys of both streams, with their values, and counts both."""
    rng = np.random.default_rng(sum(sizes))
    streams = [rng.normal(size=n) for n in sizes]
    keys = [rng.random(n) for n in sizes]
    for order in ((0, 1), (1, 0)):
        rs = []
        for i in order:
            r = Reservoir(k=500, seed=i)
            for cut in np.array_split(np.arange(sizes[i]), 7):  # some wait unselected
                r.update(streams[i][cut], keys[i][cut])
            rs.append(r)
        rs[0].merge(rs[1])
        allk, allv = np.concatenate(keys), np.concatenate(streams)
        want = np.argsort(allk)[:500]
        assert rs[0].n == sum(sizes)
        assert sorted(rs[0].keys.tolist()) == sorted(allk[want].tolist())
        assert sorted(rs[0].values.tolist()) == sorted(allv[want].tolist())


@pytest.mark.parametrize("k", [3, 125, 126, 300])
def test_category_codes_are_the_smallest_type_and_fold_side_by_side(k):
    """Category codes take a byte a record up to 125 values (codes 0..k+2), two beyond; the
    drift fold stacks several features' codes side by side past one another's offsets
    (beyond int8) and counts as each summary alone does."""
    vocab = [f"v{i}" for i in range(k)]
    s = CategoricalSummary(vocab)
    values = np.array([*vocab, "zzz", None, 1.5], dtype=object)
    codes = s.category_codes(values)
    assert codes.dtype == (np.int8 if k <= 125 else np.int16)
    assert codes.astype(np.int64).tolist() == [*range(k), k, k + 1, k + 2]
    rng = np.random.default_rng(k)
    n = 3000
    cols = {name: rng.choice(np.array([*vocab, "zzz", None], dtype=object), n)
            for name in ("a", "b", "c")}
    fs = FeatureSummaries("regression", {name: CategoricalSummary(vocab) for name in cols})
    nan = np.full(n, np.nan)
    fs.update(ModelColumns(nan, nan, nan, np.zeros(n, np.int8), cols), label=False)
    for name, col in cols.items():
        alone = CategoricalSummary(vocab)
        alone.update(col)
        assert fs[name].to_state() == alone.to_state(), name
