"""Wiring for ``slicewatch run``: spec → source → daemon → HTTP server, with signal handling.

The CLI builds a :class:`RunOptions` and calls :func:`run`; only the CLI turns exceptions
into exit codes.
"""

from __future__ import annotations

import dataclasses
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TextIO

from prometheus_client.registry import CollectorRegistry

from monitor.alerting import AlertStage
from monitor.daemon import Daemon, ResultListener, RunSummary
from monitor.deadletter import DeadLetter
from monitor.exit_codes import EXIT_FORCED
from monitor.exporter import SeriesBudget, SlicewatchCollector
from monitor.file_checkpoint import FileCheckpoint, HeldResults
from monitor.httpserver import HealthCheck, MetricsServer
from monitor.report import TablePrinter
from monitor.results import ResultsWriter
from monitor.sources.base import Chunk, SourceError
from monitor.sources.file import FileSource
from slices.spec import Spec


@dataclass(frozen=True)
class RunOptions:
    inputs: tuple[str, ...] = ()  # override source paths ("-" = stdin)
    listen: str | None = None  # override server.listen; "" = no HTTP server
    follow: bool | None = None
    linger: float = 0.0  # keep serving /metrics this long after a replay ends (inf = forever)
    quiet: bool = False
    dead_letter: str | None = None
    results: str | None = None  # JSONL history of every closed window's results
    alerts_db: str | None = None  # SQLite outbox + alert state (default slicewatch-state/)
    pushgateway: str | None = None  # push the final metrics there after a replay
    notify: bool | None = None  # send notifications; None: not for a file replay of the past


def effective_spec(spec: Spec, opts: RunOptions) -> Spec:
    """The spec with command-line overrides applied."""
    source = spec.source
    if opts.inputs:
        kind = "stdin" if opts.inputs == ("-",) else "file"
        source = dataclasses.replace(source, type=kind, paths=tuple(opts.inputs))
    if opts.follow is not None:
        source = dataclasses.replace(source, follow=opts.follow)
    if opts.dead_letter:
        source = dataclasses.replace(source, dead_letter=opts.dead_letter)
    server = spec.server
    if opts.listen is not None:
        server = dataclasses.replace(server, listen=opts.listen)
    return dataclasses.replace(spec, source=source, server=server)


def open_source(spec: Spec, stop: threading.Event,
                resume: dict[str, dict] | None = None) -> Iterator[Chunk]:
    """The chunks of the spec's source (file/stdin now; Kafka in ``monitor.sources.kafka``);
    ``resume``: files' saved progress (:class:`monitor.sources.file.FileProgress`)."""
    src = spec.source
    if src.type == "kafka":
        raise SourceError("the Kafka source checkpoints offsets with the window state: run it "
                          "through monitor.app.run (slicewatch run), not open_source")
    paths = input_paths(spec)
    if not paths:
        raise SourceError("no input: set source.path in the spec or pass --input")
    if src.labels:  # label files first: their labels wait for (and attach to) predictions
        yield from FileSource(src.labels, fmt="jsonl", batch_size=src.batch_size,
                              stream="labels", max_record_bytes=src.max_record_bytes,
                              resume=resume).chunks()
    yield from FileSource(paths, fmt=src.format, batch_size=src.batch_size, follow=src.follow,
                          stop=stop, max_record_bytes=src.max_record_bytes,
                          resume=resume).chunks()


def input_paths(spec: Spec) -> tuple[str, ...]:
    src = spec.source
    return src.paths or (("-",) if src.type == "stdin" else ())


def file_checkpoint(spec: Spec, daemon: Daemon, held: HeldResults,
                    out: TextIO) -> FileCheckpoint | None:
    """The spec's checkpoint for a file source (None without one; stdin cannot resume)."""
    if not spec.checkpoint:
        return None
    if "-" in input_paths(spec):
        print("slicewatch: note: stdin cannot be resumed; the checkpoint is not used",
              file=out, flush=True)
        return None
    return FileCheckpoint(spec.checkpoint, daemon, held)


def serve(daemon: Daemon, listen: str, extra_collectors: tuple = (),
          health_checks: Sequence[HealthCheck] = ()) -> MetricsServer:
    """Start the HTTP server for ``daemon``'s snapshots. ``health_checks``: callables
    returning ``(ok, reason)``; ``/healthz`` answers 503 with the reasons of those failing.
    Raises :class:`monitor.httpserver.ServeError` when it cannot listen."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SlicewatchCollector(lambda: daemon.snapshot, extra_collectors,
                                          SeriesBudget.of(daemon.spec.server)))
    return MetricsServer(registry, listen, lambda: daemon.snapshot,
                         health_checks=health_checks).start()


def run(spec: Spec, opts: RunOptions, *, out: TextIO | None = None,
        listeners: Iterable[ResultListener] = (),
        chunks: Callable[[threading.Event], Iterable[Chunk]] | None = None) -> RunSummary:
    """Run the daemon until its input ends (replay) or a signal arrives (follow)."""
    out = out or sys.stdout
    spec = effective_spec(spec, opts)
    if spec.source.type == "kafka" and chunks is None:
        from monitor.kafka_run import run_kafka  # offsets and state checkpointed together

        return run_kafka(spec, opts, out=out, listeners=listeners)
    listeners, stage = outputs(spec, opts, out, listeners)
    held = HeldResults(listeners)  # window results go out once a checkpoint covers them
    dead_letter = DeadLetter(spec.source.dead_letter, max_bytes=spec.source.dead_letter_max_bytes)
    daemon = Daemon(spec, dead_letter=dead_letter, listeners=[held])
    checkpoint = file_checkpoint(spec, daemon, held, out) if chunks is None else None
    resume = checkpoint.restore() if checkpoint else None
    if checkpoint and resume:
        print(f"slicewatch: resumed from checkpoint #{checkpoint.checkpoint.seq} "
              f"({len(resume)} file position(s))", file=out, flush=True)
    collectors = (stage.collect if stage else None, dead_letter.collect)
    collectors = tuple(c for c in collectors if c is not None)
    server = (serve(daemon, spec.server.listen, collectors,
                    [stage.health_check] if stage else ())
              if spec.server.listen else None)
    if server:
        print(f"slicewatch: serving {server.address}/metrics and /healthz", file=out, flush=True)
    restore = install_signal_handlers(daemon.stop)
    try:
        source = chunks(daemon.stop) if chunks else open_source(spec, daemon.stop, resume)
        t0 = time.perf_counter()
        if checkpoint:
            checkpoint.run(source)
        else:
            daemon.run(source, flush_at_end=False)
            held.release()
        if not daemon.stop.is_set():
            daemon.flush()  # a replay that ended: its last windows are complete
        else:  # stopped: incomplete windows are not reported (nor alerted on)
            daemon.settle()
            report_unreported(daemon, out, kept=checkpoint is not None)
        if checkpoint:
            checkpoint.save()
        held.release()
        summary = daemon.summary(time.perf_counter() - t0)
        print(f"slicewatch: {summary.records} records, {summary.rejected} rejected, "
              f"{summary.late} late, {summary.windows} windows in {summary.seconds:.1f}s",
              file=out, flush=True)
        if opts.pushgateway:
            push_final(daemon, spec, opts.pushgateway, collectors, out)
        if server and opts.linger > 0 and not daemon.stop.is_set():
            print(f"slicewatch: input done; still serving {server.address}/metrics "
                  "(Ctrl-C to stop)", file=out, flush=True)
            daemon.stop.wait(None if opts.linger == float("inf") else opts.linger)
        return summary
    finally:
        restore()
        if stage:
            stage.stop()
        close_outputs(listeners)
        if server:
            server.stop()
        daemon.dead_letter.close()
        if checkpoint:
            checkpoint.close()


def report_unreported(daemon: Daemon, out: TextIO, *, kept: bool = False) -> None:
    """One line: how many records a stop left unreported in windows still open
    (``kept``: the checkpoint holds them, so a resumed run completes those windows)."""
    records, windows = daemon.open_records()
    if windows:
        fate = ("kept in the checkpoint for the next run" if kept
                else "left unreported (no checkpoint keeps them)")
        print(f"slicewatch: stopped: {records} record(s) in {windows} incomplete window(s) "
              f"{fate}", file=out, flush=True)


def push_final(daemon: Daemon, spec: Spec, url: str, collectors: tuple, out: TextIO) -> None:
    """A batch run's final metrics → Pushgateway (what Prometheus recommends for batch jobs)."""
    from monitor.grafana import push_to_gateway

    registry = CollectorRegistry(auto_describe=False)
    registry.register(SlicewatchCollector(lambda: daemon.snapshot, collectors,
                                          SeriesBudget.of(spec.server)))
    key = push_to_gateway(url, spec, registry)
    print(f"slicewatch: pushed final metrics to {url} ({key})", file=out, flush=True)


def outputs(spec: Spec, opts: RunOptions, out: TextIO,
            listeners: Iterable[ResultListener] = ()) -> tuple[list, AlertStage | None]:
    """The result listeners every run mode shares: the console table, the results history,
    and the alert stage (started; the caller stops it)."""
    listeners, sinks = list(listeners), []
    if not opts.quiet:
        listeners.append(TablePrinter({m.name: m.task for m in spec.models}, out=out))
        sinks.append(listeners[-1].alerts)
    if opts.results:
        listeners.append(ResultsWriter(opts.results))
        sinks.append(listeners[-1].write_alerts)
    stage = None
    if spec.alerting:
        stage = AlertStage(spec, opts.alerts_db, notify=notifies(spec, opts),
                           sinks=sinks).start()
    if stage:
        listeners.append(stage)
    return listeners, stage


def close_outputs(listeners: Iterable[ResultListener]) -> None:
    """Close the files :func:`outputs` opened (after the alert stage stopped: it writes its
    alert lines to them)."""
    for listener in listeners:
        if isinstance(listener, ResultsWriter):
            listener.close()


def notifies(spec: Spec, opts: RunOptions) -> bool:
    """``--notify`` / ``--no-notify`` if given; else notify except for a file replay of the
    past (file input without ``--follow``), whose alerts are printed and recorded only."""
    if opts.notify is not None:
        return opts.notify
    return not (spec.source.type == "file" and not spec.source.follow)


def install_signal_handlers(stop: threading.Event) -> Callable[[], None]:
    """First SIGINT/SIGTERM: graceful stop (the loop finishes its batch); second: exit now."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum, frame):
        if stop.is_set():
            raise SystemExit(EXIT_FORCED)
        stop.set()

    for s in previous:
        signal.signal(s, handler)

    def restore() -> None:
        for s, h in previous.items():
            signal.signal(s, h)

    return restore
