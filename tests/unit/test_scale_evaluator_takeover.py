"""An evaluator that was active, stood by while another took over, and is assigned the
partials partition again makes a new transactional producer (issue #14; found by the 600k
kill -9 test). The other evaluator's ``init_transactions`` had fenced its old one: reusing
it failed the first checkpoint (``_FENCED``, fatal) and the takeover died. No broker here:
the producer, the consumer and the evaluator's state topic are fakes."""

from __future__ import annotations

import threading
from typing import ClassVar

import pytest
from confluent_kafka import TopicPartition

from monitor.runtime.kafka_run import settings_for
from monitor.scale import kafka_roles
from monitor.scale.kafka_roles import EvaluatorLoop
from slices.load import load_spec_text
from tests.unit.test_scale_worker_faults import SPEC, TOPICS

PARTIALS = TopicPartition(TOPICS["partials"], 0)


class Producer:
    """Transactional, fenced when a later producer of the same id calls init_transactions."""

    made: ClassVar[list[Producer]] = []

    def __init__(self):
        self.fenced = False
        self.inited = False
        self.commits = 0
        Producer.made.append(self)

    def init_transactions(self, timeout):
        for other in Producer.made:
            if other is not self:
                other.fenced = True
        self.inited = True

    def _check(self):
        assert self.inited and not self.fenced, "a fenced producer used (fatal _FENCED)"

    def begin_transaction(self):
        self._check()

    def produce(self, topic, value, key):
        self._check()

    def send_offsets_to_transaction(self, offsets, meta, timeout):
        self._check()

    def commit_transaction(self, timeout):
        self._check()
        self.commits += 1

    def flush(self, timeout=None):
        return 0

    def poll(self, timeout=None):
        return 0


class Consumer:
    def assign(self, partitions):
        self.assigned = partitions

    def unassign(self):
        self.assigned = None

    def consumer_group_metadata(self):
        return None


@pytest.fixture
def evaluators(monkeypatch):
    """A factory of evaluator loops sharing one fake transactional id and state topic."""
    Producer.made = []
    monkeypatch.setattr(kafka_roles, "source_partitions", lambda settings: 1)
    monkeypatch.setattr(kafka_roles, "ensure_topics", lambda settings: TOPICS)
    monkeypatch.setattr(kafka_roles, "_producer", lambda settings, tid: Producer())
    monkeypatch.setattr(kafka_roles, "read_latest", lambda settings, topic: {})
    spec = load_spec_text(SPEC)

    def make() -> EvaluatorLoop:
        loop = EvaluatorLoop(spec, settings_for(spec), [], threading.Event())
        loop.consumer = Consumer()
        return loop

    return make


def test_an_evaluator_active_again_after_another_took_over_checkpoints(evaluators):
    a, b = evaluators(), evaluators()
    a._on_assign(a.consumer, [PARTIALS])
    a.checkpoint()
    a._on_revoke(a.consumer, [PARTIALS])  # b joined: a checkpoints and stands by
    b._on_assign(b.consumer, [PARTIALS])  # b takes over: a's producer is fenced
    b.checkpoint()
    b._on_lost(b.consumer, [PARTIALS])  # b dies (kill -9): a is assigned again
    a._on_assign(a.consumer, [PARTIALS])
    a.checkpoint()  # raised _FENCED when a kept its first producer
    assert a.owned and not b.owned
    assert len(Producer.made) == 3 and a.producer is Producer.made[2]
    assert [p.commits for p in Producer.made] == [2, 1, 1]  # a's first: one + the revoke's


def test_a_standby_has_no_producer(evaluators):
    a = evaluators()
    a._on_assign(a.consumer, [])
    assert a.producer is None and not a.owned and Producer.made == []
