"""KafkaSource.poll splits a consumed batch into one chunk per (topic, partition), in the order
the partitions first appear, each with its messages in order and the offset after each; the
same as a plain loop over the messages, however the partitions interleave (long runs, short
runs, more runs than :data:`MANY_RUNS`), with tombstones, oversized messages and
end-of-partition events among them. No broker: the consumer returns prepared messages."""

from __future__ import annotations

import dataclasses
import gc
import random

import pytest
from confluent_kafka import KafkaError, Message

from monitor.ingest.decode import Reject
from monitor.ingest.kafka import MANY_RUNS, KafkaSource, key_of, parse_kafka_settings


class _Consumer:
    def __init__(self, msgs: list):
        self.msgs = msgs
        self.gc_enabled: bool | None = None

    def consume(self, n: int, timeout: float) -> list:
        self.gc_enabled = gc.isenabled()
        return self.msgs

    def get_watermark_offsets(self, tp, cached: bool) -> tuple[int, int]:
        return 0, 10**6


def _source(msgs: list, topics: dict[str, str]) -> KafkaSource:
    settings = parse_kafka_settings({"bootstrap_servers": "127.0.0.1:1", "group_id": "g",
                                     "topics": topics})
    src = KafkaSource(settings, None, state=dict, restore=lambda s: None)
    src.consumer = _Consumer(msgs)
    src.assigned = {key_of(t, p) for t in topics.values() for p in range(8)}
    return src


def _expected(msgs: list, streams: dict[str, str], limit: int):
    """A plain loop over the messages: (partition key, stream, payload, positions) per chunk."""
    runs: dict[tuple[str, int], tuple[list, list]] = {}
    for m in msgs:
        if m.error() is not None:
            continue
        run = runs.setdefault((m.topic(), m.partition()), ([], []))
        value = b"null" if m.value() is None else m.value()
        run[0].append(value if len(value) <= limit else ("too_large", len(value)))
        run[1].append(m.offset() + 1)
    return [(key_of(t, p), streams[t], lines, after) for (t, p), (lines, after) in runs.items()]


def _messages(n: int, parts: int, run: int, topics: list[str], seed: int) -> list:
    rng = random.Random(seed)
    offsets: dict[tuple[str, int], int] = {}
    out = []
    for i in range(n):
        t, p = topics[(i // run) % len(topics)], (i // (run * len(topics))) % parts
        o = offsets.setdefault((t, p), rng.randrange(100))
        offsets[(t, p)] = o + rng.choice((1, 1, 1, 3))  # gaps: transaction markers
        value = rng.choice((b'{"a": 1}', None, b"x" * 40))  # a tombstone, one too long
        out.append(Message(topic=t, partition=p, offset=o, value=value))
        if rng.random() < 0.01:
            out.append(Message(topic=t, partition=p, offset=o + 1,
                               error=KafkaError(KafkaError._PARTITION_EOF)))
    return out


@pytest.mark.parametrize(("parts", "run", "topics"), [
    (1, 10_000, ["p"]), (4, 50, ["p"]), (4, 1, ["p"]), (3, 2, ["p", "l"]), (2, 7, ["p", "l"])])
def test_poll_chunks_as_a_plain_loop_would(parts, run, topics):
    streams = dict(zip(topics, ["predictions", "labels"], strict=False))
    msgs = _messages(2_000, parts, run, topics, seed=parts * 100 + run)
    src = _source(msgs, {s: t for t, s in streams.items()})
    src.settings = dataclasses.replace(src.settings, max_record_bytes=20)
    batch = src.poll()
    got = [(c.partition, c.stream, [(x.reason, len(x.raw)) if isinstance(x, Reject) else x
                                     for x in c.payload], list(c.position))
           for c in batch.chunks]
    want = _expected(msgs, streams, 20)
    assert got == want
    assert all(c.origin == c.partition.rpartition(":")[0] and c.place == ("offset", c.position)
               for c in batch.chunks)  # dead letters say each message's offset
    assert batch.positions == {k: after[-1] for k, _, _, after in want}
    assert batch.count == sum(len(x[2]) for x in want) == sum(src.messages.values())
    if run == 1:
        assert len(batch.chunks) == parts * len(topics) and 2_000 // len(topics) > MANY_RUNS
    assert src.consumer.gc_enabled is False and gc.isenabled()  # paused for the consume only
