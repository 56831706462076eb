"""Finite feature values whose squares overflow (±1e300, near ±1.8e308), NaN/±inf and
constant columns: the profile build succeeds, the profile is valid JSON that loads, and a
replay against it tests drift. Moments are checked against numpy on the same data, in units
of a power of two (numpy's own sums overflow there too)."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import orjson
import pytest

from monitor.cli import main
from monitor.core.metrics.moments import merge_moments
from monitor.drift.decide import Choice, pending
from monitor.drift.profile import load_profile, numeric_edges
from monitor.drift.summary import NumericSummary

UNIT = 2.0 ** 600  # numpy's reference: the same values divided by a power of two (exact)


def _huge(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n) * 1e300
    x[::97] = 1.7e308
    x[::101] = -1.6e308
    return x


def _summary(x: np.ndarray, parts: int = 1) -> NumericSummary:
    s = NumericSummary(numeric_edges(x, 20), sample_size=100, seed=1)
    for i, piece in enumerate(np.array_split(x, parts)):
        if i == 0:
            s.update(piece)
        else:
            other = s.empty_like(seed=i)
            other.update(piece)
            s.merge(other)
    return s


@pytest.mark.parametrize("parts", [1, 3])
def test_moments_of_values_whose_squares_overflow_match_numpy(parts):
    x = _huge(2000, 0)
    bad = np.concatenate([x, [np.nan, np.inf, -np.inf, np.nan]])
    s = _summary(bad, parts)
    ok = x / UNIT
    assert s.n == 2000 and s.nonfinite == 2 and s.missing == 2
    assert s.min == x.min() and s.max == x.max()
    assert math.isfinite(s.mean)
    assert s.mean == pytest.approx(float(np.mean(ok)) * UNIT, rel=1e-12)
    # the variance (~1e600) is beyond float64: +inf, never NaN; stored as null
    assert float(np.var(ok)) * UNIT > 1e300 and s.m2 == math.inf and s.std == math.inf
    state = s.to_state()
    assert state["m2"] is None
    text = json.dumps(state, allow_nan=False)
    back = NumericSummary.from_state(json.loads(text))
    assert back.m2 == math.inf and back.mean == s.mean and back.counts.tolist() == \
        s.counts.tolist()


def test_a_constant_column_near_the_float_limit_has_zero_variance():
    """``x.mean()`` of 1000 × 1e306 overflowed: the shift was inf and ``m2`` NaN."""
    x = np.full(1000, 1e306)
    s = _summary(x)
    assert s.mean == pytest.approx(float(np.mean(x / UNIT)) * UNIT, rel=1e-12)
    assert s.std == pytest.approx(float(np.std(x / UNIT)) * UNIT, abs=1e-12 * 1e306)
    assert s.m2 == 0.0  # numpy's two-pass variance: its mean's rounding, ~1e-16 of it
    edges = numeric_edges(np.full(5, 1.79e308))
    assert np.isfinite(edges).all() and edges[0] < edges[1]


def test_squares_that_do_not_overflow_keep_the_moments_exact_to_numpy():
    rng = np.random.default_rng(3)
    x = rng.normal(size=5000) * 1e150 + 1e152
    s = _summary(np.concatenate([x, [np.nan]]), parts=4)
    assert s.mean == pytest.approx(float(np.mean(x)), rel=1e-12)
    assert s.std == pytest.approx(float(np.std(x)), rel=1e-9)


def test_the_mean_of_opposite_means_near_the_limit_does_not_overflow():
    _, mean, m2 = merge_moments((np.array([2.0]), np.array([1.5e308]), np.array([0.0])),
                                (np.array([2.0]), np.array([-1.5e308]), np.array([0.0])))
    assert mean.tolist() == [0.0] and m2.tolist() == [math.inf]
    a, b = NumericSummary([0.0, 1.0]), NumericSummary([0.0, 1.0])
    a.update(np.full(3, 1.5e308))
    b.update(np.full(3, -1.5e308))
    a.merge(b)
    assert a.mean == 0.0 and a.m2 == math.inf and a.n == 6


def test_wasserstein_on_a_reference_without_a_finite_scale_is_insufficient():
    ref = _summary(_huge(500, 1))
    cur = ref.empty_like(seed=5)
    cur.update(_huge(500, 2))
    d = pending("m", "overall", "x", ref, cur, Choice("wasserstein", "wasserstein", 0.1, 100))
    assert d.status == "insufficient" and math.isnan(d.distance)


SPEC = """
version: 1
schema: {time: ts, score: score, label: label, features: features}
source: {type: file, path: run.jsonl}
models:
  - name: m
    task: binary
    window: 500 records
    features: {x: numeric, flat: numeric, c: categorical}
    slices: [{overall: true}, {feature_keys: [c]}]
    drift: {profile: p.json, per_slice: true}
"""


def _records(x: np.ndarray, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    lines = []
    for i, v in enumerate(x.tolist()):
        flat = None if i % 50 == 0 else 1e306  # all equal (and some missing)
        lines.append(orjson.dumps({"ts": 1_700_000_000 + i, "score": float(rng.random()),
                                   "label": int(rng.integers(2)),
                                   "features": {"x": v, "flat": flat,
                                                "c": "ab"[i % 2]}}))
    return b"\n".join(lines) + b"\n"


def test_baseline_build_and_replay_on_values_whose_squares_overflow(tmp_path, monkeypatch,
                                                                     capsys):
    """The build failed ("Out of range float values are not JSON compliant"; with the
    multivariate fit on, a LinAlgError traceback)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.yaml").write_text(SPEC)
    (tmp_path / "ref.jsonl").write_bytes(_records(_huge(3000, 0), 0))
    assert main(["baseline", "build", "-c", "spec.yaml", "--data", "ref.jsonl",
                 "-o", "p.json", "-q"]) == 0, capsys.readouterr().err

    def no_constants(name: str) -> None:
        raise AssertionError(f"{name} in the profile")

    data = json.loads((tmp_path / "p.json").read_text(), parse_constant=no_constants)
    x = data["overall"]["summaries"]["x"]
    assert x["m2"] is None and math.isfinite(x["mean"])
    assert data["overall"]["summaries"]["flat"]["m2"] == 0.0
    assert data["multivariate"]["scale"] and all(
        math.isfinite(v) and v > 0 for v in data["multivariate"]["scale"])
    profile = load_profile(tmp_path / "p.json")
    assert profile.overall.summaries["x"].m2 == math.inf
    # windows 1-2 like the reference; windows 3-4: x shifted to the top of its range
    drifted = np.random.default_rng(9).uniform(1e307, 1.7e308, 1000)
    (tmp_path / "run.jsonl").write_bytes(_records(np.concatenate([_huge(1000, 7), drifted]), 1))
    capsys.readouterr()
    assert main(["run", "-c", "spec.yaml", "--listen", "", "--results", "h.jsonl", "-q"]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "RuntimeWarning" not in err, err
    results = [json.loads(line) for line in (tmp_path / "h.jsonl").read_text().splitlines()]
    status = {}
    for r in results:
        if r.get("type", "result") == "result" and r["slice"] == "overall":
            for d in r["extra"]["drift"]:
                status[(r["window_start"], d["feature"])] = d["status"]
    windows = sorted({w for w, _ in status})
    assert len(windows) == 4, status
    assert [status[(w, "x")] for w in windows] == ["ok", "ok", "drift", "drift"], status
    assert all(status[(w, "flat")] == "ok" for w in windows), status


REGRESSION_SPEC = """
version: 1
schema: {time: ts, value: pred, label: y, features: features}
source: {type: file, path: reg.jsonl}
checkpoint: reg.db
models:
  - name: m
    task: regression
    window: 500 records
    metrics: [count, prediction_mean, mae, rmse, mape, mean_error, label_mean]
    features: {x: numeric}
    slices: [{overall: true}]
"""


def _regression_records(n: int) -> tuple[bytes, np.ndarray]:
    rng = np.random.default_rng(3)
    pred = rng.normal(10.0, 1.0, n)
    pred[::3] = 1e200  # a model gone wild: finite, but its powers overflow float64
    y = rng.normal(10.0, 1.0, n)
    y[2::5] = -1e300
    lines = [orjson.dumps({"ts": 1_700_000_000 + i, "pred": float(p), "y": float(v),
                           "features": {"x": float(v)}})
             for i, (p, v) in enumerate(zip(pred, y, strict=True))]
    return b"\n".join(lines) + b"\n", pred


def test_regression_run_on_predictions_whose_powers_overflow(tmp_path, monkeypatch, capsys):
    """The daemon died at the first batch: ``m ** 3`` of Python floats raises OverflowError
    in the prediction moments (a finite 1e200 prediction); then overflow RuntimeWarnings.
    Now: every window reported, the mean exact, the unrepresentable sums +inf (``null`` in
    the results), and a restart from the checkpoint holding them."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.yaml").write_text(REGRESSION_SPEC)
    data, pred = _regression_records(2000)
    half = len(data) // 2 + data[len(data) // 2:].index(b"\n") + 1
    (tmp_path / "reg.jsonl").write_bytes(data[:half])
    for _ in range(2):  # the first half, then (resumed from the checkpoint) the whole file
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert main(["run", "-c", "spec.yaml", "--listen", "", "--results", "r.jsonl",
                         "--results-append", "-q"]) == 0
        assert not [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
        err = capsys.readouterr().err
        assert "Traceback" not in err and "Warning" not in err, err
        (tmp_path / "reg.jsonl").write_bytes(data)
    results = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    windows = {r["window_start"]: r["metrics"] for r in results
               if r.get("type", "result") == "result" and r["slice"] == "overall"}
    assert len(windows) == 4, windows
    for k, (_, metrics) in enumerate(sorted(windows.items())):
        assert metrics["count"] == 500
        expected = float(np.mean(pred[k * 500:(k + 1) * 500]))
        assert metrics["prediction_mean"] == pytest.approx(expected, rel=1e-9)
        assert metrics["rmse"] is None  # +inf: beyond float64


def test_regression_run_on_predictions_at_the_float_limit(tmp_path, monkeypatch, capsys):
    """Predictions near -1.7e308 overflow even the sums (numpy's mean is -inf): the run
    goes on without a traceback or a warning, and the mean is still the true one (summed in
    units of a power of two)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.yaml").write_text(REGRESSION_SPEC)
    data, pred = _regression_records(1000)
    pred[pred == 1e200] = -1.7e308
    assert data.count(b'"pred":1e+200') == 334
    data = data.replace(b'"pred":1e+200', b'"pred":-1.7e308')
    (tmp_path / "reg.jsonl").write_bytes(data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["run", "-c", "spec.yaml", "--listen", "", "--results", "r.jsonl",
                     "-q"]) == 0
    assert not [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Warning" not in err, err
    results = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    overall = [r["metrics"] for r in results
               if r.get("type", "result") == "result" and r["slice"] == "overall"]
    assert [m["count"] for m in overall] == [500, 500]
    for k, m in enumerate(overall):
        expected = float(np.mean(pred[k * 500:(k + 1) * 500] / UNIT)) * UNIT
        assert m["prediction_mean"] == pytest.approx(expected, rel=1e-9)
    assert all(m["label_mean"] is not None and math.isfinite(m["label_mean"]) for m in overall)


DISCOVERY_SPEC = """
version: 1
schema: {time: ts, value: pred, label: y, features: features}
source: {type: file, path: disc.jsonl}
models:
  - name: m
    task: regression
    window: 600 records
    metrics: [count, mae]
    features: {c: categorical, d: categorical}
    slices: [{overall: true}]
    discovery: {features: [c, d], error: ERROR, min_support: 50, horizon: 2}
"""


@pytest.mark.parametrize("error", ["absolute_error", "squared_error"])
def test_discovery_on_a_regression_stream_with_predictions_at_1e200(tmp_path, monkeypatch,
                                                                    capsys, error):
    """The error sums of discovery overflowed (RuntimeWarnings; NaN p-values then hid the
    failing slice). Errors now count at most ``ERROR_CAP``: the slice whose model answers
    1e200 is found first in every window, with finite figures, and no other slice is."""
    from monitor.discovery.errors import ERROR_CAP

    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.yaml").write_text(DISCOVERY_SPEC.replace("ERROR", error))
    rng = np.random.default_rng(4)
    n = 1800
    c = rng.choice(["a", "b", "hot"], n, p=[0.45, 0.45, 0.1])
    d = rng.choice(["x", "y"], n)
    y = rng.normal(10.0, 1.0, n)
    pred = np.where(c == "hot", 1e200, y + rng.normal(0.0, 1.0, n))
    (tmp_path / "disc.jsonl").write_bytes(b"\n".join(
        orjson.dumps({"ts": 1_700_000_000 + i, "pred": float(pred[i]), "y": float(y[i]),
                      "features": {"c": str(c[i]), "d": str(d[i])}}) for i in range(n)) + b"\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["run", "-c", "spec.yaml", "--listen", "", "--results", "r.jsonl",
                     "-q"]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Warning" not in err, err
    lines = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    found = [r for r in lines if r.get("type") == "discovered"]
    firsts = [r for r in found if r["scope"] == "window" and r["rank"] == 1]
    assert len(firsts) == 3 and all(r["slice"] == "c=hot" for r in firsts), found
    for r in found:
        assert r["slice"].startswith("c=hot"), r  # only the wild slice (and its crosses)
        assert all(isinstance(r[k], float) and math.isfinite(r[k])
                   for k in ("error", "rest_error", "score", "p_value", "p_adjusted")), r
    assert all(r["error"] == ERROR_CAP for r in firsts)
