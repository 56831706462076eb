"""Prometheus Alertmanager: ``POST {url}/api/v2/alerts`` with a JSON list of alerts.

Firing alerts carry ``endsAt = now + 4 × resend_interval`` (as Prometheus does) and are
re-sent every ``resend_interval`` while they fire; a resolved alert is sent with ``endsAt`` =
its resolve time, which Alertmanager takes as resolved.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import orjson

from alerts.model import Notification
from alerts.receivers.base import Request, substitute
from alerts.timefmt import iso8601
from slices.alerting import ReceiverSpec


def payload(note: Notification, now: float, resend_interval: float, generator_url: str
            ) -> list[dict[str, Any]]:
    out = []
    for a in note.alerts:
        ends = a.ends_at if a.status == "resolved" and a.ends_at else now + 4 * resend_interval
        labels = {k: str(v) for k, v in a.labels.items()}
        if note.test:
            labels["test"] = "true"
        url = (f"{generator_url}?model={quote(labels.get('model', ''))}"
               f"&slice={quote(labels.get('slice', ''))}")
        out.append({"labels": labels, "annotations": a.annotations,
                    "startsAt": iso8601(a.starts_at), "endsAt": iso8601(ends),
                    "generatorURL": url})
    return out


def build(receiver: ReceiverSpec, note: Notification, now: float, env=None) -> Request:
    base = substitute(receiver, "url", receiver.url, env).rstrip("/")
    body = orjson.dumps(payload(note, now, receiver.resend_interval, receiver.generator_url))
    return Request(base + "/api/v2/alerts", body, {}, receiver.url + "/api/v2/alerts")
