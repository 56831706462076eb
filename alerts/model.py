"""Plain data exchanged with the daemon: what it observed, and what alerting makes of it.

The daemon builds :class:`Observation` objects from its evaluations; ``alerts/`` never sees
``monitor/`` types.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class DriftObservation:
    """One drift test of one feature (or ``prediction`` / ``label``) in one window."""

    feature: str
    test: str
    score: float
    pvalue: float | None = None
    detected: bool = False


@dataclass(frozen=True)
class DiscoveredObservation:
    """A slice discovery reported in recent windows: ``in_top_k`` tells whether it is among
    the top-k of this window (``rank`` 0 when not)."""

    slice: str
    in_top_k: bool
    rank: int = 0
    error: float = 0.0
    records: int = 0


@dataclass(frozen=True)
class VersionDiffObservation:
    """This version (the candidate) minus ``baseline`` for ``metric``, same slice and window,
    with the interval ``[lower, upper]``."""

    metric: str
    baseline: str
    diff: float
    lower: float
    upper: float


@dataclass(frozen=True)
class Observation:
    """Evaluated values of one model × version × slice × window.

    ``quality`` maps feature → check name → value (e.g. ``{"amount": {"missing_ratio": 0.02}}``).
    ``reference_metrics`` are the reference profile's metrics of the same slice, the baseline
    of ``change: {baseline: reference}`` rules. ``intervals``: metric → ``(lower, upper)``
    confidence interval, read by rules with ``confidence: true``.
    """

    model: str
    version: str
    slice: str
    window_start: float
    window_end: float
    metrics: dict[str, float] = field(default_factory=dict)
    count: int = 0
    critical: bool = False
    drift: tuple[DriftObservation, ...] | list[DriftObservation] = ()
    concept_drift_events: int = 0
    quality: dict[str, dict[str, float]] = field(default_factory=dict)
    reference_metrics: dict[str, float] | None = None
    # overall slice of a model with discovery: the slices discovered lately (issue 17)
    discovered: tuple[DiscoveredObservation, ...] = ()
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    # this version minus baseline versions (the model's compare), read by compare rules
    compared: tuple[VersionDiffObservation, ...] = ()
    # PCA reconstruction error (error, band lower, band upper, outside the band); None: no fit
    multivariate: tuple[float, float, float, bool] | None = None
    # CBPE: metric → label-free estimate, and its interval (accuracy, precision)
    estimated: dict[str, float] = field(default_factory=dict)
    estimated_intervals: dict[str, tuple[float, float]] = field(default_factory=dict)


@dataclass
class Alert:
    """One alert: a rule broken for one label set. ``fingerprint`` is stable across restarts."""

    fingerprint: str
    labels: dict[str, str]
    annotations: dict[str, str]
    status: Literal["firing", "resolved"]
    starts_at: float
    ends_at: float | None = None
    value: float | None = None
    threshold: str = ""
    metric: str = ""
    window_start: float | None = None
    window_end: float | None = None
    flapping: bool = False

    @property
    def severity(self) -> str:
        return self.labels.get("severity", "warning")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Alert:
        return cls(**data)


@dataclass(frozen=True)
class AlertEvent:
    """A lifecycle transition judged from one window: ``status`` is what the alert became
    (``firing`` or ``resolved``); ``alert`` is a copy taken then (its window, value, labels)."""

    status: Literal["firing", "resolved"]
    alert: Alert

    def to_dict(self) -> dict[str, Any]:
        """A plain record (``type: alert``) for results histories."""
        a = self.alert
        return {"type": "alert", "status": self.status, "alertname": a.labels.get("alertname"),
                "labels": dict(a.labels), "metric": a.metric, "value": a.value,
                "threshold": a.threshold, "window_start": a.window_start,
                "window_end": a.window_end, "fingerprint": a.fingerprint,
                "summary": a.annotations.get("summary", "")}


@dataclass(frozen=True)
class Notification:
    """What one receiver is told about one alert group at one flush.

    ``status`` is ``firing`` while any alert of the group fires, else ``resolved``;
    ``dedup_key`` is stable for the group and receiver (PagerDuty's ``dedup_key``; the outbox
    keeps notifications of one key in order). ``id`` is unique: receivers may use it to drop
    the rare duplicate (webhook: body ``notificationId``, header ``X-Slicewatch-Notification``).
    """

    receiver: str
    group_key: str
    dedup_key: str
    status: Literal["firing", "resolved"]
    alerts: tuple[Alert, ...]
    group_labels: dict[str, str]
    created_at: float
    test: bool = False
    id: str = field(default_factory=lambda: uuid.uuid4().hex)  # unique per notification

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["alerts"] = [a.to_dict() for a in self.alerts]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Notification:
        data = dict(data)
        data["alerts"] = tuple(Alert.from_dict(a) for a in data["alerts"])
        return cls(**data)
