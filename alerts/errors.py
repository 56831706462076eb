"""Errors of the alerting layer, all under :class:`slices.errors.SlicewatchError`."""

from __future__ import annotations

from slices.errors import SlicewatchError


class AlertsError(SlicewatchError):
    """Root of the errors ``alerts/`` raises on purpose."""


class MissingEnvError(AlertsError):
    """A ``${VAR}`` in a receiver field names an environment variable that is not set.

    The message names the variable and the field, never a value.
    """

    def __init__(self, receiver: str, field: str, variable: str):
        self.receiver, self.field, self.variable = receiver, field, variable
        super().__init__(f"receiver {receiver!r}: environment variable {variable} used in "
                         f"{field!r} is not set")


class DeliveryError(AlertsError):
    """A notification that a receiver refused or that could not reach it.

    ``retryable`` is true for 429, 5xx and network errors. Messages never carry secrets:
    URLs appear as written in the spec (``${SLACK_URL}``), not substituted.
    """

    def __init__(self, message: str, *, retryable: bool, status: int | None = None,
                 body: str = "", retry_after: float | None = None):
        self.retryable, self.status, self.body, self.retry_after = (
            retryable, status, body, retry_after)
        super().__init__(message)


class UnknownReceiverError(AlertsError):
    """A receiver name (e.g. ``alerts test --receiver``) that the spec does not define."""
