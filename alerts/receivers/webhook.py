"""Generic webhook: an Alertmanager-style JSON body, signed with HMAC-SHA256.

Header ``X-Slicewatch-Signature: sha256=<hex HMAC-SHA256(secret, body)>`` when the receiver
has a ``secret`` (usually ``${WEBHOOK_SECRET}``). Verify with::

    hmac.compare_digest(header, "sha256=" + hmac.new(secret, body, "sha256").hexdigest())
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson

from alerts.config import ReceiverSpec
from alerts.model import Alert, Notification
from alerts.receivers.base import Request, substitute
from alerts.timefmt import iso8601

SIGNATURE_HEADER = "X-Slicewatch-Signature"
ID_HEADER = "X-Slicewatch-Notification"


def sign(secret: str, body: bytes) -> str:
    """``sha256=`` + hex HMAC-SHA256 of ``body`` keyed by ``secret``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def alert_json(alert: Alert) -> dict[str, Any]:
    return {
        "status": alert.status, "labels": alert.labels, "annotations": alert.annotations,
        "startsAt": iso8601(alert.starts_at),
        "endsAt": iso8601(alert.ends_at) if alert.ends_at is not None else None,
        "fingerprint": alert.fingerprint, "metric": alert.metric, "value": alert.value,
        "threshold": alert.threshold, "flapping": alert.flapping,
        "window": {"start": _iso_or_none(alert.window_start),
                   "end": _iso_or_none(alert.window_end)},
    }


def _iso_or_none(ts: float | None) -> str | None:
    return None if ts is None else iso8601(ts)


def common(items: list[dict[str, str]]) -> dict[str, str]:
    """Pairs shared by every mapping of ``items``."""
    if not items:
        return {}
    return {k: v for k, v in items[0].items() if all(i.get(k) == v for i in items[1:])}


def payload(receiver: ReceiverSpec, note: Notification) -> dict[str, Any]:
    return {
        "version": "1", "notificationId": note.id, "receiver": receiver.name,
        "status": note.status, "test": note.test,
        "groupKey": note.group_key, "dedupKey": note.dedup_key,
        "groupLabels": note.group_labels,
        "commonLabels": common([a.labels for a in note.alerts]),
        "commonAnnotations": common([a.annotations for a in note.alerts]),
        "alerts": [alert_json(a) for a in note.alerts],
    }


def build(receiver: ReceiverSpec, note: Notification, now: float, env=None) -> Request:
    body = orjson.dumps(payload(receiver, note))
    headers = {k: substitute(receiver, f"headers.{k}", v, env)
               for k, v in receiver.headers.items()}
    headers[ID_HEADER] = note.id
    if receiver.secret:
        headers[SIGNATURE_HEADER] = sign(substitute(receiver, "secret", receiver.secret, env),
                                         body)
    return Request(substitute(receiver, "url", receiver.url, env), body, headers, receiver.url)
