"""A batch whose processing raises (#11.3), without a broker: nothing of a failed piece is
kept, the message at fault is dead-lettered and the rest folded; a raising listener does not
cost the others a window; a fault that is not in the messages stops the run."""

from __future__ import annotations

import orjson
import pytest

from monitor.core import pipeline
from monitor.ingest.source import Chunk
from monitor.runtime.daemon import Daemon
from monitor.runtime.kafka_run import NotTheMessages, fold_isolating
from slices.load import load_spec_text

SPEC = """
version: 1
models:
  - {name: m, task: binary, window: 1m, metrics: [count, score_mean]}
"""


def line(i: int, pid: str | None = None) -> bytes:
    return orjson.dumps({"model": "m", "model_version": "v1", "prediction_id": pid or f"p{i}",
                         "timestamp": 1000.0 + i, "prediction": {"score": (i % 10) / 10}})


def assert_same_state(got, want, path="state") -> None:
    """Equal state, floats to 1e-12 relative: moment sums (m3, m4) depend on where the
    pieces were cut, as any float sum does; everything else exactly."""
    assert type(got) is type(want), path
    if isinstance(got, dict):
        assert got.keys() == want.keys(), path
        for key in got:
            assert_same_state(got[key], want[key], f"{path}/{key}")
    elif isinstance(got, (list, tuple)):
        assert len(got) == len(want), path
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_same_state(g, w, f"{path}[{i}]")
    elif isinstance(got, float):
        assert got == pytest.approx(want, rel=1e-12, abs=1e-12, nan_ok=True), path
    elif hasattr(got, "tolist"):
        assert_same_state(got.tolist(), want.tolist(), path)
    else:
        assert got == want, path


class Letters:
    def __init__(self):
        self.rows = []

    def write(self, reason, record, *, detail="", origin="", **place):
        self.rows.append((reason, record, detail, origin))

    def flush(self):
        pass


def test_the_message_at_fault_is_set_aside_and_nothing_of_it_is_kept(boom):
    good = [line(i) for i in range(200)]
    lines = [*good[:77], line(77, "boom-1"), *good[77:150], line(150, "boom-2"), *good[150:]]
    after = list(range(1, len(lines) + 1))
    d = Daemon(load_spec_text(SPEC), dead_letter=Letters())
    with pytest.raises(RuntimeError):
        d.process(Chunk("lines", lines, position=after, partition="t:0"))
    d = Daemon(load_spec_text(SPEC), dead_letter=Letters())  # the checkpoint: initial state
    fold_isolating(d, Chunk("lines", lines, origin="t", position=after, partition="t:0"))
    want = Daemon(load_spec_text(SPEC))
    want.process(Chunk("lines", good, partition="t:0"))
    got_state, want_state = d.state(), want.state()
    assert got_state["tracker"]["bad"] == [["processing_error", 2]]
    got_state["tracker"]["bad"] = want_state["tracker"]["bad"]
    for state in (got_state, want_state):  # pending label joins: one segment per piece folded
        segments = state["join"].pop("segments")
        state["join"]["pending"] = [(s["model"], t, i) for s in segments
                                    for t, i in zip(s["starts"], s["batch"]["id"], strict=True)]
    assert len(want_state["join"]["pending"]) == 60  # those of the window still open
    for state in (got_state, want_state):  # activity counts of the version budget restart at
        state.pop("versions")  # each close, so they depend on where batches cut (one version
        # here: nothing is folded either way)
    assert_same_state(got_state, want_state)
    rows = d.dead_letter.rows
    assert [(r[0], r[1], r[3]) for r in rows] == [("processing_error", lines[77], "t"),
                                                 ("processing_error", lines[151], "t")]
    assert rows[0][2] == "t:0@77: RuntimeError: injected fault"


def test_a_fault_that_is_not_in_the_messages_stops(monkeypatch):
    def broken(self, batch, starts, **kw):
        raise OSError("disk full")

    monkeypatch.setattr(pipeline.ModelPipeline, "_accumulate", broken)
    d = Daemon(load_spec_text(SPEC), dead_letter=Letters())
    with pytest.raises(NotTheMessages, match="fault is not in the messages"):
        fold_isolating(d, Chunk("lines", [line(i) for i in range(8)],
                                position=list(range(1, 9)), partition="t:0"))


def test_a_listener_that_raises_does_not_cost_the_others_the_window():
    seen = []

    def broken(window, results):
        raise ValueError("listener bug")

    d = Daemon(load_spec_text(SPEC), listeners=[broken, lambda w, r: seen.append(w.key)])
    d.process(Chunk("lines", [line(i) for i in range(100)]))
    d.process(Chunk("lines", [line(200)]))  # closes the first window
    d.settle()
    assert seen == [960.0, 1020.0, 1080.0]
    name = "test_a_listener_that_raises_does_not_cost_the_others_the_window.<locals>.broken"
    assert d.listener_errors == {name: 3}
    from prometheus_client import generate_latest
    from prometheus_client.registry import CollectorRegistry

    from monitor.export.collector import SlicewatchCollector

    registry = CollectorRegistry(auto_describe=False)
    registry.register(SlicewatchCollector(lambda: d.snapshot))
    text = generate_latest(registry).decode()
    assert f'slicewatch_listener_errors_total{{listener="{name}"}} 3.0' in text


def test_outputs_of_failed_pieces_never_go_out(boom):
    """Results and dead letters of a piece that failed are dropped with its state: while
    the chunk is halved down to the message at fault, every other dead letter and every
    window's results go out exactly once (they went out once per attempt before)."""
    good = [line(i) for i in range(200)]
    # the bad line beside the one at fault: every failing piece holds both
    lines = [*good[:120], b"{not json", line(120, "boom-1"), *good[120:]]
    after = list(range(1, len(lines) + 1))
    handed: list[float] = []
    d = Daemon(load_spec_text(SPEC), dead_letter=Letters(),
               listeners=[lambda window, results: handed.append(window.start)])
    d.begin()  # as the Kafka loop does around each batch
    fold_isolating(d, Chunk("lines", lines, origin="t", position=after, partition="t:0"))
    assert d.dead_letter.rows == [] and handed == []  # held until the batch is whole
    d.commit()
    reasons = [r[0] for r in d.dead_letter.rows]
    assert sorted(reasons) == ["invalid_json", "processing_error"], reasons
    assert d.tracker.bad == {"invalid_json": 1, "processing_error": 1}
    want = Daemon(load_spec_text(SPEC))
    closed = want.process(Chunk("lines", good, partition="t:0"))
    assert handed == sorted({r.window_start for r in closed})  # each window once, in order
    assert len(handed) == len(set(handed)) >= 2


def test_a_rolled_back_batch_hands_nothing_on():
    d = Daemon(load_spec_text(SPEC), dead_letter=Letters(),
               listeners=[lambda window, results: pytest.fail("handed on")])
    d.begin()
    d.process(Chunk("lines", [line(i) for i in range(200)] + [b"{bad"], partition="t:0"))
    d.rollback()
    assert d.dead_letter.rows == []
