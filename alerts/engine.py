"""The alert engine: observations → rules → lifecycle → routes/groups → outbox → receivers.

>>> # engine = AlertEngine(spec.alerting, "state/alerts.sqlite")
>>> # engine.observe([Observation(...)], now)   # after each window closes
>>> # engine.dispatch()                          # every second, from a background loop

``observe`` and ``dispatch`` may run in different threads. State (series, groups, the latest
metrics of each model × version × slice for change baselines) lives in the outbox's SQLite
file and is written in the same transaction as the notifications it produced, so a restarted
engine continues where the last one stopped.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import groupby
from typing import Any

from alerts.errors import AlertsError, DeliveryError, MissingEnvError, UnknownReceiverError
from alerts.lifecycle import Series
from alerts.model import Alert, AlertEvent, Notification, Observation
from alerts.outbox import Backoff, Entry, Outbox
from alerts.receivers import deliver
from alerts.route import Group, group_key, group_labels, inhibited, match_routes
from alerts.rules import evaluate
from slices.alerting import DEFAULT_INHIBIT, AlertingSpec, ChangeSpec, InhibitRule, ReceiverSpec

log = logging.getLogger("slicewatch.alerts")
OUTCOMES: tuple[str, ...] = ("sent", "retried", "failed", "dropped")


def _series_key(model: str, version: str, slice_: str) -> str:
    return f"{model}\x1f{version}\x1f{slice_}"


class AlertEngine:
    """Evaluates rules on observations and delivers notifications through a durable outbox.

    ``clock`` gives the time when ``now`` is not passed; ``backoff``, ``rng`` and ``env`` (the
    mapping ``${VAR}`` is read from, default ``os.environ``) are for tests and tuning. Sent and
    failed entries, and resolved alerts, are deleted ``retention`` seconds after they were
    done with. ``notify=False`` (a replay of the past) judges and remembers everything but
    runs no group timers and sends nothing: groups wait, with their firing alerts, for a run
    that notifies. ``busy_timeout``: how long a write waits for a locked database.
    """

    def __init__(self, spec: AlertingSpec, outbox_path: str,
                 clock: Callable[[], float] = time.time, *, backoff: Backoff | None = None,
                 rng: random.Random | None = None, env: Mapping[str, str] | None = None,
                 retention: float = 7 * 86400.0, notify: bool = True,
                 busy_timeout: float = 5.0):
        self.spec = spec
        self.clock = clock
        self.outbox = Outbox(outbox_path, backoff, rng, busy_timeout=busy_timeout)
        self.env = env
        self.retention = retention
        self.notify = notify
        self._pruned_at = float("-inf")
        self._lock = threading.RLock()
        self._send_locks = {r.name: threading.Lock() for r in spec.receivers}
        self._counts_lock = threading.Lock()
        self._series: dict[str, Series] = {}
        self._latest: dict[str, dict[str, Any]] = {}
        self._groups: dict[str, Group] = {}
        self._memory: dict[str, float] = self.outbox.load_memory()
        self._counts: Counter[tuple[str, str]] = Counter(
            {(r.name, o): 0 for r in spec.receivers for o in OUTCOMES})
        self._restore()

    # ---- state

    def _state(self) -> dict[str, Any]:
        return {"series": {k: s.to_state() for k, s in self._series.items()},
                "latest": self._latest,
                "groups": {k: g.to_state() for k, g in self._groups.items()}}

    def _set_state(self, state: dict[str, Any]) -> None:
        self._series = {k: Series.from_state(v) for k, v in state["series"].items()}
        self._latest = state["latest"]
        self._groups = {k: Group.from_state(g) for k, g in state["groups"].items()}

    @contextmanager
    def _atomic(self) -> Iterator[None]:
        """In-memory state goes back to what it was when the block fails (e.g. the commit
        meets ``database is locked``), so the same observations can be tried again."""
        saved, memory = json.dumps(self._state()), dict(self._memory)
        try:
            yield
        except BaseException:
            self._set_state(json.loads(saved))
            self._memory = memory
            raise

    def _restore(self) -> None:
        state = self.outbox.load_state()
        if not state:
            return
        rules = {r.name for r in self.spec.rules}
        receivers = {r.name for r in self.spec.receivers}
        gone: list[Alert] = []
        for key, data in state["series"].items():
            series = Series.from_state(data)
            if series.alert is not None and series.alert.labels.get("alertname") not in rules:
                if series.firing:  # rule removed from the spec: its alert ends silently
                    series.alert.status, series.alert.ends_at = "resolved", self.clock()
                    gone.append(series.alert)
                continue
            self._series[key] = series
        self._latest = state["latest"]
        self._groups = {k: Group.from_state(g) for k, g in state["groups"].items()
                        if g["receiver"] in receivers}
        if gone:
            self.outbox.commit([], self.clock(), alerts=gone, state=self._state())

    def export_state(self) -> dict[str, Any]:
        """The alert lifecycle as plain JSON-able data (no pickle): every series (pending
        streak, firing alert, ``for:`` counters), the latest metrics per series, the groups
        (members, timers, what was notified), the alert memory (last window judged per
        fingerprint) and the notifications not yet delivered. For a state store other than
        the local database (the scaled evaluator's Kafka state, docs/scaling.md);
        :meth:`import_state` puts it back."""
        with self._lock:
            return json.loads(json.dumps({
                "engine": self._state(), "memory": self._memory,
                "outbox": [e.notification.to_dict() for e in self.outbox.entries("pending")]}))

    def import_state(self, data: dict[str, Any], now: float | None = None) -> None:
        """Replace the lifecycle by :meth:`export_state` output (of another process): series
        of rules no longer in the spec and groups of removed receivers are left out, the
        undelivered notifications are queued here (their receivers deduplicate by
        ``dedup_key``). Written to the local database in one transaction."""
        now = self.clock() if now is None else now
        rules = {r.name for r in self.spec.rules}
        receivers = {r.name for r in self.spec.receivers}
        state = data["engine"]
        with self._lock:
            queued = {e.notification.id for e in self.outbox.entries("pending")}
            self._series = {k: Series.from_state(v) for k, v in state["series"].items()
                            if v.get("alert") is None
                            or v["alert"].get("labels", {}).get("alertname") in rules}
            self._latest = dict(state["latest"])
            self._groups = {k: Group.from_state(g) for k, g in state["groups"].items()
                            if g["receiver"] in receivers}
            self._memory = {k: float(v) for k, v in data["memory"].items()}
            notes = [n for n in map(Notification.from_dict, data.get("outbox", []))
                     if n.receiver in receivers and n.id not in queued]
            alerts = [s.alert for s in self._series.values() if s.alert is not None]
            refused = self.outbox.commit(notes, now, alerts=alerts, state=self._state(),
                                         memory=self._memory)
        self._refused(refused)

    # ---- evaluation

    def observe(self, observations: list[Observation], now: float | None = None,
                events: list[AlertEvent] | None = None) -> list[Notification]:
        """Judge every rule on ``observations`` (windows of any series, any order) and enqueue
        the notifications due now. Returns the enqueued notifications; the transitions
        (fired / resolved) are appended to ``events`` if given. A window at or before the
        last one judged for an alert is ignored, however old (the alert memory, kept in the
        database). All or nothing: when the commit fails nothing changed."""
        now = self.clock() if now is None else now
        with self._lock, self._atomic():
            found: list[AlertEvent] = []
            judged: dict[str, float] = {}
            touched: dict[str, Alert] = {}
            ordered = sorted(observations, key=lambda o: o.window_end)
            for _, batch in groupby(ordered, key=lambda o: o.window_end):
                batch = list(batch)
                previous = {id(o): self._latest.get(_series_key(o.model, o.version, o.slice))
                            for o in batch}
                for o in batch:
                    key = _series_key(o.model, o.version, o.slice)
                    last = self._latest.get(key)
                    if last is None or last["window_end"] < o.window_end:
                        self._latest[key] = {"window_end": o.window_end,
                                             "metrics": dict(o.metrics)}
                for o in batch:
                    self._judge(o, previous[id(o)], now, touched, judged, found)
            notes = self._flush(now) if self.notify else []
            self._compact()
            refused = self.outbox.commit(notes, now, alerts=list(touched.values()),
                                         state=self._state(), memory=judged)
        self._refused(refused)
        if events is not None:
            events.extend(found)
        return notes

    def _compact(self) -> None:
        """Forget series that hold nothing worth keeping: never fired and not breaching, or
        resolved, calm for their whole flapping window and no longer in any group."""
        grouped = {fp for g in self._groups.values() for fp in g.members}
        for key, s in list(self._series.items()):
            if s.streak or s.firing:
                continue
            if s.alert is None or (not any(s.history) and key not in grouped):
                del self._series[key]

    def _judge(self, obs: Observation, previous: dict[str, Any] | None, now: float,
               touched: dict[str, Alert], judged: dict[str, float],
               events: list[AlertEvent]) -> None:
        def baseline_of(o: Observation, change: ChangeSpec, metric: str) -> float | None:
            if change.baseline == "reference":
                return (o.reference_metrics or {}).get(metric)
            if change.baseline == "previous":
                if previous is None or previous["window_end"] >= o.window_end:
                    return None
                return previous["metrics"].get(metric)
            if str(o.version) == change.version:
                return None
            other = self._latest.get(_series_key(o.model, str(change.version), o.slice))
            return None if other is None else other["metrics"].get(metric)

        for rule in self.spec.rules:
            for verdict in evaluate(rule, obs, baseline_of):
                fp = verdict.fingerprint
                if obs.window_end <= self._memory.get(fp, float("-inf")):
                    continue  # judged before (a replay from an older offset)
                self._memory[fp] = judged[fp] = obs.window_end
                series = self._series.setdefault(fp, Series())
                transition = series.step(verdict, (obs.window_start, obs.window_end),
                                         obs.count, now)
                if series.alert is not None and (transition or series.firing):
                    touched[series.alert.fingerprint] = series.alert
                if transition:
                    assert series.alert is not None
                    events.append(AlertEvent("firing" if transition == "fired" else "resolved",
                                             Alert.from_dict(series.alert.to_dict())))
                if transition == "fired":
                    assert series.alert is not None
                    self._enter_groups(series.alert, now)

    def _enter_groups(self, alert: Alert, now: float) -> None:
        for route_id, node in match_routes(self.spec.route, alert.labels):
            key = group_key(route_id, node, alert.labels)
            group = self._groups.get(key)
            if group is None:
                receiver = self.spec.receiver(node.receiver)
                repeat, interval = node.repeat_interval, node.group_interval
                if receiver is not None and receiver.type == "alertmanager":
                    repeat = min(repeat, receiver.resend_interval)
                    interval = min(interval, receiver.resend_interval)
                group = Group(key=key, receiver=node.receiver,
                              labels=group_labels(node, alert.labels), repeat_interval=repeat,
                              group_interval=interval, next_flush=now + node.group_wait)
                self._groups[key] = group
            group.add(alert.fingerprint)

    def _flush(self, now: float) -> list[Notification]:
        alerts = {s.alert.fingerprint: s.alert for s in self._series.values() if s.alert}
        firing = [a for a in alerts.values() if a.status == "firing"]
        muted = {a.fingerprint for a in firing
                 if inhibited(a, firing, self.spec.inhibit_rules)}
        notes = []
        for key, group in list(self._groups.items()):
            if group.next_flush > now:
                continue
            receiver = self.spec.receiver(group.receiver)
            note = group.flush(now, alerts, muted,
                               receiver.send_resolved if receiver else True)
            if note is not None:
                notes.append(note)
            if group.empty:
                del self._groups[key]
        return notes

    def flush(self, now: float | None = None) -> list[Notification]:
        """Enqueue what alert groups whose timers are due have to say."""
        now = self.clock() if now is None else now
        if not self.notify:
            return []
        with self._lock, self._atomic():
            notes = self._flush(now)
            refused = self.outbox.commit(notes, now, state=self._state()) if notes else []
        self._refused(refused)
        return notes

    def _refused(self, notes: list[Notification]) -> None:
        for note in notes:
            self._count(note.receiver, "dropped")
            log.error("notification %s to %s dropped: the outbox is full", note.id,
                      note.receiver)

    # ---- delivery

    def housekeeping(self, now: float | None = None) -> None:
        """Flush due groups; hourly, prune old entries and fail those of removed receivers."""
        now = self.clock() if now is None else now
        self.flush(now)
        if now - self._pruned_at > 3600.0:
            self.outbox.prune(now - self.retention)
            for name, n in self.outbox.fail_orphans(set(self._send_locks), now).items():
                with self._counts_lock:
                    self._counts[(name, "failed")] += n
                log.error("%d notifications to %s failed: the receiver is no longer in the "
                          "spec", n, name)
            self._pruned_at = now

    def dispatch(self, now: float | None = None, max_rounds: int = 100, limit: int = 100,
                 until: float | None = None) -> int:
        """Flush due groups, then send due outbox entries (in order per dedup key), every
        receiver in its own thread so that a slow one delays no other; returns the number
        delivered once all are done. No request starts after ``until`` (``time.monotonic``).
        Call it regularly (every second or so); a long-running process rather runs
        :class:`alerts.workers.Dispatcher`, which does not wait."""
        if not self.notify:
            return 0
        self.housekeeping(now)
        names = list(self._send_locks)
        if not names:
            return 0
        with ThreadPoolExecutor(max_workers=len(names), thread_name_prefix="alert-send") as pool:
            done = [pool.submit(self.deliver_due, name, now, max_rounds, limit, until)
                    for name in names]
            return sum(f.result() for f in done)

    def deliver_due(self, receiver: str, now: float | None = None, max_rounds: int = 100,
                    limit: int = 100, until: float | None = None) -> int:
        """Send the entries of one receiver due at the start of the call, oldest first, up
        to ``limit`` per round (an entry retried meanwhile waits for a later call); returns
        the number delivered. Each entry is claimed (leased) just before its request; none
        starts after ``until`` (``time.monotonic``)."""
        if not self.notify:
            return 0
        sent = 0
        start = self.clock() if now is None else now
        with self._send_locks[receiver]:
            for _ in range(max_rounds):
                due = self.outbox.due(start, limit, receiver)
                if not due:
                    break
                for entry in due:
                    if until is not None and time.monotonic() > until:
                        return sent
                    at = self.clock() if now is None else now
                    if self.outbox.claim(entry.id, at):
                        sent += self._send(entry, at)
        return sent

    def _send(self, entry: Entry, now: float) -> bool:
        receiver = self.spec.receiver(entry.receiver)
        assert receiver is not None  # due() is asked per receiver of the spec
        sent_at = self.clock()  # per entry, at send time (Alertmanager endsAt, signatures)
        try:
            status = deliver(receiver, entry.notification, sent_at, self.env)
        except MissingEnvError as exc:
            self._fail(entry, now, str(exc), None)
            return False
        except DeliveryError as exc:
            if not exc.retryable:
                self._fail(entry, now, f"{exc}; response: {exc.body}", exc.status)
                return False
            if self.outbox.mark_retry(entry.id, now, str(exc), exc.status, exc.retry_after,
                                      receiver.retry_max_delay):
                self._count(entry.receiver, "retried")
                log.info("notification %d to %s will be retried: %s", entry.id,
                         entry.receiver, exc)
            else:
                self._count(entry.receiver, "failed")
                log.error("notification %d to %s given up: %s", entry.id, entry.receiver, exc)
            return False
        self.outbox.mark_sent(entry.id, now, status)
        self._count(entry.receiver, "sent")
        return True

    def _count(self, receiver: str, outcome: str) -> None:
        with self._counts_lock:
            self._counts[(receiver, outcome)] += 1

    def _fail(self, entry: Entry, now: float, error: str, status: int | None) -> None:
        self.outbox.mark_failed(entry.id, now, error, status)
        self._count(entry.receiver, "failed")
        log.error("notification %d to %s failed: %s", entry.id, entry.receiver, error)

    # ---- reading

    def firing(self) -> list[Alert]:
        """Alerts firing now (copies), including inhibited ones."""
        with self._lock:
            return [Alert.from_dict(s.alert.to_dict()) for s in self._series.values()
                    if s.firing and s.alert is not None]

    def metrics_snapshot(self) -> dict[str, Any]:
        """Plain data for the exporter.

        ``{"firing": {(model, severity): n}, "notifications_total": {(receiver, outcome): n},
        "outbox_depth": n}`` with outcomes ``sent``, ``retried`` (an attempt to be retried),
        ``failed`` (given up or refused), ``dropped`` (the receiver's outbox queue was full).
        """
        firing: Counter[tuple[str, str]] = Counter()
        for alert in self.firing():
            firing[(alert.labels.get("model", ""), alert.severity)] += 1
        with self._counts_lock:
            counts = dict(self._counts)
        return {"firing": dict(firing), "notifications_total": counts,
                "outbox_depth": self.outbox.depth()}

    def close(self) -> None:
        self.outbox.close()


# ---- CLI helpers


@dataclass(frozen=True)
class TestResult:
    """What ``alerts test`` found for one receiver: ``outcome`` is ``ok`` (``detail`` = the
    HTTP statuses), ``failed`` (the error) or ``skipped`` (why it was not tried)."""

    receiver: str
    outcome: str
    detail: str


def send_test_notification(spec: Any, receiver_name: str | None = None,
                           now: float | None = None, env: Mapping[str, str] | None = None
                           ) -> list[TestResult]:
    """Send a clearly marked test notification to every receiver (or one) and report each:
    a failing receiver does not stop the others. PagerDuty and Alertmanager get a trigger
    and a resolve, so nothing stays open. A receiver whose ``${VAR}`` is unset is skipped.
    Raises :class:`UnknownReceiverError` for a ``receiver_name`` not in the spec."""
    alerting: AlertingSpec | None = getattr(spec, "alerting", spec)
    if alerting is None:
        raise AlertsError("the spec has no receivers to test")
    targets: list[ReceiverSpec] = list(alerting.receivers)
    if receiver_name is not None:
        found = alerting.receiver(receiver_name)
        if found is None:
            names = ", ".join(r.name for r in alerting.receivers) or "none"
            raise UnknownReceiverError(f"unknown receiver {receiver_name!r}; receivers: {names}")
        targets = [found]
    out = []
    for receiver in targets:
        at = time.time() if now is None else now
        statuses = []
        try:
            for note in _test_notes(receiver, at):
                statuses.append(deliver(receiver, note, at, env))
        except MissingEnvError as exc:
            out.append(TestResult(receiver.name, "skipped", str(exc)))
            continue
        except AlertsError as exc:
            out.append(TestResult(receiver.name, "failed", str(exc)))
            continue
        steps = ("trigger ", "resolve ") if len(statuses) == 2 else ("",)
        out.append(TestResult(receiver.name, "ok", ", ".join(
            f"{step}HTTP {s}" for step, s in zip(steps, statuses, strict=True))))
    return out


def _test_notes(receiver: ReceiverSpec, now: float) -> list[Notification]:
    labels = {"alertname": "SlicewatchTest", "model": "test", "version": "test",
              "slice": "overall", "severity": "info", "test": "true"}
    alert = Alert(fingerprint="slicewatch-test", labels=labels,
                  annotations={"summary": "[TEST] slicewatch test notification — ignore",
                               "description": "Sent by `slicewatch alerts test`; no action."},
                  status="firing", starts_at=now, value=0.0, threshold="test", metric="test",
                  window_start=now, window_end=now)
    key = f"test:{receiver.name}:{int(now * 1000)}"
    firing = Notification(receiver=receiver.name, group_key=key, dedup_key="slicewatch-" + key,
                          status="firing", alerts=(alert,), group_labels={}, created_at=now,
                          test=True)
    if receiver.type not in ("pagerduty", "alertmanager"):
        return [firing]
    done = Alert.from_dict({**alert.to_dict(), "status": "resolved", "ends_at": now})
    return [firing, Notification(**{**firing.__dict__, "status": "resolved",
                                    "alerts": (done,), "id": firing.id + "-resolve"})]


def list_firing(outbox_path: str) -> list[Alert]:
    """Alerts firing according to the state file of a (possibly running) engine."""
    if not os.path.exists(outbox_path):
        return []
    box = Outbox(outbox_path)
    try:
        return sorted(box.alerts("firing"), key=lambda a: (a.labels.get("model", ""),
                                                           a.starts_at))
    finally:
        box.close()


def inhibited_of(firing: list[Alert], rules: tuple[InhibitRule, ...] = DEFAULT_INHIBIT
                 ) -> set[str]:
    """Fingerprints of the alerts among ``firing`` that ``rules`` mute (left out of
    notifications while their source fires)."""
    return {a.fingerprint for a in firing if inhibited(a, firing, rules)}
