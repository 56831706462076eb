"""Features logged apart from predictions join by prediction id: the same results as when
logged together; predictions whose features never come go on without them after the delay."""

from __future__ import annotations

import json

import numpy as np
import orjson
import pandas as pd

from monitor.ingest.deadletter import DeadLetter
from monitor.ingest.source import Chunk
from monitor.runtime.daemon import Daemon
from monitor.runtime.kafka_run import feature_join_of, settings_for
from slices.load import load_spec_text

SPEC = """
checkpoint: cp.db
source:
  type: kafka
  kafka:
    bootstrap_servers: 127.0.0.1:9
    group_id: g
    topics: {predictions: p, features: f}
    feature_delay: 30
models:
  - name: m
    task: binary
    window: 1m
    allowed_lateness: 1m
    features: {country: categorical, amount: numeric}
    slices: [{overall: true}, {feature_keys: [country]}, {buckets: {amount: [0, 50]}}]
"""
PLAIN = SPEC.replace("features: f}", "}").replace("    feature_delay: 30\n", "")


def records(n=400, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        s = float(rng.random())
        out.append({"model": "m", "prediction_id": f"p{i}", "timestamp": i * 0.5,
                    "features": {"country": ["US", "BR", "DE"][i % 3],
                                 "amount": float(rng.exponential(40))},
                    "prediction": {"score": s}, "label": int(rng.random() < s)})
    return out


def split(recs):
    preds = [orjson.dumps({k: v for k, v in r.items() if k != "features"}) for r in recs]
    feats = [orjson.dumps({"prediction_id": r["prediction_id"], "features": r["features"]})
             for r in recs]
    return preds, feats


def run(spec_text, chunks, *, state_at=None):
    got = []
    spec = load_spec_text(spec_text)
    def daemon_of() -> Daemon:  # as monitor.runtime.kafka_run builds it
        return Daemon(spec, dead_letter=DeadLetter(None), listeners=[lambda w, rs: got.extend(rs)],
                      feature_join=feature_join_of(spec, settings_for(spec)))

    daemon = daemon_of()
    for i, chunk in enumerate(chunks):
        if i == state_at:  # restart from a checkpoint
            state = json.loads(json.dumps(daemon.state()))
            daemon = daemon_of()
            daemon.load_state(state)
        daemon.process(chunk)
    daemon.flush()
    frame = pd.DataFrame([{"w": r.window_start, "slice": r.slice, "count": r.count,
                           **dict(r.metrics)} for r in got])
    return daemon, frame.set_index(["w", "slice"]).sort_index()


def test_features_on_their_own_stream_equal_features_logged_inline():
    recs = records()
    _, whole = run(PLAIN, [Chunk("lines", [orjson.dumps(r) for r in recs])])
    preds, feats = split(recs)
    chunks = []
    for i in range(0, len(recs), 50):  # features arrive before or after their predictions
        if (i // 50) % 2:
            chunks += [Chunk("lines", feats[i:i + 50], stream="features"),
                       Chunk("lines", preds[i:i + 50])]
        else:
            chunks += [Chunk("lines", preds[i:i + 50]),
                       Chunk("lines", feats[i:i + 50], stream="features")]
    daemon, joined = run(SPEC, chunks, state_at=5)
    pd.testing.assert_frame_equal(whole, joined, check_exact=False, rtol=1e-12)
    assert daemon.snapshot.features_join["joined"] == len(recs)  # counts survive the restart


def test_predictions_without_features_go_on_after_the_delay():
    recs = records(200)
    preds, _ = split(recs)
    daemon, frame = run(SPEC, [Chunk("lines", preds[:100]), Chunk("lines", preds[100:])])
    assert daemon.snapshot.features_join["missing"] == 200
    assert frame.loc[(0.0, "overall"), "count"] == 120  # nothing lost, just unsliced
    assert not any(s.startswith("country=") and s != "country=__missing__"
                   for s in frame.index.get_level_values("slice"))
