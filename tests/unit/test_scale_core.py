"""The scale-out core (issue #14), no broker: the same records split over six source
partitions, folded by per-partition workers in arbitrary batches and checkpoints (with
crashes that replay from the last checkpoint), partials merged by the evaluator, give the
per-window per-slice results of one daemon reading everything — counts and metrics equal,
drift statistics within the tolerance docs/scaling.md gives."""

from __future__ import annotations

import dataclasses
import math
import random
import zlib

import orjson
import pytest

from monitor.ingest.source import Chunk
from monitor.runtime.daemon import Daemon
from monitor.runtime.demo import demo_records, demo_spec, write_demo_profile
from monitor.scale.evaluator import Evaluator
from monitor.scale.partials import PartialError, decode_partial, encode_partial
from monitor.scale.worker import PartitionFold, ScaleError, check_scalable
from monitor.state.encoding import decode_state, encode_state
from slices.load import load_spec_text

PARTS = 6
START = 1_785_000_000 // 60 * 60
# docs/scaling.md, "Exactness": histograms, counts and moments merge exactly; a KS test
# reads the slice's reservoir sample, which is exactly the window's values while the slice
# has at most k of them and another uniform sample of k after a merge when it has more
RESERVOIR_K = 1000
KS_SAMPLED_ABS = 0.05  # |Δ KS statistic| of two uniform samples of k = 1000


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("scale")
    profile = str(tmp / "profile.json")
    write_demo_profile(profile, per_window=1000, windows=4)
    text = demo_spec(str(tmp / "none.jsonl"), profile=profile)
    text = text.replace("    discovery: {features: [country, device, amount], top_k: 3, "
                        "horizon: 3}\n", "")
    text = text.replace("      concept: {detector: ADWIN}\n", "")
    text = text.replace("    window: 1m\n", "    window: 1m\n    label_delay: 2m\n")
    return load_spec_text(text, "<scale spec>")


def schedule(seed: int):
    """(partition, stream, lines) steps: each partition's predictions in time order in
    random batches; most labels come apart, a few batches later, some before their
    prediction; partitions progress at different speeds."""
    rng = random.Random(seed)
    parts: list[list[dict]] = [[] for _ in range(PARTS)]
    for window in demo_records(7, 1200, seed=seed, start=START):
        for rec in window:
            parts[zlib.crc32(rec["prediction_id"].encode()) % PARTS].append(rec)
    queues = []
    for recs in parts:
        steps, i = [], 0
        while i < len(recs):
            n = rng.randint(20, 400)
            batch, i = recs[i:i + n], i + n
            inline, apart = [], []
            for r in batch:
                (inline if rng.random() < 0.3 else apart).append(r)
            preds = [orjson.dumps({k: v for k, v in r.items()
                                   if k != "label" or r in inline}) for r in batch]
            labels = [orjson.dumps({"prediction_id": r["prediction_id"], "label": r["label"],
                                    "timestamp": r["timestamp"] + 20}) for r in apart]
            early, later = labels[:len(labels) // 10], labels[len(labels) // 10:]
            if early:
                steps.append(("labels", early))
            steps.append(("predictions", preds))
            steps.append(("labels", later))
        queues.append(steps)
    out = []
    while any(queues):
        p = rng.choice([i for i in range(PARTS) if queues[i]])
        for _ in range(rng.randint(1, 3)):
            if queues[p]:
                stream, lines = queues[p].pop(0)
                out.append((p, stream, lines))
    return out


def chunk(p: int, stream: str, lines: list[bytes]) -> Chunk:
    topic = "preds" if stream == "predictions" else "labels"
    return Chunk("lines", lines, stream=stream, partition=f"{topic}:{p}", origin=topic)


def source(p: int) -> str:
    return f"preds:{p}"


def single(spec, steps):
    got = []
    d = Daemon(spec, listeners=[lambda w, rs: got.extend(rs)])
    d.track_partitions({source(p) for p in range(PARTS)}, set())
    for p, stream, lines in steps:
        d.process(chunk(p, stream, lines))
    d.flush()
    return got, d


def scaled(spec, steps, seed, *, thin=True, wire=None):
    """Workers that checkpoint at random and crash at random (a crash loses everything
    since the partition's last checkpoint; its records are read again). ``wire``: a list
    the partials' sizes are appended to."""
    rng = random.Random(seed)
    got = []
    ev = Evaluator(spec, listeners=[lambda w, rs: got.extend(rs)],
                   sources=[source(p) for p in range(PARTS)])

    def fold(p):
        return PartitionFold(spec, source(p), thin=thin)

    def send(partial):
        blob = encode_partial(partial)
        if wire is not None:
            wire.append(len(blob))
        ev.add(decode_partial(blob))

    folds = {p: fold(p) for p in range(PARTS)}
    committed = {p: encode_state(folds[p].residual_state()) for p in range(PARTS)}
    since: dict[int, list] = {p: [] for p in range(PARTS)}
    crashes = 0
    for p, stream, lines in steps:
        folds[p].process(chunk(p, stream, lines))
        since[p].append((stream, lines))
        roll = rng.random()
        if roll < 0.25:  # checkpoint: partial + residual state, "one transaction"
            partial = folds[p].take_partial()
            committed[p] = encode_state(folds[p].residual_state())
            since[p] = []
            send(partial)
            ev.advance()
        elif roll < 0.30:  # kill -9: a new fold from the last checkpoint reads again
            crashes += 1
            folds[p] = fold(p)
            folds[p].load_state(decode_state(committed[p]))
            for s, ls in since[p]:
                folds[p].process(chunk(p, s, ls))
    for p in range(PARTS):
        send(folds[p].take_partial(idle=True))
    ev.advance()
    ev.flush()
    assert crashes > 3
    return got, ev


def by_key(results):
    out = {}
    for r in results:
        key = (r.model, r.version, r.slice, r.window_start)
        assert key not in out, f"{key} reported twice"
        out[key] = r
    return out


def test_partials_merged_equal_one_daemon(spec):
    steps = schedule(3)
    want, d = single(spec, steps)
    got, ev = scaled(spec, steps, seed=4)
    want, got = by_key(want), by_key(got)
    assert d.summary(0).late == 0
    assert set(got) == set(want)
    assert len({k[3] for k in want}) >= 7
    drift_checked = sampled_checked = 0
    # BH adjusts across the window's tests: a sampled KS p-value moves the others' adjusted
    in_sampled = {k[:2] + k[3:] for k, w in want.items()
                  if any(f.test == "ks" and f.n_current > RESERVOIR_K for f in w.drift)}
    for key, w in want.items():
        g = got[key]
        assert g.count == w.count, key
        assert g.reported == w.reported
        assert set(g.metrics) == set(w.metrics)
        assert set(g.intervals) == set(w.intervals)
        for name, (lo, hi) in w.intervals.items():  # the bootstrap is keyed by record
            assert g.intervals[name] == pytest.approx((lo, hi), rel=1e-9, abs=1e-12)
        for name, wv in w.metrics.items():
            gv = g.metrics[name]
            if wv is None or (isinstance(wv, float) and math.isnan(wv)):
                assert gv is None or math.isnan(gv), (key, name)
            else:
                assert gv == pytest.approx(wv, rel=1e-9, abs=1e-12), (key, name)
        assert [f.feature for f in g.drift] == [f.feature for f in w.drift], key
        for gf, wf in zip(g.drift, w.drift, strict=True):
            assert (gf.test, gf.gate, gf.status, gf.n_current) == \
                (wf.test, wf.gate, wf.status, wf.n_current), key
            sampled = wf.test == "ks" and wf.n_current > RESERVOIR_K
            for name in ("statistic", "pvalue", "pvalue_adjusted", "distance"):
                gv, wv = getattr(gf, name), getattr(wf, name)
                assert (gv is None) == (wv is None), (key, gf.feature, name)
                if wv is None or (sampled and name.startswith("pvalue")) or \
                        (name == "pvalue_adjusted" and key[:2] + key[3:] in in_sampled):
                    continue
                tolerance = pytest.approx(wv, abs=KS_SAMPLED_ABS) if sampled else \
                    pytest.approx(wv, rel=1e-9, abs=1e-12)
                assert gv == tolerance, (key, gf.feature, name)
            drift_checked += 1
            sampled_checked += sampled
    assert drift_checked > 1000 and 0 < sampled_checked < drift_checked / 10
    assert ev.stale.total() == 0
    # the counters the workers publish add up to the single process's
    t, u = ev.daemon.tracker, d.tracker
    assert t.records == u.records and t.outcomes == u.outcomes
    assert +ev.daemon.join.counts == +d.join.counts  # joined, expired (zeros left out)


def test_thinned_partials_merge_to_the_same_results(spec):
    """Reservoir values that cannot be in their window's sample are left out of the
    partials (monitor/scale/thin.py): every result is the same, to the bit, for fewer
    bytes. Two partitions of 5 000-record windows, checkpoints every 250 records (metric
    intervals off: their fixed-size bootstrap sums would dominate the bytes)."""
    model = dataclasses.replace(spec.models[0], confidence_level=None)
    spec = dataclasses.replace(spec, models=(model,))
    recs = [orjson.dumps(r) for w in demo_records(2, 5000, seed=9, start=START) for r in w]

    def run(thin: bool):
        got, wire = [], 0
        ev = Evaluator(spec, listeners=[lambda w, rs: got.extend(rs)],
                       sources=[source(0), source(1)])
        folds = [PartitionFold(spec, source(p), thin=thin) for p in (0, 1)]
        for i in range(0, len(recs), 250):
            p = (i // 250) % 2
            folds[p].process(chunk(p, "predictions", recs[i:i + 250]))
            blob = encode_partial(folds[p].take_partial())
            wire += len(blob)
            ev.add(decode_partial(blob))
            ev.advance()
        ev.flush()
        return by_key(got), wire

    (thinned, thin_wire), (full, full_wire) = run(True), run(False)
    assert set(thinned) == set(full) and len(full) > 20
    for key, f in full.items():
        t = thinned[key]
        assert t.count == f.count
        assert [(d.feature, d.statistic, d.pvalue, d.pvalue_adjusted, d.distance)
                for d in t.drift] == [(d.feature, d.statistic, d.pvalue, d.pvalue_adjusted,
                                       d.distance) for d in f.drift], key
    assert thin_wire < full_wire  # the saving grows with n / k: bench/RESULTS.md, #14


def test_evaluator_waits_for_every_source_partition(spec):
    ev = Evaluator(spec, sources=[source(p) for p in range(2)])
    fold = PartitionFold(spec, source(0))
    recs = next(demo_records(1, 50, seed=1, start=START))
    fold.process(chunk(0, "predictions", [orjson.dumps(r) for r in recs]))
    fold.process(chunk(0, "predictions", [orjson.dumps({**recs[0], "timestamp": START + 600,
                                                        "prediction_id": "x"})]))
    ev.add(fold.take_partial())
    assert ev.advance() == []  # preds:1 not heard from: holds the watermark
    other = PartitionFold(spec, source(1))
    other.process(chunk(1, "predictions", [orjson.dumps({**recs[1], "timestamp": START + 599,
                                                         "prediction_id": "y"})]))
    ev.add(other.take_partial())
    closed = ev.advance()
    assert {r.window_start for r in closed} == {float(START)}
    assert [r.count for r in closed if r.slice == "overall"] == [50]


def test_residual_state_keeps_pending_predictions_not_windows(spec):
    fold = PartitionFold(spec, source(0))
    recs = next(demo_records(1, 100, seed=2, start=START))
    fold.process(chunk(0, "predictions",
                       [orjson.dumps({k: v for k, v in r.items() if k != "label"})
                        for r in recs]))
    partial = fold.take_partial()
    assert sum(len(w.window["groups"]) for w in partial.windows) > 5
    state = fold.residual_state()
    assert all(not w["groups"] for w in state["pipelines"]["fraud"]["open"])
    assert len(state["join"]["segments"]) == 1  # 100 predictions wait for their labels
    assert fold.take_partial().windows == []  # nothing new


def test_bad_partials_and_unscalable_specs_are_clear_errors(spec):
    with pytest.raises(PartialError, match=r"bad partial|not a partial"):
        decode_partial(b"SWST\x02junk")
    with pytest.raises(PartialError, match="not a partial"):
        decode_partial(encode_state({"format": 99}))
    text = """
models:
  - {name: m, task: binary, window: 1000 records}
  - name: r
    task: binary
    window: 1m
    features: {x: numeric}
    drift: {rolling_windows: 3, concept: {detector: ADWIN}}
"""
    with pytest.raises(ScaleError) as err:
        check_scalable(load_spec_text(text))
    assert "model m: count windows" in str(err.value)
    assert "model r: drift.concept" in str(err.value)
    assert "model r: drift without a profile" in str(err.value)
