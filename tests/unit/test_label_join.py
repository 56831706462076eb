"""Delayed labels joined by prediction id: the same results as inline labels while the window
is open; counted outcomes otherwise; state survives a checkpoint round trip."""

from __future__ import annotations

import json

import numpy as np
import orjson
import pandas as pd

from monitor.ingest.deadletter import DeadLetter
from monitor.ingest.source import Chunk
from monitor.runtime.daemon import Daemon
from slices.load import load_spec_text

SPEC = """
models:
  - name: m
    task: binary
    window: 1m
    label_delay: %s
    features: {country: categorical}
    slices: [{overall: true}, {feature_keys: [country]}]
"""


def records(n=600, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        s = float(rng.random())
        out.append({"model": "m", "prediction_id": f"p{i}", "timestamp": i * 0.5,
                    "features": {"country": ["US", "BR"][i % 2]},
                    "prediction": {"score": s}, "label": int(rng.random() < s)})
    return out


def run(chunks, delay="10m"):
    got = []
    d = Daemon(load_spec_text(SPEC % delay), dead_letter=DeadLetter(None),
               listeners=[lambda w, rs: got.extend(rs)])
    d.run(chunks)
    frame = pd.DataFrame([{"w": r.window_start, "slice": r.slice, "count": r.count,
                           **dict(r.metrics)} for r in got])
    return d, frame.set_index(["w", "slice"]).sort_index()


def pred_lines(recs, with_label):
    return [orjson.dumps({k: v for k, v in r.items() if with_label or k != "label"})
            for r in recs]


def label_lines(recs):
    return [orjson.dumps({"prediction_id": r["prediction_id"], "label": r["label"],
                          "timestamp": r["timestamp"] + 30}) for r in recs]


def test_delayed_labels_equal_inline_labels():
    recs = records()
    _, inline = run([Chunk("lines", pred_lines(recs, True))])
    chunks = []
    for i in range(0, len(recs), 100):  # labels trail their predictions by one chunk
        chunks.append(Chunk("lines", pred_lines(recs[i:i + 100], False)))
        if i:
            chunks.append(Chunk("lines", label_lines(recs[i - 100:i]), stream="labels"))
    chunks.append(Chunk("lines", label_lines(recs[-100:]), stream="labels"))
    daemon, delayed = run(chunks)
    pd.testing.assert_frame_equal(inline, delayed, check_exact=False, rtol=1e-12)
    assert daemon.snapshot.labels[("m", "joined")] == len(recs)


def test_labels_before_predictions_are_attached():
    recs = records(200)
    _, inline = run([Chunk("lines", pred_lines(recs, True))])
    daemon, early = run([Chunk("lines", label_lines(recs), stream="labels"),
                         Chunk("lines", pred_lines(recs, False))])
    pd.testing.assert_frame_equal(inline, early, check_exact=False, rtol=1e-12)
    assert daemon.snapshot.labels[("m", "joined")] == 200


def test_unmatched_and_too_late_are_counted():
    recs = records(240)  # 2 one-minute windows
    chunks = [Chunk("lines", pred_lines(recs, False)),
              # the far-future prediction moves the watermark past both windows + delay
              Chunk("lines", [orjson.dumps({"model": "m", "prediction_id": "x",
                                            "timestamp": 10_000, "prediction": {"score": 0.1}})]),
              Chunk("lines", label_lines(recs[:10]), stream="labels")]
    daemon, frame = run(chunks, delay="1m")
    labels = daemon.snapshot.labels
    assert labels[("m", "expired")] == 240 + 1  # all closed unlabelled (x at flush)
    assert ("m", "joined") not in labels  # the 10 labels came after their window closed
    assert labels[("m", "orphaned")] == 10  # …their predictions can no longer come on time
    assert not daemon.join.early
    assert frame.loc[(0.0, "overall"), "labelled_rate"] == 0.0


def test_join_state_survives_a_checkpoint():
    recs = records(300)
    _, inline = run([Chunk("lines", pred_lines(recs, True))])
    spec = load_spec_text(SPEC % "10m")
    got = []
    first = Daemon(spec, dead_letter=DeadLetter(None), listeners=[lambda w, rs: got.extend(rs)])
    first.process(Chunk("lines", pred_lines(recs, False)))
    first.process(Chunk("lines", label_lines(recs[:150]), stream="labels"))
    state = json.loads(json.dumps(first.state()))
    second = Daemon(spec, dead_letter=DeadLetter(None), listeners=[lambda w, rs: got.extend(rs)])
    second.load_state(state)
    second.run([Chunk("lines", label_lines(recs[150:]), stream="labels")])
    frame = pd.DataFrame([{"w": r.window_start, "slice": r.slice, "count": r.count,
                           **dict(r.metrics)} for r in got]).set_index(["w", "slice"]).sort_index()
    pd.testing.assert_frame_equal(inline, frame, check_exact=False, rtol=1e-12)
