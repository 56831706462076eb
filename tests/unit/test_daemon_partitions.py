"""The daemon's watermarks over several source partitions (Kafka): minimum over partitions,
caught-up partitions released by ``track_partitions``, models keyed to partitions."""

from __future__ import annotations

import orjson

from monitor.ingest.source import Chunk
from monitor.runtime.daemon import Daemon
from slices.load import load_spec_text

SPEC = """
version: 1
models:
  - {name: a, task: binary, window: 1m, metrics: [count]}
  - {name: b, task: binary, window: 1m, metrics: [count]}
"""


def lines(model: str, times: list[float]) -> list[bytes]:
    return [orjson.dumps({"model": model, "model_version": "v1", "timestamp": t,
                          "prediction": {"score": 0.5}}) for t in times]


def test_backlog_of_two_partitions_read_one_after_the_other_has_no_late_record():
    d = Daemon(load_spec_text(SPEC))
    d.track_partitions({"t:0", "t:1"}, set())
    out = d.process(Chunk("lines", lines("a", [float(t) for t in range(0, 600, 2)]),
                          partition="t:0"))
    assert out == []  # t:1 not heard from: nothing closes
    out += d.process(Chunk("lines", lines("a", [float(t) for t in range(1, 600, 2)]),
                           partition="t:1"))
    assert d.summary(0).late == 0
    assert sum(r.count for r in d.settle() + out if r.slice == "overall") == 540  # 9 windows
    d.process(Chunk("lines", lines("a", [700.0]), partition="t:0"))
    assert d.settle() == []  # t:1 still at 599
    out = d.track_partitions({"t:0", "t:1"}, {"t:1"}) + d.settle()  # t:1 caught up
    assert [(r.window_start, r.count) for r in out if r.slice == "overall"] == [(540.0, 60)]


def test_models_keyed_to_partitions_close_their_windows_under_constant_lag():
    """Model a only on t:0, model b only on t:1, neither partition ever caught up: t:0 does
    not hold b's watermark (it delivered records, none of b), so b's windows close."""
    d = Daemon(load_spec_text(SPEC))
    d.track_partitions({"t:0", "t:1"}, set())
    closed = d.process(Chunk("lines", lines("a", [10.0, 70.0]), partition="t:0"))
    closed += d.process(Chunk("lines", lines("b", [15.0, 200.0]), partition="t:1"))
    closed += d.settle()
    assert {(r.model, r.window_start) for r in closed} == {("a", 0.0), ("b", 0.0)}
    assert d.pipelines["b"].windows.watermark == 200.0
    assert d.pipelines["a"].windows.watermark == 70.0


def test_partitions_heard_from_survive_a_restart():
    d = Daemon(load_spec_text(SPEC))
    d.process(Chunk("lines", lines("a", [10.0]), partition="t:0"))
    again = Daemon(load_spec_text(SPEC))
    again.load_state(d.state())
    assert again.partitions.busy == {"t:0"}
    assert again.pipelines["a"].windows.partitions == {"t:0": 10.0}


def test_warns_once_when_more_than_one_percent_of_a_window_is_late(caplog):
    d = Daemon(load_spec_text(SPEC))
    d.process(Chunk("lines", lines("a", [float(t % 60) for t in range(1000)])))
    d.process(Chunk("lines", lines("a", [130.0])))  # window [0, 60) closes
    with caplog.at_level("WARNING", logger="slicewatch.daemon"):
        d.process(Chunk("lines", lines("a", [5.0] * 10)))  # 10 of 1010: under 1 %
        assert caplog.records == []
        d.process(Chunk("lines", lines("a", [6.0] * 10)))  # 20 of 1020: 2 %
        d.process(Chunk("lines", lines("a", [7.0] * 50)))
    assert d.summary(0).late == 70
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert "model a: 20 of 1020 records (2.0 %) of the window starting at 0.0 came after it " \
           "closed (late); allowed_lateness (0s)" in warnings[0]
