"""A worker restores a partition's fold only from the residual state committed with the
group's current offsets (issue #14; found by the 600k kill -9 test). ``<prefix>-worker-state``
is read up to its last stable offset, which an open transaction of a killed worker (until
the broker aborts it) or the markers of a commit just made hold back: a restore could read
an older state than the offsets the consumer resumes from, and the pending predictions and
early labels folded in between were lost (their labels were counted ``orphaned``, the
windows' labelled metrics fell short of one process's). No broker here: the states and the
committed offsets are fakes."""

from __future__ import annotations

import threading

import pytest
from confluent_kafka import TopicPartition

from monitor.runtime.kafka_run import settings_for
from monitor.scale import kafka_roles
from monitor.scale.kafka_roles import OFFSETS_KEY, Worker
from monitor.scale.worker import ScaleError
from monitor.state.encoding import decode_state, encode_state
from slices.load import load_spec_text
from tests.faults.test_kafka_batch_failures import Letters, line
from tests.unit.test_scale_worker_faults import SPEC, TOPICS, Log, Producer

KEY = b"preds:0"


class Group:
    """The consumer as the assignment callback sees it: the group's committed offsets."""

    def __init__(self, offsets: dict[str, int]):
        self.offsets, self.assigned = offsets, None

    def committed(self, partitions, timeout=None):
        return [TopicPartition(tp.topic, tp.partition, self.offsets.get(tp.topic, -1001))
                for tp in partitions]

    def assign(self, partitions):
        self.assigned = partitions


def worker(lines=()) -> Worker:
    spec = load_spec_text(SPEC)
    w = Worker(spec, settings_for(spec), Letters(), threading.Event(), partitions=1,
               topics=TOPICS, producer=Producer())
    w.consumer = Log(list(lines))
    return w


def states_of(w: Worker) -> list[bytes]:
    return [v for t, v in w.producer.sent if t == TOPICS["worker_state"]]


@pytest.fixture
def two_states():
    """A worker's two checkpoints of partition 0: after 50 and after 100 records."""
    w = worker([line(i) for i in range(100)])
    w.adopt(0, None)
    w._fold(w.consumer.consume(50))
    w.checkpoint()
    w._fold(w.consumer.consume(50))
    w.checkpoint()
    return states_of(w)


def reads(monkeypatch, answers: list[dict[bytes, bytes]]) -> list[int]:
    """``read_latest`` answers these in turn (the last one from then on)."""
    calls: list[int] = []

    def read_latest(settings, topic):
        calls.append(1)
        return answers[min(len(calls), len(answers)) - 1]

    monkeypatch.setattr(kafka_roles, "read_latest", read_latest)
    return calls


def test_a_state_records_the_offsets_committed_with_it(two_states):
    first, second = (decode_state(b) for b in two_states)
    assert first[OFFSETS_KEY] == {"preds": 50} and second[OFFSETS_KEY] == {"preds": 100}


def test_a_state_behind_the_committed_offsets_is_read_again(monkeypatch, two_states):
    old, new = two_states
    calls = reads(monkeypatch, [{KEY: old}, {KEY: old}, {KEY: new}])
    w = worker()
    w._on_assign(group := Group({"preds": 100}), [TopicPartition("preds", 0)])
    assert len(calls) == 3
    assert w.folds[0].seq == 2  # the state of the second checkpoint, not the first
    assert w.covered == {0: {"preds": 100}} and group.assigned is not None


def test_restored_offsets_carry_over_to_the_next_state(monkeypatch, two_states):
    """A topic not read since the restore keeps the offset the restored state covered."""
    reads(monkeypatch, [{KEY: two_states[1]}])
    w = worker()
    w._on_assign(Group({"preds": 100}), [TopicPartition("preds", 0)])
    w.checkpoint()
    assert decode_state(states_of(w)[-1])[OFFSETS_KEY] == {"preds": 100}


def test_a_state_that_never_matches_stops_the_worker(monkeypatch, two_states):
    reads(monkeypatch, [{KEY: two_states[0]}])
    monkeypatch.setattr(kafka_roles, "STATE_WAIT", 0.0)
    with pytest.raises(ScaleError, match=r"preds:0 \(state at \{'preds': 50\}, group at "
                                         r"\{'preds': 100\}\)"):
        worker()._on_assign(Group({"preds": 100}), [TopicPartition("preds", 0)])


def test_no_state_and_no_offsets_yet_is_a_fresh_start(monkeypatch):
    calls = reads(monkeypatch, [{}])
    w = worker()
    w._on_assign(Group({}), [TopicPartition("preds", 0)])
    assert len(calls) == 1 and w.folds[0].seq == 0


def test_a_state_of_an_older_build_without_offsets_is_taken(monkeypatch, two_states):
    state = decode_state(two_states[0])
    del state[OFFSETS_KEY]
    calls = reads(monkeypatch, [{KEY: encode_state(state)}])
    w = worker()
    w._on_assign(Group({"preds": 100}), [TopicPartition("preds", 0)])
    assert len(calls) == 1 and w.folds[0].seq == 1
