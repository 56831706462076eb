"""Receiver payloads rendered without a network; ``${ENV}`` substitution; secrets kept out."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from alerts.errors import MissingEnvError
from alerts.model import Alert, Notification
from alerts.receivers import BUILDERS, render
from alerts.receivers.webhook import verify
from alerts.timefmt import iso8601
from slices.alerting import ReceiverSpec

RECEIVERS = {
    "webhook": ReceiverSpec(name="hook", type="webhook", url="http://${HOST}/hook",
                            secret="${HOOK_SECRET}", headers={"X-Team": "${TEAM}"}),
    "slack": ReceiverSpec(name="slack", type="slack", url="http://${HOST}/slack/${SLACK_TOKEN}"),
    "pagerduty": ReceiverSpec(name="pd", type="pagerduty", url="http://${HOST}/pd",
                              routing_key="${PD_KEY}", source="slicewatch-test"),
    "alertmanager": ReceiverSpec(name="am", type="alertmanager", url="http://${HOST}",
                                 resend_interval=30.0),
}
ENV = {"HOST": "127.0.0.1:1", "HOOK_SECRET": "s3cret", "TEAM": "risk",
       "SLACK_TOKEN": "T0K3N", "PD_KEY": "R0UT1NG"}


def note(status="firing", summary="auc low", n=1) -> Notification:
    alerts = tuple(Alert(fingerprint=f"fp{i}", labels={"alertname": "auc_low", "model": "fraud",
                                                      "version": "v1", "slice": f"s{i}",
                                                      "severity": "critical" if i else "error"},
                         annotations={"summary": summary, "description": "d"}, status=status,
                         starts_at=1_700_000_000.0, ends_at=1_700_000_600.0
                         if status == "resolved" else None, value=0.61, threshold="< 0.7",
                         metric="roc_auc", window_start=1_699_999_700.0,
                         window_end=1_700_000_000.0) for i in range(n))
    return Notification(receiver="x", group_key="g", dedup_key="slicewatch-abc", status=status,
                        alerts=alerts, group_labels={"model": "fraud"},
                        created_at=1_700_000_000.0)


def test_every_type_has_a_builder():
    assert set(BUILDERS) == set(RECEIVERS)


def test_webhook_signature_and_headers():
    req = render(RECEIVERS["webhook"], note(), 1_700_000_123.9, ENV)
    mac = hmac.new(b"s3cret", b"1700000123." + req.body, hashlib.sha256).hexdigest()
    assert req.headers["X-Slicewatch-Signature"] == f"t=1700000123,v1={mac}"
    assert req.headers["X-Team"] == "risk" and req.url == "http://127.0.0.1:1/hook"
    body = json.loads(req.body)
    assert body["status"] == "firing" and body["dedupKey"] == "slicewatch-abc"
    assert body["alerts"][0]["startsAt"] == iso8601(1_700_000_000.0)
    assert body["commonLabels"]["alertname"] == "auc_low"


def test_slack_text_and_blocks():
    body = json.loads(render(RECEIVERS["slack"], note(n=2), 0.0, ENV).body)
    assert body["text"].startswith(":red_circle: ERROR: auc low (+1 more)")
    assert [b["type"] for b in body["blocks"]] == ["header", "section", "section", "context"]
    assert "*roc_auc*\n0.61" in [f["text"] for f in body["blocks"][1]["fields"]]


def test_pagerduty_trigger_and_resolve():
    req = render(RECEIVERS["pagerduty"], note(summary="x" * 2000, n=2), 0.0, ENV)
    body = json.loads(req.body)
    assert body["routing_key"] == "R0UT1NG" and body["event_action"] == "trigger"
    assert body["dedup_key"] == "slicewatch-abc"
    p = body["payload"]
    assert len(p["summary"]) == 1024 and p["severity"] == "critical"  # worst of the group
    assert p["source"] == "slicewatch-test" and p["timestamp"] == "2023-11-14T22:13:20.000Z"
    d = p["custom_details"]
    assert (d["metric"], d["value"], d["threshold"], d["slice"]) == ("roc_auc", 0.61, "< 0.7",
                                                                    "s1")
    assert d["window"] == {"start": iso8601(1_699_999_700.0), "end": iso8601(1_700_000_000.0)}
    resolve = json.loads(render(RECEIVERS["pagerduty"], note("resolved"), 0.0, ENV).body)
    assert resolve == {"routing_key": "R0UT1NG", "event_action": "resolve",
                       "dedup_key": "slicewatch-abc"}


def test_alertmanager_ends_at():
    req = render(RECEIVERS["alertmanager"], note(), 1_700_000_100.0, ENV)
    assert req.url == "http://127.0.0.1:1/api/v2/alerts"
    [a] = json.loads(req.body)
    assert a["endsAt"] == iso8601(1_700_000_100.0 + 4 * 30.0)
    assert a["labels"]["slice"] == "s0" and a["generatorURL"].endswith("model=fraud&slice=s0")
    [r] = json.loads(render(RECEIVERS["alertmanager"], note("resolved"), 1.8e9, ENV).body)
    assert r["endsAt"] == iso8601(1_700_000_600.0)


@pytest.mark.parametrize("kind", sorted(RECEIVERS))
def test_missing_env_names_variable_not_values(kind):
    env = {k: v for k, v in ENV.items() if k != "HOST"}
    with pytest.raises(MissingEnvError) as info:
        render(RECEIVERS[kind], note(), 0.0, env)
    assert "HOST" in str(info.value) and info.value.variable == "HOST"
    for secret in ("s3cret", "T0K3N", "R0UT1NG"):
        assert secret not in str(info.value)


@pytest.mark.parametrize("kind", sorted(RECEIVERS))
def test_request_repr_hides_url_and_headers(kind):
    req = render(RECEIVERS[kind], note(), 0.0, ENV)
    for secret in ("s3cret", "T0K3N", "R0UT1NG", "127.0.0.1"):
        assert secret not in repr(req)
    assert "${" in req.shown_url


def test_webhook_signature_is_bound_to_its_time():
    """A captured request replayed later is refused; a fresh one is accepted; a changed body
    or a signature without a timestamp (the old ``sha256=`` form) is refused."""
    sent_at = 1_700_000_000.0
    req = render(RECEIVERS["webhook"], note(), sent_at, ENV)
    header = req.headers["X-Slicewatch-Signature"]
    assert verify("s3cret", header, req.body, now=sent_at + 5)
    assert not verify("s3cret", header, req.body, now=sent_at + 301)  # stale: a replay
    assert not verify("s3cret", header, req.body, tolerance=60, now=sent_at + 61)
    assert not verify("s3cret", header, req.body + b" ", now=sent_at)
    assert not verify("wrong", header, req.body, now=sent_at)
    old = "sha256=" + hmac.new(b"s3cret", req.body, hashlib.sha256).hexdigest()
    assert not verify("s3cret", old, req.body, now=sent_at)


def test_env_is_expanded_only_in_credential_fields():
    """``${VAR}`` in pagerduty ``source`` / alertmanager ``generator_url`` stays literal."""
    env = {**ENV, "OTHER_TEAM_KEY": "sup3rs3cret"}
    pd = ReceiverSpec(name="pd", type="pagerduty", url="http://${HOST}/pd",
                      routing_key="${PD_KEY}", source="${OTHER_TEAM_KEY}")
    body = json.loads(render(pd, note(), 0.0, env).body)
    assert body["payload"]["source"] == "${OTHER_TEAM_KEY}" and body["routing_key"] == "R0UT1NG"
    am = ReceiverSpec(name="am", type="alertmanager", url="http://${HOST}",
                      generator_url="http://x/${OTHER_TEAM_KEY}")
    assert b"sup3rs3cret" not in render(am, note(), 0.0, env).body


def test_test_notifications_carry_one_marker():
    from alerts.engine import _test_notes

    for kind in ("slack", "pagerduty"):
        [first, *_] = _test_notes(RECEIVERS[kind], 1_700_000_000.0)
        body = json.loads(render(RECEIVERS[kind], first, 0.0, ENV).body)
        text = body["text"] if kind == "slack" else body["payload"]["summary"]
        assert text.startswith("[TEST] ") and text.count("[TEST]") == 1, text


def test_the_verification_snippet_in_the_docs_works(tmp_path):
    """The runnable snippet of docs/alerts.md accepts a fresh signature of the real builder
    and refuses a stale one (run as its own program, as a receiver would)."""
    import re
    import subprocess
    import sys
    import time
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "alerts.md").read_text()
    [snippet] = [b for b in re.findall(r"```python\n(.*?)```", doc, re.S) if "def verify" in b]
    now = time.time()
    fresh = render(RECEIVERS["webhook"], note(), now, ENV)
    stale = render(RECEIVERS["webhook"], note(), now - 3600, ENV)
    program = tmp_path / "receiver.py"
    program.write_text(snippet + "\nimport sys\nh1, h2, b1, b2 = sys.argv[1:]\n"
                       "print(verify(b's3cret', h1, bytes.fromhex(b1)),"
                       " verify(b's3cret', h2, bytes.fromhex(b2)))\n")
    out = subprocess.run([sys.executable, str(program),
                          fresh.headers["X-Slicewatch-Signature"],
                          stale.headers["X-Slicewatch-Signature"],
                          fresh.body.hex(), stale.body.hex()],
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["True", "False"], out.stderr


def test_a_crafted_signature_header_is_refused_not_raised():
    from alerts.receivers.webhook import sign, verify

    header = sign("s", b"{}", 1000.0)
    t = header.split(",")[0]
    assert verify("s", header, b"{}", now=1000.0)
    for crafted in (f"{t},v1=é", f"{t},v1=", f"{t}", "v1=abc", "", f"{t},v1=\x00"):
        assert verify("s", crafted, b"{}", now=1000.0) is False, crafted
