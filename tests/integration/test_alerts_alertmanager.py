"""A real Alertmanager (started by scripts/services on 127.0.0.1) receives slicewatch's
alerts: read back from its API while firing, re-sent periodically, then resolved via endsAt."""

from __future__ import annotations

import textwrap
import time
import uuid
from datetime import datetime

import requests

from alerts.engine import AlertEngine
from alerts.model import Observation
from slices.load_alerting import parse_alerting
from slices.spec import ModelSpec
from slices.yamlpos import Checker, load_text
from tests.wait import HTTP_TIMEOUT, wait_until

MODELS = (ModelSpec(name="fraud", task="binary"),)


def engine_for(url: str, name: str, path: str) -> AlertEngine:
    text = textwrap.dedent(f"""
        alerts:
          - name: {name}
            metric: roc_auc
            threshold: {{lower: 0.7}}
            severity: error
            labels: {{team: risk}}
            annotations: {{summary: "{{{{ slice }}}} auc {{{{ value }}}}"}}
        receivers:
          - {{name: am, type: alertmanager, url: "{url}", resend_interval: 1s}}
        route: {{receiver: am, group_wait: 0s, group_interval: 100ms, group_by: [alertname]}}
        """)
    doc = load_text(text, "spec.yaml")
    checker = Checker(doc)
    spec = parse_alerting(checker, doc.data, MODELS)
    checker.raise_if_any()
    return AlertEngine(spec, path)


def obs(i: int, value: float) -> Observation:
    return Observation(model="fraud", version="v7", slice="country=DE", window_start=i * 60.0,
                       window_end=(i + 1) * 60.0, metrics={"roc_auc": value}, count=100)


def am_alerts(url: str, name: str) -> list[dict]:
    resp = requests.get(f"{url}/api/v2/alerts", params={"filter": f'alertname="{name}"'},
                        timeout=HTTP_TIMEOUT)
    resp.raise_for_status()
    return resp.json()


def ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_alertmanager_receives_resends_and_resolves(alertmanager_url, tmp_path):
    name = f"auc_low_{uuid.uuid4().hex[:8]}"
    engine = engine_for(alertmanager_url, name, str(tmp_path / "a.sqlite"))
    engine.observe([obs(0, 0.55)])
    before = time.time()
    assert engine.dispatch() == 1
    after = time.time()
    [alert] = wait_until(lambda: am_alerts(alertmanager_url, name), what=f"{name} listed",
                         interval=0.1)
    assert alert["status"]["state"] == "active"
    assert alert["labels"] == {"alertname": name, "model": "fraud", "version": "v7",
                               "slice": "country=DE", "severity": "error", "team": "risk"}
    assert alert["annotations"]["summary"] == "country=DE auc 0.55"
    assert "model=fraud" in alert["generatorURL"]
    first_end = ts(alert["endsAt"])
    # sent during dispatch() with endsAt = now + 4 × resend_interval (ms precision)
    assert before + 4 - 0.002 <= first_end <= after + 4 + 0.002

    # still firing: re-sent every resend_interval, which pushes endsAt forward
    time.sleep(1.1)  # not a wait: the resend interval must pass
    engine.observe([obs(1, 0.5)])
    assert wait_until(lambda: engine.dispatch(), what="the resend", interval=0.1)
    [again] = wait_until(lambda: [a for a in am_alerts(alertmanager_url, name)
                                  if ts(a["endsAt"]) > first_end + 0.5],
                         what="endsAt pushed forward", interval=0.1)
    assert again["fingerprint"] == alert["fingerprint"]
    assert ts(again["startsAt"]) == ts(alert["startsAt"])

    # recovered: sent with endsAt = resolve time (in the past); Alertmanager takes the alert
    # as resolved and no longer lists it
    engine.observe([obs(2, 0.9)])
    assert wait_until(lambda: engine.dispatch(), what="the resolve", interval=0.1)
    wait_until(lambda: am_alerts(alertmanager_url, name) == [], what=f"{name} gone",
               interval=0.1)
    assert engine.outbox.depth() == 0 and engine.firing() == []
    [*_, resolved] = engine.outbox.entries("sent")
    assert resolved.notification.status == "resolved"
