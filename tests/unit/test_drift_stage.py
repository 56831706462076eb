"""Drift wired into the daemon: decisions per slice at window close, exported families,
concept drift equal to River fed directly, checkpoint round trip, rolling reference."""

from __future__ import annotations

import json

import numpy as np
import orjson
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry
from river import drift as river_drift

from monitor.drift import save_profile
from monitor.drift.concept import REGRESSION_DEFAULTS, WARMUP
from monitor.drift.stage import MAX_EVENT_TIMES, WindowEvents
from monitor.export.collector import SlicewatchCollector
from monitor.ingest.deadletter import DeadLetter
from monitor.ingest.decode import Decoder
from monitor.ingest.source import Chunk
from monitor.runtime.baseline import profile_for
from monitor.runtime.daemon import Daemon
from slices.load import load_spec_text

SPEC = """
models:
  - name: m
    task: binary
    window: 1m
    features: {x: numeric, y: numeric, c: categorical}
    slices: [{overall: true}, {feature_keys: [c]}]
    drift: {%s, concept: {detector: ADWIN, params: {delta: 0.01}}}
"""


def records(n, start, *, shift=0.0, seed=0, flip=False):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        x = float(rng.normal(shift, 1))
        score = float(rng.random())
        label = int(rng.random() < score)
        if flip:
            label = 1 - label
        out.append({"model": "m", "prediction_id": f"{seed}-{i}",
                    "timestamp": start + i * 60.0 / n,
                    "features": {"x": x, "y": float(rng.normal()), "c": "ab"[i % 2]},
                    "prediction": {"score": score}, "label": label})
    return out


def lines(recs):
    return [orjson.dumps(r) for r in recs]


def make_spec(tmp_path, reference=None, rolling=0):
    if rolling:
        return load_spec_text(SPEC % f"rolling_windows: {rolling}")
    path = tmp_path / "profile.json"
    spec = load_spec_text(SPEC % f"profile: {path}")
    batch, _ = Decoder(spec.schema, default_model="m").decode_lines(lines(reference))
    save_profile(profile_for(spec.models[0], batch, source="test"), path)
    return spec


def run(spec, chunks):
    got = []
    daemon = Daemon(spec, dead_letter=DeadLetter(None), listeners=[lambda w, rs: got.append(rs)])
    daemon.run(chunks)
    return daemon, got


def drifted(results):
    return {(r.slice, d.feature) for r in results for d in r.drift
            if d.status == "drift"}


def test_shift_in_one_feature_is_declared_there_only(tmp_path):
    spec = make_spec(tmp_path, records(6000, 0, seed=1))
    stream = records(3000, 0, seed=2) + records(3000, 60, shift=0.5, seed=3)
    daemon, windows = run(spec, [Chunk("lines", lines(stream))])
    assert drifted(windows[0]) == set()
    assert drifted(windows[1]) == {("overall", "x"), ("c=a", "x"), ("c=b", "x")}
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SlicewatchCollector(lambda: daemon.snapshot))
    fams = {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}
    detected = {(s.labels["slice"], s.labels["feature"]): s.value
                for s in fams["slicewatch_drift_detected"].samples}
    assert detected[("overall", "x")] == 1.0 and detected[("overall", "y")] == 0.0
    assert detected[("overall", "__prediction__")] == 0.0
    adjusted = {(s.labels["slice"], s.labels["feature"]): s.value
                for s in fams["slicewatch_drift_pvalue_adjusted"].samples}
    assert adjusted[("overall", "x")] < 0.05
    missing = {(s.labels["slice"], s.labels["feature"]): s.value
               for s in fams["slicewatch_data_missing_ratio"].samples}
    assert missing[("overall", "x")] == 0.0


def test_concept_events_equal_river_fed_directly(tmp_path):
    spec = make_spec(tmp_path, records(2000, 0, seed=1))
    stream = records(2000, 0, seed=2) + records(2000, 60, seed=3, flip=True)
    daemon, _ = run(spec, [Chunk("lines", lines(stream[i:i + 700]))
                           for i in range(0, len(stream), 700)])
    detector = river_drift.ADWIN(delta=0.01)
    events = 0
    for r in stream:
        detector.update(int((r["prediction"]["score"] >= 0.5) != r["label"]))
        events += detector.drift_detected
    assert events > 0
    assert daemon.snapshot.concept[("m", "", "overall", "ADWIN")] == events


def test_checkpoint_round_trip_keeps_drift_and_concept_state(tmp_path):
    spec = make_spec(tmp_path, records(3000, 0, seed=1))
    stream = lines(records(2000, 0, seed=2) + records(2000, 60, shift=1.0, seed=3, flip=True))
    _, straight = run(spec, [Chunk("lines", stream[i:i + 500]) for i in range(0, 4000, 500)])
    first = Daemon(spec, dead_letter=DeadLetter(None))
    for i in range(0, 2500, 500):
        first.process(Chunk("lines", stream[i:i + 500]))
    state = json.loads(json.dumps(first.state()))
    got = []
    second = Daemon(spec, dead_letter=DeadLetter(None), listeners=[lambda w, rs: got.append(rs)])
    second.load_state(state)
    second.run([Chunk("lines", stream[i:i + 500]) for i in range(2500, 4000, 500)])
    key = lambda rs: {(r.slice, d.feature): (d.status, d.distance)  # noqa: E731
                      for r in rs for d in r.drift}
    assert key(got[-1]) == key(straight[-1])
    concept = lambda rs: {r.slice: r.concept.events if r.concept else None for r in rs}  # noqa: E731
    assert concept(got[-1]) == concept(straight[-1])


def test_rolling_reference_learns_bins_and_waits_until_ready(tmp_path):
    spec = make_spec(tmp_path, rolling=2)
    stream = (records(2000, 0, seed=1) + records(2000, 60, seed=2) + records(2000, 120, seed=3)
              + records(2000, 180, shift=1.0, seed=4))
    _, windows = run(spec, [Chunk("lines", lines(stream))])
    assert [bool(r.drift) for r in windows[0] if r.slice == "overall"] == [False]
    assert drifted(windows[2]) == set()
    assert ("overall", "x") in drifted(windows[3])


def test_concept_events_belong_to_the_window_of_their_predictions(tmp_path):
    """With a label delay both windows are open when the labels come: the events fired by the
    second window's (flipped) labels are that window's, none the first's; each carries the
    event time of its prediction; the counter adds each window's events once, at its close."""
    make_spec(tmp_path, records(2000, 0, seed=1))  # writes the profile
    spec = load_spec_text((SPEC % f"profile: {tmp_path / 'profile.json'}").replace(
        "window: 1m", "window: 1m\n    label_delay: 10m"))
    stream = records(2000, 0, seed=2) + records(2000, 60, seed=3, flip=True)
    preds = [orjson.dumps({k: v for k, v in r.items() if k != "label"}) for r in stream]
    labels = [orjson.dumps({"prediction_id": r["prediction_id"], "label": r["label"],
                            "timestamp": r["timestamp"] + 30}) for r in stream]
    got, counter = [], []
    daemon = Daemon(spec, dead_letter=DeadLetter(None), listeners=[
        lambda w, rs: (got.append(rs), counter.append(dict(daemon.tracker.concept)))])
    daemon.run([Chunk("lines", preds)] + [Chunk("lines", labels[i:i + 500], stream="labels")
                                          for i in range(0, len(labels), 500)])
    detector, hits = river_drift.ADWIN(delta=0.01), []
    for r in stream:
        detector.update(int((r["prediction"]["score"] >= 0.5) != r["label"]))
        if detector.drift_detected:
            hits.append(r["timestamp"])
    assert hits and min(hits) >= 60  # River: drift only once the flipped labels come
    overall = [next(r for r in rs if r.slice == "overall") for rs in got]
    assert [r.window_start for r in overall] == [0.0, 60.0]
    assert overall[0].concept.events == 0
    assert overall[0].concept.event_times == ()
    assert overall[1].concept.events == len(hits)
    assert overall[1].concept.event_times == tuple(hits)
    key = ("m", "", "overall", "ADWIN")
    assert [c.get(key, 0) for c in counter] == [0, len(hits)]  # a true counter
    assert daemon.snapshot.concept[key] == len(hits)
    resumed = Daemon(spec, dead_letter=DeadLetter(None))
    resumed.load_state(json.loads(json.dumps(daemon.state())))
    assert resumed.snapshot.concept[key] == len(hits)  # the counter goes on after a restart


REGRESSION = """
models:
  - name: p
    task: regression
    window: 1m
    features: {x: numeric}
    slices: [{overall: true}]
    drift: {rolling_windows: 2, concept: PageHinkley}
"""


def test_page_hinkley_defaults_on_large_scale_regression_errors():
    """Prices ~1e5, errors ~5e3: River's PageHinkley (defaults) on the raw absolute errors
    fires in every window; on the standardised stream it is quiet until the error scale
    triples in the fourth window."""
    rng = np.random.default_rng(11)
    n, recs, errors = 2000, [], []
    for w, sd in enumerate([5e3, 5e3, 5e3, 1.5e4]):
        price = rng.uniform(5e4, 2e5, n)
        err = rng.normal(0, sd, n)
        errors.append(np.abs(err))
        recs += [{"model": "p", "prediction_id": f"{w}-{i}", "timestamp": 60.0 * w + i * 0.03,
                  "features": {"x": float(price[i])}, "label": float(price[i]),
                  "prediction": {"value": float(price[i] + err[i])}} for i in range(n)]
    got = []
    daemon = Daemon(load_spec_text(REGRESSION), dead_letter=DeadLetter(None),
                    listeners=[lambda w, rs: got.append(rs)])
    daemon.run([Chunk("lines", lines(recs[i:i + 1000])) for i in range(0, len(recs), 1000)])
    events = [rs[0].concept.events for rs in got]
    assert events[:3] == [0, 0, 0] and events[3] >= 1, events
    stream = np.concatenate(errors)  # River on the stream the daemon feeds it
    fed = stream[WARMUP:] / np.median(stream[:WARMUP])
    detector = river_drift.PageHinkley(**REGRESSION_DEFAULTS["PageHinkley"])
    hits = []
    for i, z in enumerate(fed.tolist(), start=WARMUP):
        detector.update(z)
        if detector.drift_detected:
            hits.append(recs[i]["timestamp"])
    assert got[3][0].concept.event_times == tuple(hits)
    river_defaults = river_drift.PageHinkley()  # made for 0/1 errors: they fire here too
    fired = 0
    for z in fed[:3 * n - WARMUP].tolist():
        river_defaults.update(z)
        fired += river_defaults.drift_detected
    assert fired >= 1
    raw = river_drift.PageHinkley()
    raw_hits = []
    for e in np.concatenate(errors[:3]):
        raw.update(float(e))
        raw_hits.append(raw.drift_detected)
    assert sum(raw_hits[:n]) > 10  # what the raw stream did: many events in the first window


def test_window_events_keep_a_bounded_list_of_times_and_count_all():
    events = WindowEvents()
    events.add(np.arange(MAX_EVENT_TIMES - 1, dtype=float))
    events.add(np.array([500.0, 501.0, 502.0]))
    assert events.count == MAX_EVENT_TIMES + 2
    assert events.times == [*map(float, range(MAX_EVENT_TIMES - 1)), 500.0]
