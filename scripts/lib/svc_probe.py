"""Helpers for scripts/services: free ports and readiness waits (stdlib + optional confluent-kafka).

    python svc_probe.py freeport 3            # three distinct free ports on 127.0.0.1
    python svc_probe.py clusterid             # a KRaft cluster id (StorageTool random-uuid)
    python svc_probe.py wait http http://127.0.0.1:9090/-/ready --pid 123 --timeout 60
    python svc_probe.py wait kafka 127.0.0.1:9092 --pid 456 --timeout 90

`wait` exits 0 once the service answers, 1 on timeout, 2 if the process died first.
"""

from __future__ import annotations

import argparse
import base64
import logging
import os
import socket
import sys
import time
import urllib.error
import urllib.request


def free_ports(n: int) -> list[int]:
    """Bind n sockets to port 0 at once, so the kernel hands out n distinct free ports."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def cluster_id() -> str:
    """A KRaft cluster id as kafka.tools.StorageTool random-uuid prints it (no JVM start).

    Kafka's Uuid: 16 random bytes, URL-safe base64 without padding, never starting with '-'
    and never the all-zero or metadata-topic ids (AAAAAAAAAAAAAAAAAAAAAA, AAAAAAAAAAAAAAAAAAAAAQ).
    """
    while True:
        raw = os.urandom(16)
        text = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        if not text.startswith("-") and int.from_bytes(raw, "big") > 1:
            return text


def alive(pid: int) -> bool:
    """True while pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def http_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def kafka_checker(bootstrap: str):
    """Return a no-argument readiness check for a Kafka broker.

    With confluent-kafka: an AdminClient metadata request that lists at least one broker.
    Without it: a plain TCP connect (weaker, only used outside the project venv).
    """
    try:
        from confluent_kafka.admin import AdminClient
    except ImportError:
        host, port = bootstrap.rsplit(":", 1)

        def tcp() -> bool:
            try:
                with socket.create_connection((host, int(port)), timeout=1.0):
                    return True
            except OSError:
                return False

        return tcp

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0, "logger": _quiet})

    def meta() -> bool:
        try:
            return bool(admin.list_topics(timeout=2.0).brokers)
        except Exception:  # KafkaException while the broker is still starting
            return False

    return meta


_quiet = logging.getLogger("svc_probe.librdkafka")  # swallows connection-refused noise
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False


def wait(kind: str, target: str, pid: int | None, timeout: float) -> int:
    check = kafka_checker(target) if kind == "kafka" else (lambda: http_ready(target))
    start = time.monotonic()
    while True:
        if check():
            print(f"{time.monotonic() - start:.1f}")
            return 0
        if pid is not None and not alive(pid):
            print(f"process {pid} exited before {target} answered", file=sys.stderr)
            return 2
        if time.monotonic() - start > timeout:
            print(f"{target} did not answer within {timeout:.0f} s", file=sys.stderr)
            return 1
        time.sleep(0.2)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="svc_probe")
    sub = p.add_subparsers(dest="cmd", required=True)
    fp = sub.add_parser("freeport")
    fp.add_argument("n", type=int, nargs="?", default=1)
    sub.add_parser("clusterid")
    w = sub.add_parser("wait")
    w.add_argument("kind", choices=["http", "kafka"])
    w.add_argument("target")
    w.add_argument("--pid", type=int)
    w.add_argument("--timeout", type=float, default=60.0)
    a = p.parse_args(argv)
    if a.cmd == "freeport":
        print(" ".join(map(str, free_ports(a.n))))
        return 0
    if a.cmd == "clusterid":
        print(cluster_id())
        return 0
    return wait(a.kind, a.target, a.pid, a.timeout)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    sys.exit(main(sys.argv[1:]))
