"""The run-time wiring every run mode shares: options, the HTTP server, result listeners,
signal handling, and closing what was opened.

:mod:`monitor.runtime.file_run` and :mod:`monitor.runtime.kafka_run` build on it;
:func:`monitor.runtime.app.run` picks one of them.
"""

from __future__ import annotations

import dataclasses
import signal
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TextIO

from prometheus_client.registry import CollectorRegistry

from monitor.export.collector import SeriesBudget, SlicewatchCollector
from monitor.export.httpserver import HealthCheck, MetricsServer
from monitor.outputs.alerting import AlertStage
from monitor.outputs.results import ResultsWriter
from monitor.outputs.table import TablePrinter
from monitor.runtime.daemon import Daemon, ResultListener
from monitor.runtime.exit_codes import EXIT_FORCED
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
    results_append: bool = False  # add to an existing results file (else it must be empty)
    report: str | None = None  # HTML report of the run, written when it ends
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



def serve(daemon: Daemon, listen: str, extra_collectors: tuple = (),
          health_checks: Sequence[HealthCheck] = ()) -> MetricsServer:
    """Start the HTTP server for ``daemon``'s snapshots. ``health_checks``: callables
    returning ``(ok, reason)``; ``/healthz`` answers 503 with the reasons of those failing.
    Raises :class:`monitor.export.httpserver.ServeError` when it cannot listen."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SlicewatchCollector(lambda: daemon.snapshot, extra_collectors,
                                          SeriesBudget.of(daemon.spec.server)))
    return MetricsServer(registry, listen, lambda: daemon.snapshot,
                         health_checks=health_checks).start()


def serve_run(daemon: Daemon, collectors: tuple, stage: AlertStage | None,
              out: TextIO) -> MetricsServer | None:
    """The run's HTTP server on ``server.listen`` (None when it is empty), with the alert
    stage's health check, announced on ``out``."""
    if not daemon.spec.server.listen:
        return None
    server = serve(daemon, daemon.spec.server.listen, collectors,
                   [stage.health_check] if stage else ())
    print(f"slicewatch: serving {server.address}/metrics and /healthz", file=out, flush=True)
    return server



def outputs(spec: Spec, opts: RunOptions, out: TextIO,
            listeners: Iterable[ResultListener] = ()) -> tuple[list, AlertStage | None]:
    """The result listeners every run mode shares: the console table, the results history,
    and the alert stage (started; the caller stops it)."""
    listeners, sinks = list(listeners), []
    if not opts.quiet:
        rest = ("on /metrics" if spec.server.listen else
                f"in {opts.results}" if opts.results and not opts.report else
                "not shown (--results FILE keeps them all)")
        listeners.append(TablePrinter({m.name: m.task for m in spec.models}, out=out,
                                      rest=rest))
        sinks.append(listeners[-1].alerts)
    if opts.results:
        listeners.append(ResultsWriter(opts.results, append=opts.results_append))
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



def finish_outputs(spec: Spec, opts: RunOptions, daemon: Daemon,
                   listeners: Iterable[ResultListener], seconds: float, out: TextIO) -> None:
    """At the end of a run: the ``type: run`` line of the results history, then (after the
    listeners are closed by the caller) nothing else; see :func:`write_run_report`."""
    t = daemon.tracker
    for listener in listeners:
        if isinstance(listener, ResultsWriter):
            listener.write_run(records=t.records, rejected=t.bad, late=t.late,
                               windows=t.closed, seconds=seconds)


def write_run_report(spec: Spec, opts: RunOptions, out: TextIO) -> None:
    """``run --report FILE``: the HTML report of the results history just written (the
    spec's drift profiles give the reference distributions)."""
    if not (opts.report and opts.results):
        return
    from monitor.outputs.report import write_report

    profiles = [m.drift.profile for m in spec.models
                if getattr(m, "drift", None) is not None and getattr(m.drift, "profile", None)]
    write_report(opts.results, opts.report, profiles=profiles)
    print(f"slicewatch: report written to {opts.report}", file=out, flush=True)



def notifies(spec: Spec, opts: RunOptions) -> bool:
    """``--notify`` / ``--no-notify`` if given; else notify except for a file replay of the
    past (file input without ``--follow``), whose alerts are printed and recorded only."""
    if opts.notify is not None:
        return opts.notify
    return not (spec.source.type == "file" and not spec.source.follow)



def report_unreported(daemon: Daemon, out: TextIO, *, kept: bool = False) -> None:
    """One line: how many records a stop left unreported in windows still open
    (``kept``: the checkpoint holds them, so a resumed run completes those windows)."""
    records, windows = daemon.open_records()
    if windows:
        fate = ("kept in the checkpoint for the next run" if kept
                else "left unreported (no checkpoint keeps them)")
        print(f"slicewatch: stopped: {records} record(s) in {windows} incomplete window(s) "
              f"{fate}", file=out, flush=True)



def report_rejects(daemon: Daemon, dead_letter: str | None, out: TextIO) -> None:
    """One line when records were rejected or late: how many for each reason (the commonest
    first, with its meaning and the schema path it concerns) and where they went, so a replay
    that rejected everything says why without opening the dead-letter file."""
    t = daemon.tracker
    bad, late = sum(t.bad.values()), sum(t.late.values())
    if not bad and not late:
        return
    parts = [f"{n} {reason} ({_meaning(reason, daemon.spec)})"
             for reason, n in t.bad.most_common(3)]
    if len(t.bad) > 3:
        parts.append(f"{sum(n for _, n in t.bad.most_common()[3:])} of other reasons")
    if late:
        parts.append(f"{late} late")
    where = (f"each with its reason in {dead_letter}" if dead_letter else
             "not kept: set source.dead_letter or pass --dead-letter FILE to see them")
    print(f"slicewatch: rejected: {', '.join(parts)}; {where}", file=out, flush=True)
    if bad and not sum(t.records.values()):
        print("slicewatch: every record was rejected: compare the spec's schema paths with "
              "one of your records (docs/record-format.md)", file=out, flush=True)


_SCHEMA_ROLE = {"time": "time", "model": "model", "id": "id", "label": "label",
                "score": "score", "value": "value", "features": "features"}
_PREDICTION = {"binary": "score", "multiclass": "pred_class", "regression": "value"}


def _meaning(reason: str, spec: Spec) -> str:
    """``reason``'s meaning; for a missing or mistyped field, with its schema path."""
    from monitor.ingest.reasons import describe

    text = describe(reason) or reason
    kind, _, role = reason.partition(":")
    attrs = [_SCHEMA_ROLE[role]] if kind in ("missing_field", "wrong_type") and \
        role in _SCHEMA_ROLE else []
    if reason == "missing_prediction":
        attrs = sorted({_PREDICTION[m.task] for m in spec.models if m.task in _PREDICTION})
    for attr in attrs:
        paths: dict[str, list[str]] = {}  # path → the models reading it (a model's schema:)
        for m in spec.models:
            paths.setdefault(getattr(spec.schema_for(m), attr), []).append(m.name)
        said = (repr(next(iter(paths))) if len(paths) == 1 else ", ".join(
            f"{path!r} (model {', '.join(names)})" for path, names in paths.items()))
        text += f"; schema.{attr.replace('pred_', '')} is {said}"
    return text



def push_final(daemon: Daemon, spec: Spec, url: str, collectors: tuple, out: TextIO) -> None:
    """A batch run's final metrics → Pushgateway (what Prometheus recommends for batch jobs)."""
    from monitor.export.push import push_to_gateway

    registry = CollectorRegistry(auto_describe=False)
    registry.register(SlicewatchCollector(lambda: daemon.snapshot, collectors,
                                          SeriesBudget.of(spec.server)))
    key = push_to_gateway(url, spec, registry)
    grouping = ", ".join(f"{k}={v}" for k, v in key.items())
    print(f"slicewatch: pushed final metrics to {url} ({grouping})", file=out, flush=True)



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
