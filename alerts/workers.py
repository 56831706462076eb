"""Background alerting for a long-running process: a supervised dispatcher loop and one
delivery worker per receiver.

* The **dispatcher** judges queued observations (:meth:`Dispatcher.observe` is called as
  windows close), runs the group timers, prunes, and wakes the workers.
* Each **receiver worker** sends that receiver's due outbox entries: a receiver that never
  answers holds up only its own queue (every request has a deadline, ``timeout``).
* **Supervised**: an error in a round (e.g. ``database is locked``) is logged and counted by
  loop and reason, and the round is tried again ``interval`` later; observations that could
  not be committed stay queued (at most ``max_pending``; more are dropped and counted).
* :meth:`Dispatcher.health` names a loop whose thread died or that has not completed a round
  for ``stuck_after`` seconds, for ``/healthz``.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable

from alerts.engine import AlertEngine
from alerts.model import AlertEvent, Observation

log = logging.getLogger("slicewatch.alerts")
EventSink = Callable[[list[AlertEvent]], None]
ENTRIES_PER_ROUND = 10  # a worker's round sends at most this many entries


def reason_of(exc: BaseException) -> str:
    """A short, value-free reason for counting: ``database_locked``, ``OperationalError``…"""
    if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
        return "database_locked"
    return type(exc).__name__


class _Loop:
    """A daemon thread calling ``step`` until stopped; ``step`` returns True when it wants to
    run again at once (more work waiting)."""

    def __init__(self, name: str, step: Callable[[], bool], interval: float,
                 stuck_after: float, owner: Dispatcher):
        self.name, self.step, self.interval, self.stuck_after = name, step, interval, stuck_after
        self.owner = owner
        self.wake = threading.Event()
        self.last_ok = time.monotonic()
        self.last_error: str | None = None
        self.thread = threading.Thread(target=self._run, name=f"alert-{name}", daemon=True)

    def _run(self) -> None:
        while not self.owner.stopping.is_set():
            again = False
            try:
                again = self.step()
                self.last_ok, self.last_error = time.monotonic(), None
            except Exception as exc:  # supervised: count, log, retry next round
                self.last_error = self.owner.error(self.name, exc)
            if not again:
                self.wake.wait(self.interval)
                self.wake.clear()

    def problem(self) -> str | None:
        if not self.thread.is_alive():
            return f"alert {self.name} thread is not running"
        idle = time.monotonic() - self.last_ok
        if idle > self.stuck_after:
            why = f" (last error: {self.last_error})" if self.last_error else ""
            return f"alert {self.name} has not completed a round for {idle:.0f} s{why}"
        return None


class Dispatcher:
    """Runs ``engine`` in the background; see the module docstring."""

    def __init__(self, engine: AlertEngine, *, interval: float = 1.0,
                 stuck_after: float = 60.0, max_pending: int = 100_000,
                 sinks: Iterable[EventSink] = ()):
        self.engine = engine
        self.interval = interval
        self.max_pending = max_pending
        self.sinks = list(sinks)
        self.stopping = threading.Event()
        self.errors: Counter[tuple[str, str]] = Counter()
        self.dropped = 0  # observations over max_pending
        self._pending: deque[list[Observation]] = deque()
        self._pending_n = 0
        self._pending_lock = threading.Lock()
        self._drain_lock = threading.Lock()
        self._failing = False
        self._started = False
        self.main = _Loop("dispatcher", self._round, interval, stuck_after, self)
        self.workers = {
            r.name: _Loop(f"receiver {r.name}", self._sender(r.name), interval,
                          max(stuck_after, ENTRIES_PER_ROUND * r.timeout + stuck_after), self)
            for r in engine.spec.receivers}

    def start(self) -> Dispatcher:
        self._started = True
        for loop in (self.main, *self.workers.values()):
            loop.thread.start()
        return self

    # ---- observations

    def observe(self, observations: list[Observation]) -> None:
        """Queue ``observations`` and judge them now when the database answers (else the
        dispatcher retries them each round). Never raises; waits at most the engine's
        ``busy_timeout`` (only the first time the database is found locked)."""
        if not observations:
            return
        with self._pending_lock:
            if self._pending_n + len(observations) > self.max_pending:
                self.dropped += len(observations)
                log.error("alerting: %d observations dropped, %d already wait for the alert "
                          "database", len(observations), self._pending_n)
                return
            self._pending.append(list(observations))
            self._pending_n += len(observations)
            inline = not self._failing
        if inline and self._drain_lock.acquire(blocking=False):
            try:
                self._drain()
            except Exception as exc:
                self.error("observe", exc)
            finally:
                self._drain_lock.release()
        else:
            self.main.wake.set()

    def pending(self) -> int:
        """Observations waiting to be judged."""
        with self._pending_lock:
            return self._pending_n

    def _drain(self) -> None:
        """Judge queued observations in order; the first failure leaves it and the rest
        queued (the engine rolled it back) and raises."""
        while True:
            with self._pending_lock:
                if not self._pending:
                    self._failing = False
                    return
                batch = self._pending[0]
            events: list[AlertEvent] = []
            try:
                self.engine.observe(batch, events=events)
            except BaseException:
                self._failing = True
                raise
            with self._pending_lock:
                self._pending.popleft()
                self._pending_n -= len(batch)
            for sink in self.sinks:
                try:
                    sink(events)
                except Exception as exc:
                    self.error("sink", exc)

    # ---- rounds

    def _round(self) -> bool:
        with self._drain_lock:
            self._drain()
        self.engine.housekeeping()
        for loop in self.workers.values():
            loop.wake.set()
        return False

    def _sender(self, receiver: str) -> Callable[[], bool]:
        def step() -> bool:
            self.engine.deliver_due(receiver, max_rounds=1, limit=ENTRIES_PER_ROUND)
            return bool(self.engine.outbox.due(self.engine.clock(), 1, receiver))

        return step

    def error(self, where: str, exc: BaseException) -> str:
        reason = reason_of(exc)
        self.errors[(where, reason)] += 1
        log.error("alerting: %s failed (%s), retried next round: %s", where, reason, exc)
        return reason

    # ---- health and stop

    def health(self) -> list[str]:
        """Problems of the background loops (empty when healthy)."""
        if not self._started or self.stopping.is_set():
            return []
        loops = (self.main, *self.workers.values())
        return [p for p in (loop.problem() for loop in loops) if p]

    def stop(self, horizon: float = 0.0) -> None:
        """Stop the loops (a request in flight ends by its deadline), judge what is still
        queued, and run one last round ``horizon`` seconds ahead so waiting groups flush
        (no request starts after the longest receiver ``timeout``); what cannot be sent
        stays in the durable outbox."""
        self.stopping.set()
        for loop in (self.main, *self.workers.values()):
            loop.wake.set()
        if self._started:
            self.main.thread.join()
            for loop in self.workers.values():
                loop.thread.join()
        try:
            with self._drain_lock:
                self._drain()
            longest = max((r.timeout for r in self.engine.spec.receivers), default=0.0)
            self.engine.dispatch(now=time.time() + horizon, until=time.monotonic() + longest)
        except Exception as exc:
            self.error("stop", exc)
