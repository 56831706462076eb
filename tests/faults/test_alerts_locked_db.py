"""#11.5: a real locked alert database (another connection holding ``BEGIN EXCLUSIVE``).

It must not leak the outbox's lock (which froze the next window close for good), kill the
dispatcher, or block ingestion; errors are counted and retried, and ``/healthz`` says 503
while the dispatcher cannot complete a round, 200 again once it can.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from contextlib import contextmanager

import pytest
import requests
from prometheus_client.registry import CollectorRegistry

from alerts.engine import AlertEngine
from alerts.model import Notification, Observation
from alerts.outbox import Outbox
from alerts.workers import Dispatcher
from monitor.export.httpserver import MetricsServer
from monitor.export.snapshot import EMPTY
from tests.unit.test_alerts_engine import spec_of

SPEC = """
alerts:
  - {name: auc_low, metric: roc_auc, threshold: {lower: 0.7}}
receivers:
  - {name: hook, type: webhook, url: "http://127.0.0.1:9/"}
route: {receiver: hook, group_wait: 1h}
"""


def wait_for(predicate, deadline: float = 60.0) -> bool:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@contextmanager
def locked(path: str):
    """Another process's view: a second connection holding the write lock."""
    other = sqlite3.connect(path, isolation_level=None, timeout=60)  # waits for a short
    # transaction of the dispatcher itself
    other.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()


def obs(i: int, value: float = 0.5) -> Observation:
    return Observation(model="fraud", version="v1", slice="overall", window_start=60.0 * i,
                       window_end=60.0 * (i + 1), metrics={"roc_auc": value}, count=100)


def test_a_failed_begin_releases_the_outbox_lock(tmp_path):
    path = str(tmp_path / "o.sqlite")
    box = Outbox(path)
    box._db.execute("PRAGMA busy_timeout = 100")  # (old and new code alike) fail fast
    note = Notification(receiver="hook", group_key="g", dedup_key="k", status="firing",
                        alerts=(), group_labels={}, created_at=0.0)
    with locked(path):
        try:
            box.commit([note], now=0.0)
            raise AssertionError("the commit should have met the lock")
        except sqlite3.OperationalError as exc:
            assert "locked" in str(exc)
    # another thread (the main thread at the next window close) must get through now
    other = threading.Thread(target=box.commit, args=([note], 1.0), daemon=True)
    other.start()
    other.join(30)
    assert not other.is_alive(), "the outbox lock leaked: the next commit blocks for good"
    assert box.depth() == 1
    box.close()


def test_locked_database_is_counted_retried_and_reported_by_healthz(tmp_path):
    path = str(tmp_path / "alerts.sqlite")
    engine = AlertEngine(spec_of(SPEC), path, busy_timeout=0.2)
    dispatcher = Dispatcher(engine, interval=0.05, stuck_after=3.0).start()

    def dispatcher_ok() -> tuple[bool, str]:
        problems = dispatcher.health()
        return not problems, "; ".join(problems)

    server = MetricsServer(CollectorRegistry(auto_describe=False), "127.0.0.1:0",
                           lambda: EMPTY, health_checks=[dispatcher_ok]).start()
    healthz = f"{server.address}/healthz"
    try:
        assert requests.get(healthz, timeout=10).status_code == 200
        with locked(path):
            t0 = time.monotonic()
            dispatcher.observe([obs(0)])  # a window closes while the database is locked
            dispatcher.observe([obs(1)])
            took = time.monotonic() - t0
            # the lock is held until the block ends: waiting on it would never return
            assert took < 30, f"ingestion blocked {took:.1f} s on the alert database"
            assert dispatcher.pending() == 2 and engine.firing() == []
            assert wait_for(lambda: dispatcher.errors[("dispatcher", "database_locked")] >= 2)
            assert wait_for(lambda: requests.get(healthz, timeout=10).status_code == 503)
            body = requests.get(healthz, timeout=10).json()
            assert body["status"] == "unhealthy"
            assert any("dispatcher has not completed a round" in p and "database_locked" in p
                       for p in body["problems"]), body
            assert dispatcher.main.thread.is_alive()
        # the lock is gone: the queued windows are judged, in order, and health recovers
        assert wait_for(lambda: dispatcher.pending() == 0)
        assert [a.labels["alertname"] for a in engine.firing()] == ["auc_low"]
        assert engine.firing()[0].window_end == 120.0
        assert wait_for(lambda: requests.get(healthz, timeout=10).status_code == 200)
    finally:
        server.stop()
        dispatcher.stop()
        engine.close()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_dispatcher_thread_is_reported(tmp_path):
    engine = AlertEngine(spec_of(SPEC), str(tmp_path / "alerts.sqlite"))
    dispatcher = Dispatcher(engine, interval=0.05).start()
    try:
        assert dispatcher.health() == []
        dispatcher.main.step = None  # calling it raises TypeError: counted, the loop lives on
        assert wait_for(lambda: dispatcher.errors[("dispatcher", "TypeError")] >= 1)
        assert dispatcher.main.thread.is_alive()

        def die() -> bool:
            raise SystemExit  # not an Exception: the thread ends

        dispatcher.main.step = die
        assert wait_for(lambda: not dispatcher.main.thread.is_alive())
        assert dispatcher.health() == ["alert dispatcher thread is not running"]
    finally:
        dispatcher.stop()
        engine.close()


def test_observations_waiting_for_a_locked_database_are_bounded(tmp_path):
    path = str(tmp_path / "alerts.sqlite")
    engine = AlertEngine(spec_of(SPEC), path, busy_timeout=0.1)
    dispatcher = Dispatcher(engine, interval=0.05, max_pending=2).start()
    try:
        with locked(path):
            dispatcher.observe([obs(0)])
            dispatcher.observe([obs(1)])
            dispatcher.observe([obs(2)])  # over the bound: dropped and counted
            assert (dispatcher.pending(), dispatcher.dropped) == (2, 1)
        assert wait_for(lambda: dispatcher.pending() == 0)
        assert engine.firing()[0].window_end == 120.0  # windows 0 and 1 were judged
    finally:
        dispatcher.stop()
        engine.close()


def test_an_unreadable_alert_database_is_a_clear_error_not_a_traceback(tmp_path):
    import subprocess
    import sys

    db = tmp_path / "alerts.db"
    db.write_bytes(b"not a database" * 100)
    out = subprocess.run([sys.executable, "-m", "monitor.cli", "alerts", "list", "--db",
                          str(db)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert f"cannot open the alert database {db}: file is not a database" in out.stderr
