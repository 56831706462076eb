"""Delivery to real HTTP servers on 127.0.0.1 (no mocks): payloads of Slack, PagerDuty and
the signed webhook; a receiver that is down while alerts fire and resolve; a process killed
with a non-empty outbox.

The issue asks for a receiver down for 60 s; the tests use ``SLICEWATCH_TEST_DOWN_SECONDS``
(default 2 s) with a backoff scaled down to match (base 50 ms, cap 0.5 s) — the outbox logic
does not depend on the length of the outage, only on it spanning many retries.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from alerts.engine import AlertEngine, send_test_notification
from alerts.model import Observation
from alerts.outbox import Backoff, Outbox
from slices.load_alerting import parse_alerting
from slices.spec import ModelSpec
from slices.yamlpos import Checker, load_text
from tests.wait import DEADLINE, wait_until

REPO = Path(__file__).resolve().parents[2]
MODELS = (ModelSpec(name="fraud", task="binary"),)
SECRET = "hook-s3cret"
DOWN_SECONDS = float(os.environ.get("SLICEWATCH_TEST_DOWN_SECONDS", "2"))
PD_SEVERITIES = {"critical", "error", "warning", "info"}


# ---------------------------------------------------------------- a checking HTTP receiver


def check_pagerduty(body: dict) -> list[str]:
    """What PagerDuty Events API v2 requires of an event; returns the problems."""
    problems = []
    for key in ("routing_key", "event_action", "dedup_key"):
        if not isinstance(body.get(key), str) or not body[key]:
            problems.append(f"missing {key}")
    if body.get("event_action") == "resolve":
        return problems
    if body.get("event_action") != "trigger":
        return [*problems, f"bad event_action {body.get('event_action')!r}"]
    p = body.get("payload", {})
    if not isinstance(p.get("summary"), str) or not 0 < len(p["summary"]) <= 1024:
        problems.append("summary missing or longer than 1024")
    if not p.get("source"):
        problems.append("missing source")
    if p.get("severity") not in PD_SEVERITIES:
        problems.append(f"bad severity {p.get('severity')!r}")
    try:
        datetime.fromisoformat(p["timestamp"].replace("Z", "+00:00"))
    except (KeyError, ValueError, AttributeError):
        problems.append("timestamp not ISO 8601")
    details = p.get("custom_details", {})
    for key in ("metric", "value", "threshold", "window", "slice"):
        if key not in details:
            problems.append(f"custom_details lacks {key}")
    return problems


def check_slack(body: dict) -> list[str]:
    problems = [] if isinstance(body.get("text"), str) and body["text"] else ["missing text"]
    blocks = body.get("blocks")
    if not isinstance(blocks, list) or not blocks or any("type" not in b for b in blocks):
        problems.append("blocks missing or without type")
    return problems


def check_webhook(body: dict, raw: bytes, headers) -> list[str]:
    """The signature as a receiver checks it, by hand: ``t=<unix>,v1=<HMAC of "t.body">``,
    with t no more than 5 minutes away."""
    got = dict(p.split("=", 1) for p in headers.get("X-Slicewatch-Signature", "").split(","))
    t = got.get("t", "0")
    want = hmac.new(SECRET.encode(), f"{t}.".encode() + raw, hashlib.sha256).hexdigest()
    fresh = abs(time.time() - int(t)) <= 300
    problems = [] if hmac.compare_digest(got.get("v1", ""), want) and fresh else [
        "bad signature"]
    if headers.get("X-Slicewatch-Notification") != body.get("notificationId"):
        problems.append("notification id header and body differ")
    return problems


class Receiver:
    """A real HTTP server; answers 2xx to valid payloads, 400 to invalid ones, and 503 while
    ``down`` is set. ``close()`` / ``open()`` take the port away and back."""

    def __init__(self, port: int = 0):
        self.accepted: list[tuple[str, dict, dict]] = []  # (path, body, headers)
        self.rejected: list[tuple[str, list[str]]] = []
        self.refused = 0  # 503 answers
        self.down = False
        self.hold_after: int | None = None  # hold the request after this many accepted
        self.holding = threading.Event()  # set while a request is held
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.port = port
        self.server: ThreadingHTTPServer | None = None
        self.open()

    def open(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with outer.lock:
                    hold = (outer.hold_after is not None and not outer.down
                            and len(outer.accepted) >= outer.hold_after)
                if hold:  # never answered, never counted: the sender dies waiting
                    outer.holding.set()
                    outer.release.wait(10)
                    return
                with outer.lock:
                    if outer.down:
                        outer.refused += 1
                        self._answer(503, b"down")
                        return
                    body = json.loads(raw)
                    kind = self.path.split("/")[1]
                    problems = {"pd": lambda: check_pagerduty(body),
                                "slack": lambda: check_slack(body),
                                "hook": lambda: check_webhook(body, raw, self.headers)}[kind]()
                    if problems:
                        outer.rejected.append((self.path, problems))
                        self._answer(400, json.dumps(problems).encode())
                        return
                    outer.accepted.append((self.path, body, dict(self.headers)))
                self._answer(202 if kind == "pd" else 200, b"ok")

            def _answer(self, code, text):
                self.send_response(code)
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def bodies(self, kind: str) -> list[dict]:
        with self.lock:
            return [b for p, b, _ in self.accepted if p.split("/")[1] == kind]


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def spec_for(port: int, route: str):
    base = f"http://127.0.0.1:{port}"
    text = textwrap.dedent("""
        alerts:
          - name: auc_low
            model: fraud
            metric: roc_auc
            threshold: {lower: 0.7}
            annotations:
              summary: "{{ model }}/{{ slice }}: {{ metric }} {{ value }} {{ threshold }}"
            flapping: false
        receivers:
          - {name: pd, type: pagerduty, url: "BASE/pd", routing_key: "${PD_KEY}"}
          - {name: slack, type: slack, url: "BASE/slack/${SLACK_TOKEN}"}
          - {name: hook, type: webhook, url: "BASE/hook", secret: "${HOOK_SECRET}"}
        route: ROUTE
        """).replace("BASE", base).replace("ROUTE", route)
    doc = load_text(text, "spec.yaml")
    checker = Checker(doc)
    spec = parse_alerting(checker, doc.data, MODELS)
    checker.raise_if_any()
    return spec


ENV = {"PD_KEY": "routing-key-123", "SLACK_TOKEN": "T0K3N", "HOOK_SECRET": SECRET}
ALL = "alertname=~.+"
FANOUT = ("{receiver: hook, group_wait: 0s, group_interval: 100ms, group_by: ['...'], routes: ["
          f"{{matchers: ['{ALL}'], receiver: pd, continue: true}}, "
          f"{{matchers: ['{ALL}'], receiver: slack, continue: true}}, "
          f"{{matchers: ['{ALL}'], receiver: hook}}]}}")


def obs(i: int, value: float, slice_: str, critical: bool = False) -> Observation:
    return Observation(model="fraud", version="v1", slice=slice_, window_start=i * 60.0,
                       window_end=(i + 1) * 60.0, metrics={"roc_auc": value}, count=1000,
                       critical=critical)


def drain(engine: AlertEngine, expected: int, timeout: float = DEADLINE) -> int:
    """Dispatch until ``expected`` notifications went out (group timers are 100 ms)."""
    sent = 0

    def enough() -> bool:
        nonlocal sent
        sent += engine.dispatch()
        return sent >= expected

    try:
        wait_until(enough, timeout, what=f"{expected} notifications sent", interval=0.02)
    except AssertionError:
        return sent  # the caller's assertion shows how many went out
    time.sleep(0.15)  # not a wait: past the group interval, to see that nothing more comes
    return sent + engine.dispatch()


def dispatch_until_empty(engine: AlertEngine, interval: float,
                         clock=lambda: None) -> None:
    """Dispatch until the outbox is empty (``clock()``: the ``now`` to dispatch at)."""
    def empty() -> bool:
        engine.dispatch(now=clock())
        return engine.outbox.depth() == 0

    wait_until(empty, what="the outbox delivered", interval=interval,
               detail=lambda: f"depth {engine.outbox.depth()}")


def test_payloads_signature_and_trigger_resolve(receiver, tmp_path):
    spec = spec_for(receiver.port, FANOUT)
    engine = AlertEngine(spec, str(tmp_path / "a.sqlite"), env=ENV)
    engine.observe([obs(0, 0.61, "country=DE", critical=True)])
    assert drain(engine, 3) == 3
    engine.observe([obs(1, 0.9, "country=DE", critical=True)])
    assert drain(engine, 3) == 3
    assert receiver.rejected == []
    trigger, resolve = receiver.bodies("pd")
    assert trigger["event_action"] == "trigger" and resolve["event_action"] == "resolve"
    assert trigger["dedup_key"] == resolve["dedup_key"]
    assert trigger["routing_key"] == "routing-key-123"
    assert trigger["payload"]["severity"] == "critical"  # critical slice raises the severity
    assert trigger["payload"]["summary"] == "fraud/country=DE: roc_auc 0.61 < 0.7"
    details = trigger["payload"]["custom_details"]
    assert details["value"] == 0.61 and details["slice"] == "country=DE"
    assert details["window"] == {"start": "1970-01-01T00:00:00.000Z",
                                 "end": "1970-01-01T00:01:00.000Z"}
    fired, cleared = receiver.bodies("slack")
    assert "CRITICAL" in fired["text"] and "RESOLVED" in cleared["text"]
    hook_fired, hook_cleared = receiver.bodies("hook")
    assert (hook_fired["status"], hook_cleared["status"]) == ("firing", "resolved")
    assert hook_cleared["alerts"][0]["endsAt"] is not None
    snap = engine.metrics_snapshot()
    assert snap["notifications_total"][("pd", "sent")] == 2 and snap["outbox_depth"] == 0
    assert snap["firing"] == {}


def test_bad_request_is_not_retried(receiver, tmp_path):
    spec = spec_for(receiver.port, FANOUT)
    engine = AlertEngine(spec, str(tmp_path / "a.sqlite"), env={**ENV, "HOOK_SECRET": "wrong"})
    engine.observe([obs(0, 0.5, "all")])
    assert engine.dispatch() == 2  # pd and slack; the webhook's signature is refused
    [failed] = engine.outbox.entries("failed")
    assert failed.receiver == "hook" and failed.response_status == 400
    assert "bad signature" in failed.last_error and failed.attempts == 1
    assert engine.dispatch() == 0 and len(receiver.rejected) == 1
    assert engine.metrics_snapshot()["notifications_total"][("hook", "failed")] == 1


def test_missing_env_var_fails_clearly(receiver, tmp_path):
    spec = spec_for(receiver.port, FANOUT)
    env = {k: v for k, v in ENV.items() if k != "PD_KEY"}
    engine = AlertEngine(spec, str(tmp_path / "a.sqlite"), env=env)
    engine.observe([obs(0, 0.5, "all")])
    engine.dispatch()
    [failed] = engine.outbox.entries("failed")
    assert failed.receiver == "pd"
    assert failed.last_error == ("receiver 'pd': environment variable PD_KEY used in "
                                 "'routing_key' is not set")


def test_send_test_notification(receiver, monkeypatch):
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    spec = spec_for(receiver.port, FANOUT)
    sent = send_test_notification(spec)
    assert [(r.receiver, r.outcome, r.detail) for r in sent] == [
        ("pd", "ok", "trigger HTTP 202, resolve HTTP 202"), ("slack", "ok", "HTTP 200"),
        ("hook", "ok", "HTTP 200")]
    assert receiver.rejected == []
    trigger, resolve = receiver.bodies("pd")
    assert trigger["payload"]["summary"].startswith("[TEST]")
    assert resolve["event_action"] == "resolve" and resolve["dedup_key"] == trigger["dedup_key"]
    assert receiver.bodies("slack")[0]["text"].startswith("[TEST]")
    assert receiver.bodies("hook")[0]["test"] is True


def delivered_exactly_once_in_order(receiver: Receiver, box: Outbox) -> None:
    entries = box.entries()
    assert entries and all(e.status == "sent" for e in entries)
    hooks = receiver.bodies("hook")
    ids = [b["notificationId"] for b in hooks]
    assert len(ids) == len(set(ids)), "a notification was delivered twice"
    assert sorted(ids) == sorted(e.notification.id for e in entries)
    by_key: dict[str, list[str]] = {}
    for e in entries:
        by_key.setdefault(e.dedup_key, []).append(e.notification.id)
    got: dict[str, list[str]] = {}
    for b in hooks:
        got.setdefault(b["dedupKey"], []).append(b["notificationId"])
    assert got == by_key, "order per dedup key differs from the outbox order"


HOOK_ONLY = ("{receiver: hook, group_wait: 0s, group_interval: 50ms, group_by: ['...']}")


def test_receiver_down_while_alerts_fire_and_resolve(receiver, tmp_path):
    spec = spec_for(receiver.port, HOOK_ONLY)
    engine = AlertEngine(spec, str(tmp_path / "a.sqlite"), env=ENV,
                         backoff=Backoff(base=0.05, factor=2.0, cap=0.5))
    slices = [f"s{k}" for k in range(4)]
    # each slice flips between breached and fine with its own period: fires and resolves
    # many times during the outage
    pattern = {s: [(i // (k + 1)) % 2 == 0 for i in range(40)] for k, s in enumerate(slices)}
    receiver.down = True
    start = time.monotonic()
    window = 0
    # DOWN_SECONDS and at least 40 windows (a loaded machine makes fewer per second)
    while time.monotonic() - start < DOWN_SECONDS or window < 40:
        if (time.monotonic() - start > DOWN_SECONDS / 2 and window >= 20
                and receiver.server is not None):
            receiver.close()  # second half of the outage: the port is closed
        engine.observe([obs(window, 0.5 if pattern[s][window % 40] else 0.9, s)
                        for s in slices])
        engine.dispatch()
        window += 1
        time.sleep(0.05)
    assert receiver.accepted == [] and receiver.refused > 0
    enqueued = len(engine.outbox.entries())
    assert enqueued >= 20 and engine.metrics_snapshot()["outbox_depth"] > 0
    receiver.down = False
    receiver.open()
    dispatch_until_empty(engine, 0.05)
    delivered_exactly_once_in_order(receiver, engine.outbox)
    snap = engine.metrics_snapshot()["notifications_total"]
    assert snap[("hook", "sent")] == enqueued and snap[("hook", "retried")] > 0


def test_observe_and_dispatch_in_two_threads(receiver, tmp_path):
    spec = spec_for(receiver.port, HOOK_ONLY)
    engine = AlertEngine(spec, str(tmp_path / "a.sqlite"), env=ENV,
                         backoff=Backoff(base=0.05, cap=0.2))
    stop = threading.Event()

    def dispatcher():
        while not stop.is_set():
            engine.dispatch()
            engine.metrics_snapshot()
            time.sleep(0.005)

    thread = threading.Thread(target=dispatcher)
    thread.start()
    try:
        for w in range(40):
            engine.observe([obs(w, 0.5 if (w // (k + 1)) % 2 else 0.9, f"s{k}")
                            for k in range(3)])
            time.sleep(0.06)
    finally:
        stop.set()
        thread.join()
    time.sleep(0.1)  # not a wait: past the last group interval
    dispatch_until_empty(engine, 0.02)
    assert len(engine.outbox.entries()) >= 20
    delivered_exactly_once_in_order(receiver, engine.outbox)


CHILD = """
import sys, time
sys.path.insert(0, {repo!r})
from tests.integration.test_alerts_delivery import spec_for, obs, ENV, HOOK_ONLY
from alerts.engine import AlertEngine
from alerts.outbox import Backoff
engine = AlertEngine(spec_for({port}, HOOK_ONLY), {path!r}, env=ENV,
                     backoff=Backoff(base=0.05, cap=0.2))
for w in range(12):
    engine.observe([obs(w, 0.5 if (w + k) % 2 else 0.9, f"s{{k}}") for k in range(3)])
    engine.dispatch()
    time.sleep(0.06)  # past the 50 ms group interval: every flip is notified
print("enqueued", flush=True)
while True:
    engine.dispatch()
    time.sleep(0.02)
"""


def test_killed_process_outbox_delivered_after_restart(receiver, tmp_path):
    path = str(tmp_path / "a.sqlite")
    receiver.down = True
    child = subprocess.Popen([sys.executable, "-c", CHILD.format(repo=str(REPO),
                              port=receiver.port, path=path)],
                             stdout=subprocess.PIPE, text=True, cwd=str(REPO))
    try:
        assert child.stdout.readline().strip() == "enqueued"
        wait_until(lambda: receiver.refused >= 1, what="a first attempt refused (503)")
        receiver.hold_after = 8
        receiver.down = False  # it delivers 8, the 9th is held …
        assert receiver.holding.wait(DEADLINE)
        child.send_signal(signal.SIGKILL)  # … and the sender dies waiting for the answer
        child.wait(timeout=DEADLINE)
    finally:
        if child.poll() is None:
            child.kill()
    receiver.hold_after = None
    receiver.release.set()
    box = Outbox(path)
    before = {e.status for e in box.entries()}
    assert "pending" in before, "the child delivered everything before it was killed"
    assert len(receiver.accepted) == 8 and len(box.entries()) > 16
    engine = AlertEngine(spec_for(receiver.port, HOOK_ONLY), path, env=ENV,
                         backoff=Backoff(base=0.05, cap=0.2))
    # the dead child's lease (60 s) has run out
    dispatch_until_empty(engine, 0.02, clock=lambda: time.time() + 61)
    delivered_exactly_once_in_order(receiver, box)
    box.close()
