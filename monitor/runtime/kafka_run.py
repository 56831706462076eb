"""Wiring for ``slicewatch run`` on a Kafka source: consume → daemon → checkpoint → commit.

The loop folds each consumed batch into the daemon, marks its offsets as processed, and
checkpoints (offsets + daemon state, one SQLite transaction) when windows closed or the
interval / record budget is spent. SIGTERM/SIGINT: checkpoint, leave the group, exit.
Results of a window are this instance's part of it (see docs/kafka.md).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from collections.abc import Iterable
from contextlib import closing
from dataclasses import replace
from typing import TextIO

from monitor.ingest.feature_join import FeatureJoin, feature_join_for
from monitor.ingest.kafka import (
    EnvNotAllowed,
    KafkaDeadLetter,
    KafkaSettings,
    KafkaSource,
    lag_metrics,
    parse_kafka_settings,
)
from monitor.ingest.source import Chunk, SourceError
from monitor.runtime.daemon import Daemon, ResultListener, RunSummary
from monitor.runtime.wiring import (
    close_outputs,
    finish_outputs,
    install_signal_handlers,
    outputs,
    report_rejects,
    serve_run,
)
from monitor.state.checkpoint import Checkpoint, load_checkpointed
from slices.errors import Problem, SlicewatchError, SpecError
from slices.spec import Spec
from slices.yamlpos import load_text

log = logging.getLogger("slicewatch.kafka")


def checkpoint_for(spec: Spec, settings: KafkaSettings) -> Checkpoint:
    """The spec's checkpoint database, opened for this instance."""
    if not spec.checkpoint:
        raise SourceError("source.type kafka needs a checkpoint database: set 'checkpoint: "
                          "PATH' in the spec (offsets and window state are saved there)")
    return Checkpoint(spec.checkpoint, owner=settings.instance_id)


def settings_for(spec: Spec) -> KafkaSettings:
    """``source.kafka`` of ``spec``, validated; a ``${NAME}`` where the environment is not
    read is a :class:`SpecError` located in the spec file (exit 2)."""
    try:
        return replace(parse_kafka_settings(spec.source.kafka),
                       max_record_bytes=spec.source.max_record_bytes)
    except EnvNotAllowed as exc:
        line, column = 1, 1
        try:
            with open(spec.file, encoding="utf-8") as fh:
                line, column = load_text(fh.read(), spec.file).positions.value(exc.path)
        except (OSError, SlicewatchError):
            pass
        message = str(exc).split(": ", 1)[1]
        raise SpecError([Problem(spec.file, line, column, ".".join(exc.path), message)]) \
            from None


def feature_join_of(spec: Spec, settings: KafkaSettings) -> FeatureJoin | None:
    """The daemon's feature join when features come on their own topic, else None."""
    if not settings.topics.get("features"):
        return None
    return feature_join_for(spec, settings.feature_delay)


def run_kafka(spec: Spec, opts, *, out: TextIO | None = None,
              listeners: Iterable[ResultListener] = ()) -> RunSummary:
    """Run ``spec`` (already with command-line overrides applied) on its Kafka source until
    SIGTERM/SIGINT. ``opts`` is a :class:`monitor.runtime.wiring.RunOptions`."""

    out = out or sys.stdout
    _log_to(out)
    settings = settings_for(spec)
    checkpoint = checkpoint_for(spec, settings)
    checkpoint.acquire(socket.gethostname(), os.getpid())
    listeners, stage = outputs(spec, opts, out, listeners)
    dead_letter = KafkaDeadLetter(spec.source.dead_letter, settings,
                                  max_bytes=spec.source.dead_letter_max_bytes)
    daemon = Daemon(spec, dead_letter=dead_letter,
                    listeners=listeners, close_in_worker=settings.close_worker,
                    feature_join=feature_join_of(spec, settings))
    initial = daemon.state()
    loaded = checkpoint.load()
    if loaded is not None:
        load_checkpointed(daemon, loaded[1], checkpoint.path)
        print(f"slicewatch: resumed {settings.instance_id} from checkpoint #{checkpoint.seq} "
              f"({len(loaded[0])} partition offset(s))", file=out, flush=True)
    source = KafkaSource(settings, checkpoint, state=daemon.checkpoint_state,
                         restore=lambda st: daemon.load_state(st if st is not None else initial),
                         stop=daemon.stop)
    collectors = (lambda _snap: lag_metrics(source.metrics_snapshot()),
                  dead_letter.collect) + ((stage.collect,) if stage else ())
    server = serve_run(daemon, collectors, stage, out)
    restore = install_signal_handlers(daemon.stop)
    t0 = time.perf_counter()
    try:
        if source.start():
            try:
                consume(daemon, source)
            except BaseException:
                source.abandon()  # the state may hold part of a batch: never saved
                raise
        daemon.settle()
        source.close()  # the last checkpoint, leaving the group: counted in the summary
        summary = daemon.summary(time.perf_counter() - t0)
        print(f"slicewatch: {summary.records} records, {summary.rejected} rejected, "
              f"{summary.late} late, {summary.windows} windows in {summary.seconds:.1f}s "
              f"({source.saves} checkpoints)", file=out, flush=True)
        kept = [spec.source.dead_letter or "",
                f"topic {settings.dead_letter_topic}" if settings.dead_letter_topic else ""]
        report_rejects(daemon, " and ".join(k for k in kept if k) or None, out)
        finish_outputs(spec, opts, daemon, listeners, summary.seconds, out)
        return summary
    finally:
        restore()
        if stage:
            stage.stop()
        source.close()
        daemon.close()
        close_outputs(listeners)  # after the last results the daemon hands on
        daemon.dead_letter.close()
        if server:
            server.stop()
        checkpoint.release()
        checkpoint.close()


def consume(daemon: Daemon, source: KafkaSource) -> None:
    """The loop: until ``daemon.stop`` is set.

    A batch is folded whole or not at all: its outputs (window results for the listeners,
    dead letters) are held until it has folded (:meth:`Daemon.begin`); if processing raises,
    they are dropped, the daemon and the offsets go back to the last checkpoint
    (:meth:`KafkaSource.recover`) and the batch is read again;
    the chunk that failed is then folded piece by piece (:func:`fold_isolating`), so the
    message(s) at fault go to the dead letter (``processing_error``) and the partition moves
    on."""
    while not daemon.stop.is_set():
        batch = source.poll()
        chunk = None
        daemon.begin()  # what the turn hands on (results, dead letters) goes out only whole
        try:
            closed = bool(daemon.finish_closes(wait=False))  # closes done in the worker
            live, idle = source.live_partitions()
            # partitions with records in this batch hold the watermark while it is folded;
            # those caught up at its end stop holding it after
            closed |= bool(daemon.track_partitions(live,
                                                   idle - {c.partition for c in batch.chunks}))
            # the batch's next partition run decoded while this one folds (nothing of it
            # counted or kept before it folds; the thread ends with the batch, before the
            # next poll runs any rebalance callback)
            with closing(daemon.ahead(batch.chunks) if len(batch.chunks) > 1
                         else (c for c in batch.chunks)) as chunks:
                for chunk in chunks:
                    if source.suspect(chunk):
                        fold_isolating(daemon, chunk)
                        closed = True
                    else:
                        closed |= bool(daemon.process(chunk))
            closed |= bool(daemon.track_partitions(live, idle))
        except NotTheMessages:
            daemon.rollback()
            raise
        except Exception as exc:
            daemon.rollback()
            source.recover(chunk, exc)
            continue
        source.advance(batch)
        daemon.commit()
        if source.due(closed):
            daemon.dead_letter.flush()  # dead letters reach their topic before the offsets move
            source.save(wait=False)  # the database write overlaps the next batches


class NotTheMessages(SourceError):
    """Processing fails whatever the messages: the run stops (saving nothing)."""


def fold_isolating(daemon: Daemon, chunk: Chunk) -> None:
    """Fold ``chunk`` in halves, and halves of the halves that fail, down to single messages:
    a message whose processing raises is dead-lettered (``processing_error``) and left out.
    Before each piece the daemon state is copied (plain-data encoding) and put back if the
    piece fails, so no part of a failed piece is kept. If every message fails on its own, the
    fault is not in the messages: the error is raised (the run stops, saving nothing)."""
    from monitor.state.checkpoint import decode_state, encode_state

    def fold(lines: list[bytes], after: list[int]) -> int:
        """Fold ``lines``; returns how many failed."""
        snapshot = encode_state(daemon.checkpoint_state())
        daemon.begin()  # the piece's outputs go out only if the whole piece folds
        try:
            daemon.process(replace(chunk, payload=lines, position=after,
                                   place=("offset", after)))
            daemon.commit()
            return 0
        except Exception as exc:
            daemon.rollback()
            daemon.load_state(decode_state(snapshot))
            if len(lines) == 1:
                piece = replace(chunk, payload=lines, position=after, place=("offset", after))
                daemon.processing_failed(lines[0], exc, origin=chunk.origin,
                                         where=f"{chunk.partition}@{after[0] - 1}"
                                         if after else chunk.partition, **piece.locate(0))
                return 1
            mid = len(lines) // 2
            return fold(lines[:mid], after[:mid]) + fold(lines[mid:], after[mid:])

    lines, after = list(chunk.payload), list(chunk.position or [])
    mid = len(lines) // 2
    failed = fold(lines, after) if len(lines) == 1 else \
        fold(lines[:mid], after[:mid]) + fold(lines[mid:], after[mid:])
    if failed == len(lines) > 1:
        raise NotTheMessages(f"kafka: every one of the {len(lines)} messages of "
                             f"{chunk.partition} fails on its own: the fault is not in the "
                             "messages; stopping without saving")


def drain_instance(spec: Spec, instance_id: str,
                   listeners: Iterable[ResultListener] = ()) -> list:
    """Close every open window of a departed instance's checkpointed state and return (and
    hand to ``listeners``) their results — that instance's part of each window — then delete
    its state. For scale-down: an instance that leaves the group for good keeps its open
    windows in the checkpoint until it returns or is drained. Refused while it runs."""
    if not spec.checkpoint:
        raise SourceError("drain needs the spec's checkpoint database ('checkpoint: PATH')")
    checkpoint = Checkpoint(spec.checkpoint, owner=instance_id)
    try:
        checkpoint.acquire(socket.gethostname(), os.getpid())
        loaded = checkpoint.load()
        if loaded is None:
            return []
        daemon = Daemon(spec, listeners=listeners,
                        feature_join=feature_join_of(spec, settings_for(spec)))
        load_checkpointed(daemon, loaded[1], checkpoint.path)
        results = daemon.flush()
        daemon.dead_letter.close()
        checkpoint.drop_state()
        return results
    finally:
        checkpoint.release()
        checkpoint.close()


def _log_to(out: TextIO) -> None:
    """Kafka log lines (retries, rebalances) go to stderr as ``slicewatch: …``."""
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("slicewatch: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False

