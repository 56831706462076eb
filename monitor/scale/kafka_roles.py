"""``slicewatch run --role worker|evaluator``: the Kafka loops of the scaled roles.

Worker: one consumer-group member on the prediction (and label, feature) topics, with a
transactional producer. Each prediction partition it owns has a
:class:`~monitor.scale.worker.PartitionFold`; labels and features of the same partition
index go to it (co-partitioned topics, range assignment; checked). At every checkpoint, in
**one transaction**: each fold's partial to ``<prefix>-partials``, each fold's residual
state (pending predictions, early labels, vocabularies, watermark) to the compacted
``<prefix>-worker-state`` keyed by source partition, and the consumed offsets. A fold is
restored from ``<prefix>-worker-state`` when its partition is assigned; a worker holds no
local durable state.

Evaluator: consumes ``<prefix>-partials`` (one partition, read_committed) in the group
``<group_id>-evaluator``: the one that owns the partition evaluates, another stands by. On
assignment it fences earlier evaluators (``init_transactions`` with the shared
transactional id), restores its state (merged open windows, watermarks, counters, the alert
lifecycle, and the partials offset it covers) from the compacted ``<prefix>-evaluator`` and
reads on from there; it checkpoints that state with the offset in one transaction. See
docs/scaling.md.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from monitor.ingest.kafka import (
    KafkaDeadLetter,
    KafkaSettings,
    client_logging,
    consumer_config,
    key_of,
    producer_config,
)
from monitor.ingest.source import Chunk, SourceError
from monitor.runtime.daemon import ResultListener, RunSummary
from monitor.runtime.exit_codes import UsageError
from monitor.runtime.kafka_run import (
    _log_to,
    feature_join_of,
    fold_isolating,
    settings_for,
)
from monitor.runtime.wiring import (
    close_outputs,
    finish_outputs,
    install_signal_handlers,
    outputs,
    serve_run,
)
from monitor.scale.evaluator import Evaluator
from monitor.scale.partials import (
    REJECT_REASONS,
    PartialError,
    decode_partial,
    encode_partial,
)
from monitor.scale.worker import PartitionFold, ScaleError, check_scalable
from monitor.state.encoding import StateError, decode_state, encode_state
from slices.spec import Spec

log = logging.getLogger("slicewatch.kafka")

ROLES = ("all", "worker", "evaluator")
INTERNAL_MAX_BYTES = 64 << 20  # one partial / state message (topic max.message.bytes)
PARTIALS_RETENTION_MS = 7 * 24 * 3600 * 1000  # deltas: kept a week (evaluator downtime bound)
TXN_TIMEOUT_MS = 15_000  # a dead member's open transaction aborts after this at the latest
EVALUATOR_KEY = b"evaluator"
OFFSETS_KEY = "kafka_offsets"  # in a worker state: the offsets committed with it
STATE_WAIT = 2 * TXN_TIMEOUT_MS / 1000 + 30  # s: for a worker state to match the offsets


def _offsets_in(state: dict) -> dict[str, int] | None:
    """The offsets (topic → next offset) a decoded worker state was committed with; None
    for a state written before they were recorded."""
    got = state.get(OFFSETS_KEY)
    return None if got is None else {str(t): int(o) for t, o in got.items()}


def prefix_of(settings: KafkaSettings) -> str:
    """The internal topics' prefix: ``source.kafka.internal_prefix``, else
    ``<group_id>-slicewatch``."""
    return settings.internal_prefix or f"{settings.group_id}-slicewatch"


def internal_topics(prefix: str) -> dict[str, str]:
    return {"partials": f"{prefix}-partials", "worker_state": f"{prefix}-worker-state",
            "evaluator": f"{prefix}-evaluator"}


def _admin_config(settings: KafkaSettings) -> dict[str, Any]:
    conf = producer_config(settings)
    conf.pop("linger.ms", None)
    return conf


def _admin(settings: KafkaSettings):
    """An admin client whose librdkafka logs and errors go through ``slicewatch.kafka``
    (:func:`~monitor.ingest.kafka.client_logging`; served by its ``poll``)."""
    from confluent_kafka.admin import AdminClient

    return AdminClient({**_admin_config(settings),
                        **client_logging(settings, "admin client: ")})


def ensure_topics(settings: KafkaSettings) -> dict[str, str]:
    """Create the internal topics if missing (one partition each; the partials with
    delete retention — they are deltas, compaction would drop some — the two state
    topics compacted); returns them by role."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import NewTopic

    topics = internal_topics(prefix_of(settings))
    big = {"max.message.bytes": str(INTERNAL_MAX_BYTES)}
    wanted = [NewTopic(topics["partials"], 1, -1, config={
                  **big, "cleanup.policy": "delete",
                  "retention.ms": str(PARTIALS_RETENTION_MS)}),
              NewTopic(topics["worker_state"], 1, -1, config={**big, "cleanup.policy": "compact"}),
              NewTopic(topics["evaluator"], 1, -1, config={**big, "cleanup.policy": "compact"})]
    admin = _admin(settings)
    try:
        for topic, future in admin.create_topics(wanted, request_timeout=30).items():
            try:
                future.result(60)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise SourceError(f"kafka: cannot create the internal topic {topic}: "
                                      f"{settings.scrub(str(exc))}") from None
    finally:
        admin.poll(0)  # its log lines
    return topics


def source_partitions(settings: KafkaSettings, *, timeout: float = 30.0) -> int:
    """The prediction topic's partition count, after checking that the label and feature
    topics have the same (co-partitioned by prediction id: docs/scaling.md); waits for the
    topics to exist. :class:`ScaleError` on a mismatch."""
    admin = _admin(settings)
    deadline = time.monotonic() + timeout
    while True:
        md = admin.list_topics(timeout=10)
        admin.poll(0)  # its log lines
        counts = {stream: len(md.topics[t].partitions) for stream, t in settings.topics.items()
                  if t in md.topics and md.topics[t].error is None}
        if len(counts) == len(settings.topics):
            break
        if time.monotonic() > deadline:
            missing = [t for s, t in settings.topics.items() if s not in counts]
            raise SourceError(f"kafka: topic(s) {', '.join(missing)} do not exist on "
                              f"{settings.bootstrap_servers}")
        time.sleep(1.0)
    n = counts["predictions"]
    odd = {s: c for s, c in counts.items() if c != n}
    if odd:
        detail = ", ".join(f"{settings.topics[s]} ({s}) has {c}" for s, c in odd.items())
        raise ScaleError(f"co-partitioning: the prediction topic {settings.topics['predictions']}"
                         f" has {n} partitions but {detail}; labels and features join their "
                         "predictions in the worker that owns the prediction's partition, so "
                         "every topic needs the same partition count and the same key "
                         "(the prediction id) — see docs/scaling.md")
    return n


def read_latest(settings: KafkaSettings, topic: str) -> dict[bytes, bytes]:
    """The last committed value of every key of a compacted internal topic."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    conf = {**consumer_config(settings), "group.id": f"slicewatch-restore-{uuid.uuid4()}",
            "isolation.level": "read_committed", **client_logging(settings, "state reader: ")}
    conf.pop("group.instance.id", None)
    consumer = Consumer(conf)
    try:
        md = consumer.list_topics(topic, timeout=10)
        parts = list(md.topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        latest: dict[bytes, bytes] = {}
        done: set[int] = set()
        deadline = time.monotonic() + 120
        while len(done) < len(parts):
            if time.monotonic() > deadline:
                raise SourceError(f"kafka: reading {topic} did not reach its end in 120 s")
            for m in consumer.consume(1000, 0.5):
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        done.add(m.partition())
                    continue
                if m.value() is None:
                    latest.pop(m.key(), None)
                else:
                    latest[m.key()] = m.value()
        return latest
    finally:
        consumer.close()


def _producer(settings: KafkaSettings, transactional_id: str):
    from confluent_kafka import Producer

    return Producer({**producer_config(settings), "transactional.id": transactional_id,
                     "transaction.timeout.ms": TXN_TIMEOUT_MS, "linger.ms": 5,
                     "compression.type": "zstd", "message.max.bytes": INTERNAL_MAX_BYTES,
                     "enable.idempotence": True,
                     **client_logging(settings, "transactional producer: ")})


# ------------------------------------------------------------------------------- the worker
class Worker:
    """The worker loop (see the module docstring).

    A chunk whose processing raises does not stop the worker: its partition's fold goes back
    to its state at the last checkpoint (kept encoded in memory), that partition's topics are
    sought back to the first offset read since then, and the offsets of the failed chunk are
    marked suspect; read again, they are folded piece by piece
    (:func:`~monitor.runtime.kafka_run.fold_isolating`): the message(s) at fault are
    dead-lettered as ``processing_error`` and counted in the partial's reject counters."""

    def __init__(self, spec: Spec, settings: KafkaSettings, dead_letter, stop, *,
                 partitions: int | None = None, topics: dict[str, str] | None = None,
                 producer=None):
        """``partitions``, ``topics``, ``producer``: found / created on the cluster when
        not given (tests pass them)."""
        self.spec, self.settings, self.dead_letter, self.stop = spec, settings, dead_letter, stop
        self.partitions = partitions if partitions is not None else source_partitions(settings)
        self.topics = topics if topics is not None else ensure_topics(settings)
        self.pred_topic = settings.topics["predictions"]
        self.streams = settings.stream_of()
        self.folds: dict[int, PartitionFold] = {}
        self.saved: dict[int, bytes] = {}  # each fold's encoded state at its last checkpoint
        self.covered: dict[int, dict[str, int]] = {}  # topic → offset each saved state covers
        self.positions: dict[tuple[str, int], int] = {}  # next offset to consume
        self.first: dict[tuple[str, int], int] = {}  # first offset read since the checkpoint
        self.suspects: dict[tuple[str, int], tuple[int, int]] = {}  # offsets that failed
        self.idle: set[int] = set()  # owned prediction partitions caught up (end seen)
        self.behind = False  # a full consume batch since last caught up: reading a backlog
        self.records = 0
        self.checkpoints = 0
        self.isolated = 0  # chunks folded piece by piece
        self.since = 0
        self.last = time.monotonic()
        self.producer = producer if producer is not None else _producer(
            settings, f"{prefix_of(settings)}-worker-{settings.instance_id}")
        self.consumer = None

    def run(self) -> None:
        from confluent_kafka import Consumer

        self.producer.init_transactions(60)  # aborts what a killed predecessor left open
        conf = {**consumer_config(self.settings), "isolation.level": "read_committed",
                "partition.assignment.strategy": "range",
                **client_logging(self.settings, "worker consumer: ")}
        self.consumer = Consumer(conf)
        self.consumer.subscribe(list(self.settings.topics.values()), on_assign=self._on_assign,
                                on_revoke=self._on_revoke, on_lost=self._on_lost)
        log.info("kafka: worker %s consuming %s (%d partitions) as %s",
                 self.settings.instance_id, ", ".join(self.settings.topics.values()),
                 self.partitions, self.settings.group_id)
        s = self.settings
        try:
            while not self.stop.is_set():
                msgs = self.consumer.consume(s.consume_batch, s.consume_timeout)
                self._fold(msgs)
                if self.since >= s.checkpoint_records or self.drained() or (
                        time.monotonic() - self.last >= s.checkpoint_interval):
                    self.checkpoint()
                if self.caught_up():
                    self.behind = False
            self.checkpoint()
        finally:
            self.consumer.close()  # the revoke callback checkpoints what is left

    def _fold(self, msgs: list) -> None:
        from confluent_kafka import KafkaError

        runs: dict[tuple[str, int], list[bytes]] = {}
        offsets: dict[tuple[str, int], list[int]] = {}
        eof: dict[int, int] = {}  # prediction partition → its end offset
        self.behind |= len(msgs) >= self.settings.consume_batch
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    if m.topic() == self.pred_topic:
                        eof[m.partition()] = m.offset()
                elif err.fatal():
                    raise SourceError(f"kafka: fatal consumer error: "
                                      f"{self.settings.scrub(err.str())}")
                else:
                    log.warning("kafka: %s", self.settings.scrub(err.str()))
                continue
            key = (m.topic(), m.partition())
            runs.setdefault(key, []).append(m.value() if m.value() is not None else b"null")
            offsets.setdefault(key, []).append(m.offset())
        failed: set[int] = set()
        for (topic, part), lines in runs.items():
            if part in failed:
                continue  # sought back: read again after the rollback
            fold = self.folds.get(part)
            if fold is None:
                raise ScaleError(f"co-partitioning: {topic}:{part} is assigned to this worker "
                                 f"but {self.pred_topic}:{part} is not (range assignment "
                                 "expected; see docs/scaling.md)")
            key = (topic, part)
            after = [o + 1 for o in offsets[key]]
            chunk = Chunk("lines", lines, self.streams[topic], topic, after, key_of(topic, part))
            if self._suspect(key, after):
                fold_isolating(fold, chunk)  # NotTheMessages (not in the messages) stops
                self.isolated += 1
            else:
                fold.begin()  # its dead letters go out only if the whole chunk folds
                try:
                    fold.process(chunk)
                except Exception as exc:
                    fold.rollback()
                    self._recover(part, key, after, exc)
                    failed.add(part)
                    continue
                fold.commit()
            if topic == self.pred_topic:
                self.idle.discard(part)
            self.first.setdefault(key, after[0] - 1)
            self.positions[key] = after[-1]
            self.records += len(lines)
            self.since += len(lines)
        # caught up from an end-of-partition event at or past the position (the event
        # follows the partition's last messages, possibly in the same batch) until the next
        # message; a partition sought back is not
        for part, end in eof.items():
            if part in self.folds and part not in failed and end >= self.positions.get(
                    (self.pred_topic, part), 0):
                self.idle.add(part)

    def caught_up(self) -> bool:
        """Whether every prediction partition the worker owns is at its end."""
        return bool(self.folds) and self.idle >= self.folds.keys()

    def drained(self) -> bool:
        """Whether the worker has just caught up with a backlog: a full consume batch since
        it was last caught up, records folded since its last checkpoint, and every
        prediction partition it owns at its end. It then checkpoints at once rather than on
        the timer, so the end of a backlog (a restart's, a rebalance's) reaches the
        evaluator without waiting up to ``checkpoint_interval``; a worker that keeps up
        (batches never full) or stays behind (never at the end) checkpoints as before."""
        return self.behind and self.since > 0 and self.caught_up()

    def _suspect(self, key: tuple[str, int], after: list[int]) -> bool:
        """Whether the chunk of ``key`` at offsets ``after`` - 1 holds offsets whose
        processing failed before; a chunk past the suspect range clears it."""
        bounds = self.suspects.get(key)
        if bounds is None:
            return False
        first, last = after[0] - 1, after[-1] - 1
        if first > bounds[1]:
            del self.suspects[key]
            return False
        return last >= bounds[0]

    def _recover(self, part: int, key: tuple[str, int], after: list[int],
                 exc: BaseException) -> None:
        """Processing a chunk of ``part`` raised: its fold goes back to the last checkpoint,
        its topics are sought back to the first offset read since, the chunk's offsets are
        marked suspect (read again, they are folded piece by piece)."""
        from confluent_kafka import TopicPartition

        lo, hi = after[0] - 1, after[-1] - 1
        old = self.suspects.get(key)
        self.suspects[key] = (min(lo, old[0]), max(hi, old[1])) if old else (lo, hi)
        log.warning("kafka: processing %d message(s) of %s at offsets %d-%d failed (%s: %s); "
                    "partition %d rolled back to its last checkpoint, replaying them one "
                    "piece at a time to set the message(s) at fault aside (dead letter: "
                    "processing_error)", len(after), key_of(*key), lo, hi,
                    type(exc).__name__, self.settings.scrub(str(exc))[:300], part)
        old_fold = self.folds[part]
        fold = self._new_fold(part)
        fold.load_state(decode_state(self.saved[part]))
        old_fold.close()
        self.folds[part] = fold
        self.idle.discard(part)
        rewind = {k: o for k, o in self.first.items() if k[1] == part}
        rewind.setdefault(key, lo)  # nothing of key folded since the checkpoint
        for k, offset in sorted(rewind.items()):
            self.consumer.seek(TopicPartition(k[0], k[1], offset))
            self.positions.pop(k, None)
            self.first.pop(k, None)

    def _new_fold(self, part: int) -> PartitionFold:
        return PartitionFold(self.spec, key_of(self.pred_topic, part),
                             dead_letter=self.dead_letter,
                             feature_join=feature_join_of(self.spec, self.settings))

    def checkpoint(self) -> None:
        """One transaction: every fold's partial and residual state, and the offsets."""
        from confluent_kafka import TopicPartition

        self.last = time.monotonic()
        if not self.folds:
            return
        self.dead_letter.flush()
        saved: dict[int, bytes] = {}
        p = self.producer
        p.begin_transaction()
        covered: dict[int, dict[str, int]] = {}
        for part, fold in sorted(self.folds.items()):
            partial = fold.take_partial(idle=part in self.idle)
            key = fold.source.encode()
            p.produce(self.topics["partials"], encode_partial(partial), key)
            covered[part] = {**self.covered.get(part, {}),
                             **{t: o for (t, q), o in self.positions.items() if q == part}}
            residual = fold.residual_state()
            residual[OFFSETS_KEY] = covered[part]  # the offsets committed with it
            saved[part] = encode_state(residual)
            p.produce(self.topics["worker_state"], saved[part], key)
            p.poll(0)
        offsets = [TopicPartition(t, part, o) for (t, part), o in self.positions.items()]
        if offsets:
            p.send_offsets_to_transaction(offsets, self.consumer.consumer_group_metadata(), 60)
        p.commit_transaction(60)
        self.saved.update(saved)
        self.covered.update(covered)
        self.first = {}
        self.checkpoints += 1
        self.since = 0

    def _on_assign(self, consumer, partitions) -> None:
        mine = {p.partition for p in partitions if p.topic == self.pred_topic}
        for p in partitions:
            if p.partition not in mine:
                raise ScaleError(f"co-partitioning: {p.topic}:{p.partition} was assigned "
                                 f"without {self.pred_topic}:{p.partition} (set "
                                 "partition.assignment.strategy=range; docs/scaling.md)")
        states = self._read_states(consumer, mine) if mine else {}
        for part in sorted(mine):
            self.adopt(part, states.get(key_of(self.pred_topic, part).encode()))
        self.positions = {k: v for k, v in self.positions.items() if k[1] in mine}
        self.idle &= mine
        consumer.assign(partitions)
        log.info("kafka: assigned %s", ", ".join(sorted(key_of(p.topic, p.partition)
                                                         for p in partitions)) or "nothing")

    def adopt(self, part: int, blob: bytes | None) -> None:
        """Fold partition ``part`` from its committed residual state ``blob`` (None: none
        committed yet)."""
        fold = self._new_fold(part)
        covered: dict[str, int] = {}
        if blob is not None:
            try:
                state = decode_state(blob)
                fold.load_state(state)
                covered = _offsets_in(state) or {}
            except (StateError, KeyError, ValueError, TypeError, AttributeError) as exc:
                raise ScaleError(f"worker state of {fold.source} in "
                                 f"{self.topics['worker_state']} cannot be read: "
                                 f"{exc}") from None
        else:
            blob = encode_state(fold.residual_state())
        self.folds[part] = fold
        self.saved[part] = blob
        self.covered[part] = covered

    def _read_states(self, consumer, parts: set[int]) -> dict[bytes, bytes]:
        """The committed residual states of ``parts``, read until each one covers exactly
        the group's committed offsets of its partition's topics (they are written in one
        transaction). ``<prefix>-worker-state`` is read up to its last stable offset: an open
        transaction of a killed worker (until it is aborted) or the markers of a commit just
        made (written after ``commit_transaction`` returns) hold that back, and an older
        state with newer offsets would lose what was folded in between (pending predictions
        and early labels of records never read again)."""
        from confluent_kafka import TopicPartition

        topics = sorted(set(self.settings.topics.values()))
        asked = [TopicPartition(t, p) for p in sorted(parts) for t in topics]
        deadline = time.monotonic() + STATE_WAIT
        while True:
            states = read_latest(self.settings, self.topics["worker_state"])
            got = consumer.committed(asked, timeout=60)
            offsets = {(tp.topic, tp.partition): tp.offset for tp in got if tp.offset >= 0}
            behind = []
            for part in sorted(parts):
                blob = states.get(key_of(self.pred_topic, part).encode())
                want = {t: o for (t, p), o in offsets.items() if p == part}
                try:
                    have = _offsets_in(decode_state(blob)) if blob is not None else {}
                except (StateError, AttributeError, ValueError, TypeError):
                    have = None  # unreadable: adopt() says so
                if have is not None and have != want:
                    behind.append(f"{key_of(self.pred_topic, part)} (state at {have}, "
                                  f"group at {want})")
            if not behind:
                return states
            if time.monotonic() > deadline:
                raise ScaleError(f"worker state in {self.topics['worker_state']} does not "
                                 f"match the group's committed offsets after {STATE_WAIT:g} "
                                 f"s: {'; '.join(behind)}")
            log.info("kafka: worker state behind the committed offsets for %s; reading it "
                     "again (a transaction not yet aborted or marked)", "; ".join(behind))
            time.sleep(0.5)

    def _on_revoke(self, consumer, partitions) -> None:
        self.checkpoint()
        self._drop()
        consumer.unassign()
        log.info("kafka: revoked %s", ", ".join(sorted(key_of(p.topic, p.partition)
                                                        for p in partitions)) or "nothing")

    def _on_lost(self, consumer, partitions) -> None:
        log.warning("kafka: partitions lost without a clean revoke: their progress since "
                    "the last checkpoint is dropped (another worker reads it again)")
        self._drop()
        consumer.unassign()

    def _drop(self) -> None:
        for fold in self.folds.values():
            fold.close()
        self.folds, self.positions, self.idle = {}, {}, set()
        self.saved, self.first, self.suspects, self.covered = {}, {}, {}, {}


# ---------------------------------------------------------------------------- the evaluator
UPGRADE_REASONS = ("bootstrap_dropped", "bootstrap_mismatched", "bootstrap_incomplete",
                   "bootstrap_missing")


def evaluator_events(core: Evaluator) -> dict[str, int]:
    """The evaluator's counters by ``reason`` label (a fixed set: ``rejected_<reason>`` per
    :data:`~monitor.scale.partials.REJECT_REASONS`, then the upgrade counters)."""
    out = {f"rejected_{r}": int(core.rejected[r]) for r in REJECT_REASONS}
    out.update({r: int(core.upgrade[r]) for r in UPGRADE_REASONS})
    return out


class EvaluatorLoop:
    """The evaluator loop (see the module docstring)."""

    def __init__(self, spec: Spec, settings: KafkaSettings, listeners, stop, *,
                 alerts=None):
        """``alerts``: the :class:`alerts.engine.AlertEngine` of the alert stage, if any;
        its lifecycle is checkpointed with the evaluator's state and restored at takeover."""
        self.settings, self.stop = settings, stop
        self.alerts = alerts
        n = source_partitions(settings)
        self.topics = ensure_topics(settings)
        self.pred_topic = settings.topics["predictions"]
        self.core = Evaluator(spec, listeners=listeners,
                              sources=[key_of(self.pred_topic, i) for i in range(n)])
        self.initial = encode_state(self.core.state())
        self.owned = False
        self.offset = 0  # next partials offset to merge
        self.dirty = False
        self.bad = 0
        self.producer = None
        self.consumer = None
        self.last = time.monotonic()
        self.checkpoints = 0

    @property
    def daemon(self):
        return self.core.daemon

    def run(self) -> None:
        from confluent_kafka import Consumer

        conf = {**consumer_config(self.settings), "group.id": f"{self.settings.group_id}"
                "-evaluator", "isolation.level": "read_committed",
                **client_logging(self.settings, "evaluator consumer: ")}
        conf.pop("group.instance.id", None)  # the standby must take over at once
        self.consumer = Consumer(conf)
        self.consumer.subscribe([self.topics["partials"]], on_assign=self._on_assign,
                                on_revoke=self._on_revoke, on_lost=self._on_lost)
        log.info("kafka: evaluator on %s as %s-evaluator", self.topics["partials"],
                 self.settings.group_id)
        s = self.settings
        try:
            while not self.stop.is_set():
                msgs = self.consumer.consume(s.consume_batch, s.consume_timeout)
                closed = self._merge(msgs)
                if self.owned and (closed or (self.dirty and time.monotonic() - self.last
                                              >= s.checkpoint_interval)):
                    self.checkpoint()
            if self.owned:
                self.checkpoint()
        finally:
            self.consumer.close()

    def _merge(self, msgs: list) -> bool:
        if not self.owned:
            return False
        for m in msgs:
            if m.error() is not None:
                continue
            self.offset = m.offset() + 1
            self.dirty = True
            try:
                self.core.add(decode_partial(m.value() or b""))
            except PartialError as exc:
                self._reject(m, exc)
        if not msgs:
            return False
        return bool(self.core.advance())

    def _reject(self, m, exc: PartialError) -> None:
        """A partial that does not decode or merge: skipped (it changed nothing), counted by
        reason, logged at warning the first time of each reason (later ones at debug)."""
        self.bad += 1
        self.core.rejected[exc.reason] += 1
        key = m.key()
        where = (f"{m.topic()}:{m.partition()}@{m.offset()} key "
                 f"{key[:80].decode('utf-8', 'replace') if key else None!r}")
        level = logging.WARNING if self.core.rejected[exc.reason] == 1 else logging.DEBUG
        log.log(level, "kafka: partial at %s rejected (%s; further ones of this reason "
                "logged at debug, counted in slicewatch_kafka_evaluator_events_total): %s",
                where, exc.reason, exc)

    def collect(self, _snapshot: Any = None) -> Iterator[Any]:
        """``slicewatch_kafka_evaluator_events_total{reason}``: partials rejected
        (``rejected_<reason>``) and the upgrade counters (``bootstrap_*``), every reason
        exported from the start."""
        from prometheus_client.core import CounterMetricFamily

        fam = CounterMetricFamily("slicewatch_kafka_evaluator_events", "Evaluator: partials "
                                  "rejected, by reason (rejected_*), and partials of another "
                                  "version's bootstrap accumulators (bootstrap_*).",
                                  labels=["reason"])
        for reason, n in evaluator_events(self.core).items():
            fam.add_metric([reason], n)
        yield fam

    def checkpoint(self) -> None:
        from confluent_kafka import TopicPartition

        self.last = time.monotonic()
        saved = {"evaluator": self.core.state(), "offset": self.offset}
        if self.alerts is not None:
            saved["alerts"] = self.alerts.export_state()
        state = encode_state(saved)
        p = self.producer
        p.begin_transaction()
        p.produce(self.topics["evaluator"], state, EVALUATOR_KEY)
        p.send_offsets_to_transaction([TopicPartition(self.topics["partials"], 0,
                                                      self.offset)],
                                      self.consumer.consumer_group_metadata(), 60)
        p.commit_transaction(60)
        p.poll(0)  # its log lines
        self.dirty = False
        self.checkpoints += 1

    def _on_assign(self, consumer, partitions) -> None:
        from confluent_kafka import TopicPartition

        if not partitions:
            log.info("kafka: evaluator standing by")
            return
        # a new producer at every takeover: init_transactions fences the evaluator before
        # us — and fenced ours too if we were active before and another took over since
        self.producer = _producer(self.settings, f"{prefix_of(self.settings)}-evaluator")
        self.producer.init_transactions(60)
        blob = read_latest(self.settings, self.topics["evaluator"]).get(EVALUATOR_KEY)
        if blob is not None:
            saved = decode_state(blob)
            self.core.load_state(saved["evaluator"])
            self.offset = int(saved["offset"])
            if self.alerts is not None and saved.get("alerts") is not None:
                self.alerts.import_state(saved["alerts"])  # no firing alert notified again
        else:
            self.core.load_state(decode_state(self.initial))
            self.offset = 0
        consumer.assign([TopicPartition(p.topic, p.partition, self.offset)
                         for p in partitions])
        self.owned = True
        log.info("kafka: evaluator active from %s@%d", self.topics["partials"], self.offset)

    def _on_revoke(self, consumer, partitions) -> None:
        if self.owned and partitions:
            self.checkpoint()
        self._stand_by()
        consumer.unassign()

    def _on_lost(self, consumer, partitions) -> None:
        log.warning("kafka: evaluator lost the partials partition; standing by")
        self._stand_by()
        consumer.unassign()

    def _stand_by(self) -> None:
        """Not the active evaluator any more: the producer goes (the next evaluator's
        ``init_transactions`` fences it; a takeover of ours makes a new one)."""
        self.owned = False
        if self.producer is not None:
            self.producer.flush(10)
            self.producer = None


# ------------------------------------------------------------------------------- the entry
def run_role(spec: Spec, opts, role: str, *, out: TextIO | None = None,
             listeners: Iterable[ResultListener] = ()) -> RunSummary:
    """Run ``spec`` as a scaled ``role`` (``worker`` or ``evaluator``) until SIGTERM/SIGINT.
    ``opts`` is a :class:`monitor.runtime.wiring.RunOptions`."""
    out = out or sys.stdout
    _log_to(out)
    if spec.source.type != "kafka":
        raise UsageError(f"--role {role} needs source.type kafka (got {spec.source.type}); "
                         "--role all runs files and stdin")
    check_scalable(spec)
    settings = settings_for(spec)
    stop = threading.Event()
    restore = install_signal_handlers(stop)
    t0 = time.perf_counter()
    try:
        if role == "worker":
            return _run_worker(spec, settings, stop, out, t0)
        return _run_evaluator(spec, opts, settings, stop, out, listeners, t0)
    finally:
        restore()


def _run_worker(spec: Spec, settings: KafkaSettings, stop, out: TextIO,
                t0: float) -> RunSummary:
    dead_letter = KafkaDeadLetter(spec.source.dead_letter, settings,
                                  max_bytes=spec.source.dead_letter_max_bytes)
    try:
        worker = Worker(spec, settings, dead_letter, stop)
        worker.run()
        seconds = time.perf_counter() - t0
        print(f"slicewatch: worker {settings.instance_id}: {worker.records} messages in "
              f"{seconds:.1f}s ({worker.checkpoints} checkpoints)", file=out, flush=True)
        return RunSummary(worker.records, 0, 0, 0, seconds)
    finally:
        dead_letter.close()


def _run_evaluator(spec: Spec, opts, settings: KafkaSettings, stop, out: TextIO,
                   listeners: Iterable[ResultListener], t0: float) -> RunSummary:
    listeners, stage = outputs(spec, opts, out, listeners)
    loop = EvaluatorLoop(spec, settings, listeners, stop,
                         alerts=stage.engine if stage else None)
    loop.daemon.stop = stop
    collectors = (loop.collect, stage.collect) if stage else (loop.collect,)
    server = serve_run(loop.daemon, collectors, stage, out)
    try:
        loop.run()
        summary = loop.daemon.summary(time.perf_counter() - t0)
        print(f"slicewatch: evaluator: {summary.records} records, {summary.windows} windows "
              f"in {summary.seconds:.1f}s ({loop.checkpoints} checkpoints)", file=out,
              flush=True)
        finish_outputs(spec, opts, loop.daemon, listeners, summary.seconds, out)
        return summary
    finally:
        if stage:
            stage.stop()
        loop.daemon.close()
        close_outputs(listeners)
        if server:
            server.stop()

