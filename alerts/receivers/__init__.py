"""Receivers: each module has ``build(receiver, notification, now, env=None) -> Request``.

:func:`deliver` renders (``${ENV}`` substituted at send time) and POSTs one notification.
"""

from __future__ import annotations

from collections.abc import Callable

from alerts.model import Notification
from alerts.receivers import alertmanager, pagerduty, slack, webhook
from alerts.receivers.base import Request, expanded_values, post
from slices.alerting import ReceiverSpec

BUILDERS: dict[str, Callable[..., Request]] = {
    "webhook": webhook.build,
    "slack": slack.build,
    "pagerduty": pagerduty.build,
    "alertmanager": alertmanager.build,
}


def render(receiver: ReceiverSpec, note: Notification, now: float, env=None) -> Request:
    return BUILDERS[receiver.type](receiver, note, now, env)


def deliver(receiver: ReceiverSpec, note: Notification, now: float, env=None) -> int:
    """Send one notification (``now``: the send time); returns the HTTP status, raises
    ``DeliveryError`` / ``MissingEnvError``. ``receiver.timeout`` bounds the whole request."""
    return post(render(receiver, note, now, env), receiver.timeout,
                expanded_values(receiver, env))
