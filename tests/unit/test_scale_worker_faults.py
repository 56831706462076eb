"""A record whose processing raises in ``--role worker`` (issue #14 follow-up), without a
broker: the worker does not stop; the partition goes back to its last checkpoint, is sought
back, and the chunk read again is folded piece by piece — the message at fault is
dead-lettered (``processing_error``) and counted in the partial's reject counters, the rest
is folded as if it had never been there."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from monitor.core import pipeline
from monitor.ingest.source import Chunk
from monitor.runtime.kafka_run import NotTheMessages, settings_for
from monitor.scale.kafka_roles import Worker
from monitor.scale.partials import decode_partial
from monitor.scale.worker import PartitionFold
from slices.load import load_spec_text
from tests.faults.test_kafka_batch_failures import Letters, line

SPEC = """
version: 1
source:
  type: kafka
  kafka:
    bootstrap_servers: 127.0.0.1:9
    group_id: g
    instance_id: one
    topics: {predictions: preds}
checkpoint: unused.db
models:
  - {name: m, task: binary, window: 1m, metrics: [count, score_mean]}
"""
TOPICS = {"partials": "x-partials", "worker_state": "x-worker-state", "evaluator": "x-ev"}


class Msg:
    def __init__(self, topic, part, offset, value):
        self._t, self._p, self._o, self._v = topic, part, offset, value

    def error(self):
        return None

    def topic(self):
        return self._t

    def partition(self):
        return self._p

    def offset(self):
        return self._o

    def value(self):
        return self._v


class Log:
    """A partition log with a consumer position (what the worker's seeks move)."""

    def __init__(self, lines):
        self.lines, self.pos, self.seeks = lines, 0, []

    def seek(self, tp):
        self.seeks.append((tp.topic, tp.partition, tp.offset))
        self.pos = tp.offset

    def consume(self, n):
        out = [Msg("preds", 0, o, self.lines[o])
               for o in range(self.pos, min(self.pos + n, len(self.lines)))]
        self.pos += len(out)
        return out

    def consumer_group_metadata(self):
        return None


class Producer:
    def __init__(self):
        self.sent = []

    def begin_transaction(self):
        pass

    def produce(self, topic, value, key):
        self.sent.append((topic, value))

    def poll(self, _):
        pass

    def send_offsets_to_transaction(self, offsets, meta, timeout):
        self.offsets = {(o.topic, o.partition): o.offset for o in offsets}

    def commit_transaction(self, timeout):
        pass


def worker(lines):
    spec = load_spec_text(SPEC)
    w = Worker(spec, settings_for(spec), Letters(), threading.Event(), partitions=1,
               topics=TOPICS, producer=Producer())
    w.consumer = Log(lines)
    w.adopt(0, None)
    return w


def run(w, batches):
    for n in batches:
        w._fold(w.consumer.consume(n))


def partials(w):
    return [decode_partial(v) for t, v in w.producer.sent if t == TOPICS["partials"]]


def test_the_worker_sets_the_message_at_fault_aside_and_goes_on(boom):
    good = [line(i) for i in range(200)]
    lines = [*good[:77], line(77, "boom-1"), *good[77:]]
    w = worker(lines)
    run(w, [50])
    w.checkpoint()
    run(w, [20, 60])  # the second batch (offsets 70-129) holds the record at fault
    assert w.consumer.seeks == [("preds", 0, 50)]  # back to the checkpoint, nothing lost
    assert w.suspects == {("preds", 0): (70, 129)}
    run(w, [60, 60, 60, 60])
    w.checkpoint()
    assert w.consumer.pos == len(lines) and w.producer.offsets == {("preds", 0): len(lines)}
    assert w.isolated == 2  # offsets 50-109 and 110-169 overlap the suspect range
    assert w.suspects == {}
    rows = w.dead_letter.rows
    assert [(r[0], r[1], r[3]) for r in rows] == [("processing_error", lines[77], "preds")]
    assert rows[0][2] == "preds:0@77: RuntimeError: injected fault"

    # the partials' counters are the single process's: 200 records, one processing_error
    counts: dict[str, Counter] = {}
    for p in partials(w):
        for kind, values in p.counts.items():
            counts.setdefault(kind, Counter()).update(dict(values))
    assert counts["bad"] == Counter({"processing_error": 1})
    assert sum(counts["records"].values()) == 200
    # and the fold holds what a fold of the good records alone holds (the last window)
    want = PartitionFold(load_spec_text(SPEC), "preds:0")
    want.process(Chunk("lines", good[:50], partition="preds:0"))
    want.take_partial()
    want.process(Chunk("lines", good[50:], partition="preds:0"))
    want.take_partial()
    got_state, want_state = w.folds[0].state(), want.state()
    assert got_state["tracker"]["bad"] == [["processing_error", 1]]
    assert got_state["pipelines"] == want_state["pipelines"]
    assert got_state["tracker"]["records"] == want_state["tracker"]["records"]


def test_a_fault_that_is_not_in_the_messages_stops_the_worker(monkeypatch):
    def broken(self, batch, starts, **kw):
        raise OSError("disk full")

    monkeypatch.setattr(pipeline.ModelPipeline, "_accumulate", broken)
    w = worker([line(i) for i in range(8)])
    run(w, [8])  # fails: rolled back, sought back
    assert w.consumer.seeks == [("preds", 0, 0)]
    with pytest.raises(NotTheMessages, match="fault is not in the messages"):
        run(w, [8])
