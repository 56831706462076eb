"""Per-series alert lifecycle: pending (``for: N`` windows) → firing → resolved, with a
flapping guard.

One :class:`Series` per rule × label set. :meth:`Series.step` takes the verdict of one window
and returns the transition it caused (``"fired"``, ``"resolved"`` or ``None``).

Flapping guard: the series remembers whether the condition held in each of its last
``flap_window`` windows. When it would resolve while that history shows ``flap_changes`` or
more changes (held ↔ clear), the alert stays firing (``flapping=True``) and resolves only
once the history has calmed below ``flap_changes`` changes; so a flapping condition yields
one firing and one resolved notification instead of one pair per flap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from alerts.model import Alert
from alerts.rules import Verdict
from alerts.template import render
from alerts.timefmt import iso8601


def changes(history: list[int]) -> int:
    """Number of state changes in a 0/1 history. ``changes([1, 0, 1, 1]) == 2``."""
    return sum(1 for a, b in pairwise(history) if a != b)


@dataclass
class Series:
    """State of one rule × label set; plain data (:meth:`to_state` / :meth:`from_state`)."""

    streak: int = 0  # consecutive windows in which the condition held
    history: list[int] = field(default_factory=list)
    last_window_end: float = float("-inf")
    alert: Alert | None = None  # the current or last alert of this series

    @property
    def firing(self) -> bool:
        return self.alert is not None and self.alert.status == "firing"

    def step(self, verdict: Verdict, window: tuple[float, float], count: int, now: float
             ) -> str | None:
        """Apply one window's verdict; windows not newer than the last one are ignored."""
        end = window[1]
        if end <= self.last_window_end:
            return None
        self.last_window_end = end
        rule = verdict.rule
        self.history = ([*self.history, int(verdict.breached)])[-rule.flap_window:]
        self.streak = self.streak + 1 if verdict.breached else 0
        if verdict.breached:
            if self.firing:
                self._update(verdict, window, count)
                return None
            if self.streak >= rule.for_windows:
                self.alert = Alert(fingerprint=verdict.fingerprint, labels=dict(verdict.labels),
                                   annotations={}, status="firing", starts_at=now)
                self._update(verdict, window, count)
                return "fired"
            return None
        if not self.firing:
            return None
        assert self.alert is not None
        flapping = rule.flap_changes > 0 and changes(self.history) >= rule.flap_changes
        if flapping:
            self.alert.flapping = True
            return None
        self._update(verdict, window, count, status="resolved")
        self.alert.status = "resolved"
        self.alert.ends_at = now
        return "resolved"

    def _update(self, verdict: Verdict, window: tuple[float, float], count: int,
                status: str = "firing") -> None:
        assert self.alert is not None
        a = self.alert
        a.value, a.threshold, a.metric = verdict.value, verdict.threshold, verdict.metric
        a.window_start, a.window_end = window
        values: dict[str, Any] = {
            "rule": verdict.rule.name, "model": a.labels.get("model"),
            "version": a.labels.get("version"), "slice": a.labels.get("slice"),
            "severity": a.labels.get("severity"), "metric": verdict.metric,
            "value": verdict.value, "threshold": verdict.threshold,
            "baseline": verdict.baseline, "feature": a.labels.get("feature", ""),
            "count": count, "window_start": iso8601(window[0]), "window_end": iso8601(window[1]),
            "status": status,
        }
        a.annotations = {k: render(t, values) for k, t in verdict.rule.annotations.items()}

    def to_state(self) -> dict[str, Any]:
        return {"streak": self.streak, "history": self.history,
                "last_window_end": self.last_window_end,
                "alert": self.alert.to_dict() if self.alert else None}

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> Series:
        alert = Alert.from_dict(data["alert"]) if data.get("alert") else None
        return cls(streak=data["streak"], history=list(data["history"]),
                   last_window_end=float(data["last_window_end"]), alert=alert)
