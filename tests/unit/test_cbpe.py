"""CBPE: calibration against scikit-learn, the estimates against the formulas written out with
plain loops, interval coverage by simulation, and the daemon's export of estimate and error."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest

from monitor.drift.cbpe import Calibration, PerformanceEstimate


def _calibrated(n, rng):
    """Scores that are calibrated probabilities: label ~ Bernoulli(score)."""
    s = rng.beta(2, 3, n)
    return s, (rng.random(n) < s).astype(float)


def test_calibration_equals_sklearn_isotonic():
    from sklearn.isotonic import IsotonicRegression

    rng = np.random.default_rng(0)
    s = rng.random(3000)
    y = (rng.random(3000) < s ** 2).astype(float)
    cal = Calibration.fit(s, y)
    iso = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(s, y)
    grid = np.linspace(-0.1, 1.1, 500)
    assert cal(grid) == pytest.approx(iso.predict(grid), abs=1e-9)
    assert Calibration.from_state(cal.to_state())(grid) == pytest.approx(cal(grid))


def _by_loops(scores, cal, threshold):
    """The published formulas (NannyML CBPE), one record at a time."""
    tp = fp = fn = tn = 0.0
    recs = []
    for s in scores:
        c = float(cal(np.array([s]))[0])
        recs.append((s, c))
        if s >= threshold:
            tp += c
            fp += 1 - c
        else:
            fn += c
            tn += 1 - c
    # ROC AUC: expected TPR/FPR, thresholds at every distinct score, from the highest down
    recs.sort(key=lambda r: -r[0])
    P, N = sum(c for _, c in recs), sum(1 - c for _, c in recs)
    auc = tpr = fpr = 0.0
    i = 0
    while i < len(recs):
        j, dp, dn = i, 0.0, 0.0
        while j < len(recs) and recs[j][0] == recs[i][0]:
            dp += recs[j][1]
            dn += 1 - recs[j][1]
            j += 1
        auc += dn / N * (2 * tpr + dp / P) / 2
        tpr += dp / P
        fpr += dn / N
        i = j
    return {"accuracy": (tp + tn) / len(scores), "precision": tp / (tp + fp),
            "recall": tp / (tp + fn), "f1": 2 * tp / (2 * tp + fp + fn), "roc_auc": auc}


@pytest.mark.parametrize("threshold", [0.3, 0.5])
def test_estimates_equal_the_formulas_written_as_loops(threshold):
    rng = np.random.default_rng(1)
    cal = Calibration.fit(*_calibrated(20_000, rng))
    s, _ = _calibrated(2000, rng)
    one, a, b = (PerformanceEstimate(cal, threshold) for _ in range(3))
    one.update_scores(s)
    a.update_scores(s[:700])
    b.update_scores(s[700:])
    a.merge(b)
    want = _by_loops(s, cal, threshold)
    got = one.estimates()
    for k in ("accuracy", "precision", "recall", "f1"):
        assert got[k] == pytest.approx(want[k], abs=1e-12), k
        assert a.estimates()[k] == pytest.approx(want[k], abs=1e-12), k
    # the grouped update (the daemon's path) equals update per group
    from monitor.core.metrics.base import ModelColumns
    nan = np.full(s.shape[0], np.nan)
    cols = ModelColumns(score=s, predicted=nan, label=nan, outcome=np.zeros(s.shape[0], np.int8))
    g1, g2 = PerformanceEstimate(cal, threshold), PerformanceEstimate(cal, threshold)
    PerformanceEstimate.update_many(cols, [(g1, np.arange(2000)), (g2, np.arange(700))])
    assert g1.sums == pytest.approx(one.sums) and g1.pos == pytest.approx(one.pos)
    ref2 = PerformanceEstimate(cal, threshold)
    ref2.update_scores(s[:700])
    assert g2.sums == pytest.approx(ref2.sums) and g2.neg == pytest.approx(ref2.neg)
    # AUC over 200 score bins: ties inside a bin; binning error well under 0.005 here
    assert got["roc_auc"] == pytest.approx(want["roc_auc"], abs=0.005)


def test_realised_metrics_fall_in_the_interval_at_the_nominal_rate():
    """1000 windows of 500 records of calibrated scores: the realised accuracy and precision
    fall in the 95 % interval in 95 % ± 2 points of the windows; the estimates are unbiased."""
    rng = np.random.default_rng(2)
    cal = Calibration.fit(*_calibrated(50_000, rng))
    inside = {"accuracy": 0, "precision": 0}
    errors = []
    for _ in range(1000):
        s, y = _calibrated(500, rng)
        acc = PerformanceEstimate(cal, 0.5)
        acc.update_scores(s)
        yhat = s >= 0.5
        real = {"accuracy": float(np.mean(yhat == (y == 1))),
                "precision": float(np.mean(y[yhat]))}
        for k, (lo, hi) in acc.intervals(0.95).items():
            inside[k] += lo <= real[k] <= hi
        errors.append(real["accuracy"] - acc.estimates()["accuracy"])
    for k, v in inside.items():
        assert 930 <= v <= 970, (k, v)
    assert abs(np.mean(errors)) < 0.003


def test_no_scores_or_no_calibration_estimates_nothing():
    acc = PerformanceEstimate(None, 0.5)
    acc.update_scores(np.array([0.2, 0.9]))
    assert all(math.isnan(v) for v in acc.estimates().values()) and acc.intervals() == {}
    back = PerformanceEstimate.from_state(orjson.loads(orjson.dumps(acc.to_state())))
    assert back.sums.tolist() == acc.sums.tolist()


SPEC = """
models:
  - name: m
    task: binary
    window: 1m
    features: {x: numeric}
    slices: [{overall: true}]
    drift: {profile: %s}
"""


def _records(n, start, seed, labels=True):
    rng = np.random.default_rng(seed)
    s, y = _calibrated(n, rng)
    return [orjson.dumps({"model": "m", "prediction_id": f"{seed}-{i}",
                          "timestamp": start + i * 60.0 / n, "features": {"x": float(s[i])},
                          "prediction": {"score": float(s[i])},
                          **({"label": int(y[i])} if labels else {})}) for i in range(n)]


def test_the_daemon_exports_the_estimate_beside_the_realised_metric(tmp_path):
    from prometheus_client.exposition import generate_latest
    from prometheus_client.parser import text_string_to_metric_families
    from prometheus_client.registry import CollectorRegistry

    from monitor.drift import save_profile
    from monitor.export.collector import SlicewatchCollector
    from monitor.ingest.deadletter import DeadLetter
    from monitor.ingest.decode import Decoder
    from monitor.ingest.source import Chunk
    from monitor.outputs.results import result_record
    from monitor.runtime.baseline import profile_for
    from monitor.runtime.daemon import Daemon
    from slices.load import load_spec_text

    path = tmp_path / "profile.json"
    spec = load_spec_text(SPEC % path)
    batch, _ = Decoder(spec.schema, default_model="m").decode_lines(_records(20_000, 0, 1))
    save_profile(profile_for(spec.models[0], batch, source="test"), path)
    got = []
    daemon = Daemon(spec, dead_letter=DeadLetter(None), listeners=[lambda w, rs: got.append(rs)])
    daemon.run([Chunk("lines", _records(4000, 0, 2) + _records(4000, 60, 3, labels=False))])
    labelled, unlabelled = got[0][0], got[1][0]
    est = labelled.estimated
    assert est is not None and set(est.error) == {"accuracy", "precision", "recall", "f1",
                                                  "roc_auc"}
    assert est.error["accuracy"] == pytest.approx(
        labelled.metrics["accuracy"] - est.values["accuracy"])
    lo, hi = est.intervals["accuracy"]
    assert lo <= labelled.metrics["accuracy"] <= hi
    assert unlabelled.estimated.error == {} and unlabelled.estimated.values["roc_auc"] > 0.5
    assert orjson.loads(orjson.dumps(result_record(labelled)))["estimated"]["error"]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SlicewatchCollector(lambda: daemon.snapshot))
    fams = {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}
    assert [s.value for s in fams["slicewatch_slice_estimated_accuracy"].samples] == \
        [pytest.approx(unlabelled.estimated.values["accuracy"])]
    assert {s.labels["metric"] for s in fams["slicewatch_slice_estimated_lower"].samples} == \
        {"accuracy", "precision"}


def test_calibration_knots_give_np_interp_of_every_point_bit_for_bit():
    rng = np.random.default_rng(5)
    scores = rng.random(20_000)
    scores[:500] = np.round(scores[:500], 2)  # ties
    labels = (rng.random(20_000) < scores).astype(float)
    cal = Calibration.fit(scores, labels)
    assert cal._knots[0].shape[0] < cal.x.shape[0] / 10  # the runs were dropped
    probe = np.r_[cal.x, np.nextafter(cal.x, 2), np.nextafter(cal.x, -1), rng.random(5000),
                  -1.0, 2.0, np.nan]
    want = np.interp(probe, cal.x, cal.y)
    np.testing.assert_array_equal(cal(probe), want)
    assert cal(probe).tobytes() == want.tobytes()


@pytest.mark.parametrize("seed", range(3))
def test_update_many_equals_update_of_each_group(seed):
    from monitor.core.metrics.base import ModelColumns

    rng = np.random.default_rng(seed)
    n = 3000
    ref = rng.random(5000)
    cal = Calibration.fit(ref, (rng.random(5000) < ref).astype(float))
    score = rng.random(n)
    score[rng.random(n) < 0.05] = np.nan
    score[:3] = [np.inf, -np.inf, 1.0]
    cols = ModelColumns(score, (score >= 0.5).astype(float), np.full(n, np.nan),
                        np.zeros(n, np.int8))
    cut = np.digitize(score, [0.3, 0.6])
    groups = [np.arange(n), *(np.flatnonzero(cut == b) for b in range(3)),
              np.flatnonzero(rng.random(n) < 0.2), np.zeros(0, np.int64)]
    many = [PerformanceEstimate(cal, 0.5) for _ in groups]
    for acc in many:  # earlier batches
        acc.update_scores(rng.random(50))
    one = [PerformanceEstimate.from_state(a.to_state()) for a in many]
    for a in one:
        a.calibration = cal
    PerformanceEstimate.update_many(cols, list(zip(many, groups, strict=True)))
    for a, rows in zip(one, groups, strict=True):
        a.update(cols.take(rows))
    for a, b in zip(many, one, strict=True):  # bincount's order against numpy's pairwise sums
        np.testing.assert_allclose(a.sums, b.sums, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(a.pos, b.pos, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(a.neg, b.neg, rtol=1e-12, atol=1e-12)
