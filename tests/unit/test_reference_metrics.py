"""Reference metrics (issue 15 item 3): ``baseline build`` stores the reference's slice
metrics in the profile; ``change: {baseline: reference}`` rules judge against them."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from alerts.engine import AlertEngine
from monitor.drift import Profile, save_profile
from monitor.drift.errors import ProfileError
from monitor.ingest.deadletter import DeadLetter
from monitor.ingest.decode import Decoder
from monitor.ingest.source import Chunk
from monitor.outputs.alerting import to_observation
from monitor.runtime.baseline import profile_for
from monitor.runtime.daemon import Daemon
from slices.load import load_spec_text
from slices.load_alerting import parse_alerting
from slices.yamlpos import Checker, load_text

SPEC = """
models:
  - name: m
    task: binary
    window: 1m
    metrics: [accuracy, roc_auc, brier, score_mean]
    features: {x: numeric, c: categorical}
    slices: [{overall: true}, {feature_keys: [c]}]
    drift: {profile: %s}
"""
RULE = """alerts:
  - {name: vs_ref, metric: accuracy, change: {baseline: reference, absolute: -0.1,
     direction: higher_is_better}}
receivers: [{name: hook, type: webhook, url: 'http://127.0.0.1:9/'}]
route: {receiver: hook, group_wait: 0s}
"""


def records(n, start, *, seed, flip=False, labels=True):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        score = float(rng.random())
        label = int(rng.random() < score)
        rec = {"model": "m", "prediction_id": f"{seed}-{i}", "timestamp": start + i * 60.0 / n,
               "features": {"x": float(rng.normal()), "c": "ab"[i % 2]},
               "prediction": {"score": score}}
        if labels:
            rec["label"] = 1 - label if flip else label
        out.append(orjson.dumps(rec))
    return out


def spec_with_profile(tmp_path, reference):
    path = tmp_path / "profile.json"
    spec = load_spec_text(SPEC % path)
    batch, _ = Decoder(spec.schema, default_model="m").decode_lines(reference)
    profile = profile_for(spec.models[0], batch, source="test")
    save_profile(profile, path)
    return spec, profile


def run(spec, recs):
    got = []
    Daemon(spec, dead_letter=DeadLetter(None),
           listeners=[lambda w, rs: got.extend(rs)]).run([Chunk("lines", recs)])
    return got


def test_profile_metrics_equal_the_daemons_window_metrics_on_the_same_data(tmp_path):
    reference = records(3000, 0, seed=1)
    spec, profile = spec_with_profile(tmp_path, reference)
    assert set(profile.metrics) == {"overall", "c=a", "c=b"}
    window = {r.slice: dict(r.metrics) for r in run(spec, reference)}
    for slice_, values in profile.metrics.items():
        assert set(values) == {"accuracy", "roc_auc", "brier", "score_mean"}
        for name, v in values.items():
            assert v == pytest.approx(window[slice_][name], rel=1e-12), (slice_, name)


def test_unlabelled_reference_keeps_label_free_metrics_only(tmp_path):
    _, profile = spec_with_profile(tmp_path, records(500, 0, seed=1, labels=False))
    assert set(profile.metrics["overall"]) == {"score_mean"}


def test_metrics_survive_the_json_round_trip_and_bad_ones_are_refused(tmp_path):
    _, profile = spec_with_profile(tmp_path, records(500, 0, seed=1))
    again = Profile.from_json(profile.to_json())
    assert again.metrics == profile.metrics
    data = profile.to_dict()
    data["metrics"] = {"overall": {"accuracy": "0.9; rm -rf"}}
    with pytest.raises(ProfileError, match=r"metrics\.overall\.accuracy: expected a number"):
        Profile.from_dict(data)
    data["metrics"] = ["overall"]
    with pytest.raises(ProfileError, match="metrics: expected an object, got a list"):
        Profile.from_dict(data)


def test_reference_rule_fires_on_a_window_worse_than_the_reference(tmp_path):
    spec, profile = spec_with_profile(tmp_path, records(4000, 0, seed=1))
    results = run(spec, records(2000, 0, seed=2) + records(2000, 60, seed=3, flip=True))
    by_window = {}
    for r in results:
        assert dict(r.reference_metrics) == profile.metrics[r.slice]
        by_window.setdefault(r.window_start, []).append(to_observation(r))
    doc = load_text(RULE, "spec.yaml")
    checker = Checker(doc)
    alerting = parse_alerting(checker, doc.data, spec.models)
    checker.raise_if_any()
    engine = AlertEngine(alerting, str(tmp_path / "alerts.sqlite"), clock=lambda: 0.0)
    engine.observe(by_window[0.0], now=60.0)
    assert engine.firing() == []  # same distribution as the reference: no alert
    engine.observe(by_window[60.0], now=120.0)
    fired = sorted(a.labels["slice"] for a in engine.firing())
    assert fired == ["c=a", "c=b", "overall"]
    assert all("vs reference" in a.threshold for a in engine.firing())
    engine.close()
