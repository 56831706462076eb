"""Receiver contracts against real HTTP servers on 127.0.0.1.

* #18.7 ``alerts test`` tries every receiver, one line each (ok / failed / skipped), exit 1
  when one failed; an unknown ``--receiver`` is a usage error; one ``[TEST]`` marker.
* #18.11 ``alerts list`` marks inhibited alerts.
* #11.10 expanded ``${VAR}`` values never reach error messages, logs or the outbox, even
  when the receiver quotes the URL back.
* #18.6 Alertmanager ``endsAt`` is computed per entry at send time.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from alerts.engine import AlertEngine
from alerts.model import Observation
from tests.faults.test_alerts_slow_receiver import Healthy
from tests.unit.test_alerts_engine import spec_of

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "monitor.cli"]


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env=env)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ok():
    server = Healthy()
    yield server
    server.close()


@pytest.fixture
def refusing():
    server = Healthy(status=400)
    yield server
    server.close()


def spec_file(tmp_path: Path, receivers: str, rules: str = "  - {name: c, concept_drift: true}"
              ) -> Path:
    base = (REPO / "configs" / "fraud.yaml").read_text().split("\n    drift:\n")[0] + \
        "\n    drift: {rolling_windows: 1}"  # concept_drift rules need drift checks
    spec = tmp_path / "spec.yaml"
    spec.write_text(base + f"\nalerts:\n{rules}\nreceivers:\n{receivers}\n"
                    "route: {receiver: ok}\n")
    return spec


def test_alerts_test_tries_every_receiver_and_reports_each(tmp_path, ok, refusing):
    spec = spec_file(tmp_path, f"""\
  - {{name: down, type: webhook, url: "http://127.0.0.1:{closed_port()}/", timeout: 2s}}
  - {{name: refused, type: slack, url: "http://127.0.0.1:{refusing.port}/s/${{SLACK_T}}"}}
  - {{name: pd, type: pagerduty, url: "http://127.0.0.1:{ok.port}/pd",
      routing_key: "${{PD_ROUTING_KEY}}"}}
  - {{name: ok, type: slack, url: "http://127.0.0.1:{ok.port}/slack"}}""")
    env = {k: v for k, v in os.environ.items() if k != "PD_ROUTING_KEY"}
    out = cli("alerts", "test", "-c", str(spec), env={**env, "SLACK_T": "xoxb-s3cr3t"})
    assert out.returncode == 1, out.stderr
    lines = out.stdout.splitlines()
    assert [x.split(":")[0] for x in lines] == ["down", "refused", "pd", "ok"], out.stdout
    assert lines[0].startswith("down: failed: POST http://127.0.0.1:")
    assert "ConnectionRefusedError" in lines[0]
    assert lines[1].startswith("refused: failed: POST http://127.0.0.1:") and " 400" in lines[1]
    assert "xoxb-s3cr3t" not in out.stdout and "${SLACK_T}" in lines[1]
    assert lines[2] == ("pd: skipped: receiver 'pd': environment variable PD_ROUTING_KEY used "
                        "in 'routing_key' is not set")
    assert lines[3] == "ok: ok (HTTP 200)"
    [(_, body, _)] = ok.requests  # the skipped pagerduty receiver sent nothing
    assert body["text"].startswith("[TEST] ") and body["text"].count("[TEST]") == 1


def test_alerts_test_all_ok_exits_0_and_unknown_receiver_is_a_usage_error(tmp_path, ok):
    spec = spec_file(tmp_path, f'  - {{name: ok, type: webhook, url: "http://127.0.0.1:'
                               f'{ok.port}/"}}')
    out = cli("alerts", "test", "-c", str(spec))
    assert (out.returncode, out.stdout) == (0, "ok: ok (HTTP 200)\n"), out.stderr
    out = cli("alerts", "test", "-c", str(spec), "--receiver", "nope")
    assert out.returncode == 2
    assert "unknown receiver 'nope'; receivers: ok" in out.stderr


def test_alerts_list_marks_inhibited_alerts(tmp_path):
    spec = spec_of("""
alerts:
  - {name: auc_low, metric: roc_auc, threshold: {lower: 0.7}, severity: warning}
  - {name: auc_very_low, metric: roc_auc, threshold: {lower: 0.6}, severity: critical}
receivers:
  - {name: ok, type: webhook, url: "http://127.0.0.1:9/"}
route: {receiver: ok}
""")
    db = tmp_path / "alerts.db"
    engine = AlertEngine(spec, str(db))
    engine.observe([Observation(model="fraud", version="v1", slice=s, window_start=0.0,
                                window_end=60.0, metrics={"roc_auc": v}, count=10)
                    for s, v in (("a", 0.5), ("b", 0.65))])
    engine.close()
    out = cli("alerts", "list", "--db", str(db))
    assert out.returncode == 0, out.stderr
    rows = {(x.split()[1], "slice=a" in x): x.endswith("(inhibited)")
            for x in out.stdout.splitlines()}
    # on slice a the critical one inhibits the warning; on slice b nothing is critical
    assert rows == {("auc_very_low", True): False, ("auc_low", True): True,
                    ("auc_low", False): False}, out.stdout


def test_expanded_secrets_never_reach_errors_logs_or_the_outbox(tmp_path, refusing, caplog):
    spec = spec_of(f"""
alerts:
  - {{name: auc_low, metric: roc_auc, threshold: {{lower: 0.7}}}}
receivers:
  - {{name: slack, type: slack, url: "http://127.0.0.1:{refusing.port}/services/${{SLACK_T}}"}}
route: {{receiver: slack, group_wait: 0s}}
""")
    engine = AlertEngine(spec, str(tmp_path / "a.sqlite"), env={"SLACK_T": "xoxb-s3cr3t"})
    engine.observe([Observation(model="fraud", version="v1", slice="overall",
                                window_start=0.0, window_end=60.0, metrics={"roc_auc": 0.5},
                                count=10)])
    with caplog.at_level(logging.INFO, logger="slicewatch.alerts"):
        assert engine.dispatch() == 0
    [(path, _, _)] = refusing.requests
    assert path == "/services/xoxb-s3cr3t"  # the receiver got it, and quoted it back
    [entry] = engine.outbox.entries()
    assert entry.status == "failed" and entry.response_status == 400
    assert "bad url /services/***" in entry.last_error
    assert "${SLACK_T}" in entry.last_error
    assert "xoxb-s3cr3t" not in entry.last_error
    assert caplog.records and "xoxb-s3cr3t" not in caplog.text
    engine.close()


def test_alertmanager_ends_at_is_computed_per_entry_at_send_time(tmp_path, ok):
    """After a slow round the later entries must not arrive already expired."""
    clock = {"now": 1_800_000_000.0}
    received_at: list[float] = []

    def slow(body) -> None:  # each request takes 100 s of the engine's clock
        received_at.append(clock["now"])
        clock["now"] += 100.0

    ok.on_request = slow
    spec = spec_of(f"""
alerts:
  - {{name: auc_low, metric: roc_auc, threshold: {{lower: 0.7}}}}
receivers:
  - {{name: am, type: alertmanager, url: "http://127.0.0.1:{ok.port}", resend_interval: 1m}}
route: {{receiver: am, group_wait: 0s, group_by: ['...']}}
""")
    engine = AlertEngine(spec, str(tmp_path / "a.sqlite"), clock=lambda: clock["now"])
    engine.observe([Observation(model="fraud", version="v1", slice=f"s{i}", window_start=0.0,
                                window_end=60.0, metrics={"roc_auc": 0.5}, count=10)
                    for i in range(3)])
    assert engine.dispatch() == 3
    assert len(ok.requests) == 3
    for (_, body, _), at in zip(ok.requests, received_at, strict=True):
        [alert] = body
        ends = datetime.fromisoformat(alert["endsAt"].replace("Z", "+00:00")).timestamp()
        assert ends == pytest.approx(at + 4 * 60.0, abs=0.01), "endsAt not from the send time"
    engine.close()
