"""Categorical drift decisions with known truth: chi² (p-value) gated on Cohen's w ≥ 0.1.

The old gate (L∞ of shares ≥ 0.1) declared none of the first three shifts below, however large
the window. Rationale of the threshold: docs/analysis.md, "Honest categorical drift".
"""

from __future__ import annotations

import numpy as np
import pytest

from monitor.core.metrics.base import ModelColumns
from monitor.drift.decide import evaluate_drift
from monitor.drift.profile import build_profile
from monitor.drift.statistics import TESTS
from slices.spec import DriftSpec, FeatureSpec, ModelSpec

CATS = np.array(list("abcde"), dtype=object)


def _model(numeric=(), categorical=("c",)):
    feats = tuple(FeatureSpec(n, "numeric") for n in numeric)
    feats += tuple(FeatureSpec(n, "categorical") for n in categorical)
    drift = DriftSpec(enabled=True, fdr=0.05, prediction=False, label=False)
    return ModelSpec("m", "binary", features=feats, drift=drift)


def _cols(features: dict[str, np.ndarray]) -> ModelColumns:
    n = len(next(iter(features.values())))
    nan = np.full(n, np.nan)
    return ModelColumns(score=nan, predicted=nan, label=nan, outcome=np.zeros(n, np.int8),
                        features=features)


def _exact(shares, n, rng):
    """n values with exactly the given shares (shuffled): known truth, no sampling noise."""
    counts = np.round(np.asarray(shares) * n).astype(int)
    return rng.permutation(np.repeat(CATS, counts))


def _decide_one(ref_values, cur_values):
    model = _model()
    profile = build_profile(model, _cols({"c": ref_values}), source="sim")
    cur = profile.window_summaries(seed=1)
    cur.update(_cols({"c": cur_values}))
    (d,) = evaluate_drift(profile, {"all": cur}, model)
    linf = TESTS["linf"].compute(profile.overall["c"], cur["c"]).distance
    return d, linf


@pytest.mark.parametrize(("shares", "n", "w_true"), [
    ([0.28, 0.12, 0.2, 0.2, 0.2], 2000, 0.253),   # 8 points from one category to another
    ([0.28, 0.18, 0.18, 0.18, 0.18], 5000, 0.2),  # 20 % → 28 %, the others lose alike
    ([0.29, 0.11, 0.2, 0.2, 0.2], 5000, 0.285),   # a 9-point shift
])
def test_share_moves_of_8_or_9_points_are_declared(shares, n, w_true):
    rng = np.random.default_rng(0)
    d, linf = _decide_one(_exact([0.2] * 5, 50_000, rng), _exact(shares, n, rng))
    assert linf < 0.1  # the old gate's distance: never declared, at any n
    assert d.test == "chi2" and d.gate == "cohen_w"
    assert d.distance == pytest.approx(w_true, abs=0.002)
    assert d.adjusted_pvalue < 1e-9 and d.status == "drift"


def test_sampling_noise_and_a_trivial_shift_at_one_million_are_not_declared():
    """n = 1M on both sides. Pure noise: w ≈ sqrt(4 (1/n + 1/n_ref)) ≈ 0.003. A half-point
    shift is highly significant at this size (p < 1e-10) but w ≈ 0.018, far below 0.1."""
    rng = np.random.default_rng(5)
    p = np.array([0.4, 0.3, 0.15, 0.1, 0.05])
    ref = rng.choice(CATS, 1_000_000, p=p)
    d, _ = _decide_one(ref, rng.choice(CATS, 1_000_000, p=p))
    assert d.status == "ok" and d.distance < 0.01
    d, _ = _decide_one(ref, rng.choice(CATS, 1_000_000, p=p + np.array([0.005, -0.005, 0, 0, 0])))
    assert d.pvalue < 1e-10 and d.status == "ok" and d.distance < 0.03


def test_null_windows_with_100_slices_of_12_features_stay_within_the_fdr_guarantee():
    """20 windows × 100 slices × 12 features (6 numeric, 6 categorical) × 500 records, all
    drawn from the reference distribution, decided together per window (1200 tests, BH at
    fdr = 0.05, then the gates). Under the complete null BH's FDR is the probability of any
    declaration in a window, ≤ 0.05 (chi² and KS are valid or conservative here), so the
    count of windows with one is at most Binomial(20, 0.05): P(> 4) ≈ 0.016."""
    numeric = [f"x{i}" for i in range(6)]
    categorical = [f"c{i}" for i in range(6)]
    model = _model(numeric, categorical)
    probs = np.array([0.4, 0.25, 0.15, 0.12, 0.08])
    rng = np.random.default_rng(99)

    def draw(n):
        cols = {f: rng.normal(size=n) for f in numeric}
        cols.update({f: rng.choice(CATS, n, p=probs) for f in categorical})
        return _cols(cols)

    profile = build_profile(model, draw(50_000), source="sim")
    windows_with_any = declared = 0
    for w in range(20):
        current = {}
        for s in range(100):
            cur = profile.window_summaries(seed=1000 * w + s)
            cur.update(draw(500))
            current[f"s{s}"] = cur
        out = evaluate_drift(profile, current, model)
        assert len(out) == 1200 and all(d.status != "insufficient" for d in out)
        assert {d.gate for d in out if d.feature in categorical} == {"cohen_w"}
        hits = [d for d in out if d.status == "drift"]
        declared += len(hits)
        windows_with_any += bool(hits)
    assert windows_with_any <= 4, f"{windows_with_any}/20 null windows declared drift"
    assert declared <= 8
