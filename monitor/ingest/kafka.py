"""Kafka source: a consumer-group member whose offsets live in the checkpoint, not in Kafka.

Offsets and the daemon state are saved together (:class:`monitor.state.checkpoint.Checkpoint`);
on assignment each partition starts at its checkpointed offset (passed to ``assign``), on
revocation the revoked partitions' progress is checkpointed before the callback returns, on
loss the in-memory progress since the last checkpoint is rolled back. Kafka offset commits
are made after each checkpoint for lag monitoring only. See docs/kafka.md.

>>> s = parse_kafka_settings({"bootstrap_servers": "127.0.0.1:9092", "group_id": "sw",
...                           "topics": {"predictions": "preds"},
...                           "config": {"sasl.password": "${PW}"}}, env={"PW": "hunter2"})
>>> s.topics, s.config["sasl.password"], mask(s.config)["sasl.password"]
({'predictions': 'preds'}, 'hunter2', '***')
"""

from __future__ import annotations

import gc
import itertools
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from monitor.ingest.deadletter import DeadLetter
from monitor.ingest.decode import Reject
from monitor.ingest.source import Chunk, SourceError

log = logging.getLogger("slicewatch.kafka")

SETTINGS_KEYS = ("bootstrap_servers", "group_id", "topics", "dead_letter_topic", "consume_batch",
                 "consume_timeout", "checkpoint_interval", "checkpoint_records", "instance_id",
                 "feature_delay", "close_worker", "static_membership", "internal_prefix",
                 "config")
STREAMS = ("predictions", "labels", "features")
SECRET_WORDS = ("password", "secret", "key", "token")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
EXPANDABLE_PREFIXES = ("sasl.", "ssl.")

# Throughput-minded fetch defaults; any of them can be overridden under ``config:``.
FETCH_DEFAULTS = {
    "fetch.min.bytes": 65536,
    "fetch.wait.max.ms": 100,
    "max.partition.fetch.bytes": 4 << 20,
    "queued.min.messages": 100_000,
    "queued.max.messages.kbytes": 65536,  # bound on the prefetch queue: 64 MiB
    "auto.offset.reset": "earliest",
}
# Set by the source; the exactly-once design depends on them.
# enable.partition.eof: end-of-partition events tell which partitions are caught up (idle),
# so they do not hold the watermark back (monitor.core.windows)
FIXED = {"enable.auto.commit": False, "enable.auto.offset.store": False,
         "enable.partition.eof": True}


@dataclass(frozen=True)
class KafkaSettings:
    """``source.kafka`` of a spec, validated (see docs/kafka.md)."""

    bootstrap_servers: str
    group_id: str
    topics: dict[str, str]  # stream → topic
    dead_letter_topic: str | None = None
    consume_batch: int = 20000
    consume_timeout: float = 0.5
    checkpoint_interval: float = 5.0  # seconds
    checkpoint_records: int = 200_000  # or after this many records, whichever first
    instance_id: str = "default"
    feature_delay: float = 60.0  # seconds of event time a prediction waits for its features
    close_worker: bool = True  # window-close drift tests in a worker process
    static_membership: bool = True  # group.instance.id = instance_id: quick restarts
    max_record_bytes: int = 1 << 20  # source.max_record_bytes: a longer message is too_large
    internal_prefix: str | None = None  # --role worker/evaluator topics (docs/scaling.md)
    config: dict[str, Any] = field(default_factory=dict)  # librdkafka pass-through, resolved
    secrets: tuple[str, ...] = field(default=(), repr=False)  # values read from ${ENV}

    def __repr__(self) -> str:
        return (f"KafkaSettings(bootstrap_servers={self.bootstrap_servers!r}, "
                f"group_id={self.group_id!r}, topics={self.topics!r}, "
                f"config={mask(self.config, self._expanded_keys())!r})")

    def _expanded_keys(self) -> list[str]:
        return [k for k, v in self.config.items() if v in self.secrets]

    def scrub(self, text: str) -> str:
        """``text`` without any secret of these settings (:func:`scrub`)."""
        return scrub(text, self.config, self.secrets)

    def stream_of(self) -> dict[str, str]:
        """topic → stream."""
        return {t: s for s, t in self.topics.items()}


def mask(config: Mapping[str, Any], expanded: Iterable[str] = ()) -> dict[str, Any]:
    """``config`` with the values of secret-looking keys (password, secret, key, token) and of
    keys in ``expanded`` (read from the environment) replaced by ``***`` — the only form in
    which settings are ever logged."""
    expanded = set(expanded)
    return {k: ("***" if k in expanded or any(w in k.lower() for w in SECRET_WORDS) else v)
            for k, v in config.items()}


def scrub(text: str, config: Mapping[str, Any], secrets: Iterable[str] = ()) -> str:
    """``text`` with every secret value of ``config`` and every value of ``secrets`` (those
    read from the environment) replaced by ``***``."""
    values = [v for k, v in config.items()
              if any(w in k.lower() for w in SECRET_WORDS) and isinstance(v, str)]
    for v in sorted({*values, *secrets}, key=len, reverse=True):
        if len(v) >= 3:
            text = text.replace(v, "***")
    return text


class EnvNotAllowed(SourceError):
    """``${NAME}`` in a setting where it is not expanded; ``path`` locates it in the spec."""

    def __init__(self, path: tuple[str, ...], message: str):
        self.path = path
        super().__init__(f"{'.'.join(path)}: {message}")


def _substitute(path: tuple[str, ...], value: Any, env: Mapping[str, str],
                expanded: set[str], *, allowed: bool) -> Any:
    """``value`` with each ``${NAME}`` replaced by ``env[NAME]`` (the values used are added
    to ``expanded``); :class:`EnvNotAllowed` where the setting is not ``allowed`` to read the
    environment."""
    if not isinstance(value, str) or not _ENV_REF.search(value):
        return value
    where = ".".join(path)
    if not allowed:
        raise EnvNotAllowed(path, "${...} is read from the environment only in the security "
                            "settings (config.sasl.*, config.ssl.*) and bootstrap_servers, so "
                            "that no environment value can reach a metric label, a log line "
                            "or a dead letter; write the value itself")

    def one(m: re.Match) -> str:
        name = m.group(1)
        if name not in env:
            raise SourceError(f"{where}: environment variable {name} is not set "
                              f"(referenced as ${{{name}}})")
        expanded.add(env[name])
        return env[name]

    return _ENV_REF.sub(one, value)


def parse_kafka_settings(d: Mapping[str, Any] | None,
                         env: Mapping[str, str] | None = None) -> KafkaSettings:
    """Validate ``source.kafka``; ``${VAR}`` in a security setting (``config.sasl.*``,
    ``config.ssl.*``) or in ``bootstrap_servers`` is read from ``env`` (default
    ``os.environ``), anywhere else it is refused (:class:`EnvNotAllowed`). Raises
    :class:`SourceError` naming the key and the bound."""
    env = os.environ if env is None else env
    where = "source.kafka"
    expanded: set[str] = set()
    base = ("source", "kafka")
    if not isinstance(d, Mapping) or not d:
        raise SourceError(f"{where} must be a mapping with at least bootstrap_servers, "
                          "group_id and topics.predictions")
    unknown = sorted(set(d) - set(SETTINGS_KEYS))
    if unknown:
        raise SourceError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; "
                          f"expected {', '.join(SETTINGS_KEYS)}")

    def text(key: str, required: bool = False) -> str | None:
        v = d.get(key)
        if v is None:
            if required:
                raise SourceError(f"{where}.{key} is required")
            return None
        if isinstance(v, list) and key == "bootstrap_servers":
            v = ",".join(str(x) for x in v)
        if not isinstance(v, str) or not v.strip():
            raise SourceError(f"{where}.{key} must be a non-empty string; got {v!r}")
        # bootstrap servers may come from the environment but are not secret (logged)
        return _substitute((*base, key), v, env, set(), allowed=key == "bootstrap_servers")

    def number(key: str, default, lo: float, hi: float, kind=float):
        v = d.get(key, default)
        ok = isinstance(v, int | float) and not isinstance(v, bool) and (
            kind is float or float(v).is_integer())
        if not ok or not lo <= v <= hi:
            what = "an integer" if kind is int else "a number"
            raise SourceError(f"{where}.{key} must be {what} in [{lo}, {hi}]; got {v!r}")
        return kind(v)

    def flag(key: str, default: bool) -> bool:
        v = d.get(key, default)
        if not isinstance(v, bool):
            raise SourceError(f"{where}.{key} must be true or false; got {v!r}")
        return v

    topics_raw = d.get("topics")
    if not isinstance(topics_raw, Mapping) or not topics_raw.get("predictions"):
        raise SourceError(f"{where}.topics must be a mapping with at least 'predictions' "
                          f"(and optionally 'labels', 'features'); got {topics_raw!r}")
    topics: dict[str, str] = {}
    for stream, topic in topics_raw.items():
        if stream not in STREAMS:
            raise SourceError(f"{where}.topics: unknown stream {stream!r}; expected one of "
                              f"{', '.join(STREAMS)}")
        if not isinstance(topic, str) or not topic:
            raise SourceError(f"{where}.topics.{stream} must be a topic name; got {topic!r}")
        topics[stream] = _substitute((*base, "topics", stream), topic, env, expanded,
                                     allowed=False)
    if len(set(topics.values())) != len(topics):
        raise SourceError(f"{where}.topics: each stream needs its own topic; got {topics}")

    config_raw = d.get("config") or {}
    if not isinstance(config_raw, Mapping):
        raise SourceError(f"{where}.config must be a mapping of librdkafka settings")
    config: dict[str, Any] = {}
    for k, v in config_raw.items():
        if not isinstance(v, str | int | float | bool):
            raise SourceError(f"{where}.config.{k} must be a string, number or boolean")
        if k in FIXED or k in ("bootstrap.servers", "group.id"):
            raise SourceError(f"{where}.config.{k} is set by slicewatch (exactly-once "
                              "checkpoints) or by its own key; remove it")
        config[str(k)] = _substitute((*base, "config", str(k)), v, env, expanded,
                                     allowed=str(k).startswith(EXPANDABLE_PREFIXES))
    strategy = str(config.get("partition.assignment.strategy", ""))
    if "cooperative" in strategy or str(config.get("group.protocol", "classic")) != "classic":
        raise SourceError(f"{where}.config: incremental rebalancing (cooperative-sticky, "
                          "group.protocol=consumer) is not supported; the checkpoint handover "
                          "relies on eager rebalances (range or roundrobin)")

    return KafkaSettings(
        bootstrap_servers=text("bootstrap_servers", True), group_id=text("group_id", True),
        topics=topics, dead_letter_topic=text("dead_letter_topic"),
        consume_batch=number("consume_batch", 20000, 1, 1_000_000, int),
        consume_timeout=number("consume_timeout", 0.5, 0.001, 60.0),
        checkpoint_interval=number("checkpoint_interval", 5.0, 0.01, 86400.0),
        checkpoint_records=number("checkpoint_records", 200_000, 1, 10**12, int),
        instance_id=text("instance_id") or "default",
        feature_delay=number("feature_delay", 60.0, 0.0, 86400.0 * 7),
        close_worker=flag("close_worker", True),
        static_membership=flag("static_membership", True),
        internal_prefix=text("internal_prefix"), config=config,
        secrets=tuple(sorted(expanded)))


def consumer_config(s: KafkaSettings) -> dict[str, Any]:
    """The librdkafka configuration of the consumer (pass-through settings win over the
    fetch defaults; the exactly-once settings win over everything). With static membership
    (default) ``group.instance.id`` is the instance id (unless set under ``config:``): an
    instance restarted after a crash gets its partitions back at once instead of waiting
    ``session.timeout.ms`` for its old self to be dropped from the group."""
    static = {"group.instance.id": s.instance_id} if s.static_membership else {}
    return {**FETCH_DEFAULTS, **static, **s.config, "bootstrap.servers": s.bootstrap_servers,
            "group.id": s.group_id, **FIXED}


def producer_config(s: KafkaSettings) -> dict[str, Any]:
    """Producer settings for the dead-letter topic: connection and security settings only."""
    consumer_only = ("fetch.", "max.partition", "queued.", "auto.offset", "session.timeout",
                     "heartbeat", "max.poll", "partition.assignment", "group.", "isolation",
                     "check.crcs", "auto.commit", "enable.auto", "enable.partition")
    conf = {k: v for k, v in s.config.items() if not k.startswith(consumer_only)}
    return {**conf, "bootstrap.servers": s.bootstrap_servers, "linger.ms": 50}


def key_of(topic: str, partition: int) -> str:
    return f"{topic}:{partition}"


def split_key(key: str) -> tuple[str, int]:
    topic, _, part = key.rpartition(":")
    return topic, int(part)


# ------------------------------------------------------------------------------ dead letter

class KafkaDeadLetter(DeadLetter):
    """Dead-letter output that also produces each record to a Kafka topic, with the reason,
    detail and origin in headers (``slicewatch.reason`` …). At-least-once: a replay after a
    crash may produce a record again."""

    def __init__(self, path: str | None, settings: KafkaSettings, **kw: Any):
        super().__init__(path, **kw)  # max_bytes: the local file's rotation size
        from confluent_kafka import Producer

        self.topic = settings.dead_letter_topic
        self._settings = settings
        self.throttle = Throttle(log, settings.scrub)
        self.producer = Producer({**producer_config(settings), **client_logging(
            settings, "dead-letter producer: ", self.throttle)}) if self.topic else None
        self.produced = 0

    def write(self, reason: str, record: Any, *, detail: str = "", origin: str = "",
              **place: int) -> None:
        super().write(reason, record, detail=detail, origin=origin, **place)
        if self.producer is None:
            return
        if isinstance(record, bytes):
            value = record
        elif isinstance(record, str):
            value = record.encode()
        else:
            value = orjson.dumps(record, default=repr, option=orjson.OPT_SERIALIZE_NUMPY)
        headers = [("slicewatch.reason", reason.encode()),
                   ("slicewatch.detail", detail[:1000].encode()),
                   ("slicewatch.origin", origin.encode())]
        headers += [(f"slicewatch.{k}", str(v).encode()) for k, v in place.items()]
        while True:
            try:
                self.producer.produce(self.topic, value=value, headers=headers)
                break
            except BufferError:  # local queue full: let deliveries drain
                self.producer.poll(0.1)
        self.produced += 1
        self.producer.poll(0)

    def flush(self) -> None:
        super().flush()
        if self.producer is not None:
            left = self.producer.flush(30)
            if left:
                log.warning("kafka: %d dead-letter message(s) not yet delivered to %s",
                            left, self.topic)

    def close(self) -> None:
        self.flush()
        super().close()


# ----------------------------------------------------------------------------------- source

@dataclass
class Batch:
    """One ``consume`` call: its chunks and the next offset of each partition it touched."""

    chunks: list[Chunk]
    positions: dict[str, int]
    count: int


MANY_RUNS = 64  # partition runs in one batch beyond which rows are grouped at once


def _partition_rows(msgs: Sequence[Any], topics: bool) -> list[list[Sequence[int]]]:
    """The rows of ``msgs`` by partition (and topic, when ``topics``: more than one is
    consumed), partitions in the order they first appear, each's rows in order: as the
    ``range`` of each run of consecutive messages of it, or (many short runs) one list.

    >>> from confluent_kafka import Message
    >>> _partition_rows([Message(topic="a", partition=p) for p in (0, 0, 1, 0)], False)
    [[range(0, 2), range(3, 4)], [range(2, 3)]]
    """
    from confluent_kafka import Message

    if not msgs:
        return []
    keys = np.fromiter(map(Message.partition, msgs), np.int64, len(msgs))
    if topics:
        code: dict[str, int] = {}
        names = list(map(Message.topic, msgs))
        keys += np.fromiter(map(lambda t: code.setdefault(t, len(code)), names), np.int64,
                            len(msgs)) << 32
    starts = np.flatnonzero(keys[1:] != keys[:-1]) + 1
    if len(starts) < MANY_RUNS:
        spans: dict[int, list[Sequence[int]]] = {}
        for a, b in itertools.pairwise([0, *starts.tolist(), len(msgs)]):
            spans.setdefault(int(keys[a]), []).append(range(a, b))
        return list(spans.values())
    uniq, first = np.unique(keys, return_index=True)  # interleaved partitions
    return [[np.flatnonzero(keys == k).tolist()] for k in uniq[np.argsort(first)]]


class KafkaSource:
    """A consumer-group member that starts partitions at checkpointed offsets.

    ``checkpoint`` is a :class:`monitor.state.checkpoint.Checkpoint`; ``state()`` returns the
    daemon state to save with the offsets; ``restore(state_or_None)`` rolls the daemon back
    to a saved state (None: to its initial state). The caller loops::

        batch = source.poll()
        for chunk in batch.chunks: daemon.process(chunk)
        source.advance(batch)
        if source.due(): source.save()
    """

    def __init__(self, settings: KafkaSettings, checkpoint, *, state: Callable[[], dict],
                 restore: Callable[[dict | None], None], stop: threading.Event | None = None,
                 retry_max: float = 30.0):
        self.settings = settings
        self.checkpoint = checkpoint
        self.state = state
        self.restore = restore
        self.stop = stop or threading.Event()
        self.retry_max = retry_max
        self.positions: dict[str, int] = {}  # owned partition → next offset to process
        self.assigned: set[str] = set()
        self.messages: dict[str, int] = {t: 0 for t in settings.topics.values()}
        self.lag: dict[tuple[str, int], int] = {}
        self.idle: set[str] = set()  # owned partitions caught up (end-of-partition seen)
        self.suspects: dict[str, tuple[int, int]] = {}  # partition → offsets that failed
        self._abandoned = False
        self.saves = 0
        self._streams = settings.stream_of()
        self._since_save = 0
        self._last_save = time.monotonic()
        self._writer: ThreadPoolExecutor | None = None  # background checkpoint writes
        self._writing: tuple[Future, dict[str, int]] | None = None
        self.consumer = None

    # ---- start ---------------------------------------------------------------------------
    def start(self) -> bool:
        """Create the consumer, wait (retrying with backoff, one log line per try) until the
        brokers answer and every topic exists, then subscribe. False if stopped first."""
        from confluent_kafka import Consumer, KafkaException

        self._logging = client_logging(self.settings, "")
        conf = {**consumer_config(self.settings), **self._logging}
        try:
            self.consumer = Consumer(conf)
        except KafkaException as exc:
            raise SourceError("kafka: invalid consumer settings: "
                              f"{self.settings.scrub(str(exc))}") from None
        delay = 1.0
        while not self.stop.is_set():
            problem = self._missing()
            if problem is None:
                break
            log.warning("kafka: %s; retrying in %.0f s", problem, delay)
            self.stop.wait(delay)
            delay = min(delay * 2, self.retry_max)
        if self.stop.is_set():
            return False
        self.consumer.subscribe(list(self.settings.topics.values()), on_assign=self._on_assign,
                                on_revoke=self._on_revoke, on_lost=self._on_lost)
        log.info("kafka: consuming %s as %s/%s from %s",
                 ", ".join(self.settings.topics.values()), self.settings.group_id,
                 self.settings.instance_id, self.settings.bootstrap_servers)
        return True

    def _missing(self) -> str | None:
        """Why consuming cannot start yet (brokers unreachable, topic missing), or None."""
        from confluent_kafka import KafkaException

        bootstrap = self.settings.bootstrap_servers
        try:
            md = self.consumer.list_topics(timeout=5)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else exc
            return (f"cannot reach the brokers at {bootstrap} "
                    f"({self.settings.scrub(str(getattr(err, 'str', lambda: err)()))})")
        missing = [t for t in self.settings.topics.values()
                   if t not in md.topics or md.topics[t].error is not None]
        if missing:
            return (f"topic(s) {', '.join(map(repr, missing))} do not exist on {bootstrap} "
                    "(create them, or fix source.kafka.topics)")
        return None

    # ---- the loop ------------------------------------------------------------------------
    def poll(self) -> Batch:
        """Consume up to ``consume_batch`` messages (rebalance callbacks run in here).

        The garbage collector is paused meanwhile: the messages (tracked objects, 20 000 a
        batch) are gone when it resumes, their payloads kept as bytes; otherwise they set off
        collections, full ones among them (the daemon's long-lived objects scanned again)."""
        enabled = gc.isenabled()
        gc.disable()
        try:
            return self._consume()
        finally:
            if enabled:
                gc.enable()

    def _consume(self) -> Batch:
        from confluent_kafka import KafkaError, KafkaException, Message

        s = self.settings
        msgs = self.consumer.consume(s.consume_batch, s.consume_timeout)
        eof: dict[str, int] = {}
        if any(map(Message.error, msgs)):
            msgs = self._drop_errors(msgs, KafkaError, eof)
        # per message only C loops (map of Message's methods); Python work per partition run
        values = list(map(Message.value, msgs))
        if None in values:  # tombstones decode as JSON null (then dead-lettered)
            values = [b"null" if v is None else v for v in values]
        limit = s.max_record_bytes
        if values and max(map(len, values)) > limit:
            values = [v if len(v) <= limit else too_large(v, limit) for v in values]
        # position: the offset after each message, to find a message that makes processing
        # fail (see kafka_run.consume)
        after = (np.fromiter(map(Message.offset, msgs), np.int64, len(msgs)) + 1).tolist()
        streams = self._streams
        # one chunk per (topic, partition), in arrival order: the watermark follows each
        # partition's event time (monitor.core.windows); a partition whose messages come in
        # several runs gets one chunk of them all, in order
        chunks, positions = [], {}
        for rows in _partition_rows(msgs, len(streams) > 1):
            m = msgs[rows[0][0]]
            t, key = m.topic(), key_of(m.topic(), m.partition())
            if len(rows) == 1 and len(rows[0]) == len(msgs):
                lines, mine = values, after
            else:
                lines, mine = [], []
                for r in rows:
                    if isinstance(r, range):
                        lines += values[r.start:r.stop]
                        mine += after[r.start:r.stop]
                    else:
                        lines += map(values.__getitem__, r)
                        mine += map(after.__getitem__, r)
            chunks.append(Chunk("lines", lines, streams[t], t, mine, key, place=("offset", mine)))
            positions[key] = mine[-1]
            self.messages[t] += len(lines)
        self._track_idle(positions, eof)
        self._refresh_lag(KafkaException, positions)
        return Batch(chunks, positions, len(values))

    def _track_idle(self, positions: dict[str, int], eof: dict[str, int]) -> None:
        """A partition is idle (caught up) from an end-of-partition event at or past its
        position until its next message."""
        for key in positions:
            if eof.get(key, -1) < positions[key]:
                self.idle.discard(key)
        for key, end in eof.items():
            if key in self.assigned and end >= positions.get(key, self.positions.get(key, 0)):
                self.idle.add(key)

    def live_partitions(self) -> tuple[set[str], set[str]]:
        """``(owned partitions of the predictions topic, those of them caught up)``: what
        holds the watermark back (:class:`monitor.core.windows.PartitionView`)."""
        topic = self.settings.topics["predictions"]
        live = {k for k in self.assigned if split_key(k)[0] == topic}
        return live, self.idle & live

    def _drop_errors(self, msgs: list, KafkaError, eof: dict[str, int]) -> list:
        """The messages that carry no error; fatal errors raise, others are logged;
        end-of-partition events (not errors) are noted in ``eof`` (key → end offset)."""
        keep = []
        for m in msgs:
            err = m.error()
            if err is None:
                keep.append(m)
            elif err.fatal():
                raise SourceError(f"kafka: fatal consumer error: "
                                  f"{self.settings.scrub(err.str())}")
            elif err.code() == KafkaError._PARTITION_EOF:
                eof[key_of(m.topic(), m.partition())] = m.offset()
            else:
                self._logging["error_cb"](err)
        return keep

    # ---- a batch whose processing failed ---------------------------------------------------
    def recover(self, chunk: Chunk, exc: BaseException) -> None:
        """Processing ``chunk`` raised: roll the daemon and the positions back to the last
        checkpoint (nothing of the failed batch is kept, nothing is saved) and mark the
        chunk's offsets as suspect; the loop replays them isolating the message(s) at
        fault (:meth:`suspect`)."""
        after = chunk.position or []
        if after:
            lo, hi = after[0] - 1, after[-1]
            old = self.suspects.get(chunk.partition)
            self.suspects[chunk.partition] = (min(lo, old[0]), max(hi, old[1])) if old \
                else (lo, hi)
        log.warning("kafka: processing %d message(s) of %s%s failed (%s); rolled back to the "
                    "last checkpoint, replaying them one piece at a time to set the message(s) "
                    "at fault aside (dead letter: processing_error)", len(chunk.payload),
                    chunk.partition, f" at offsets {after[0] - 1}-{after[-1] - 1}" if after
                    else "", self.settings.scrub(_describe_error(exc)))
        self._rollback(set())

    def suspect(self, chunk: Chunk) -> bool:
        """Whether ``chunk`` holds offsets whose processing failed before (then it is folded
        piece by piece); a chunk past the suspect range clears it."""
        bounds = self.suspects.get(chunk.partition)
        if bounds is None or not chunk.position:
            return False
        first, last = chunk.position[0] - 1, chunk.position[-1] - 1
        if first > bounds[1]:
            del self.suspects[chunk.partition]
            return False
        return last >= bounds[0]

    def abandon(self) -> None:
        """The loop failed beyond recovery: from now on nothing is saved (the state may hold
        part of a batch), not at close nor on revocation."""
        self._abandoned = True

    def advance(self, batch: Batch) -> None:
        """Mark ``batch`` as folded into the daemon state (call after processing it)."""
        for key, offset in batch.positions.items():
            if key in self.assigned:
                self.positions[key] = offset
        self._since_save += batch.count

    def due(self, windows_closed: bool = False) -> bool:
        """A checkpoint is due: windows closed, or the interval or record budget is spent."""
        return bool(self._since_save) and (
            windows_closed or self._since_save >= self.settings.checkpoint_records
            or time.monotonic() - self._last_save >= self.settings.checkpoint_interval)

    def save(self, *, wait: bool = True) -> bool:
        """Checkpoint offsets of owned partitions + daemon state; then commit the offsets to
        Kafka (async, lag monitoring only). If another instance claimed a partition
        meanwhile (we were a zombie), roll back to our last checkpoint instead.

        ``wait=False``: the state is taken and encoded now, the database write runs in a
        background thread; its outcome (fencing included) is taken by the next save,
        rebalance, rollback or :meth:`close` (:meth:`settle`). A crash meanwhile leaves the
        previous checkpoint: offsets and state are written together or not at all."""
        from monitor.state.checkpoint import encode_state

        if self._abandoned or not self.settle():
            return False
        positions = dict(self.positions)
        blob = encode_state(self.state())
        self._since_save = 0
        self._last_save = time.monotonic()
        if wait:
            return self._written(positions, lambda: self.checkpoint.save_encoded(positions, blob))
        if self._writer is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="slicewatch-checkpoint")
        self._writing = (self._writer.submit(self.checkpoint.save_encoded, positions, blob),
                         positions)
        return True

    def settle(self) -> bool:
        """Wait for the checkpoint write in flight (if any) and take its outcome: False if it
        was fenced (and the source rolled back)."""
        if self._writing is None:
            return True
        future, positions = self._writing
        self._writing = None
        return self._written(positions, future.result)

    def _written(self, positions: dict[str, int], write: Callable[[], Any]) -> bool:
        from monitor.state.checkpoint import Fenced

        try:
            write()
        except Fenced as exc:
            log.warning("kafka: %s; rolling back to the last checkpoint", exc)
            self._rollback(set(exc.lost))
            return False
        self.saves += 1
        self._commit(positions)
        return True

    def close(self) -> None:
        """Checkpoint, then leave the group (the revoke callback checkpoints once more)."""
        self.settle()
        if self._writer is not None:
            self._writer.shutdown()
            self._writer = None
        if self.consumer is None:
            return
        if self.assigned:
            self.save()
        try:
            self.consumer.close()
        except Exception as exc:
            log.warning("kafka: closing the consumer: %s", self.settings.scrub(str(exc)))
        self.consumer = None

    # ---- rebalance callbacks (run inside consume) --------------------------------------------
    def _on_assign(self, consumer, partitions) -> None:
        from confluent_kafka import OFFSET_STORED, TopicPartition

        self.settle()
        keys = [key_of(p.topic, p.partition) for p in partitions]
        saved = self.checkpoint.claim(keys)
        start = []
        for p, key in zip(partitions, keys, strict=True):
            offset = saved.get(key, OFFSET_STORED)
            if key in saved:
                self.positions[key] = offset
            start.append(TopicPartition(p.topic, p.partition, offset))
        self.assigned = set(keys)
        self.idle -= self.assigned
        consumer.assign(start)
        log.info("kafka: assigned %s", _describe(keys, saved))

    def _on_revoke(self, consumer, partitions) -> None:
        keys = {key_of(p.topic, p.partition) for p in partitions}
        if self.positions:
            self.save()
        self.settle()
        for key in keys:
            self.positions.pop(key, None)
        self.assigned -= keys
        self.idle -= keys
        consumer.unassign()
        log.info("kafka: revoked %s", ", ".join(sorted(keys)) or "nothing")

    def _on_lost(self, consumer, partitions) -> None:
        keys = {key_of(p.topic, p.partition) for p in partitions}
        log.warning("kafka: lost %s without a clean revoke; dropping progress since the last "
                    "checkpoint", ", ".join(sorted(keys)))
        self._rollback(keys)
        consumer.unassign()

    def _rollback(self, lost: set[str]) -> None:
        """Back to the last checkpoint: daemon state and positions; drop ``lost`` partitions
        and restart the ones we keep at their checkpointed offsets."""
        from confluent_kafka import TopicPartition

        self.settle()
        loaded = self.checkpoint.load()
        positions, state = loaded if loaded is not None else ({}, None)
        self.restore(state)
        self._since_save = 0
        keep = self.assigned - lost
        self.assigned = keep
        self.idle = set()  # back at checkpointed offsets: not caught up
        self.positions = {k: v for k, v in positions.items() if k in keep}
        if self.consumer is not None and keep:
            from confluent_kafka import OFFSET_STORED

            self.consumer.assign([TopicPartition(*split_key(k),
                                                 self.positions.get(k, OFFSET_STORED))
                                  for k in sorted(keep)])

    # ---- lag, commits, errors ----------------------------------------------------------------
    def _commit(self, positions: dict[str, int]) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        owned = [TopicPartition(*split_key(k), o) for k, o in positions.items()
                 if k in self.assigned]
        if not owned or self.consumer is None:
            return
        try:
            self.consumer.commit(offsets=owned, asynchronous=True)
        except KafkaException as exc:  # lag reporting only: never fatal
            log.debug("kafka: offset commit skipped: %s", exc)

    def _refresh_lag(self, KafkaException, batch: dict[str, int]) -> None:
        """Lag per owned partition, after every consume (the watermarks are librdkafka's
        cached ones: no request): high watermark − next offset to process, counting the batch
        just consumed; a caught-up partition (end-of-partition seen) has lag 0."""
        from confluent_kafka import TopicPartition

        lag = {}
        for key in self.assigned:
            topic, part = split_key(key)
            pos = max(self.positions.get(key, -1), batch.get(key, -1))
            if key in self.idle:
                lag[(topic, part)] = 0
                continue
            try:
                _low, high = self.consumer.get_watermark_offsets(TopicPartition(topic, part),
                                                                 cached=True)
            except KafkaException:
                continue
            if high is not None and high >= 0 and pos >= 0:
                lag[(topic, part)] = max(high - pos, 0)
        self.lag = lag

    def metrics_snapshot(self) -> dict:
        """Plain data for :func:`lag_metrics` (safe to read from another thread)."""
        return {"lag": dict(self.lag), "messages": dict(self.messages)}


def _describe_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:300]}"


def _describe(keys: list[str], saved: dict[str, int]) -> str:
    if not keys:
        return "nothing"
    return ", ".join(f"{k}@{saved[k]}" if k in saved else f"{k}@committed/reset"
                     for k in sorted(keys))


_TIMING = re.compile(r" \(after \d+ms in state \w+\)")  # varies between identical failures


class Throttle:
    """Repeated identical log lines (librdkafka's, error callbacks'): the first is logged, the
    same line again within ``interval`` seconds is counted, not logged, and the next one logged
    says how many were suppressed. ``suppressed`` is the total. Texts are scrubbed first. At
    most ``kept`` distinct lines are remembered: beyond, the oldest is forgotten (its next
    occurrence is logged again, with no count).

    >>> t = Throttle(logging.getLogger("doctest.throttle"), kept=2)
    >>> for text in ("a", "a", "b", "c", "a"):
    ...     t.emit(logging.INFO, text)
    >>> t.suppressed, sorted(t._seen)
    (1, ['a', 'c'])
    """

    def __init__(self, logger: logging.Logger, scrub: Callable[[str], str] = str,
                 interval: float = 10.0, kept: int = 256):
        self.logger, self.scrub, self.interval, self.kept = logger, scrub, interval, kept
        self.suppressed = 0
        self._seen: dict[str, tuple[float, int]] = {}  # key → (last logged at, suppressed)
        self._lock = threading.Lock()

    def emit(self, level: int, text: str) -> None:
        text = self.scrub(text)
        key = _TIMING.sub("", text)
        now = time.monotonic()
        with self._lock:
            at, skipped = self._seen.get(key, (-float("inf"), 0))
            if now - at < self.interval:
                self._seen[key] = (at, skipped + 1)
                self.suppressed += 1
                return
            self._seen.pop(key, None)
            self._seen[key] = (now, 0)  # the newest last: the first key is the oldest
            if len(self._seen) > self.kept:
                del self._seen[next(iter(self._seen))]
        more = f" ({skipped} identical line(s) suppressed)" if skipped else ""
        self.logger.log(level, "%s%s", text, more)


class _RateLimitedLogger(logging.LoggerAdapter):
    """librdkafka's own log lines (``logger=`` of a client), through a :class:`Throttle`
    instead of raw ``%3|…`` lines on stderr."""

    def __init__(self, throttle: Throttle):
        super().__init__(throttle.logger, {})
        self.throttle = throttle

    def log(self, level, msg, *args, **kwargs):
        text = msg % args if args else str(msg)
        self.throttle.emit(level, f"kafka: librdkafka: {text}")


def client_logging(settings: KafkaSettings, what: str,
                   throttle: Throttle | None = None) -> dict[str, Any]:
    """The ``error_cb`` and ``logger`` settings of a confluent-kafka client: both go to
    ``slicewatch.kafka`` through one :class:`Throttle`, scrubbed of secrets, ``what`` naming
    the client in error lines (e.g. ``dead-letter producer: ``)."""
    throttle = throttle or Throttle(log, settings.scrub)

    def on_error(err) -> None:
        throttle.emit(logging.WARNING,
                      f"kafka: {what}{err.str() if hasattr(err, 'str') else err}")

    return {"error_cb": on_error, "logger": _RateLimitedLogger(throttle)}


def lag_metrics(snapshot: Mapping[str, Any]) -> Iterator[Metric]:
    """Prometheus families from :meth:`KafkaSource.metrics_snapshot`:
    ``slicewatch_kafka_consumer_lag{topic,partition}`` (messages behind the high watermark)
    and ``slicewatch_kafka_messages_total{topic}`` (messages consumed by this process).

    >>> [m.name for m in lag_metrics({"lag": {("p", 0): 3}, "messages": {"p": 10}})]
    ['slicewatch_kafka_consumer_lag', 'slicewatch_kafka_messages']
    """
    lag = GaugeMetricFamily("slicewatch_kafka_consumer_lag", "Messages between this "
                            "consumer's checkpointed position and the partition's high "
                            "watermark.", labels=["topic", "partition"])
    for (topic, part), value in sorted(snapshot.get("lag", {}).items()):
        lag.add_metric([topic, str(part)], value)
    yield lag
    total = CounterMetricFamily("slicewatch_kafka_messages", "Messages consumed by this "
                                "process, by topic.", labels=["topic"])
    for topic, value in sorted(snapshot.get("messages", {}).items()):
        total.add_metric([topic], value)
    yield total


def too_large(value: bytes, limit: int) -> Reject:
    """A message over ``max_record_bytes``: rejected (``too_large``) with its first 4 KiB."""
    return Reject("too_large", value[:4096].decode("utf-8", "replace"),
                  f"Kafka message of {len(value)} bytes, longer than max_record_bytes ({limit})")
