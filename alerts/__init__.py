"""Alerting: rules on evaluated values → lifecycle → routing → durable outbox → receivers.

Never imports ``monitor/``; the daemon hands evaluated values in as :class:`Observation`.
"""

from alerts.config import AlertingSpec, parse_alerting
from alerts.engine import AlertEngine, list_firing, send_test_notification
from alerts.model import Alert, DriftObservation, Notification, Observation

__all__ = [
    "Alert", "AlertEngine", "AlertingSpec", "DriftObservation", "Notification", "Observation",
    "list_firing", "parse_alerting", "send_test_notification",
]
