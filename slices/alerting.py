"""The typed alerting part of a spec: rules, receivers, the routing tree, inhibit rules.

Plain frozen dataclasses built by :func:`slices.load_alerting.parse_alerting`; ``alerts/``
imports them from here (the spec language owns its types; ``slices/`` imports nothing of
``alerts/``).

>>> Matcher("severity", "=~", "crit.*").matches({"severity": "critical"})
True
>>> variables("{{ model }}/{{slice}}")
['model', 'slice']
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from slices.globs import slice_matches

SEVERITIES: tuple[str, ...] = ("critical", "error", "warning", "info")  # most severe first
TEMPLATE_VARS: tuple[str, ...] = (
    "rule", "model", "version", "slice", "severity", "metric", "value", "threshold",
    "baseline", "feature", "count", "window_start", "window_end", "status",
)
TEMPLATE_VAR = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
EXPANDED_FIELDS: tuple[str, ...] = ("url", "secret", "routing_key")  # and headers values
RULE_KINDS: tuple[str, ...] = ("metric", "drift", "concept_drift", "quality", "discovered",
                                "compare", "multivariate_drift", "estimated")
BASELINES: tuple[str, ...] = ("reference", "previous", "version")
ESTIMATED: tuple[str, ...] = ("accuracy", "precision", "recall", "f1", "roc_auc")  # CBPE
DIRECTIONS: tuple[str, ...] = ("higher_is_better", "lower_is_better")
RECEIVER_TYPES: tuple[str, ...] = ("webhook", "slack", "pagerduty", "alertmanager")
PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"
GROUP_BY_ALL = "..."
DEFAULT_SUMMARY = ("{{ rule }}: {{ metric }} = {{ value }} on {{ model }}/{{ slice }} "
                   "(threshold {{ threshold }})")
DEFAULT_DESCRIPTION = ("Model {{ model }} version {{ version }}, slice {{ slice }}, window "
                       "{{ window_start }} – {{ window_end }} ({{ count }} records): "
                       "{{ metric }} = {{ value }}, threshold {{ threshold }}.")
# change rules have a baseline value; value rules have none
DEFAULT_CHANGE_DESCRIPTION = DEFAULT_DESCRIPTION[:-1] + ", baseline {{ baseline }}."


def variables(template: str) -> list[str]:
    """Names used in ``template`` (``{{ name }}``), in order of appearance."""
    return TEMPLATE_VAR.findall(template)


@dataclass(frozen=True)
class ChangeSpec:
    """A change threshold against a baseline, TFMA semantics.

    ``diff = candidate − baseline`` and ``relative = diff / baseline``. With
    ``higher_is_better`` the check passes when ``diff >= absolute`` and ``relative >= relative``
    (so bounds are usually negative: ``absolute: -0.05`` = "may drop by at most 0.05"); with
    ``lower_is_better`` it passes when both are ``<=``. An unset bound always passes.
    """

    baseline: str = "previous"  # reference | previous | version
    version: str | None = None  # for baseline=version
    absolute: float | None = None
    relative: float | None = None
    direction: str = "higher_is_better"


@dataclass(frozen=True)
class CompareRule:
    """Candidate vs baseline version in the same window and slice (issue 15): breached when
    the candidate's ``metric`` is worse than the baseline's by more than ``max_drop``
    (``higher_is_better``: ``diff < −max_drop``; ``lower_is_better``: ``diff > max_drop``);
    with the rule's ``confidence: true``, when the whole interval of the difference is.

    Unlike ``change: {baseline: version}`` (each version's value against the latest value
    of one version, no interval), it judges the difference of two versions seen in the same
    window, with its interval (paired on shadow traffic: the model's ``compare``)."""

    baseline: str
    candidate: str
    metric: str
    max_drop: float
    direction: str = "higher_is_better"


@dataclass(frozen=True)
class RuleSpec:
    """One alerting rule. Exactly one kind: metric (threshold/change), drift, concept drift,
    data quality, discovered slices, version comparison."""

    name: str
    kind: str
    model: str | None = None
    slices: tuple[str, ...] = ()  # slice patterns (slices.globs); empty = every slice
    metric: str | None = None
    lower: float | None = None
    upper: float | None = None
    change: ChangeSpec | None = None
    confidence: bool = False  # metric rules: breached only when the whole interval is past
    compare: CompareRule | None = None  # compare rules
    features: tuple[str, ...] = ()  # drift / quality: empty = every feature
    check: str | None = None  # quality check name (slices.vocab.QUALITY_CHECKS)
    min_count: int = 0
    for_windows: int = 1
    severity: str = "warning"
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    flap_window: int = 10
    flap_changes: int = 4  # 0 disables the flapping guard

    def applies_to(self, model: str, slice_: str) -> bool:
        if self.model is not None and self.model != model:
            return False
        return slice_matches(self.slices, slice_)


@dataclass(frozen=True)
class ReceiverSpec:
    """A receiver. String fields may hold ``${ENV}`` references, substituted at send time."""

    name: str
    type: str
    url: str
    secret: str | None = None  # webhook HMAC secret
    routing_key: str | None = None  # pagerduty
    source: str | None = None  # pagerduty payload.source
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = 10.0  # deadline of one whole request
    send_resolved: bool = True
    retry_max_delay: float = 30.0  # cap of the retry backoff
    resend_interval: float = 60.0  # alertmanager: re-send active alerts this often
    generator_url: str = "http://localhost/slicewatch"

    def __repr__(self) -> str:  # never show secrets, even unsubstituted ones
        return f"ReceiverSpec(name={self.name!r}, type={self.type!r})"


@dataclass(frozen=True)
class Matcher:
    """``label op value`` with op one of ``=``, ``!=``, ``=~``, ``!~`` (regex, full match)."""

    label: str
    op: str
    value: str

    def matches(self, labels: dict[str, str]) -> bool:
        got = labels.get(self.label, "")
        if self.op == "=":
            return got == self.value
        if self.op == "!=":
            return got != self.value
        hit = re.fullmatch(self.value, got) is not None
        return hit if self.op == "=~" else not hit


def matches_all(matchers: tuple[Matcher, ...], labels: dict[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


@dataclass(frozen=True)
class RouteSpec:
    """A node of the routing tree; unset fields are inherited from the parent."""

    receiver: str
    matchers: tuple[Matcher, ...] = ()
    group_by: tuple[str, ...] = ("alertname", "model")
    group_wait: float = 30.0
    group_interval: float = 300.0
    repeat_interval: float = 4 * 3600.0
    continue_: bool = False
    routes: tuple[RouteSpec, ...] = ()


@dataclass(frozen=True)
class InhibitRule:
    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...] = ("model", "slice")


DEFAULT_INHIBIT = (InhibitRule(source=(Matcher("severity", "=", "critical"),),
                               target=(Matcher("severity", "=", "warning"),),
                               equal=("model", "slice")),)


@dataclass(frozen=True)
class AlertingSpec:
    rules: tuple[RuleSpec, ...]
    receivers: tuple[ReceiverSpec, ...]
    route: RouteSpec
    inhibit_rules: tuple[InhibitRule, ...] = DEFAULT_INHIBIT

    def receiver(self, name: str) -> ReceiverSpec | None:
        return next((r for r in self.receivers if r.name == name), None)
