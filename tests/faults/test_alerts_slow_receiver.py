"""#11.6: a receiver that never answers, or trickles its answer, delays no one else.

Real HTTP servers on 127.0.0.1: one accepts and never answers, one sends its status line one
byte per second, one is healthy. The healthy receiver gets its page within seconds; the
others' requests end at their deadline (``timeout`` bounds the whole request, not each read).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from alerts.engine import AlertEngine
from alerts.errors import DeliveryError
from alerts.model import Observation
from alerts.receivers.base import Request, post
from alerts.workers import Dispatcher
from tests.unit.test_alerts_engine import spec_of

STALL = 20.0  # how long the bad servers keep a request open
HANGING_DEADLINE = 8.0  # the bad receivers' request deadline (``timeout: 8s`` below)


class BadServer:
    """``mode='silent'``: reads the request, answers nothing; ``'trickle'``: one byte of a
    200 answer per second. Both give up after :data:`STALL` seconds or on ``close()``."""

    def __init__(self, mode: str):
        self.mode = mode
        self.done = threading.Event()
        self.requests = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.done.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            self.requests += 1
            answer = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
            end = time.monotonic() + STALL
            for byte in answer:
                if self.done.wait(1.0) or time.monotonic() > end:
                    return
                if self.mode == "trickle":
                    try:
                        conn.sendall(bytes([byte]))
                    except OSError:
                        return

    def close(self) -> None:
        self.done.set()
        self.sock.close()


class Healthy:
    """Records ``(time.monotonic(), body, path, headers)`` per request; answers ``status``
    (a 4xx/5xx answer echoes the request path, as some services quote the URL back)."""

    def __init__(self, status: int = 200) -> None:
        self.pages: list[tuple[float, dict]] = []
        self.requests: list[tuple[str, dict, dict]] = []
        self.status = status
        self.on_request = None  # called with the parsed body, before answering
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if outer.on_request is not None:
                    outer.on_request(body)
                outer.pages.append((time.monotonic(), body))
                outer.requests.append((self.path, body, dict(self.headers)))
                text = b"" if outer.status < 300 else f"bad url {self.path}".encode()
                self.send_response(outer.status)
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

            def log_message(self, *a) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def servers():
    silent, trickle, healthy = BadServer("silent"), BadServer("trickle"), Healthy()
    yield silent, trickle, healthy
    for s in (silent, trickle, healthy):
        s.close()


@pytest.mark.parametrize("mode", ["silent", "trickle"])
def test_the_deadline_bounds_the_whole_request(servers, mode):
    server = servers[0] if mode == "silent" else servers[1]
    url = f"http://127.0.0.1:{server.port}/x"
    t0 = time.monotonic()
    with pytest.raises(DeliveryError) as info:
        post(Request(url, b"{}", {}, "http://${HOST}/x"), 1.5)
    took = time.monotonic() - t0
    # without a deadline on the whole request the server would hold it for STALL seconds
    assert took < STALL / 2, f"a {mode} server held the request {took:.1f} s (deadline 1.5 s)"
    assert info.value.retryable and "deadline" in str(info.value)
    assert "127.0.0.1" not in str(info.value)  # the URL as written in the spec


def spec_for(silent: int, trickle: int, healthy: int):
    route = ("{receiver: ok, group_wait: 0s, group_by: ['...'], routes: ["
             "{matchers: ['alertname=~.+'], receiver: silent, continue: true}, "
             "{matchers: ['alertname=~.+'], receiver: trickle, continue: true}, "
             "{matchers: ['alertname=~.+'], receiver: ok}]}")
    return spec_of(f"""
alerts:
  - {{name: auc_low, metric: roc_auc, threshold: {{lower: 0.7}}}}
receivers:
  - {{name: silent, type: webhook, url: "http://127.0.0.1:{silent}/", timeout: 8s}}
  - {{name: trickle, type: webhook, url: "http://127.0.0.1:{trickle}/", timeout: 8s}}
  - {{name: ok, type: webhook, url: "http://127.0.0.1:{healthy}/", timeout: 3s}}
route: {route}
""")


def page(i: int) -> Observation:
    return Observation(model="fraud", version="v1", slice=f"s{i}", window_start=0.0,
                       window_end=60.0, metrics={"roc_auc": 0.5}, count=100)


def test_a_hanging_receiver_delays_no_other(servers, tmp_path):
    silent, trickle, healthy = servers
    engine = AlertEngine(spec_for(silent.port, trickle.port, healthy.port),
                         str(tmp_path / "a.sqlite"))
    engine.observe([page(0)])
    t0 = time.monotonic()
    rounds = threading.Thread(target=engine.dispatch, daemon=True)
    rounds.start()
    deadline = time.monotonic() + 60
    while not healthy.pages and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(healthy.pages) == 1
    took = healthy.pages[-1][0] - t0
    # one after the other, it would wait at least one hanging receiver's 8 s deadline
    assert took < HANGING_DEADLINE, \
        f"the healthy receiver waited {took:.1f} s behind the hanging ones"
    rounds.join(60)
    assert not rounds.is_alive()
    # the hanging requests ended at their 8 s deadline and wait for a retry
    stuck = [e for e in engine.outbox.entries("pending")]
    assert {e.receiver for e in stuck} == {"silent", "trickle"}
    assert all("deadline" in (e.last_error or "") for e in stuck)
    engine.close()


def test_the_daemon_dispatcher_keeps_paging_while_a_receiver_hangs(servers, tmp_path):
    silent, trickle, healthy = servers
    engine = AlertEngine(spec_for(silent.port, trickle.port, healthy.port),
                         str(tmp_path / "a.sqlite"))
    dispatcher = Dispatcher(engine, interval=0.05).start()
    try:
        for i in range(2):  # one page after another while both bad receivers hang
            t0 = time.monotonic()
            dispatcher.observe([page(i)])
            deadline = time.monotonic() + 60
            while len(healthy.pages) < i + 1 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert len(healthy.pages) == i + 1
            assert healthy.pages[-1][0] - t0 < HANGING_DEADLINE
        deadline = time.monotonic() + 120  # the hanging ones were tried meanwhile too
        while not (silent.requests >= 1 and trickle.requests >= 1):
            assert time.monotonic() < deadline, (silent.requests, trickle.requests)
            time.sleep(0.05)
        assert dispatcher.health() == []
    finally:
        dispatcher.stop()
        engine.close()
