"""The shell between the daemon and ``alerts/``: closed windows → observations → engine.

:class:`AlertStage` is a result listener: each closed window's reported slice results become
:class:`alerts.Observation` s for a supervised background dispatcher
(:mod:`alerts.workers`) that runs group timers and drains the outbox, one worker per
receiver; :meth:`health` feeds ``/healthz``; :meth:`collect` exports the alerting metrics.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from alerts import AlertEngine, DriftObservation, Observation
from alerts.model import DiscoveredObservation, VersionDiffObservation
from alerts.workers import Dispatcher, EventSink
from monitor.core.labels import cut_label, is_long
from monitor.core.types import ClosedWindow, SliceResult
from slices.spec import Spec

DEFAULT_DB = os.path.join("slicewatch-state", "alerts.db")


def _longest_group_timer(route) -> float:
    """The longest group_wait/group_interval in the routing tree (< repeat_interval)."""
    own = max(route.group_wait, route.group_interval)
    return max([own, *(_longest_group_timer(r) for r in route.routes)])


def to_observation(r: SliceResult) -> Observation:
    """A slice result as the plain data ``alerts/`` judges (its slice and version cut to
    :data:`~monitor.core.labels.MAX_LABEL_CHARS`: they become alert labels, stored in the
    alert database and sent in notifications)."""
    drift = tuple(DriftObservation(feature=d.feature, test=d.test, score=d.distance,
                                   pvalue=d.pvalue_adjusted, detected=d.detected)
                  for d in r.drift if d.status != "insufficient")
    return Observation(
        model=r.model, version=cut_label(r.version), slice=cut_label(r.slice),
        window_start=r.window_start,
        window_end=r.window_end, count=r.count, critical=r.critical,
        metrics={k: v for k, v in r.metrics.items()
                 if not (isinstance(v, float) and math.isnan(v))},
        drift=drift, concept_drift_events=r.concept.events if r.concept is not None else 0,
        quality={q.feature: q.to_dict() for q in r.quality or ()},
        reference_metrics=dict(r.reference_metrics) if r.reference_metrics is not None
        else None,
        intervals={k: (float(lo), float(hi)) for k, (lo, hi) in r.intervals.items()},
        compared=tuple(VersionDiffObservation(d.metric, d.baseline, d.diff, d.lower, d.upper)
                       for d in r.compared),
        multivariate=None if r.multivariate is None else (
            float(r.multivariate.error), float(r.multivariate.lower),
            float(r.multivariate.upper), bool(r.multivariate.drift)),
        estimated={} if r.estimated is None else {
            k: float(v) for k, v in r.estimated.values.items() if math.isfinite(v)},
        estimated_intervals={} if r.estimated is None else {
            k: (float(lo), float(hi)) for k, (lo, hi) in r.estimated.intervals.items()})


def with_discovered(window: ClosedWindow, obs: Observation) -> Observation:
    """The overall observation with the slices discovered in this window (in the top-k) and
    those discovered lately but not now (so their streaks end and their alerts resolve; the
    discovery stage remembers them, :mod:`monitor.discovery.recent`)."""
    now = {d.slice: d for d in window.discovered
           if d.scope == "window" and d.version == obs.version}
    out = [DiscoveredObservation(d.slice, True, d.rank, d.error, d.records)
           for d in now.values()]
    out += [DiscoveredObservation(name, False) for version, name in window.discovered_absent
            if version == obs.version and name not in now]
    return dataclasses.replace(obs, discovered=tuple(out))


class AlertStage:
    """The daemon's alerting: a result listener handing observations to a supervised
    background :class:`alerts.workers.Dispatcher` (one delivery worker per receiver).

    ``notify=False`` (a replay of the past) judges, prints and records alerts but sends
    nothing; ``sinks`` get each window's alert transitions (console lines, results file).
    """

    def __init__(self, spec: Spec, db_path: str | None = None, *, interval: float = 1.0,
                 notify: bool = True, sinks: Iterable[EventSink] = ()):
        self.db_path = db_path or DEFAULT_DB
        os.makedirs(os.path.dirname(os.path.abspath(self.db_path)), exist_ok=True)
        self.engine = AlertEngine(spec.alerting, self.db_path, notify=notify)
        self.timer_horizon = _longest_group_timer(spec.alerting.route)
        self.interval = interval
        self.dispatcher = Dispatcher(self.engine, interval=interval, sinks=sinks)
        self.labels_cut = 0  # slice and version labels cut to their bound

    def __call__(self, window: ClosedWindow, results: list[SliceResult]) -> None:
        observations = [to_observation(r) for r in results if r.reported]
        self.labels_cut += sum(is_long(r.slice) + is_long(r.version)
                               for r in results if r.reported)
        if window.discovered or window.discovered_absent:
            observations = [with_discovered(window, o) if o.slice == "overall" else o
                            for o in observations]
        if observations:
            self.dispatcher.observe(observations)

    def start(self) -> AlertStage:
        self.dispatcher.start()
        return self

    def health(self) -> list[str]:
        """Problems of the alert dispatcher and receiver workers (empty when healthy)."""
        return self.dispatcher.health()

    def health_check(self) -> tuple[bool, str]:
        """:meth:`health` as a ``/healthz`` check: ``(ok, reason)``."""
        problems = self.health()
        return not problems, "; ".join(problems)

    def stop(self) -> None:
        """Stop the dispatcher. Groups waiting on their ``group_wait``/``group_interval``
        timers are flushed now and one delivery round is tried; whatever fails stays in the
        durable outbox for the next start."""
        self.dispatcher.stop(self.timer_horizon)
        self.engine.close()

    def collect(self, _snapshot=None) -> Iterator[Metric]:
        snap = self.engine.metrics_snapshot()
        firing = GaugeMetricFamily("slicewatch_alerts_firing", "Alerts firing now.",
                                   labels=["model", "severity"])
        for (model, severity), n in sorted(snap["firing"].items()):
            firing.add_metric([model, severity], n)
        yield firing
        sent = CounterMetricFamily("slicewatch_notifications", "Notification attempts by "
                                   "receiver and outcome (sent, retried, failed, dropped).",
                                   labels=["receiver", "outcome"])
        for (receiver, outcome), n in sorted(snap["notifications_total"].items()):
            sent.add_metric([receiver, outcome], n)
        yield sent
        yield GaugeMetricFamily("slicewatch_outbox_depth", "Notifications waiting in the "
                                "durable outbox.", value=snap["outbox_depth"])
        d = self.dispatcher
        errors = CounterMetricFamily("slicewatch_alert_dispatch_errors", "Errors of the alert "
                                     "dispatcher and receiver workers by loop and reason; "
                                     "each is retried.", labels=["loop", "reason"])
        for (loop, reason), n in sorted(d.errors.items()):
            errors.add_metric([loop, reason], n)
        yield errors
        yield GaugeMetricFamily("slicewatch_alert_observations_pending", "Observations "
                                "waiting for the alert database.", value=d.pending())
        yield CounterMetricFamily("slicewatch_alert_observations_dropped", "Observations "
                                  "dropped because too many waited for the alert database.",
                                  value=d.dropped)
        yield CounterMetricFamily("slicewatch_alert_labels_cut", "Slice and version labels "
                                  "over 1024 characters cut (start, length, digest) before "
                                  "they were judged, stored and sent.", value=self.labels_cut)
