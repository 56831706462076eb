"""Multivariate drift (PCA reconstruction error): the fit against numpy's SVD and
scikit-learn's PCA, a correlation change no marginal shows, null windows, plain-data state."""

from __future__ import annotations

import json

import numpy as np
import orjson
import pytest

from monitor.core.metrics.base import ModelColumns
from monitor.drift.decide import evaluate_drift
from monitor.drift.multivariate import (
    ErrorBand,
    Reconstruction,
    ReconstructionError,
    error_band,
    fit_reconstruction,
)
from monitor.drift.profile import Profile, build_profile
from slices.spec import DriftSpec, FeatureSpec, ModelSpec

RHO = 0.9
CATS = np.array(["a", "b", "c"], dtype=object)


def _draw(n, rng, rotated=False):
    """x, y standard normal with correlation RHO (after a 90° rotation: -RHO, same
    marginals), an independent numeric z and an independent categorical c."""
    u = rng.normal(size=n)
    v = RHO * u + np.sqrt(1 - RHO ** 2) * rng.normal(size=n)
    x, y = (-v, u) if rotated else (u, v)
    return {"x": x, "y": y, "z": rng.normal(size=n),
            "c": rng.choice(CATS, n, p=[0.5, 0.3, 0.2])}


def _model():
    feats = (FeatureSpec("x"), FeatureSpec("y"), FeatureSpec("z"),
             FeatureSpec("c", "categorical"))
    return ModelSpec("m", "binary", features=feats,
                     drift=DriftSpec(enabled=True, prediction=False, label=False))


def _cols(f):
    n = len(f["x"])
    nan = np.full(n, np.nan)
    return ModelColumns(score=nan, predicted=nan, label=nan, outcome=np.zeros(n, np.int8),
                        features=f)


@pytest.fixture(scope="module")
def profile():
    return build_profile(_model(), _cols(_draw(20_000, np.random.default_rng(1))),
                         source="sim")


def test_fit_equals_numpy_svd_and_sklearn_pca():
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(3)
    f = _draw(5000, rng)
    fit = fit_reconstruction(f, {"x": None, "y": None, "z": None, "c": ("a", "b", "c")})
    # the encoded matrix, built independently: frequency encoding, then standardisation
    share = {k: np.mean(f["c"] == k) for k in "abc"}
    raw = np.column_stack([np.array([share[v] for v in f["c"]]), f["x"], f["y"], f["z"]])
    z = (raw - raw.mean(0)) / raw.std(0)
    assert fit.encode(f) == pytest.approx(z, abs=1e-12)
    pca = PCA().fit(z)
    k = int(np.argmax(np.cumsum(pca.explained_variance_ratio_) >= 0.65)) + 1
    assert fit.components.shape == (k, 4)
    assert fit.explained == pytest.approx(pca.explained_variance_ratio_[:k], rel=1e-9)
    # same subspace (components are defined up to sign)
    assert np.abs(fit.components @ pca.components_[:k].T) == pytest.approx(np.eye(k), abs=1e-9)
    _, _, vt = np.linalg.svd(z, full_matrices=False)
    assert np.abs(fit.components @ vt[:k].T) == pytest.approx(np.eye(k), abs=1e-9)
    pk = PCA(k).fit(z)
    back = pk.inverse_transform(pk.transform(z))
    assert fit.errors(f) == pytest.approx(np.linalg.norm(z - back, axis=1), abs=1e-9)


def _window(profile, f):
    acc = ReconstructionError(profile.multivariate)
    acc.update(_cols(f))
    lo, hi = profile.multivariate.band.bounds(acc.n)
    return acc.mean, lo, hi


def test_a_rotation_with_unchanged_marginals_is_caught_and_univariate_tests_see_nothing(
        profile):
    model = _model()
    for seed in range(10):
        rng = np.random.default_rng(100 + seed)
        f = _draw(1000, rng, rotated=True)
        err, _, hi = _window(profile, f)
        assert err > hi, (seed, err, hi)
        cur = profile.window_summaries(seed=seed)
        cur.update(_cols(f))
        declared = [d.feature for d in evaluate_drift(profile, {"all": cur}, model)
                    if d.status == "drift"]
        assert declared == [], seed


def test_windows_without_drift_stay_in_the_band(profile):
    """40 null windows of 1000 records: mean ± 3 sd is crossed with probability ≈ 0.003 per
    window if the chunk means are normal; we allow 2."""
    out = 0
    for seed in range(40):
        err, lo, hi = _window(profile, _draw(1000, np.random.default_rng(500 + seed)))
        out += not lo <= err <= hi
    assert out <= 2


def test_merge_equals_one_pass_and_state_is_plain_json(profile):
    f = _draw(3000, np.random.default_rng(9))
    one = ReconstructionError(profile.multivariate)
    one.update(_cols(f))
    a, b = ReconstructionError(profile.multivariate), ReconstructionError(profile.multivariate)
    a.update(_cols({k: v[:1200] for k, v in f.items()}))
    b.update(_cols({k: v[1200:] for k, v in f.items()}))
    a.merge(b)
    assert (a.n, a.mean) == (one.n, pytest.approx(one.mean, rel=1e-12))
    again = Profile.from_json(json.dumps(json.loads(profile.to_json())))
    assert isinstance(again.multivariate, Reconstruction)
    assert again.multivariate.errors(f) == pytest.approx(profile.multivariate.errors(f))
    back = ReconstructionError.from_state(json.loads(json.dumps(one.to_state())))
    assert (back.n, back.total) == (one.n, one.total)


def test_band_is_mean_plus_minus_three_sd_of_chunk_means_scaled_to_the_window():
    e = np.random.default_rng(2).exponential(size=10_000)
    band = error_band(e, chunks=10)
    means = e.reshape(10, 1000).mean(1)
    assert band == ErrorBand(pytest.approx(e.mean()), pytest.approx(means.std(ddof=1)), 1000)
    assert band.bounds(1000) == pytest.approx((e.mean() - 3 * means.std(ddof=1),
                                               e.mean() + 3 * means.std(ddof=1)))
    assert band.bounds(4000)[1] - e.mean() == pytest.approx(1.5 * means.std(ddof=1))
    assert error_band(e[:150], chunks=10) is None


def test_missing_values_are_imputed_and_bad_state_is_a_clear_error(profile):
    f = _draw(100, np.random.default_rng(4))
    f["x"] = f["x"].astype(object)
    f["x"][:10] = None
    f["c"][:10] = None
    assert np.isfinite(profile.multivariate.errors(f)).all()
    state = profile.multivariate.to_state()
    state["center"] = [0.0]
    from monitor.drift.errors import ProfileError
    with pytest.raises(ProfileError, match="invalid multivariate"):
        Reconstruction.from_state(state)


DAEMON_SPEC = """
models:
  - name: m
    task: binary
    window: 1m
    features: {x: numeric, y: numeric, z: numeric, c: categorical}
    slices: [{overall: true}, {feature_keys: [c]}]
    drift: {profile: %s}
"""


def _records(n, start, seed, rotated=False):
    f = _draw(n, np.random.default_rng(seed), rotated)
    return [orjson.dumps({"model": "m", "prediction_id": f"{seed}-{i}",
                          "timestamp": start + i * 60.0 / n,
                          "features": {k: (v[i] if k == "c" else float(v[i]))
                                       for k, v in f.items()},
                          "prediction": {"score": 0.5}}) for i in range(n)]


def test_the_daemon_reports_and_exports_the_error_per_slice(tmp_path):
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
    spec = load_spec_text(DAEMON_SPEC % path)
    batch, _ = Decoder(spec.schema, default_model="m").decode_lines(_records(20_000, 0, 1))
    save_profile(profile_for(spec.models[0], batch, source="test"), path)
    got = []
    daemon = Daemon(spec, dead_letter=DeadLetter(None),
                    listeners=[lambda w, rs: got.append(rs)])
    daemon.run([Chunk("lines", _records(3000, 0, 2) + _records(3000, 60, 3, rotated=True))])
    first, second = ({r.slice: r.multivariate for r in rs} for rs in got[:2])
    assert set(first) == {"overall", "c=a", "c=b", "c=c"}
    assert not any(m.drift for m in first.values())
    assert all(m.drift and m.error > m.upper for m in second.values())
    assert first["c=a"].reference == "slice" and first["overall"].n == 3000
    rec = orjson.loads(orjson.dumps(result_record(got[1][0])))
    assert rec["multivariate"]["drift"] is True
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SlicewatchCollector(lambda: daemon.snapshot))
    fams = {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}
    detected = {s.labels["slice"]: s.value
                for s in fams["slicewatch_multivariate_drift_detected"].samples}
    assert detected == {"overall": 1.0, "c=a": 1.0, "c=b": 1.0, "c=c": 1.0}
    assert {s.labels["slice"] for s in fams["slicewatch_multivariate_drift_error"].samples} \
        == set(detected)


def test_the_fit_is_streamed_without_an_n_by_d_matrix():
    """The reference is encoded FIT_BLOCK records at a time (the Gram summed over blocks):
    the fit's allocations stay far below one n × d float matrix (100k × 18: 14.4 MB), its
    encoder and components match a one-pass fit of the same data, and its errors are
    :meth:`Reconstruction.errors`'s."""
    import tracemalloc

    import monitor.drift.multivariate as mv

    rng = np.random.default_rng(11)
    n, d = 100_000, 18
    f = {f"x{i:02d}": rng.normal(size=n) * (1 + i) for i in range(d - 2)}
    f["x00"][rng.random(n) < 0.01] = np.nan
    f["c"] = rng.choice(CATS, n, p=[0.5, 0.3, 0.2])
    f["d"] = rng.choice(np.array(["u", "v", None], dtype=object), n)
    kinds = {**{f"x{i:02d}": None for i in range(d - 2)}, "c": ("a", "b", "c"),
             "d": ("u", "v")}
    fit_reconstruction({k: v[:1000] for k, v in f.items()}, kinds)  # imports, not counted
    tracemalloc.start()
    try:
        fit = fit_reconstruction(f, kinds)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < n * d * 8 / 2, peak
    z = fit.encode(f)
    assert fit.center == pytest.approx(
        np.array([mv.Reconstruction.encode(_unscaled(fit), f)[:, j].mean()
                  for j in range(d)]), abs=0)
    eigenvalues, vectors = np.linalg.eigh(z.T @ z)  # one pass over the whole matrix
    k = fit.components.shape[0]
    top = vectors[:, np.argsort(eigenvalues)[::-1][:k]].T
    assert np.abs(fit.components @ top.T) == pytest.approx(np.eye(k), abs=1e-9)
    one = mv._residual_norms(fit.components, z.T)
    assert fit.band.mean == pytest.approx(float(one.mean()), rel=1e-12)
    assert error_band(fit.errors(f)) == fit.band


def _unscaled(fit: Reconstruction) -> Reconstruction:
    """``fit``'s encoder before standardisation (centre 0, scale 1)."""
    d = len(fit.features)
    return Reconstruction(fit.features, fit.impute, np.zeros(d), np.ones(d), fit.components,
                          fit.explained, None, {})
