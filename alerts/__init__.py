"""Alerting: rules on evaluated values → lifecycle → routing → durable outbox → receivers.

Never imports ``monitor/``; the daemon hands evaluated values in as :class:`Observation`.
"""

from alerts.engine import AlertEngine, list_firing, send_test_notification
from alerts.model import Alert, DriftObservation, Notification, Observation
from slices.alerting import AlertingSpec
from slices.load_alerting import parse_alerting

__all__ = [
    "Alert", "AlertEngine", "AlertingSpec", "DriftObservation", "Notification", "Observation",
    "list_firing", "parse_alerting", "send_test_notification",
]
