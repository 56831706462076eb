"""The daemon core end to end on batches: per-slice, per-window results equal a plain pandas
groupby over the same records (an independent computation), whatever the batch boundaries
and arrival order within the allowed lateness."""

from __future__ import annotations

import numpy as np
import orjson
import pandas as pd
import pytest

from monitor.ingest.deadletter import DeadLetter
from monitor.ingest.source import Chunk
from monitor.runtime.daemon import Daemon
from slices.load import load_spec_text

SPEC = """
models:
  - name: fraud
    task: binary
    threshold: 0.5
    window: 1m
    allowed_lateness: %(lateness)s
    features: {amount: numeric, country: categorical}
    slices:
      - overall: true
      - feature_keys: [country]
      - buckets: {amount: [0, 50]}
      - name: big_us
        where: 'amount >= 50 and country == "US"'
      - tags: [vip]
"""


def make_records(n=3000, seed=0, minutes=5):
    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(0, 60 * minutes, n))
    recs = []
    for i in range(n):
        score = float(rng.random())
        recs.append({"model": "fraud", "model_version": "v1" if i % 3 else "v2",
                     "prediction_id": str(i), "timestamp": float(t[i]),
                     "features": {"amount": float(rng.exponential(40)),
                                  "country": str(rng.choice(["US", "BR", "DE"]))},
                     "prediction": {"score": score},
                     "label": int(rng.random() < score), "tags": ["vip"] if i % 7 == 0 else []})
    return recs


def reference(recs) -> pd.DataFrame:
    """Independent per-(window, version, slice) count, accuracy and score mean."""
    df = pd.DataFrame({
        "window": [int(r["timestamp"] // 60) * 60.0 for r in recs],
        "version": [r["model_version"] for r in recs],
        "amount": [r["features"]["amount"] for r in recs],
        "country": [r["features"]["country"] for r in recs],
        "vip": ["vip" in r["tags"] for r in recs],
        "score": [r["prediction"]["score"] for r in recs],
        "label": [r["label"] for r in recs],
    })
    df["correct"] = ((df.score >= 0.5).astype(int) == df.label).astype(float)
    parts = [df.assign(slice="overall"),
             df.assign(slice="country=" + df.country),
             df.assign(slice=np.where(df.amount < 50, "amount=[0,50)", "amount=[50,+inf)")),
             df[(df.amount >= 50) & (df.country == "US")].assign(slice="big_us"),
             df[df.vip].assign(slice="tag=vip")]
    long = pd.concat(parts)
    return long.groupby(["window", "version", "slice"]).agg(
        count=("score", "size"), accuracy=("correct", "mean"), score_mean=("score", "mean"))


def run(recs, *, lateness="0s", batch=500):
    spec = load_spec_text(SPEC % {"lateness": lateness})
    results = []
    daemon = Daemon(spec, dead_letter=DeadLetter(None),
                    listeners=[lambda w, rs: results.extend(rs)])
    lines = [orjson.dumps(r) for r in recs]
    daemon.run(Chunk("lines", lines[i:i + batch]) for i in range(0, len(lines), batch))
    got = pd.DataFrame([{"window": r.window_start, "version": r.version, "slice": r.slice,
                         "count": r.count, "accuracy": r.metrics["accuracy"],
                         "score_mean": r.metrics["score_mean"]} for r in results])
    return daemon, got.set_index(["window", "version", "slice"]).sort_index()


def assert_equals_reference(got: pd.DataFrame, recs: list[dict]) -> None:
    want = reference(recs).sort_index()
    assert list(got.index) == list(want.index)
    assert got["count"].tolist() == want["count"].tolist()
    np.testing.assert_allclose(got["accuracy"], want["accuracy"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(got["score_mean"], want["score_mean"], rtol=1e-12)


def test_results_equal_independent_groupby():
    recs = make_records()
    _, got = run(recs)
    assert_equals_reference(got, recs)


@pytest.mark.parametrize("batch", [1, 37, 10_000])  # 10_000: all 600 records in one batch
def test_batch_boundaries_do_not_change_results(batch):
    recs = make_records(n=600, seed=3)
    _, got = run(recs, batch=batch)
    assert_equals_reference(got, recs)


def test_out_of_order_within_lateness_gives_the_same_results():
    recs = make_records(n=2000, seed=1)
    rng = np.random.default_rng(9)
    # each record moves at most 12 s, so none is displaced by more than the 30 s lateness
    shuffled = sorted(recs, key=lambda r: r["timestamp"] + rng.uniform(-12, 12))
    _, ordered = run(recs, lateness="30s", batch=100)
    daemon, jittered = run(shuffled, lateness="30s", batch=100)
    assert sum(daemon.tracker.late.values()) == 0
    pd.testing.assert_frame_equal(ordered, jittered, check_exact=False, rtol=1e-12)


def test_late_records_are_counted_not_aggregated(tmp_path):
    recs = make_records(n=1000, seed=2)
    stragglers = [dict(r, prediction_id=f"late{i}", timestamp=r["timestamp"] % 60)
                  for i, r in enumerate(recs[-40:])]  # window 0, arriving at the very end
    spec = load_spec_text(SPEC % {"lateness": "0s"})
    dead = tmp_path / "dead.jsonl"
    daemon = Daemon(spec, dead_letter=DeadLetter(str(dead)))
    lines = [orjson.dumps(r) for r in recs + stragglers]
    summary = daemon.run([Chunk("lines", lines[:1000]), Chunk("lines", lines[1000:])])
    assert summary.late == 40
    assert daemon.tracker.late["fraud"] == 40
    dead_lines = [orjson.loads(x) for x in dead.read_bytes().splitlines()]
    assert [d["reason"] for d in dead_lines] == ["late"] * 40
    assert {d["record"]["prediction_id"] for d in dead_lines} == {f"late{i}" for i in range(40)}
    assert dead_lines[0]["record"]["features"] == stragglers[0]["features"]  # as logged
    assert sum(daemon.tracker.records.values()) == 1000  # accepted: the late are apart


def test_min_size_suppresses_small_slices():
    spec = load_spec_text(SPEC.replace("- tags: [vip]", "- tags: [vip]\n        min_size: 100000")
                          % {"lateness": "0s"})
    results = []
    daemon = Daemon(spec, dead_letter=DeadLetter(None),
                    listeners=[lambda w, rs: results.extend(rs)])
    daemon.run([Chunk("lines", [orjson.dumps(r) for r in make_records(n=500)])])
    vip = [r for r in results if r.slice == "tag=vip"]
    assert vip and not any(r.reported for r in vip)
    assert all(k[2] != "tag=vip" for k in daemon.snapshot.series)
    assert daemon.snapshot.suppressed["fraud"] == len(vip)
