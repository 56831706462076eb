"""``--role worker`` catching up with a backlog (issue #14), without a broker: a worker that
read at least one full consume batch since its last checkpoint checkpoints as soon as every
prediction partition it owns is at its end, instead of waiting for ``checkpoint_interval``;
a worker that keeps up (batches never full) checkpoints on the timer as before. And an
end-of-partition event that arrives in the same batch as the partition's last messages
marks it caught up (it used to be cleared by those messages)."""

from __future__ import annotations

import dataclasses
import threading

import confluent_kafka
from confluent_kafka import KafkaError

from monitor.runtime.kafka_run import settings_for
from monitor.scale.kafka_roles import Worker
from slices.load import load_spec_text
from tests.faults.test_kafka_batch_failures import Letters, line
from tests.unit.test_scale_worker_faults import SPEC, TOPICS, Msg
from tests.unit.test_scale_worker_faults import Producer as FakeProducer

BATCH = 50
CATCHUP_SPEC = SPEC.replace("    topics: {predictions: preds}\n",
                            "    topics: {predictions: preds}\n"
                            f"    consume_batch: {BATCH}\n    checkpoint_interval: 3600\n"
                            "    checkpoint_records: 1000000\n")


class Eof:
    """An end-of-partition event as the consumer delivers it (offset: the end offset)."""

    def __init__(self, part: int, end: int):
        self._p, self._o = part, end

    def error(self):
        return self

    def code(self):
        return KafkaError._PARTITION_EOF

    def fatal(self):
        return False

    def topic(self):
        return "preds"

    def partition(self):
        return self._p

    def offset(self):
        return self._o


class Producer(FakeProducer):
    def init_transactions(self, timeout):
        pass


def messages(lines, lo, hi, *, eof=False):
    out = [Msg("preds", 0, o, lines[o]) for o in range(lo, hi)]
    return [*out, Eof(0, hi)] if eof else out


def make_worker(stop=None) -> Worker:
    spec = load_spec_text(CATCHUP_SPEC)
    w = Worker(spec, settings_for(spec), Letters(), stop or threading.Event(), partitions=1,
               topics=TOPICS, producer=Producer())
    w.adopt(0, None)
    w.consumer = FakeConsumer(w, threading.Event(), [])  # run() makes its own
    return w


def test_drained_after_a_backlog_and_not_while_keeping_up():
    lines = [line(i) for i in range(130)]
    w = make_worker()
    w._fold(messages(lines, 0, 50))  # a full batch: behind
    assert w.behind and not w.drained()
    w._fold(messages(lines, 50, 100))
    assert not w.drained()  # not at the end yet
    w._fold(messages(lines, 100, 120, eof=True))  # the last messages and the end, together
    assert w.idle == {0} and w.drained()
    w.checkpoint()
    assert not w.drained()  # nothing since
    w.behind = False  # as the run loop does once caught up
    # keeping up: small batches each followed by the end — the timer's business
    w._fold(messages(lines, 120, 125, eof=True))
    w._fold(messages(lines, 125, 130, eof=True))
    assert w.idle == {0} and not w.drained()
    # an end event older than the position does not mark the partition caught up
    w._fold([Eof(0, 120)])
    w.idle.clear()
    w._fold([Eof(0, 120)])
    assert w.idle == set()


class FakeConsumer:
    """Hands out ``batches`` one per ``consume``, then nothing; records how many checkpoints
    the worker had made before each call, and stops the worker after two empty calls."""

    def __init__(self, worker: Worker, stop: threading.Event, batches):
        self.worker, self.stop, self.batches = worker, stop, list(batches)
        self.seen: list[int] = []
        self.empty = 0

    def subscribe(self, topics, **callbacks):
        pass

    def consume(self, n, timeout):
        self.seen.append(self.worker.checkpoints)
        if self.batches:
            return self.batches.pop(0)
        self.empty += 1
        if self.empty >= 2:
            self.stop.set()
        return []

    def consumer_group_metadata(self):
        return None

    def close(self):
        pass


def test_the_run_loop_checkpoints_when_a_backlog_is_drained(monkeypatch):
    lines = [line(i) for i in range(120)]
    stop = threading.Event()
    w = make_worker(stop)
    fake = FakeConsumer(w, stop, [messages(lines, 0, 50), messages(lines, 50, 100),
                                  messages(lines, 100, 120, eof=True)])
    monkeypatch.setattr(confluent_kafka, "Consumer", lambda conf: fake)
    w.run()
    # checkpoint_interval is an hour: the checkpoint before the 4th consume is the drain's
    assert fake.seen == [0, 0, 0, 1, 1]
    assert w.producer.offsets == {("preds", 0): 120}


def test_a_records_checkpoint_just_before_the_end_still_drains(monkeypatch):
    """checkpoint_records reached in the backlog, then a tail shorter than a batch."""
    lines = [line(i) for i in range(110)]
    stop = threading.Event()
    w = make_worker(stop)
    w.settings = dataclasses.replace(w.settings, checkpoint_records=100)
    fake = FakeConsumer(w, stop, [messages(lines, 0, 50), messages(lines, 50, 100),
                                  messages(lines, 100, 110, eof=True)])
    monkeypatch.setattr(confluent_kafka, "Consumer", lambda conf: fake)
    w.run()
    assert fake.seen == [0, 0, 1, 2, 2]  # by records after 100, drained after 110
    assert w.producer.offsets == {("preds", 0): 110}


def test_the_run_loop_waits_for_the_timer_when_keeping_up(monkeypatch):
    lines = [line(i) for i in range(30)]
    stop = threading.Event()
    w = make_worker(stop)
    fake = FakeConsumer(w, stop, [messages(lines, 0, 10, eof=True),
                                  messages(lines, 10, 30, eof=True)])
    monkeypatch.setattr(confluent_kafka, "Consumer", lambda conf: fake)
    w.run()
    assert fake.seen == [0, 0, 0, 0]  # only the checkpoint at stop
    assert w.checkpoints == 1 and w.producer.offsets == {("preds", 0): 30}
