"""Mixed-version state after #15 stopped bootstrapping single-slice intervals (rolling
upgrades, docs/scaling.md "Upgrades"): window state written by the old code holds a
``BootstrapLabel`` accumulator the new spec no longer asks for. A scale-out partial of an old
worker merges with a new one in either order (the accumulator dropped, counted), and the
results equal one new daemon's; an old single-process checkpoint restores to the same outputs
as a fresh run; a paired comparison whose partials lack the accumulator on one side is not
reported for that window (counted), never computed from part of the records."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import orjson
import pytest

from monitor.core.metrics import registry
from monitor.core.metrics.bootstrap import BootstrapLabel, BootstrapPrediction
from monitor.core.metrics.errors import MetricError
from monitor.core.metrics.registry import merge_all
from monitor.ingest.source import Chunk
from monitor.runtime.daemon import Daemon
from monitor.scale.evaluator import Evaluator
from monitor.scale.partials import PartialError, decode_partial, encode_partial, merge_window
from monitor.scale.worker import PartitionFold
from monitor.state.encoding import decode_state, encode_state
from slices.load import load_spec_text

SPEC = """
models:
  - name: m
    task: binary
    window: 1m
    features: {c: categorical}
    slices: [{overall: true}, {feature_keys: [c]}]
    compare: {baseline: v3, candidate: v4%s}
"""
OLD_BOOTSTRAPPED = {"binary": ("pr_auc", "ece")}  # registry.BOOTSTRAPPED_LABEL before 22be20d
START = 1_785_000_000 // 60 * 60


def records(n: int, seed: int, windows: int = 2) -> list[bytes]:
    """Shadow traffic: v3 and v4 score the same predictions; ``windows`` one-minute windows."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        y = int(rng.random() < 0.4)
        base = float(np.clip(rng.normal(0.35 + 0.3 * y, 0.15), 0, 1))
        cand = float(np.clip(base + rng.normal(0, 0.2), 0, 1))
        t = START + i * 60.0 * windows / n
        for version, score in (("v3", base), ("v4", cand)):
            out.append(orjson.dumps({
                "model": "m", "model_version": version, "prediction_id": f"{seed}-{i}",
                "timestamp": t, "features": {"c": "ab"[i % 2]},
                "prediction": {"score": score}, "label": y}))
    return out


def halves(lines: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """Every other prediction (both its versions) to each half: every group in both."""
    return ([x for i, x in enumerate(lines) if i // 4 % 2 == 0],
            [x for i, x in enumerate(lines) if i // 4 % 2 == 1])


def spec(paired: bool = False):
    return load_spec_text(SPEC % (", paired: true" if paired else ""), "<upgrade spec>")


def fresh(spec_, lines):
    got = []
    d = Daemon(spec_, listeners=[lambda w, rs: got.extend(rs)])
    d.process(Chunk("lines", lines))
    d.flush()
    return got


def by_key(results):
    return {(r.version, r.slice, r.window_start): r for r in results}


def assert_same(got, want):
    got, want = by_key(got), by_key(want)
    assert set(got) == set(want) and want
    for key, w in want.items():
        g = got[key]
        assert g.count == w.count, key
        assert set(g.metrics) == set(w.metrics) and set(g.intervals) == set(w.intervals), key
        for name, wv in w.metrics.items():
            if isinstance(wv, float) and math.isnan(wv):
                assert math.isnan(g.metrics[name]), (key, name)
            else:
                assert g.metrics[name] == pytest.approx(wv, rel=1e-9, abs=1e-12), (key, name)
        for name, iv in w.intervals.items():
            assert g.intervals[name] == pytest.approx(iv, rel=1e-9, abs=1e-12), (key, name)
        gd = {d.metric: d for d in g.compared}
        wd = {d.metric: d for d in w.compared}
        assert set(gd) == set(wd), key
        for name, d in wd.items():
            assert gd[name].method == d.method, (key, name)
            assert (gd[name].diff, gd[name].lower, gd[name].upper) == pytest.approx(
                (d.diff, d.lower, d.upper), rel=1e-9, abs=1e-12), (key, name)


def partial_of(spec_, source, lines, monkeypatch=None):
    """One worker's partial (encoded and decoded: the wire) of ``lines``; ``monkeypatch``: as
    the code before #15's fifth pass wrote it (single-slice bootstrap of pr_auc and ece)."""
    if monkeypatch is not None:
        monkeypatch.setattr(registry, "BOOTSTRAPPED_LABEL", OLD_BOOTSTRAPPED)
    try:
        fold = PartitionFold(spec_, source)
        fold.process(Chunk("lines", lines, stream="predictions", partition=source,
                           origin="preds"))
        partial = fold.take_partial(idle=True)
    finally:
        if monkeypatch is not None:
            monkeypatch.undo()
    return decode_partial(encode_partial(partial))


def kinds(partial):
    return {a["kind"] for w in partial.windows for _, _, accs in w.window["groups"]
            for a in accs}


def evaluate(spec_, partials):
    got = []
    ev = Evaluator(spec_, listeners=[lambda w, rs: got.extend(rs)],
                   sources=[p.source for p in partials])
    for p in partials:
        ev.add(p)
    ev.advance()
    ev.flush()
    return got, ev


@pytest.mark.parametrize("old_first", [True, False])
def test_old_and_new_partials_merge_in_either_order(monkeypatch, old_first):
    s = spec()
    lines = records(4000, 1)
    first, second = halves(lines)
    old = partial_of(s, "preds:0", first, monkeypatch)
    new = partial_of(s, "preds:1", second)
    assert "bootstrap_label" in kinds(old) and "bootstrap_label" not in kinds(new)
    got, ev = evaluate(s, [old, new] if old_first else [new, old])
    assert_same(got, fresh(s, lines))
    assert ev.upgrade["bootstrap_dropped"] > 0 and not ev.upgrade["bootstrap_incomplete"]
    assert not ev.upgrade["bootstrap_missing"]
    # the evaluator's own checkpoint of merged windows holds no old accumulator
    ev2 = Evaluator(s, sources=["preds:0", "preds:1"])
    ev2.add(old)
    state = decode_state(encode_state(ev2.state()))
    assert "bootstrap_label" not in str(state)


def test_merge_window_leaves_out_a_bootstrap_only_one_side_holds(monkeypatch):
    """The kind check that failed before: a group's bootstrap accumulator on one side only is
    left out of the merge (both directions), anything else still fails."""
    s = spec()
    lines = records(1000, 2, windows=1)
    first, second = halves(lines)
    old = partial_of(s, "preds:0", first, monkeypatch)
    new = partial_of(s, "preds:1", second)
    from monitor.core.windows import Window
    for a, b in ((new, old), (old, new)):
        into = Window.from_state(a.windows[0].window)
        counts: Counter = Counter()
        merge_window(into, Window.from_state(b.windows[0].window), counts)
        assert all("bootstrap_label" not in [a.kind for a in g.accumulators]
                   for g in into.groups.values())
        assert counts["bootstrap_incomplete"] == len(into.groups) == 6
    into = Window.from_state(new.windows[0].window)
    # any other kind difference is still an error, with the window untouched
    bad = Window.from_state(old.windows[0].window)
    for g in bad.groups.values():
        g.accumulators = g.accumulators[1:]
    before = encode_state(into.to_state())
    with pytest.raises(PartialError, match="different specs"):
        merge_window(into, bad)
    assert encode_state(into.to_state()) == before


def test_old_single_process_checkpoint_restores_to_a_fresh_runs_outputs(monkeypatch):
    s = spec()
    lines = records(4000, 3)
    cut = len(lines) // 3  # inside the first window: the old checkpoint holds it open
    monkeypatch.setattr(registry, "BOOTSTRAPPED_LABEL", OLD_BOOTSTRAPPED)
    old = Daemon(s)
    old.process(Chunk("lines", lines[:cut]))
    saved = encode_state(old.state())
    monkeypatch.undo()
    assert b"bootstrap_label" in saved
    got = []
    d = Daemon(s, listeners=[lambda w, rs: got.extend(rs)])
    d.load_state(decode_state(saved))
    assert d.pipelines["m"].upgrade["bootstrap_dropped"] > 0
    d.process(Chunk("lines", lines[cut:]))
    d.flush()
    assert_same(got, fresh(s, lines))


def test_paired_compare_with_a_partial_lacking_the_accumulator_is_not_reported():
    paired, unpaired = spec(paired=True), spec()
    lines = records(4000, 4)
    first, second = halves(lines)
    full = partial_of(paired, "preds:0", first)
    lacking = partial_of(unpaired, "preds:1", second)  # a worker without paired: true
    assert "bootstrap_label" in kinds(full) and "bootstrap_label" not in kinds(lacking)
    want = fresh(paired, lines)
    replicated = registry.replicated_metrics(paired.models[0])
    assert {"pr_auc", "roc_auc", "accuracy"} <= replicated
    assert any(d.method == "paired_bootstrap" for r in want for d in r.compared)
    for order in ([full, lacking], [lacking, full]):
        got, ev = evaluate(paired, order)
        assert ev.upgrade["bootstrap_incomplete"] > 0
        assert ev.upgrade["bootstrap_missing"] == len(lacking.windows[0].window["groups"]) + \
            len(lacking.windows[1].window["groups"])
        g, w = by_key(got), by_key(want)
        assert set(g) == set(w)
        for key, r in g.items():  # the window's own numbers are those of one daemon
            assert r.count == w[key].count
            assert r.metrics["roc_auc"] == pytest.approx(w[key].metrics["roc_auc"], rel=1e-9)
            assert set(r.intervals) == set(w[key].intervals), key
            for name, iv in w[key].intervals.items():
                assert r.intervals[name] == pytest.approx(iv, rel=1e-9, abs=1e-12), key
            # no paired interval from part of the records, and no MOVER in its place
            assert all(d.metric not in replicated for d in r.compared), key
            assert not any(d.method == "paired_bootstrap" for d in r.compared)
            # the comparisons of what has no replicates are unchanged
            wd = {d.metric: d for d in w[key].compared if d.metric not in replicated}
            assert {d.metric for d in r.compared} == set(wd)


def test_merge_all_leaves_out_an_optional_accumulator_not_every_list_holds():
    from monitor.core.metrics.counts import OutcomeCounts
    boot = BootstrapLabel("binary", ("pr_auc", "ece"), 20)
    a = [OutcomeCounts(), boot]
    b = [OutcomeCounts()]
    for lists in ([a, b], [b, a]):
        assert [x.kind for x in merge_all(lists)] == ["outcome_counts"]
    both = merge_all([a, [OutcomeCounts(), BootstrapLabel("binary", ("pr_auc", "ece"), 20)]])
    assert [x.kind for x in both] == ["outcome_counts", "bootstrap_label"]
    with pytest.raises(MetricError, match="merge_all"):
        merge_all([a, [BootstrapPrediction("binary", ("score_std",), 20)]])
