"""The HTTP server under idle, half-open and odd requests; the CLI's usage errors.

A real daemon (``python -m monitor.cli run``) on the bundled fraud example, reached over
127.0.0.1 only.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from monitor.export.httpserver import DEFAULT_MAX_CONNECTIONS, DEFAULT_TIMEOUT

REPO = Path(__file__).resolve().parents[2]
DEADLINE = 90.0


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def cli(*args: str, cwd: Path | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "monitor.cli", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd or REPO, env=_env() | (env or {}))


def wait_until(cond, what: str, deadline: float = DEADLINE):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = cond()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def threads_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no Threads line")


def http(url: str, method: str = "GET") -> tuple[int, dict, bytes]:
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    """A lingering daemon that has replayed the fraud example; yields (process, base URL).
    One for the module: its tests only read it (the half-open test waits until the server
    has closed every connection it held)."""
    tmp_path = tmp_path_factory.mktemp("exporter-http")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "run", "-c", str(REPO / "configs/fraud.yaml"),
         "-q", "--listen", f"127.0.0.1:{port}", "--linger", "-1",
         "--alerts-db", str(tmp_path / "alerts.db"), "--dead-letter", str(tmp_path / "dl")],
        cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"

    def up():
        if proc.poll() is not None:
            raise AssertionError(f"daemon exited: {proc.communicate()}")
        try:
            return http(base + "/healthz")[0] == 200
        except OSError:
            return False

    try:
        wait_until(up, "the daemon's /healthz")
        yield proc, base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_half_open_connections_are_bounded_and_dropped(daemon):
    proc, base = daemon
    port = int(base.rsplit(":", 1)[1])
    before = threads_of(proc.pid)
    sockets = []
    try:
        for i in range(300):  # half-open: a request line, never the end of the headers
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n" if i % 2 else b"")
            sockets.append(s)
        # a normal scrape still answers while they are held
        status, _, body = http(base + "/metrics")
        assert status == 200 and b"slicewatch_records_total" in body
        assert threads_of(proc.pid) <= before + DEFAULT_MAX_CONNECTIONS + 2
        # every held connection is closed by the server (evicted, or after the timeout)
        for s in sockets:
            s.settimeout(DEFAULT_TIMEOUT + DEADLINE)
            while s.recv(65536):  # end of file: the server closed it
                pass
        text = http(base + "/metrics")[2].decode()
        dropped = {line.split('reason="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
                   for line in text.splitlines()
                   if line.startswith("slicewatch_http_connections_dropped_total{")}
        assert dropped["evicted"] + dropped["timed_out"] >= 300 - 1, dropped
        assert dropped["timed_out"] >= 1, dropped
        wait_until(lambda: threads_of(proc.pid) <= before + 2, "the threads to end")
    finally:
        for s in sockets:
            s.close()


def test_head_answers_200_without_a_body(daemon):
    _, base = daemon
    port = int(base.rsplit(":", 1)[1])
    for path in ("/metrics", "/healthz"):
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(f"HEAD {path} HTTP/1.0\r\n\r\n".encode())
            raw = b""
            while chunk := s.recv(65536):
                raw += chunk
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.0 200"), head
        assert body == b"", body[:80]
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length")))
        assert length > 0


def test_port_in_use_is_one_line_exit_1(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = cli("run", "-c", str(REPO / "configs/fraud.yaml"), "-q", "--listen",
                f"127.0.0.1:{port}", "--alerts-db", str(tmp_path / "a.db"), cwd=tmp_path)
    assert r.returncode == 1, r
    assert r.stderr.splitlines() == [f"slicewatch: error: cannot serve /metrics on "
                                     f"127.0.0.1:{port}: Address already in use"], r.stderr
    assert "Traceback" not in r.stdout + r.stderr


@pytest.mark.parametrize("listen", ["bogus", "127.0.0.1:99999", "host:port", "9108"])
def test_bad_listen_is_a_usage_error(listen):
    r = cli("run", "-c", "configs/fraud.yaml", "--listen", listen)
    assert r.returncode == 2, r
    assert "Traceback" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if "error:" in line]
    assert errors == [f"slicewatch run: error: argument --listen: listen address must be "
                      f"'host:port' with a port in [0, 65535]; got {listen!r}"], r.stderr


@pytest.mark.parametrize("argv,usage", [
    (["run", "-c", "x.yaml", "--bogus"], "usage: slicewatch run "),
    (["baseline", "build", "-c", "x", "--data", "d", "-o", "o", "--bogus"],
     "usage: slicewatch baseline build "),
    (["alerts", "list", "--bogus"], "usage: slicewatch alerts list "),
    (["grafana", "-c", "x", "-o", "o", "--bogus"], "usage: slicewatch grafana "),
])
def test_unknown_option_prints_the_subcommands_usage(argv, usage):
    r = cli(*argv)
    assert r.returncode == 2, r
    assert r.stderr.startswith(usage), r.stderr
    assert r.stderr.splitlines()[-1].endswith("error: unrecognized arguments: --bogus")


def test_version_comes_from_the_package_metadata():
    r = cli("--version")
    assert r.returncode == 0, r
    first, reader = r.stdout.strip().splitlines()
    assert first == f"slicewatch {importlib.metadata.version('slicewatch')}"
    built = importlib.util.find_spec("slicewatch_native") is not None
    assert reader == ("JSON reader: native" if built else
                      "JSON reader: Arrow's (the native reader is not built: cargo, then "
                      "make install)"), reader
    r = cli("--version", env={"SLICEWATCH_NATIVE": "0"})
    assert r.stdout.strip().splitlines()[1] == (
        "JSON reader: Arrow's (SLICEWATCH_NATIVE=0)" if built else reader)


def test_grafana_without_output_refuses_and_writes_nothing(tmp_path):
    r = cli("grafana", "-c", str(REPO / "configs/fraud.yaml"), cwd=tmp_path)
    assert r.returncode == 2, r
    assert r.stderr.splitlines()[-1].endswith("the following arguments are required: "
                                              "-o/--output"), r.stderr
    assert list(tmp_path.iterdir()) == []
