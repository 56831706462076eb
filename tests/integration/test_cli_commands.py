"""The CLI as a user runs it: --help everywhere, baseline build, alerts test and list against
a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from monitor.drift import load_profile
from tests.wait import DEADLINE, HTTP_TIMEOUT

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "monitor.cli"]


def cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], cwd=kw.pop("cwd", REPO), capture_output=True,
                          text=True, timeout=2 * DEADLINE, **kw)


@pytest.mark.parametrize("command", [[], ["run"], ["validate"], ["demo"], ["baseline"],
                                     ["baseline", "build"], ["alerts"], ["alerts", "test"],
                                     ["alerts", "list"], ["grafana"], ["prom-rules"]])
def test_every_command_has_help(command):
    out = cli(*command, "--help")
    assert out.returncode == 0, out.stderr
    assert "usage: slicewatch" in out.stdout and "exit codes" in out.stdout


def test_unknown_command_is_a_usage_error():
    assert cli("frobnicate").returncode == 2


def test_baseline_build_writes_a_loadable_profile(tmp_path):
    out = cli("baseline", "build", "-c", "configs/fraud.yaml", "--data", "examples/fraud.jsonl",
              "-o", str(tmp_path / "profile.json"))
    assert out.returncode == 0, out.stderr
    assert "fraud: profile of 2000 records (0 rejected" in out.stdout
    profile = load_profile(tmp_path / "profile.json")
    assert profile.model == "fraud" and profile.model_version == "v3"
    assert {"amount", "country", "device", "account_age_days"} <= set(profile.overall.features)
    assert "country=BR" in profile.slices and "overall" in profile.slices
    assert profile.overall["amount"].total == 2000


class Receiver:
    def __init__(self) -> None:
        self.bodies: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                outer.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"


def test_alerts_test_sends_a_marked_notification_and_list_shows_firing(tmp_path):
    receiver = Receiver()
    try:
        spec = tmp_path / "spec.yaml"
        base = (REPO / "configs" / "fraud.yaml").read_text().split("\n# Alert rules")[0]
        spec.write_text(base.replace("../examples/", f"{REPO}/examples/") + f"""
alerts:
  - name: accuracy_low
    metric: accuracy
    threshold: {{lower: 0.99}}
receivers:
  - {{name: hook, type: webhook, url: "{receiver.url}"}}
route: {{receiver: hook, group_wait: 0s}}
""")
        out = cli("alerts", "test", "-c", str(spec))
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "hook: ok (HTTP 200)"
        assert receiver.bodies[0]["test"] is True
        assert receiver.bodies[0]["alerts"][0]["labels"]["alertname"] == "SlicewatchTest"
        db = tmp_path / "alerts.db"
        out = cli("run", "-c", str(spec), "--listen", "", "-q", "--alerts-db", str(db),
                  "--notify")  # a replay of the past notifies only when asked
        assert out.returncode == 0, out.stderr
        out = cli("alerts", "list", "--db", str(db))
        assert out.returncode == 0, out.stderr
        assert "accuracy_low" in out.stdout and "slice=overall" in out.stdout
        fired = [b for b in receiver.bodies if not b["test"]]
        assert fired and fired[0]["status"] == "firing"
    finally:
        receiver.httpd.shutdown()


def test_grafana_and_prom_rules_commands(tmp_path):
    out = cli("grafana", "-c", "configs/fraud.yaml", "-o", str(tmp_path / "g"))
    assert out.returncode == 0, out.stderr
    for rel in ("dashboards/slicewatch-model-fraud.json", "dashboards/slicewatch-ops-fraud.json",
                "provisioning/datasources/slicewatch.yaml"):
        assert (tmp_path / "g" / rel).read_bytes() == (REPO / "grafana" / rel).read_bytes()
    out = cli("prom-rules", "-c", "configs/fraud.yaml", "-o", str(tmp_path / "rules.yml"))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "rules.test.yml").exists()


def test_replay_pushes_final_metrics_to_the_pushgateway(pushgateway_url):
    import requests

    out = cli("run", "-c", "configs/pricing.yaml", "--listen", "", "-q",
              "--pushgateway", pushgateway_url)
    assert out.returncode == 0, out.stderr
    text = requests.get(f"{pushgateway_url}/metrics", timeout=HTTP_TIMEOUT).text
    line = next(x for x in text.splitlines() if x.startswith("slicewatch_records_total{")
                and 'model="pricing"' in x and 'job="slicewatch"' in x)
    assert float(line.rsplit(" ", 1)[1]) == 3000
