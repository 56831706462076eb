"""Routing tree, aggregation groups and inhibition — Alertmanager's semantics, in small pieces.

* :func:`match_routes`: depth-first; a node matches when its matchers do; the deepest matching
  children win; siblings after a matching child are tried only if it has ``continue: true``;
  a node none of whose children match handles the alert itself.
* :class:`Group`: alerts of one route with equal ``group_by`` labels. First flush
  ``group_wait`` after the group is created, then every ``group_interval``. A flush notifies
  when a firing alert is new to the receiver or an alert it was told about has resolved;
  otherwise it re-sends the firing set once ``repeat_interval`` has passed since the last send.
* :func:`inhibited`: an alert matching an inhibit rule's target is muted while another firing
  alert matches its source with equal values of the ``equal`` labels.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from alerts.model import Alert, Notification
from slices.alerting import GROUP_BY_ALL, InhibitRule, RouteSpec, matches_all


def match_routes(route: RouteSpec, labels: dict[str, str], route_id: str = "0"
                 ) -> list[tuple[str, RouteSpec]]:
    """Routes that take ``labels``, as ``(route_id, node)``; the root takes what none does."""
    if not matches_all(route.matchers, labels):
        return []
    out: list[tuple[str, RouteSpec]] = []
    for i, child in enumerate(route.routes):
        hit = match_routes(child, labels, f"{route_id}.{i}")
        if hit:
            out.extend(hit)
            if not child.continue_:
                break
    return out or [(route_id, route)]


def group_labels(route: RouteSpec, labels: dict[str, str]) -> dict[str, str]:
    if GROUP_BY_ALL in route.group_by:
        return dict(labels)
    return {k: labels.get(k, "") for k in route.group_by}


def group_key(route_id: str, route: RouteSpec, labels: dict[str, str]) -> str:
    glabels = json.dumps(sorted(group_labels(route, labels).items()), separators=(",", ":"))
    return f"{route_id}:{route.receiver}:{glabels}"


def dedup_key(receiver: str, key: str) -> str:
    """Stable id of one group at one receiver (PagerDuty ``dedup_key``, outbox ordering)."""
    return "slicewatch-" + hashlib.sha256(f"{receiver}\n{key}".encode()).hexdigest()[:24]


def inhibited(alert: Alert, firing: list[Alert], rules: tuple[InhibitRule, ...]) -> bool:
    """True if a firing alert other than ``alert`` inhibits it under one of ``rules``."""
    for rule in rules:
        if not matches_all(rule.target, alert.labels):
            continue
        for src in firing:
            if src.fingerprint == alert.fingerprint or not matches_all(rule.source, src.labels):
                continue
            if all(src.labels.get(k, "") == alert.labels.get(k, "") for k in rule.equal):
                return True
    return False


@dataclass
class Group:
    """One aggregation group; ``notified`` = fingerprints the receiver was last told fire."""

    key: str
    receiver: str
    labels: dict[str, str]
    repeat_interval: float
    group_interval: float
    members: list[str] = field(default_factory=list)
    next_flush: float = 0.0
    last_sent: float | None = None
    notified: list[str] = field(default_factory=list)

    def add(self, fingerprint: str) -> None:
        if fingerprint not in self.members:
            self.members.append(fingerprint)

    def flush(self, now: float, alerts: dict[str, Alert], muted: set[str],
              send_resolved: bool = True) -> Notification | None:
        """Decide and build the notification due at ``now`` (``None``: nothing to say)."""
        members = [alerts[fp] for fp in self.members if fp in alerts]
        firing = [a for a in members if a.status == "firing" and a.fingerprint not in muted]
        told = set(self.notified)
        resolved = [a for a in members if a.status == "resolved" and a.fingerprint in told]
        new = {a.fingerprint for a in firing} - told
        repeat = bool(firing) and (self.last_sent is None
                                   or now - self.last_sent >= self.repeat_interval)
        send = bool(new) or bool(resolved) or repeat
        note = None
        if send and (firing or (resolved and send_resolved)):
            shown = firing + (resolved if send_resolved else [])
            note = Notification(
                receiver=self.receiver, group_key=self.key,
                dedup_key=dedup_key(self.receiver, self.key),
                status="firing" if firing else "resolved",
                alerts=tuple(Alert.from_dict(a.to_dict()) for a in shown),
                group_labels=dict(self.labels), created_at=now)
            self.last_sent = now
        if send:
            self.notified = [a.fingerprint for a in firing]
        self.members = [a.fingerprint for a in members if a.status == "firing"]
        self.next_flush = now + self.group_interval
        return note

    @property
    def empty(self) -> bool:
        return not self.members

    def to_state(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> Group:
        return cls(**data)
