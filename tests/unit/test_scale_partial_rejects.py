"""Issue #14 (review): the evaluator never crashes on, nor half-applies, a bad partial.

A partial is all or nothing (a window or accumulator that does not read or merge changes no
open window, watermark or counter); an accumulator's own ``MetricError`` on merge (other
histogram bins) is a rejected partial, counted by reason, not a dead evaluator loop; fuzzed
bytes (random, truncated, flipped, wrong types, huge lengths) are rejected without a crash and
with bounded memory."""

from __future__ import annotations

import copy
import logging
import tracemalloc

import msgpack
import numpy as np
import pytest

from monitor.core.windows import Window
from monitor.scale import kafka_roles
from monitor.scale.evaluator import Evaluator
from monitor.scale.kafka_roles import EvaluatorLoop, evaluator_events
from monitor.scale.partials import (
    Partial,
    PartialError,
    WindowDelta,
    decode_partial,
    encode_partial,
    merge_window,
)
from monitor.state.encoding import MAGIC, encode_state
from tests.unit.test_upgrade_compat import halves, partial_of, records, spec


@pytest.fixture(scope="module")
def pair():
    """Two partials (sources preds:0 and preds:1) sharing every group of one window."""
    s = spec()
    first, second = halves(records(600, 3, windows=1))
    return s, partial_of(s, "preds:0", first), partial_of(s, "preds:1", second)


def other_bins(p: Partial, last_only: bool = True) -> Partial:
    """``p`` with its score histograms' ``bins`` doubled (in the last group only): a merge
    that ``ScoreHistogram.merge`` refuses with a MetricError after the group's earlier
    accumulators (and the window's earlier groups) merged."""
    windows = copy.deepcopy([w.window for w in p.windows])
    groups = windows[0]["groups"][-1:] if last_only else windows[0]["groups"]
    for _, _, accs in groups:
        for a in accs:
            if a["kind"] == "score_histogram":
                a["params"] = {**a["params"], "bins": 2 * a["params"]["bins"]}
    return Partial(p.source, p.seq, [WindowDelta(w.model, s) for w, s in
                                     zip(p.windows, windows, strict=True)],
                   p.progress, p.counts)


def snapshot(ev: Evaluator) -> bytes:
    return encode_state({"state": ev.state(), "records": dict(ev.daemon.tracker.records),
                         "merged": ev.merged, "busy": sorted(ev.daemon.partitions.busy)})


def test_a_partial_whose_last_group_does_not_merge_changes_nothing(pair):
    s, a, b = pair
    ev = Evaluator(s, sources=["preds:0", "preds:1"])
    ev.add(a)
    before = snapshot(ev)
    with pytest.raises(PartialError, match="parameters differ") as exc:
        ev.add(other_bins(b))
    assert exc.value.reason == "merge"
    assert snapshot(ev) == before  # groups before the last one were merged before the fix
    ev.add(b)  # the good one still merges, once
    assert ev.daemon.tracker.records["m"] == 2 * 600 * 2 // 2


def test_a_partial_with_a_window_of_an_unknown_model_changes_nothing(pair):
    s, a, b = pair
    ev = Evaluator(s, sources=["preds:0", "preds:1"])
    ev.add(a)
    before = snapshot(ev)
    bad = Partial(b.source, b.seq, [*b.windows, WindowDelta("nope", b.windows[0].window)],
                  b.progress, b.counts)
    with pytest.raises(PartialError, match="not in the spec") as exc:
        ev.add(bad)
    assert exc.value.reason == "model"
    assert snapshot(ev) == before  # b's window was merged before the fix


@pytest.mark.parametrize("counts", [{"records": {"m": "many"}}, {"records": [1]},
                                    {"outcomes": {("m", "v3", "ok"): 1.5}}])
def test_malformed_counters_reject_the_partial_before_any_window_merges(pair, counts):
    s, a, b = pair
    ev = Evaluator(s, sources=["preds:0", "preds:1"])
    ev.add(a)
    before = snapshot(ev)
    with pytest.raises(PartialError) as exc:
        ev.add(Partial(b.source, b.seq, b.windows, b.progress, counts))
    assert exc.value.reason == "counts" and snapshot(ev) == before


def test_merge_window_is_all_or_nothing(pair):
    _, a, b = pair
    into = Window.from_state(a.windows[0].window)
    before = encode_state(into.to_state())
    with pytest.raises(PartialError, match="different specs"):
        merge_window(into, Window.from_state(other_bins(b).windows[0].window))
    assert encode_state(into.to_state()) == before


class Msg:
    def __init__(self, value: bytes, offset: int):
        self._value, self._offset = value, offset

    def error(self):
        return None

    def value(self):
        return self._value

    def offset(self):
        return self._offset

    def topic(self):
        return "p-partials"

    def partition(self):
        return 0

    def key(self):
        return b"preds:1"


@pytest.fixture
def loop(pair):
    """The active evaluator loop's merge path (no Kafka: ``_merge`` is fed messages)."""
    s, _, _ = pair
    lp = EvaluatorLoop.__new__(EvaluatorLoop)
    lp.core = Evaluator(s, sources=["preds:0", "preds:1"])
    lp.owned, lp.offset, lp.dirty, lp.bad = True, 0, False, 0
    return lp


def counter(lp: EvaluatorLoop) -> dict[str, float]:
    [fam] = list(lp.collect(None))
    assert fam.name == "slicewatch_kafka_evaluator_events" and fam.type == "counter"
    return {s.labels["reason"]: s.value for s in fam.samples if s.name.endswith("_total")}


def test_a_metric_error_on_merge_does_not_stop_the_evaluator_loop(loop, pair, caplog):
    _, a, b = pair
    assert set(counter(loop).values()) == {0}  # every reason exported from the start
    bad = encode_partial(other_bins(b))
    with caplog.at_level(logging.WARNING, logger=kafka_roles.log.name):
        loop._merge([Msg(encode_partial(a), 0), Msg(bad, 1), Msg(bad, 2), Msg(b"junk", 3)])
    assert loop.offset == 4 and loop.core.rejected == {"merge": 2, "decode": 1}
    got = counter(loop)
    assert got["rejected_merge"] == 2 and got["rejected_decode"] == 1
    assert set(got) == set(evaluator_events(loop.core))
    warned = [r.getMessage() for r in caplog.records if "rejected" in r.getMessage()]
    assert len(warned) == 2  # once per reason, with where it was
    assert "p-partials:0@1 key 'preds:1'" in warned[0] and "(merge;" in warned[0]
    loop._merge([Msg(encode_partial(b), 5)])  # and the loop goes on merging
    assert loop.core.daemon.tracker.records["m"] == 1200


def _garbage(valid: bytes, rng: np.random.Generator) -> list[bytes]:
    out = [b"", MAGIC, valid[:len(MAGIC) + 1]]
    out += [rng.bytes(int(rng.integers(1, 400))) for _ in range(60)]
    out += [MAGIC + valid[len(MAGIC):len(MAGIC) + 1] + rng.bytes(int(rng.integers(1, 400)))
            for _ in range(60)]
    out += [valid[:int(rng.integers(len(MAGIC), len(valid)))] for _ in range(80)]
    for _ in range(150):  # flipped bytes past the header
        b = bytearray(valid)
        for i in rng.integers(len(MAGIC) + 1, len(valid), int(rng.integers(1, 6))):
            b[i] = int(rng.integers(0, 256))
        out.append(bytes(b))
    head = valid[:len(MAGIC) + 1]
    for n in (2**31, 2**32 - 1):  # huge declared lengths: str, bin, array, map
        out += [head + b"\xdb" + n.to_bytes(4, "big"), head + b"\xc6" + n.to_bytes(4, "big"),
                head + b"\xdd" + n.to_bytes(4, "big"), head + b"\xdf" + n.to_bytes(4, "big")]
    return out


def _wrong_types(p: Partial) -> list[bytes]:
    w = p.windows[0].window
    base = {"format": 1, "source": "preds:1", "seq": 1, "progress": [{"m": 60.0}, True, False],
            "counts": {}}
    shapes = [None, 1, "x", [], [1, 2], {"format": 1}, {**base, "windows": "x"},
              {**base, "windows": [["m"]]}, {**base, "windows": [["m", 5]]},
              {**base, "windows": [["m", {**w, "groups": "x"}]]},
              {**base, "windows": [["m", {**w, "groups": [[1, 2, [{"kind": "nope"}]]]}]]},
              {**base, "windows": [["m", {**w, "key": "soon"}]]},
              {**base, "windows": [], "progress": [{"m": "late"}, 1, 0]},
              {**base, "windows": [], "progress": [{"m": 1.0}]},
              {**base, "windows": [], "counts": [1, 2]}]
    huge = copy.deepcopy(w)  # accumulators asked for huge sizes
    for _, _, accs in huge["groups"]:
        for a in accs:
            if "bins" in a.get("params", {}):
                a["params"]["bins"] = 2**40
    shapes.append({**base, "windows": [["m", huge]]})
    return [encode_state(x) for x in shapes] + [MAGIC + b"\x01" + msgpack.packb([1, 2])]


def test_fuzzed_partials_are_rejected_without_crash_and_with_bounded_memory(pair):
    s, a, b = pair
    rng = np.random.default_rng(14)
    valid = encode_partial(b)
    blobs = _garbage(valid, rng) + _wrong_types(b)
    ev = Evaluator(s, sources=["preds:0", "preds:1"])
    ev.add(a)
    rejected = 0
    tracemalloc.start()
    try:
        for blob in blobs:
            tracemalloc.reset_peak()
            try:
                ev.add(decode_partial(blob))
            except PartialError as exc:
                assert exc.reason in ("decode", "model", "state", "merge", "counts")
                rejected += 1
            peak = tracemalloc.get_traced_memory()[1]
            assert peak < 64 << 20, f"{peak} bytes decoding {blob[:40]!r}"
    finally:
        tracemalloc.stop()
    assert rejected > len(blobs) * 0.8
