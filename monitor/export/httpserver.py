"""The daemon's small HTTP server: ``/metrics``, ``/healthz``, ``/`` (GET and HEAD).

Bounded: at most ``max_connections`` connections are served at once (one thread each; the
ones over the bound are answered 503 and closed, and counted), and a connection that sends
nothing for ``timeout`` seconds is dropped. ``/healthz`` runs a list of health checks —
callables returning ``(ok, reason)`` — and answers 503 with the failing reasons.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector, CollectorRegistry

from monitor.export.snapshot import Snapshot
from slices.errors import SlicewatchError

HealthCheck = Callable[[], tuple[bool, str]]

DEFAULT_TIMEOUT = 10.0  # seconds a connection may stay silent
DEFAULT_MAX_CONNECTIONS = 64  # connections (threads) served at once
BUSY = (b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
        b"Content-Length: 5\r\nConnection: close\r\n\r\nbusy\n")


class ServeError(SlicewatchError):
    """The HTTP server cannot listen (address in use, bad host…)."""


def parse_listen(listen: str) -> tuple[str, int]:
    """``'host:port'`` → ``(host, port)`` (empty host = 127.0.0.1); ``ValueError`` with a
    one-line message when it is not an address.

    >>> parse_listen("0.0.0.0:9108"), parse_listen(":0")
    (('0.0.0.0', 9108), ('127.0.0.1', 0))
    """
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"listen address must be 'host:port' with a port in [0, 65535]; "
                         f"got {listen!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


class _BoundedServer(ThreadingHTTPServer):
    """One thread per connection, at most ``max_connections`` at once. When all are taken, the
    connection that has waited longest without sending a whole request is dropped to make room
    (so idle or half-open connections cannot lock a scrape out); if none is waiting, the new
    connection is answered 503."""

    daemon_threads = True
    request_queue_size = 128  # the listen backlog: connections not yet accepted

    def __init__(self, address, handler, max_connections: int):
        self.slots = threading.BoundedSemaphore(max_connections)
        self.dropped = {"refused": 0, "timed_out": 0, "evicted": 0}
        self._lock = threading.Lock()
        self._waiting: OrderedDict[socket.socket, None] = OrderedDict()  # no request yet
        super().__init__(address, handler)

    def process_request(self, request, client_address) -> None:
        if not self.slots.acquire(blocking=False) and not self._evict_oldest():
            self.count("refused")
            try:
                request.settimeout(1.0)
                request.sendall(BUSY)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        with self._lock:
            self._waiting[request] = None
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.request_started(request)
            self.slots.release()
            raise

    def _evict_oldest(self) -> bool:
        """Drop the oldest connection still waiting for its request; True when its slot came
        free (its thread sees end-of-file and ends)."""
        with self._lock:
            if not self._waiting:
                return False
            victim, _ = self._waiting.popitem(last=False)
        self.count("evicted")
        with contextlib.suppress(OSError):
            victim.shutdown(socket.SHUT_RDWR)
        return self.slots.acquire(timeout=5.0)

    def count(self, reason: str) -> None:
        with self._lock:
            self.dropped[reason] += 1

    def handle_error(self, request, client_address) -> None:
        """A connection that failed (peer gone mid-answer): nothing to print."""

    def request_started(self, request) -> None:
        """The connection's request arrived whole: it is no longer idle."""
        with self._lock:
            self._waiting.pop(request, None)

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.request_started(request)
            self.slots.release()


class MetricsServer:
    """A small threaded HTTP server: ``/metrics``, ``/healthz``, ``/`` (an index).

    ``/healthz`` answers 200 while the process serves and every health check passes (a
    quiet stream is not a failure); how long ago the last batch came is in the body, and
    staleness is for alerting on ``slicewatch_watermark_timestamp_seconds``.
    """

    def __init__(self, registry: CollectorRegistry, listen: str,
                 get_snapshot: Callable[[], Snapshot], *,
                 health_checks: Sequence[HealthCheck] = (),
                 timeout: float = DEFAULT_TIMEOUT,
                 max_connections: int = DEFAULT_MAX_CONNECTIONS):
        try:
            address = parse_listen(listen)
        except ValueError as exc:
            raise ServeError(str(exc)) from None
        self.registry = registry
        self.get_snapshot = get_snapshot
        self.health_checks = list(health_checks)
        try:
            self.httpd = _BoundedServer(address, self._handler(timeout), max_connections)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise ServeError(f"cannot serve /metrics on {listen}: {reason}") from None
        registry.register(_ServerCollector(self.httpd))
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="metrics-http",
                                       daemon=True)

    @property
    def address(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> MetricsServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def health(self) -> tuple[int, dict]:
        """``/healthz``: (status code, body)."""
        snap = self.get_snapshot()
        age = time.time() - snap.heartbeat if snap.heartbeat else None
        failing = []
        for check in self.health_checks:
            try:
                ok, reason = check()
            except Exception as exc:  # a broken check is a failing check, not a crash
                ok, reason = False, f"health check failed: {exc}"
            if not ok:
                failing.append(reason)
        body = {"status": "unhealthy" if failing else "ok", "seconds_since_last_batch": age,
                "records": sum(snap.records.values()),
                "windows_closed": sum(snap.windows_closed.values())}
        if failing:
            body["problems"] = failing
        return (503 if failing else 200), body

    def _handler(self, timeout: float):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def setup(self) -> None:
                self.timeout = timeout  # every read and write on the socket
                super().setup()

            def handle_one_request(self) -> None:
                try:
                    super().handle_one_request()  # counts its own timeouts (log_error)
                except OSError:  # the peer went away, or the connection was evicted
                    self.close_connection = True

            def parse_request(self) -> bool:
                ok = super().parse_request()  # the request line and headers are in
                server.httpd.request_started(self.request)
                return ok

            def do_GET(self) -> None:
                self._answer(body=True)

            def do_HEAD(self) -> None:
                self._answer(body=False)

            def _answer(self, body: bool) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    encoder, ctype = choose_encoder(self.headers.get("Accept", ""))
                    self._send(200, ctype, encoder(server.registry), body)
                elif path == "/healthz":
                    code, doc = server.health()
                    self._send(code, "application/json", json.dumps(doc).encode(), body)
                elif path == "/":
                    self._send(200, "text/plain; charset=utf-8",
                               b"slicewatch: /metrics /healthz\n", body)
                else:
                    self._send(404, "text/plain; charset=utf-8", b"not found\n", body)

            def _send(self, code: int, ctype: str, payload: bytes, body: bool) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if body:
                    self.wfile.write(payload)

            def log_error(self, format: str, *args) -> None:
                if format.startswith("Request timed out"):
                    server.httpd.count("timed_out")

            def log_message(self, *args) -> None:  # quiet
                return

        return Handler


class _ServerCollector(Collector):
    """The server's own counters: connections dropped, by reason."""

    def __init__(self, httpd: _BoundedServer):
        self.httpd = httpd

    def collect(self) -> Iterator[Metric]:
        fam = CounterMetricFamily("slicewatch_http_connections_dropped", "HTTP connections "
                                  "dropped: timed_out (silent longer than the timeout), "
                                  "evicted (idle, to make room), refused (answered 503: too "
                                  "many at once).", labels=["reason"])
        for reason, n in sorted(dict(self.httpd.dropped).items()):
            fam.add_metric([reason], float(n))
        yield fam
