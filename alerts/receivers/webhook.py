"""Generic webhook: an Alertmanager-style JSON body, signed with HMAC-SHA256.

Header ``X-Slicewatch-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``
when the receiver has a ``secret`` (usually ``${WEBHOOK_SECRET}``): the timestamp is signed
with the body, so a captured request cannot be replayed later. Receivers check it with
:func:`verify` (also a standalone snippet in docs/alerts.md).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import orjson

from alerts.model import Alert, Notification
from alerts.receivers.base import Request, substitute
from alerts.timefmt import iso8601
from slices.alerting import ReceiverSpec

SIGNATURE_HEADER = "X-Slicewatch-Signature"
ID_HEADER = "X-Slicewatch-Notification"


TOLERANCE = 300.0  # seconds a signature stays acceptable (clock skew + delivery time)


def sign(secret: str, body: bytes, timestamp: float) -> str:
    """``t=<unix seconds>,v1=<hex HMAC-SHA256 of b"<t>." + body keyed by secret>``."""
    t = int(timestamp)
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(secret: str, header: str, body: bytes, tolerance: float = TOLERANCE,
           now: float | None = None) -> bool:
    """True if ``header`` (``X-Slicewatch-Signature``) signs the raw ``body`` with ``secret``
    and its timestamp is within ``tolerance`` seconds of ``now``.

    >>> h = sign("s3cret", b"{}", 1000.0)
    >>> verify("s3cret", h, b"{}", now=1010.0), verify("s3cret", h, b"{}", now=2000.0)
    (True, False)
    """
    fields = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        t = int(fields["t"])
    except (KeyError, ValueError):
        return False
    now = time.time() if now is None else now
    if abs(now - t) > tolerance:
        return False
    want = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(fields.get("v1", "").encode(), want.encode())  # bytes: any text


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
                                         body, now)
    return Request(substitute(receiver, "url", receiver.url, env), body, headers, receiver.url)
