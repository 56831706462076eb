"""``/healthz`` runs the health checks it is given (the hook for e.g. a dead alert dispatcher)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from prometheus_client.registry import CollectorRegistry

from monitor.export.httpserver import MetricsServer
from monitor.export.snapshot import EMPTY


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_failing_health_check_gives_503_with_its_reason():
    state = {"ok": True}

    def dispatcher() -> tuple[bool, str]:
        return state["ok"], "alert dispatcher is not running"

    def broken() -> tuple[bool, str]:
        raise RuntimeError("boom")

    server = MetricsServer(CollectorRegistry(), "127.0.0.1:0", lambda: EMPTY,
                           health_checks=[dispatcher]).start()
    try:
        assert get(server.address + "/healthz")[0] == 200
        state["ok"] = False
        code, body = get(server.address + "/healthz")
        assert code == 503
        assert body["status"] == "unhealthy"
        assert body["problems"] == ["alert dispatcher is not running"]
        server.health_checks.append(broken)
        assert get(server.address + "/healthz")[1]["problems"][1] == "health check failed: boom"
    finally:
        server.stop()
