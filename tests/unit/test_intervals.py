"""Confidence intervals (issue 15 item 1): each kind against scipy (or an independent
formula) on the same data, and its coverage by simulation: the nominal level ± 2 points
over ≥ 1000 simulated windows."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from monitor.core.metrics.base import ModelColumns
from monitor.core.metrics.bootstrap import (
    BootstrapLabel,
    BootstrapPrediction,
    bootstrap_interval,
    poisson_weights,
)
from monitor.core.metrics.intervals import delong_binned, normal_mean, wilson
from monitor.core.metrics.ranking import DEFAULT_BINS, ScoreHistogram
from monitor.core.metrics.registry import accumulators_for, window_intervals, window_results
from slices.spec import ModelSpec

LEVEL = 0.95
WINDOWS = 2000


def covered(lo, hi, truth) -> float:
    return float(np.mean((np.asarray(lo) <= truth) & (truth <= np.asarray(hi))))


# ---- against scipy / an independent implementation on the same data ---------------------

def test_wilson_equals_scipy_binomtest():
    for k, n in [(0, 5), (3, 10), (10, 10), (57, 400), (1, 100000)]:
        ref = stats.binomtest(k, n).proportion_ci(LEVEL, method="wilson")
        lo, hi = wilson(k, n, LEVEL)
        assert (float(lo), float(hi)) == pytest.approx((ref.low, ref.high), abs=1e-12)
    assert np.isnan(wilson(0, 0, LEVEL)).all()


def test_normal_mean_equals_scipy_norm_interval():
    x = np.random.default_rng(1).exponential(2.0, 500)
    ref = stats.norm.interval(LEVEL, loc=x.mean(), scale=stats.sem(x))
    lo, hi = normal_mean(x.sum(), np.square(x).sum(), x.size, LEVEL)
    assert (float(lo), float(hi)) == pytest.approx(ref, rel=1e-9)


def delong_reference(scores_pos, scores_neg):
    """DeLong's variance through midranks (Sun & Xu 2014), computed on raw scores."""
    m, n = len(scores_pos), len(scores_neg)
    both = np.concatenate([scores_pos, scores_neg])
    r = stats.rankdata(both)
    rx, ry = stats.rankdata(scores_pos), stats.rankdata(scores_neg)
    auc = (r[:m].sum() - m * (m + 1) / 2) / (m * n)
    v10 = (r[:m] - rx) / n
    v01 = 1 - (r[m:] - ry) / m
    return auc, np.var(v10, ddof=1) / m + np.var(v01, ddof=1) / n


def test_delong_binned_equals_delong_on_the_same_tied_scores():
    rng = np.random.default_rng(2)
    pos = np.floor(rng.beta(3, 2, 300) * DEFAULT_BINS) / DEFAULT_BINS  # scores on bin edges
    neg = np.floor(rng.beta(2, 3, 500) * DEFAULT_BINS) / DEFAULT_BINS
    acc = ScoreHistogram()
    s = np.concatenate([pos, neg])
    y = np.r_[np.ones(300), np.zeros(500)]
    acc.update(ModelColumns(s, s, y, np.zeros(800, np.int8)))
    auc, var = delong_reference(pos, neg)
    got_auc, lo, hi = delong_binned(acc.counts[0], acc.counts[1], LEVEL)
    half = stats.norm.ppf(0.975) * np.sqrt(var)
    assert float(got_auc) == pytest.approx(auc, rel=1e-12)
    assert acc.roc_auc() == pytest.approx(auc, rel=1e-12)
    assert (float(lo), float(hi)) == pytest.approx((auc - half, auc + half), rel=1e-9)


def test_bootstrap_interval_agrees_with_scipy_bootstrap():
    rng = np.random.default_rng(3)
    x = rng.gamma(2.0, 1.0, 2000)
    acc = BootstrapPrediction("regression", ("prediction_std",), 1000)
    acc.update(ModelColumns(x, x, np.full(x.size, np.nan), np.zeros(x.size, np.int8),
                            key=np.arange(x.size, dtype=np.uint64)))
    ours = bootstrap_interval(acc.replicates_of()["prediction_std"], float(np.std(x)), LEVEL)
    ref = stats.bootstrap((x,), np.std, confidence_level=LEVEL, method="percentile",
                          n_resamples=4000, random_state=4).confidence_interval
    width = ref.high - ref.low
    assert abs(ours[0] - ref.low) < 0.1 * width and abs(ours[1] - ref.high) < 0.1 * width


def test_poisson_weights_have_the_poisson_1_distribution_and_depend_on_the_key_only():
    keys = np.arange(20000, dtype=np.uint64) * np.uint64(7919)
    w = poisson_weights(keys, 50)[:, 1:].ravel()
    assert w.mean() == pytest.approx(1.0, abs=0.01) and w.var() == pytest.approx(1.0, abs=0.02)
    observed = np.bincount(w, minlength=6)[:6] / w.size
    assert observed == pytest.approx(stats.poisson.pmf(np.arange(6), 1.0), abs=0.003)
    shuffled = np.random.default_rng(0).permutation(keys.shape[0])
    assert (poisson_weights(keys[shuffled], 50) == poisson_weights(keys, 50)[shuffled]).all()


# ---- coverage by simulation --------------------------------------------------------------

def test_wilson_coverage():
    rng = np.random.default_rng(10)
    p, n = 0.08, 150
    k = rng.binomial(n, p, WINDOWS)
    lo, hi = wilson(k, n, LEVEL)
    assert covered(lo, hi, p) == pytest.approx(LEVEL, abs=0.02)


def test_normal_mean_coverage():
    rng = np.random.default_rng(11)
    x = rng.exponential(0.3, (WINDOWS, 400))  # skewed per-record losses, true mean 0.3
    lo, hi = normal_mean(x.sum(axis=1), np.square(x).sum(axis=1), 400, LEVEL)
    assert covered(lo, hi, 0.3) == pytest.approx(LEVEL, abs=0.02)


def test_delong_coverage():
    rng = np.random.default_rng(12)
    n_pos, n_neg, shift = 150, 250, 1.0
    truth = stats.norm.cdf(shift / np.sqrt(2))  # binormal AUC
    pos = rng.normal(shift, 1, (WINDOWS, n_pos))
    neg = rng.normal(0, 1, (WINDOWS, n_neg))
    to_score = stats.norm.cdf  # monotone: AUC unchanged, scores in [0, 1]
    bins = 1024
    offs = np.arange(WINDOWS)[:, None] * bins

    def hist(x):
        b = np.clip((to_score((x - shift / 2) / 2) * bins).astype(int), 0, bins - 1)
        return np.bincount((b + offs).ravel(), minlength=WINDOWS * bins).reshape(WINDOWS, bins)

    _, lo, hi = delong_binned(hist(neg), hist(pos), LEVEL)
    assert covered(lo, hi, truth) == pytest.approx(LEVEL, abs=0.02)


def _f1_windows(rng, windows, n):
    """Binary windows with a known population F1: label ~ B(0.4), prediction right w.p. 0.8."""
    y = (rng.random((windows, n)) < 0.4).astype(float)
    right = rng.random((windows, n)) < 0.8
    p = np.where(right, y, 1 - y)
    score = np.where(p == 1, 0.75, 0.25)
    truth = 2 * 0.32 / (2 * 0.32 + 0.12 + 0.08)
    return y.ravel(), p.ravel(), score.ravel(), truth


def test_bootstrap_coverage_f1():
    rng = np.random.default_rng(13)
    windows, n = 1000, 300
    y, p, s, truth = _f1_windows(rng, windows, n)
    cols = ModelColumns(s, p, y, np.zeros(y.size, np.int8),
                        key=rng.integers(0, 2**63, y.size).astype(np.uint64))
    accs = [BootstrapLabel("binary", ("f1",), 200) for _ in range(windows)]
    BootstrapLabel.update_many(cols, [(a, np.arange(i * n, (i + 1) * n))
                                      for i, a in enumerate(accs)])
    lo, hi = np.array([bootstrap_interval(a.replicates_of()["f1"],
                                          float(a.replicates_of()["f1"][0]), LEVEL)
                       for a in accs]).T
    assert covered(lo, hi, truth) == pytest.approx(LEVEL, abs=0.02)


def test_bootstrap_coverage_std():
    rng = np.random.default_rng(14)
    windows, n = 1000, 400
    x = rng.random(windows * n)  # U(0, 1): std = 1/√12
    cols = ModelColumns(x, x, np.full(x.size, np.nan), np.zeros(x.size, np.int8),
                        key=rng.integers(0, 2**63, x.size).astype(np.uint64))
    accs = [BootstrapPrediction("binary", ("score_std",), 200) for _ in range(windows)]
    BootstrapPrediction.update_many(cols, [(a, np.arange(i * n, (i + 1) * n))
                                           for i, a in enumerate(accs)])
    bounds = [bootstrap_interval(a.replicates_of()["score_std"],
                                 float(a.replicates_of()["score_std"][0]), LEVEL) for a in accs]
    lo, hi = np.array(bounds).T
    assert covered(lo, hi, 1 / np.sqrt(12)) == pytest.approx(LEVEL, abs=0.02)


# ---- every metric of every task gets an interval around its value --------------------------

@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_every_metric_has_an_interval_around_its_value(task):
    from tests.unit.test_metrics_common import COLS_BY_TASK

    cols = COLS_BY_TASK[task](np.random.default_rng(5), 12000)  # ECE: ≥ MIN_ECE_RECORDS
    model = ModelSpec(name="m", task=task)  # type: ignore[arg-type]
    accs = accumulators_for(model)
    labelled = cols.take(cols.labelled())
    for acc in accs:
        acc.update(labelled if acc.needs_label else cols)
    results = window_results(accs)
    got = window_intervals(accs, LEVEL, results)
    missing = set(results) - set(got) - {"count"}
    assert not missing
    for name, (lo, hi) in got.items():
        assert lo <= results[name] + 1e-12 and results[name] <= hi + 1e-12, (name, lo, hi)
        assert hi - lo < 0.5 * max(abs(results[name]), 1e-3) + 0.1, name


def test_bootstrap_of_pr_auc_is_centred_on_the_fine_metric():
    rng = np.random.default_rng(6)
    n = 4000
    y = (rng.random(n) < 0.3).astype(float)
    s = np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0, 1)
    cols = ModelColumns(s, (s >= 0.5).astype(float), y, np.zeros(n, np.int8),
                        key=np.arange(n, dtype=np.uint64))
    hist, boot = ScoreHistogram(), BootstrapLabel("binary", ("pr_auc",), 300)
    hist.update(cols)
    boot.update(cols)
    value = hist.pr_auc()
    lo, hi = bootstrap_interval(boot.replicates_of()["pr_auc"], value, LEVEL)
    assert lo < value < hi
    ref = stats.bootstrap((s, y), lambda a, b: _ap(a, b), paired=True, vectorized=False,
                          confidence_level=LEVEL, method="percentile", n_resamples=500,
                          random_state=7).confidence_interval
    assert hi - lo == pytest.approx(ref.high - ref.low, rel=0.25)


def _ap(s, y):
    h = ScoreHistogram()
    h.update(ModelColumns(s, s, y, np.zeros(s.size, np.int8)))
    return h.pr_auc()


# ---- analytic intervals of f1 and of the std (they replaced the bootstrap) ----------------

def test_f1_interval_is_wilson_of_the_jaccard_index_mapped():
    from monitor.core.metrics.binary import f1_interval

    tp, fp, fn = 40, 7, 13
    ci = stats.binomtest(tp, tp + fp + fn).proportion_ci(LEVEL, method="wilson")
    lo, hi = f1_interval(tp, fp + fn, LEVEL)
    assert (float(lo), float(hi)) == pytest.approx(
        (2 * ci.low / (1 + ci.low), 2 * ci.high / (1 + ci.high)), abs=1e-12)
    assert float(lo) < 2 * tp / (2 * tp + fp + fn) < float(hi)


def test_f1_interval_coverage():
    from monitor.core.metrics.binary import Confusion

    rng = np.random.default_rng(23)
    windows, n = WINDOWS, 300
    y, p, s, truth = _f1_windows(rng, windows, n)
    cols = ModelColumns(s, p, y, np.zeros(y.size, np.int8))
    accs = [Confusion() for _ in range(windows)]
    Confusion.update_many(cols, [(a, np.arange(i * n, (i + 1) * n))
                                 for i, a in enumerate(accs)])
    lo, hi = np.array([a.intervals(LEVEL)["f1"] for a in accs]).T
    assert covered(lo, hi, truth) == pytest.approx(LEVEL, abs=0.02)


def test_std_interval_equals_the_delta_method_on_scipy_moments():
    from monitor.core.metrics.moments import ScoreMoments

    rng = np.random.default_rng(24)
    x = rng.beta(0.5, 0.5, 3000)
    acc = ScoreMoments("binary")
    for part in np.array_split(x, 7):  # several batches: the M3/M4 merge is exercised
        acc.update(ModelColumns(part, (part >= 0.5).astype(float), np.full(part.size, np.nan),
                                np.zeros(part.size, np.int8)))
    sd, mu4 = np.std(x), stats.moment(x, 4)
    half = stats.norm.ppf(0.975) * np.sqrt((mu4 - sd ** 4) / x.size) / (2 * sd)
    assert acc.intervals(LEVEL)["score_std"] == pytest.approx((sd - half, sd + half), rel=1e-9)
    assert acc.m3 == pytest.approx(stats.moment(x, 3) * x.size, rel=1e-9)


@pytest.mark.parametrize("draw, truth", [
    (lambda rng, size: rng.random(size), 1 / np.sqrt(12)),              # U(0, 1)
    (lambda rng, size: rng.beta(0.5, 0.5, size), np.sqrt(1 / 8)),       # bimodal scores
])
def test_std_interval_coverage(draw, truth):
    from monitor.core.metrics.moments import ScoreMoments

    rng = np.random.default_rng(25)
    windows, n = WINDOWS, 400
    x = draw(rng, windows * n)
    cols = ModelColumns(x, (x >= 0.5).astype(float), np.full(x.size, np.nan),
                        np.zeros(x.size, np.int8))
    accs = [ScoreMoments("binary") for _ in range(windows)]
    ScoreMoments.update_many(cols, [(a, np.arange(i * n, (i + 1) * n))
                                    for i, a in enumerate(accs)])
    lo, hi = np.array([a.intervals(LEVEL)["score_std"] for a in accs]).T
    assert covered(lo, hi, truth) == pytest.approx(LEVEL, abs=0.02)


# ---- multiclass macro metrics: delta method on the confusion cells ----------------------

_P = np.array([[0.25, 0.05, 0.02], [0.04, 0.30, 0.06], [0.03, 0.05, 0.20]])


def _macro_truth(p):
    tp, row, col = np.diag(p), p.sum(axis=1), p.sum(axis=0)
    return {"macro_recall": (tp / row).mean(), "macro_precision": (tp / col).mean(),
            "macro_f1": (2 * tp / (row + col)).mean()}


def test_macro_intervals_recall_and_precision_are_the_per_class_binomial_variances():
    from monitor.core.metrics.multiclass import macro_intervals

    counts = np.array([[3, 50, 7, 2], [1, 6, 80, 9], [0, 4, 8, 40]])  # column 0: unknown
    got = macro_intervals(counts, LEVEL)
    known = counts[:, 1:]
    tp, row, col = np.diag(known), counts.sum(axis=1), known.sum(axis=0)
    z = stats.norm.ppf(0.975)
    for name, den in (("macro_recall", row), ("macro_precision", col)):
        r = tp / den
        half = z * np.sqrt((r * (1 - r) / den).sum()) / 3
        assert got[name] == pytest.approx((r.mean() - half, r.mean() + half), rel=1e-12)


def test_macro_f1_interval_width_matches_scipy_bootstrap():
    from monitor.core.metrics.multiclass import macro_intervals

    rng = np.random.default_rng(41)
    cells = rng.choice(9, 600, p=(_P / _P.sum()).ravel())
    y, p = cells // 3, cells % 3

    def macro_f1(yy, pp):
        c = np.bincount(yy * 3 + pp, minlength=9).reshape(3, 3)
        tp, row, col = np.diag(c), c.sum(axis=1), c.sum(axis=0)
        return float((2 * tp / (row + col)).mean())

    ref = stats.bootstrap((y, p), macro_f1, paired=True, vectorized=False, n_resamples=2000,
                          confidence_level=LEVEL, method="percentile",
                          random_state=3).confidence_interval
    counts = np.hstack([np.zeros((3, 1), int), np.bincount(cells, minlength=9).reshape(3, 3)])
    lo, hi = macro_intervals(counts, LEVEL)["macro_f1"]
    assert hi - lo == pytest.approx(ref.high - ref.low, rel=0.15)


def test_macro_interval_coverage():
    from monitor.core.metrics.multiclass import macro_intervals

    rng = np.random.default_rng(42)
    p = _P / _P.sum()
    truth = _macro_truth(p)
    hits = dict.fromkeys(truth, 0)
    for _ in range(WINDOWS):
        c = rng.multinomial(400, p.ravel()).reshape(3, 3)
        got = macro_intervals(np.hstack([np.zeros((3, 1), int), c]), LEVEL)
        for name, (lo, hi) in got.items():
            hits[name] += lo <= truth[name] <= hi
    for name, h in hits.items():
        assert h / WINDOWS == pytest.approx(LEVEL, abs=0.02), name


def test_grouped_bootstrap_update_equals_per_slice_cell_sums():
    from monitor.core.metrics.bootstrap import cell_sums, poisson_weights

    rng = np.random.default_rng(43)
    n = 3000
    y = (rng.random(n) < 0.3).astype(float)
    y[rng.random(n) < 0.1] = np.nan  # unlabelled: left out
    s = np.clip(rng.normal(0.35 + 0.3 * np.nan_to_num(y), 0.2), 0, 1)
    cols = ModelColumns(s, (s >= 0.5).astype(float), y, np.zeros(n, np.int8),
                        key=rng.integers(0, 2**63, n).astype(np.uint64))
    metrics = ("pr_auc", "ece", "accuracy", "brier", "log_loss")
    groups = [np.arange(n), np.flatnonzero(s > 0.4), np.flatnonzero(rng.random(n) < 0.2)]
    accs = [BootstrapLabel("binary", metrics, 60) for _ in groups]
    BootstrapLabel.update_many(cols, list(zip(accs, groups, strict=True)))
    w = poisson_weights(cols.key, 60)
    channels, cells = accs[0]._channels(cols), accs[0]._layout()
    for acc, rows in zip(accs, groups, strict=True):
        for name, (codes, values) in channels.items():
            ref = cell_sums(w[rows], codes[rows], None if values is None else values[rows],
                            cells[name])
            np.testing.assert_allclose(acc.sums[name], ref, rtol=1e-12, atol=1e-9)


def test_float32_count_product_is_exact_and_falls_back_to_float64(monkeypatch):
    from monitor.core.metrics import bootstrap

    rng = np.random.default_rng(44)
    n = 5000
    y = (rng.random(n) < 0.3).astype(float)
    s = np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0, 1)
    cols = ModelColumns(s, (s >= 0.5).astype(float), y, np.zeros(n, np.int8),
                        key=rng.integers(0, 2**63, n).astype(np.uint64))
    groups = [np.arange(n), np.flatnonzero(s > 0.4)]

    def sums():
        accs = [BootstrapLabel("binary", ("pr_auc", "ece"), 100) for _ in groups]
        BootstrapLabel.update_many(cols, list(zip(accs, groups, strict=True)))
        return [a.sums for a in accs]

    fast = sums()  # float32 count product (slices below F32_EXACT_RECORDS records)
    assert bootstrap.F32_EXACT_RECORDS * 20 <= 2**24
    monkeypatch.setattr(bootstrap, "F32_EXACT_RECORDS", 1)  # every slice too big: float64
    slow = sums()
    for a, b in zip(fast, slow, strict=True):
        for name in ("ranking", "cal_n", "cal_y", "cal_s"):
            np.testing.assert_array_equal(a[name], b[name])  # integer sums: bit-identical
    w = poisson_weights(cols.key, 100)
    assert int(w.max()) <= len(bootstrap._THRESHOLDS)
