"""Selection rules, the BH + effect-size decision, FDR control and power on simulated windows."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from monitor.core.metrics.base import ModelColumns
from monitor.drift.decide import (
    LARGE_N,
    Choice,
    Decision,
    decide,
    evaluate_drift,
    select,
)
from monitor.drift.errors import DriftParamError
from monitor.drift.features import LABEL, PREDICTION
from monitor.drift.profile import RollingReference, build_profile
from slices.spec import DriftSpec, FeatureSpec, ModelSpec

N_FEATURES = 20
NAMES = [f"x{i}" for i in range(N_FEATURES)]


def _model(threshold=None, fdr=0.05, prediction=False, label=False, **extra):
    feats = tuple(FeatureSpec(n, "numeric", threshold=threshold) for n in NAMES)
    return ModelSpec("m", "binary", features=feats + tuple(extra.get("more", ())),
                     drift=DriftSpec(enabled=True, fdr=fdr, prediction=prediction, label=label))


def _cols(x: np.ndarray, extra: dict | None = None) -> ModelColumns:
    n = x.shape[0]
    feats = {name: x[:, i] for i, name in enumerate(NAMES)}
    feats.update(extra or {})
    score = np.full(n, np.nan)
    return ModelColumns(score=score, predicted=score, label=score, outcome=np.zeros(n, np.int8),
                   features=feats)


def _decision(p, d, thr=0.1, status="ok"):
    return Decision("m", "s", "f", "ks", "ks", d, p, None, d, thr, status, 100, 100)


def test_default_selection_rules():
    assert select("numeric", LARGE_N) == Choice("ks", "ks", 0.1, 100)
    assert select("numeric", LARGE_N + 1) == Choice("ks_binned", "ks_binned", 0.1, 100)
    assert select("categorical", 50) == Choice("chi2", "cohen_w", 0.1, 100)
    assert select("categorical", 10**6) == Choice("chi2", "cohen_w", 0.1, 100)


def test_overrides_and_their_errors():
    f = FeatureSpec("x", "numeric", test="psi", threshold=0.3, min_samples=7)
    assert select("numeric", 50, f) == Choice("psi", "psi", 0.3, 7)
    with pytest.raises(DriftParamError, match="feature 'c': test 'ks' applies to numeric"):
        select("categorical", 50, FeatureSpec("c", "categorical", test="ks"))
    with pytest.raises(DriftParamError, match="threshold must be >= 0"):
        select("numeric", 50, FeatureSpec("x", threshold=-1.0))
    with pytest.raises(DriftParamError, match="min_samples must be >= 1"):
        select("numeric", 50, FeatureSpec("x", min_samples=0))


def test_decide_is_bh_then_effect_size_gate():
    ps = [0.001, 0.01, 0.03, 0.04, 0.2, 0.0001, None]
    ds = [0.5, 0.05, 0.5, 0.5, 0.9, 0.5, 0.3]
    rs = [_decision(p, d) for p, d in zip(ps, ds, strict=True)]
    rs.append(_decision(None, math.nan, status="insufficient"))
    out = decide(rs, fdr=0.05)
    adj = stats.false_discovery_control(np.array(ps[:6]), method="bh")
    assert [o.adjusted_pvalue for o in out[:6]] == pytest.approx(adj.tolist(), abs=1e-15)
    want = ["drift" if (a <= 0.05 and d >= 0.1) else "ok" for a, d in zip(adj, ds, strict=False)]
    want += ["drift", "insufficient"]  # distance-only test decides on its distance
    assert [o.status for o in out] == want
    assert out[1].status == "ok" and out[1].adjusted_pvalue <= 0.05  # significant but tiny
    with pytest.raises(DriftParamError, match="fdr must be in"):
        decide(rs, fdr=0.0)


@pytest.fixture(scope="module")
def reference():
    rng = np.random.default_rng(12345)
    return build_profile(_model(), _cols(rng.normal(size=(20_000, N_FEATURES))), source="sim")


def test_fdr_is_controlled_on_500_windows_without_drift(reference):
    """500 windows × 20 features × 500 records from the reference distribution.

    Under the complete null, BH's FDR equals the probability of any rejection, so at
    fdr = 0.05 the share of windows with any BH rejection is at most 0.05 in expectation
    (KS p-values are conservative, not anti-conservative). The count of such windows is then
    at most Binomial(500, 0.05): mean 25, sd 4.87; we allow 40 (= mean + 3.1 sd, exceeded with
    probability ≈ 0.002 if the rate were exactly 5 %). With the default effect-size gate
    (D ≥ 0.1) declared drift must be a subset (at n = 500 nearly the same set: a BH-significant
    KS D is already ≈ 0.1 at this size; the gate matters for large windows, tested below).
    """
    rng = np.random.default_rng(2024)
    model = _model(threshold=0.0)  # gate off: pure BH
    any_bh = any_gated = 0
    for w in range(500):
        cur = reference.window_summaries(seed=w)
        cur.update(_cols(rng.normal(size=(500, N_FEATURES))))
        out = evaluate_drift(reference, {"all": cur}, model)
        assert len(out) == N_FEATURES and all(d.status != "insufficient" for d in out)
        bh = [d for d in out if d.status == "drift"]
        any_bh += bool(bh)
        any_gated += any(d.distance >= 0.1 for d in bh)
    assert any_bh <= 40, f"{any_bh}/500 no-drift windows had a BH rejection at fdr=0.05"
    assert any_gated <= any_bh


def test_half_sigma_shift_on_one_feature_is_declared_in_that_feature(reference):
    """40 windows of 500 records, one feature shifted by half a sigma in each: the shifted
    feature is declared every time (KS power at this size is ≈ 1), and another feature is
    declared too in few windows — BH at fdr = 0.05 over 19 null features rejects one of them
    in about 5 % of windows (binomial(40, 0.05) exceeds 6 with probability ≈ 0.01)."""
    model = _model()
    extra = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        shifted = int(rng.integers(N_FEATURES))
        x = rng.normal(size=(500, N_FEATURES))
        x[:, shifted] += 0.5
        after = reference.window_summaries(seed=2)
        after.update(_cols(x))
        out = evaluate_drift(reference, {"all": after}, model)
        declared = [d.feature for d in out if d.status == "drift"]
        assert f"x{shifted}" in declared, seed
        extra += len(declared) > 1
        hit = next(d for d in out if d.feature == f"x{shifted}")
        assert hit.test == "ks" and hit.adjusted_pvalue <= 0.05 and hit.distance >= 0.1
        assert hit.reference == "overall"
        want = stats.ks_2samp(x[:, shifted], reference.overall[f"x{shifted}"].sample)
        assert hit.pvalue == pytest.approx(want.pvalue, rel=1e-9)
    assert extra <= 6, f"{extra}/40 windows declared a feature that did not move"


def test_large_windows_switch_to_binned_distance_and_small_ones_are_insufficient(reference):
    rng = np.random.default_rng(8)
    big = reference.window_summaries(seed=3)
    x = rng.normal(size=(LARGE_N + 500, N_FEATURES))
    x[:, 3] += 0.02  # tiny shift: significant at this size, but far below the gate
    x[:, 5] += 0.5
    big.update(_cols(x))
    small = reference.window_summaries(seed=4)
    small.update(_cols(rng.normal(size=(60, N_FEATURES))))
    out = evaluate_drift(reference, {"big": big, "small": small}, _model())
    by = {(d.slice, d.feature): d for d in out}
    assert {d.test for d in out if d.slice == "big"} == {"ks_binned"}
    assert [d.feature for d in out if d.status == "drift"] == ["x5"]
    assert by[("big", "x3")].status == "ok"
    assert all(d.status == "insufficient" and d.n_current == 60 and math.isnan(d.distance)
               for d in out if d.slice == "small")


def test_categorical_prediction_label_and_per_slice_reference():
    rng = np.random.default_rng(21)
    n = 6000
    country = rng.choice(np.array(["de", "fr", "us"], object), n)
    score = rng.beta(2, 5, n)
    label = (rng.random(n) < score).astype(float)
    feats = {"country": country, "amount": rng.lognormal(size=n)}
    model = ModelSpec("fraud", "binary",
                      features=(FeatureSpec("country", "categorical"), FeatureSpec("amount")),
                      drift=DriftSpec(enabled=True))
    frame = {**feats, "score": score, "label": label}
    profile = build_profile(model, frame, source="train", slices={"de": country == "de"})
    assert set(profile.overall) == {"country", "amount", PREDICTION, LABEL}
    # window for slice "de": same distribution as de's reference except the score drifts up
    m = 800
    cur = profile.window_summaries(seed=5)
    s2 = np.clip(rng.beta(2, 5, m) + 0.2, 0, 1)
    cur.update(ModelColumns(score=s2, predicted=(s2 >= 0.5).astype(float),
                       label=(rng.random(m) < s2).astype(float), outcome=np.zeros(m, np.int8),
                       features={"country": np.full(m, "de", object),
                                 "amount": rng.lognormal(size=m)}))
    out = {d.feature: d for d in evaluate_drift(profile, {"de": cur}, model)}
    assert all(d.reference == "slice" for d in out.values())
    assert out["country"].status == "ok" and out["country"].test == "chi2"
    assert out[PREDICTION].status == "drift" and out[PREDICTION].test == "ks"
    assert out[LABEL].test == "chi2" and out[LABEL].gate == "cohen_w"
    assert out["amount"].status == "ok"
    # against the overall reference the single-country slice drifts on country
    other = {d.feature: d for d in evaluate_drift(profile, {"fr-like": cur}, model)}
    assert other["country"].reference == "overall" and other["country"].status == "drift"


def test_rolling_reference_detects_a_shift_against_recent_windows():
    rng = np.random.default_rng(33)
    base = build_profile(_model(), _cols(rng.normal(size=(5000, N_FEATURES))), source="warmup")
    rolling = RollingReference(3)
    for w in range(4):
        s = base.window_summaries(seed=w)
        s.update(_cols(rng.normal(size=(400, N_FEATURES))))
        rolling.push({"all": s})
    assert rolling.ready and len(rolling.windows) == 3
    ref, scope = rolling.for_slice("all")
    assert scope == "rolling" and ref["x0"].n == 1200 and ref["x0"].sample.shape[0] == 1000
    x = rng.normal(size=(400, N_FEATURES))
    x[:, 2] -= 0.6
    cur = base.window_summaries(seed=9)
    cur.update(_cols(x))
    out = evaluate_drift(rolling, {"all": cur, "new-slice": cur}, _model())
    assert [(d.slice, d.feature) for d in out if d.status == "drift"] == [("all", "x2")]
    assert all(d.status == "insufficient" for d in out if d.slice == "new-slice")
    again = RollingReference.from_state(rolling.to_state())
    assert again.for_slice("all")[0].to_state()["summaries"]["x0"]["counts"] == \
        ref["x0"].to_state()["counts"]
