"""PagerDuty Events API v2: ``trigger`` while the group fires, ``resolve`` when it stops.

The ``dedup_key`` is the group's, so the resolve closes the incident the trigger opened.
Severities map one to one (PagerDuty knows critical, error, warning, info).
"""

from __future__ import annotations

import socket
from typing import Any

import orjson

from alerts.model import Notification
from alerts.receivers.base import Request, substitute
from alerts.timefmt import iso8601
from slices.alerting import SEVERITIES, ReceiverSpec

MAX_SUMMARY = 1024
PD_SEVERITY = {"critical": "critical", "error": "error", "warning": "warning", "info": "info"}


def payload(routing_key: str, note: Notification, source: str | None = None) -> dict[str, Any]:
    if note.status == "resolved":
        return {"routing_key": routing_key, "event_action": "resolve",
                "dedup_key": note.dedup_key}
    worst = min(note.alerts, key=lambda a: SEVERITIES.index(a.severity)
                if a.severity in SEVERITIES else len(SEVERITIES))
    summary = worst.annotations.get("summary") or worst.labels.get("alertname", "slicewatch")
    if len(note.alerts) > 1:
        summary += f" (+{len(note.alerts) - 1} more)"
    if note.test:  # one marker, whether the summary carries it or not
        summary = "[TEST] " + summary.removeprefix("[TEST] ")
    details = {
        "metric": worst.metric, "value": worst.value, "threshold": worst.threshold,
        "window": {"start": None if worst.window_start is None else iso8601(worst.window_start),
                   "end": None if worst.window_end is None else iso8601(worst.window_end)},
        "slice": worst.labels.get("slice"), "model": worst.labels.get("model"),
        "version": worst.labels.get("version"),
        "description": worst.annotations.get("description", ""),
        "firing": len(note.alerts),
        "alerts": [{"labels": a.labels, "metric": a.metric, "value": a.value,
                    "threshold": a.threshold} for a in note.alerts[:20]],
    }
    return {
        "routing_key": routing_key, "event_action": "trigger", "dedup_key": note.dedup_key,
        "client": "slicewatch",
        "payload": {
            "summary": summary[:MAX_SUMMARY],
            "source": source or f"slicewatch@{socket.gethostname()}",
            "severity": PD_SEVERITY.get(worst.severity, "warning"),
            "timestamp": iso8601(worst.starts_at),
            "component": worst.labels.get("model", ""),
            "group": worst.labels.get("slice", ""),
            "class": worst.labels.get("alertname", ""),
            "custom_details": details,
        },
    }


def build(receiver: ReceiverSpec, note: Notification, now: float, env=None) -> Request:
    key = substitute(receiver, "routing_key", receiver.routing_key or "", env)
    return Request(substitute(receiver, "url", receiver.url, env),
                   orjson.dumps(payload(key, note, receiver.source)), {}, receiver.url)
