"""Every drift statistic against scipy (or its formula computed another way) on the same data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from monitor.drift.errors import DriftError
from monitor.drift.profile import numeric_edges
from monitor.drift.statistics import TESTS, DriftTest, get_test, ks_binned_bound
from monitor.drift.summary import CategoricalSummary, NumericSummary
from slices.vocab import DRIFT_TESTS


def _num_pair(a, b, bins=20, k=5000):
    edges = numeric_edges(a, bins)
    r, c = NumericSummary(edges, k, 1), NumericSummary(edges, k, 2)
    r.update(a)
    c.update(b)
    return r, c


def _shares_numeric(a, b, edges):
    """Bucket shares computed independently with np.histogram over padded edges."""
    full = np.concatenate([[-np.inf], edges, [np.inf]])
    ha = np.histogram(a, full)[0].astype(float)
    hb = np.histogram(b, full)[0].astype(float)
    # np.histogram closes the *last* bin (…, inf]; ours closes [e_{B-1}, e_B]: move x == e_B
    ha[-2] += np.count_nonzero(a == edges[-1])
    ha[-1] -= np.count_nonzero(a == edges[-1])
    hb[-2] += np.count_nonzero(b == edges[-1])
    hb[-1] -= np.count_nonzero(b == edges[-1])
    return ha, hb


@pytest.fixture(params=[0, 1, 2])
def data(request):
    rng = np.random.default_rng(request.param)
    a = rng.normal(0, 1, 3000)
    b = rng.normal(0.2 * request.param, 1 + 0.1 * request.param, 2000)
    return a, b


def test_registry_is_the_vocabulary_and_every_test_is_documented():
    assert tuple(TESTS) == DRIFT_TESTS
    for name, t in TESTS.items():
        assert isinstance(t, DriftTest) and t.name == name
        assert t.kinds and t.kinds <= {"pvalue", "distance"}
        assert t.types and t.types <= {"numeric", "categorical"}
        assert t.gate in TESTS and "distance" in TESTS[t.gate].kinds
        assert t.threshold > 0
        assert type(t).__doc__ and len(type(t).__doc__) > 80
    with pytest.raises(DriftError, match="unknown drift test 'nope'"):
        get_test("nope")


def test_ks_equals_scipy(data):
    a, b = data
    r, c = _num_pair(a, b)  # reservoir (5000) holds every value
    res = TESTS["ks"].compute(r, c)
    want = stats.ks_2samp(a, b)
    assert res.statistic == pytest.approx(want.statistic, abs=1e-9)
    assert res.pvalue == pytest.approx(want.pvalue, abs=1e-9)
    assert res.distance == res.statistic


def test_wasserstein_equals_scipy_over_reference_std(data):
    a, b = data
    r, c = _num_pair(a, b)
    res = TESTS["wasserstein"].compute(r, c)
    w = stats.wasserstein_distance(a, b)
    assert res.statistic == pytest.approx(w, abs=1e-9)
    assert res.distance == pytest.approx(w / np.std(a), abs=1e-9)
    assert res.pvalue is None


def test_binned_tests_equal_scipy_and_formulas(data):
    a, b = data
    r, c = _num_pair(a, b)
    ha, hb = _shares_numeric(a, b, r.edges)
    assert r.counts.tolist() == ha.tolist() and c.counts.tolist() == hb.tolist()
    p, q = ha / ha.sum(), hb / hb.sum()

    table = np.vstack([ha, hb])
    table = table[:, table.sum(0) > 0]
    want = stats.chi2_contingency(table)
    got = TESTS["chi2"].compute(r, c)
    assert got.statistic == pytest.approx(want.statistic, abs=1e-9)
    assert got.pvalue == pytest.approx(want.pvalue, abs=1e-9)
    assert np.isnan(got.distance)  # no effect size of its own: chi2 gates on cohen_w
    pw = np.where((p == 0) & (q > 0), 0.5 / ha.sum(), p)
    assert TESTS["cohen_w"].compute(r, c).distance == pytest.approx(
        np.sqrt(sum((qi - pi) ** 2 / pi for pi, qi in zip(pw, q, strict=True) if pi > 0)),
        abs=1e-9)

    assert TESTS["js"].compute(r, c).distance == pytest.approx(
        jensenshannon(p, q, base=2), abs=1e-9)
    pe, qe = np.maximum(p, 1e-4), np.maximum(q, 1e-4)
    assert TESTS["psi"].compute(r, c).distance == pytest.approx(
        np.sum((qe - pe) * np.log(qe / pe)), abs=1e-9)
    assert TESTS["linf"].compute(r, c).distance == pytest.approx(np.max(np.abs(p - q)),
                                                                 abs=1e-12)
    assert TESTS["hellinger"].compute(r, c).distance == pytest.approx(
        np.linalg.norm(np.sqrt(p) - np.sqrt(q)) / np.sqrt(2), abs=1e-9)


def test_chi2_on_categories_is_the_two_sample_homogeneity_test():
    rng = np.random.default_rng(7)
    vals = np.array(["a", "b", "c", "d", "e"], dtype=object)
    a = rng.choice(vals, 800, p=[0.4, 0.3, 0.2, 0.1, 0.0])
    b = rng.choice(vals, 300, p=[0.3, 0.3, 0.2, 0.1, 0.1])
    r, c = CategoricalSummary(["a", "b", "c", "z"]), CategoricalSummary(["a", "b", "c", "z"])
    r.update(a)
    c.update(b)
    ca, cb = pd.Series(a).value_counts(), pd.Series(b).value_counts()
    # columns a, b, c, other(d+e); the all-zero column z is dropped
    table = np.array([[ca.get(k, 0) for k in "abc"] + [ca.get("d", 0) + ca.get("e", 0)],
                      [cb.get(k, 0) for k in "abc"] + [cb.get("d", 0) + cb.get("e", 0)]])
    want = stats.chi2_contingency(table)
    got = TESTS["chi2"].compute(r, c)
    assert got.statistic == pytest.approx(want.statistic, abs=1e-9)
    assert got.pvalue == pytest.approx(want.pvalue, abs=1e-9)
    assert want.dof == 3


def test_chi2_with_a_single_category_is_no_evidence():
    r, c = CategoricalSummary(["a"]), CategoricalSummary(["a"])
    r.update(np.array(["a"] * 10, object))
    c.update(np.array(["a"] * 5, object))
    got = TESTS["chi2"].compute(r, c)
    assert (got.statistic, got.pvalue) == (0.0, 1.0) and np.isnan(got.distance)


def test_cohen_w_is_scipys_goodness_of_fit_chi2_per_record():
    """w = sqrt(chi²_gof / n), chi²_gof of the window counts against the reference shares
    (scipy.stats.chisquare); a category absent from the reference gets half a record."""
    rng = np.random.default_rng(11)
    vals = np.array(list("abcde"), dtype=object)
    a = rng.choice(vals, 4000, p=[0.3, 0.3, 0.2, 0.2, 0.0])
    b = rng.choice(vals, 900, p=[0.35, 0.25, 0.2, 0.15, 0.05])
    voc = list("abcde")
    r, c = CategoricalSummary(voc), CategoricalSummary(voc)
    r.update(a)
    c.update(b)
    ra = np.array([np.count_nonzero(a == v) for v in voc] + [0], float)
    cb = np.array([np.count_nonzero(b == v) for v in voc] + [0], float)
    p = ra / ra.sum()
    p[(p == 0) & (cb > 0)] = 0.5 / ra.sum()
    used = p > 0
    # chisquare needs sum(f_exp) == sum(f_obs): compare the statistic computed by hand too
    want = np.sqrt(np.sum((cb[used] / cb.sum() - p[used]) ** 2 / p[used]))
    got = TESTS["cohen_w"].compute(r, c).distance
    assert got == pytest.approx(want, abs=1e-12)
    # without the unseen category: exactly scipy's chisquare / n
    r2, c2 = CategoricalSummary(voc), CategoricalSummary(voc)
    r2.update(a)
    c2.update(b[b != "e"])
    obs = np.array([np.count_nonzero(b[b != "e"] == v) for v in "abcd"], float)
    gof = stats.chisquare(obs, f_exp=ra[:4] / ra.sum() * obs.sum())
    assert TESTS["cohen_w"].compute(r2, c2).distance == pytest.approx(
        np.sqrt(gof.statistic / obs.sum()), abs=1e-12)


def test_linf_is_the_tfdv_definition_on_categories():
    r, c = CategoricalSummary(["a", "b"]), CategoricalSummary(["a", "b"])
    r.update(np.array(["a"] * 6 + ["b"] * 3 + ["x"], object))
    c.update(np.array(["a"] * 2 + ["b"] * 4 + ["y"] * 4, object))
    # shares a .6→.2, b .3→.4, other .1→.4
    assert TESTS["linf"].compute(r, c).distance == pytest.approx(0.4)


@pytest.mark.parametrize("seed", range(40))
def test_ks_binned_stays_within_its_bound_of_exact_ks(seed):
    rng = np.random.default_rng(100 + seed)
    kind = seed % 4
    n, m = rng.integers(50, 3000, 2)
    if kind == 0:
        a, b = rng.normal(0, 1, n), rng.normal(rng.normal(0, 0.5), rng.uniform(0.5, 2), m)
    elif kind == 1:
        a, b = rng.exponential(1, n), rng.exponential(rng.uniform(0.5, 2), m)
    elif kind == 2:  # discrete data with ties
        a, b = rng.poisson(3, n).astype(float), rng.poisson(rng.uniform(2, 4), m).astype(float)
    else:  # reference range narrower than the window: under/overflow matter
        a, b = rng.uniform(0, 1, n), rng.normal(0.5, 0.6, m)
    r, c = _num_pair(a, b, bins=int(rng.integers(3, 30)))
    d_exact = stats.ks_2samp(a, b).statistic
    got = TESTS["ks_binned"].compute(r, c)
    bound = ks_binned_bound(r.counts, c.counts)
    assert got.statistic <= d_exact + 1e-12
    assert d_exact <= got.statistic + bound + 1e-12
    en = round(n * m / (n + m))
    assert got.pvalue == pytest.approx(stats.kstwo.sf(got.statistic, en), abs=1e-12)


def test_ks_binned_is_exact_on_data_taking_only_edge_values():
    rng = np.random.default_rng(9)
    a = rng.integers(0, 5, 1000).astype(float)
    b = rng.integers(0, 6, 700).astype(float)
    r, c = _num_pair(a, b)
    assert TESTS["ks_binned"].compute(r, c).statistic == pytest.approx(
        stats.ks_2samp(a, b).statistic, abs=1e-12)


@pytest.mark.parametrize("name", DRIFT_TESTS)
def test_identical_distributions_have_zero_distance(name):
    x = np.random.default_rng(0).normal(size=500)
    r, c = _num_pair(x, x)
    cat_r, cat_c = CategoricalSummary(["a", "b"]), CategoricalSummary(["a", "b"])
    cat_r.update(np.array(["a", "b", "c"] * 10, object))
    cat_c.update(np.array(["a", "b", "c"] * 20, object))
    t = TESTS[name]
    pairs = [(r, c)] if "numeric" in t.types else []
    pairs += [(cat_r, cat_c)] if "categorical" in t.types else []
    for ref, cur in pairs:
        res = t.compute(ref, cur)
        if "distance" in t.kinds:  # chi2 has none of its own
            assert res.distance == pytest.approx(0.0, abs=1e-7)
        if res.pvalue is not None:
            assert res.pvalue > 0.99


@pytest.mark.parametrize("name", DRIFT_TESTS)
def test_every_test_refuses_mismatched_or_empty_inputs(name):
    t = TESTS[name]
    a, b = NumericSummary([0.0, 1.0]), NumericSummary([0.0, 2.0])
    a.update(np.array([0.5, 0.7]))
    b.update(np.array([0.5, 1.5]))
    empty = NumericSummary([0.0, 1.0])
    if "numeric" in t.types and name not in ("ks", "wasserstein"):
        with pytest.raises(DriftError, match="different bins"):
            t.compute(a, b)
    if "numeric" in t.types:
        with pytest.raises(DriftError, match="empty"):
            t.compute(a, empty)
