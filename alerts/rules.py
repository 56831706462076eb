"""Rule evaluation: one observation × one rule → zero or more :class:`Verdict` (pure functions).

A verdict says whether the rule's condition holds ("breached") for one label set in one window.
Values that cannot be judged (a missing or NaN metric, a missing baseline, a slice smaller than
``min_count``) give no verdict: the alert's state is left as it was.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from alerts.model import Observation
from slices.alerting import ChangeSpec, RuleSpec
from slices.spec import MISSING


@dataclass(frozen=True)
class Verdict:
    rule: RuleSpec
    labels: dict[str, str]
    breached: bool
    value: float
    threshold: str
    metric: str
    baseline: float | None = None
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.labels)


def fingerprint(labels: dict[str, str]) -> str:
    """Stable 16-hex-digit id of a label set (order-independent)."""
    text = json.dumps(sorted(labels.items()), separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def value_breach(value: float, lower: float | None, upper: float | None) -> str | None:
    """The bound ``value`` breaks (``"< 0.7"`` / ``"> 0.2"``), or ``None`` when within bounds.

    TFMA ``GenericValueThreshold``: passes when ``lower <= value <= upper``.

    >>> value_breach(0.65, 0.7, None), value_breach(0.8, 0.7, None)
    ('< 0.7', None)
    """
    if lower is not None and value < lower:
        return f"< {lower:g}"
    if upper is not None and value > upper:
        return f"> {upper:g}"
    return None


def relative_change(diff: float, baseline: float) -> float:
    """``diff / baseline``; with a zero baseline the limit: 0 if ``diff == 0`` else ±inf.

    TFMA yields NaN there, which fails every relative check; we take the limit instead so that
    an unchanged zero never alerts and any change away from zero breaks a relative bound.

    >>> relative_change(-0.1, 0.5), relative_change(0.0, 0.0), relative_change(0.2, 0.0)
    (-0.2, 0.0, inf)
    """
    if baseline == 0:  # TFMA tests math.isclose(baseline, 0.0), i.e. exactly 0
        return 0.0 if diff == 0 else math.copysign(math.inf, diff)
    return diff / baseline


def change_breach(candidate: float, baseline: float, change: ChangeSpec) -> str | None:
    """The change bound broken, or ``None`` when the change passes (TFMA semantics).

    ``diff = candidate − baseline``, ``rel = diff / baseline``. ``higher_is_better`` passes when
    ``diff >= absolute and rel >= relative``; ``lower_is_better`` when both are ``<=``. Unset
    bounds pass.

    >>> c = ChangeSpec(baseline="previous", absolute=-0.05, direction="higher_is_better")
    >>> change_breach(0.80, 0.90, c), change_breach(0.88, 0.90, c)
    ('diff -0.1 < -0.05', None)
    """
    diff = candidate - baseline
    rel = relative_change(diff, baseline)
    higher = change.direction == "higher_is_better"
    for name, got, bound in (("diff", diff, change.absolute), ("relative", rel, change.relative)):
        if bound is None:
            continue
        if higher and not got >= bound:
            return f"{name} {got:.4g} < {bound:g}"
        if not higher and not got <= bound:
            return f"{name} {got:.4g} > {bound:g}"
    return None


def _finite(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


Baselines = Callable[[Observation, ChangeSpec, str], float | None]


def base_labels(rule: RuleSpec, obs: Observation) -> dict[str, str]:
    severity = "critical" if obs.critical else rule.severity
    return {**rule.labels, "alertname": rule.name, "model": obs.model,
            "version": str(obs.version), "slice": obs.slice, "severity": severity}


def evaluate(rule: RuleSpec, obs: Observation, baseline_of: Baselines) -> list[Verdict]:
    """Judge ``rule`` on ``obs``; ``baseline_of(obs, change, metric)`` gives change baselines."""
    if rule.kind == "discovered":
        return _discovered(rule, obs)
    if not rule.applies_to(obs.model, obs.slice) or obs.count < rule.min_count:
        return []
    labels = base_labels(rule, obs)
    if rule.kind == "compare":
        verdict = _compare(rule, obs, labels)
        return [verdict] if verdict else []
    if rule.kind == "metric":
        verdict = _metric(rule, obs, labels, baseline_of)
        return [verdict] if verdict else []
    if rule.kind == "estimated":
        verdict = _estimated(rule, obs, labels)
        return [verdict] if verdict else []
    if rule.kind == "multivariate_drift":
        if obs.multivariate is None:
            return []  # no PCA fit for this model / slice: not judged
        error, lower, upper, drift = obs.multivariate
        return [Verdict(rule, labels, bool(drift), float(error),
                        f"outside [{lower:.4g}, {upper:.4g}]", "multivariate_drift")]
    if rule.kind == "concept_drift":
        events = int(obs.concept_drift_events)
        return [Verdict(rule, labels, events > 0, float(events), "> 0 events", "concept_drift")]
    if rule.kind == "drift":
        out = []
        for d in obs.drift:
            if rule.features and d.feature not in rule.features:
                continue
            pv = "" if d.pvalue is None else f" (p={d.pvalue:.3g})"
            out.append(Verdict(rule, {**labels, "feature": d.feature}, bool(d.detected),
                               float(d.score), f"{d.test} drift{pv}", f"drift_{d.test}",
                               context={"feature": d.feature}))
        return out
    out = []
    for feature, checks in obs.quality.items():
        if rule.features and feature not in rule.features:
            continue
        if own_missing_slice(feature, obs.slice):
            continue  # every record there misses the feature: its checks say nothing
        value = _finite(checks.get(rule.check or ""))
        if value is None:
            continue
        broken = value_breach(value, rule.lower, rule.upper)
        shown = broken or _bounds_text(rule.lower, rule.upper)
        out.append(Verdict(rule, {**labels, "feature": feature}, broken is not None, value,
                           shown, str(rule.check), context={"feature": feature}))
    return out


def _discovered(rule: RuleSpec, obs: Observation) -> list[Verdict]:
    """One verdict per recently discovered slice: breached while in the window's top-k (the
    engine's ``for:`` counts the windows in a row)."""
    if rule.model is not None and rule.model != obs.model:
        return []
    out = []
    for d in obs.discovered:
        if not rule.applies_to(obs.model, d.slice):
            continue
        if d.in_top_k and d.records < rule.min_count:
            continue
        labels = {**base_labels(rule, obs), "slice": d.slice}
        shown = f"discovered, rank {d.rank}" if d.in_top_k else "not in the top-k"
        out.append(Verdict(rule, labels, d.in_top_k, float(d.error), shown,
                           "discovered_error"))
    return out


def own_missing_slice(feature: str, slice_: str) -> bool:
    """True for the slice of records missing ``feature`` (alone or in a cross).

    >>> own_missing_slice("area_m2", "area_m2=__missing__"), own_missing_slice("x", "overall")
    (True, False)
    """
    return f"{feature}={MISSING}" in slice_.split(",")


def _bounds_text(lower: float | None, upper: float | None) -> str:
    parts = ([f">= {lower:g}"] if lower is not None else []) + (
        [f"<= {upper:g}"] if upper is not None else [])
    return " and ".join(parts)


def _metric(rule: RuleSpec, obs: Observation, labels: dict[str, str],
            baseline_of: Baselines) -> Verdict | None:
    metric = str(rule.metric)
    value = _finite(obs.metrics.get(metric))
    if value is None:
        return None
    low = high = value  # the interval judged: the value itself unless `confidence: true`
    if rule.confidence:
        bounds = obs.intervals.get(metric)
        if bounds is None or _finite(bounds[0]) is None or _finite(bounds[1]) is None:
            return None  # no interval (too few records): not judged
        low, high = float(bounds[0]), float(bounds[1])
    judged, broken, baseline = False, None, None
    threshold = ""
    if rule.lower is not None or rule.upper is not None:
        judged = True
        # the whole interval must be past a bound: its upper end below `lower`, …
        broken = value_breach(high, rule.lower, None) or value_breach(low, None, rule.upper)
        if broken and rule.confidence:
            broken = f"{broken} (interval [{low:.4g}, {high:.4g}])"
        threshold = broken or _bounds_text(rule.lower, rule.upper)
    if rule.change is not None:
        baseline = _finite(baseline_of(obs, rule.change, metric))
        if baseline is not None:
            judged = True
            best = high if rule.change.direction == "higher_is_better" else low
            change_broken = change_breach(best, baseline, rule.change)
            if broken is None:
                broken = change_broken
                threshold = (f"{change_broken} vs {rule.change.baseline}" if change_broken
                             else _change_text(rule.change))
    if not judged:
        return None
    return Verdict(rule, labels, broken is not None, value, threshold, metric, baseline,
                   context={"baseline": baseline})


def _estimated(rule: RuleSpec, obs: Observation, labels: dict[str, str]) -> Verdict | None:
    """Value thresholds on the CBPE estimate (the whole interval with ``confidence: true``)."""
    metric = str(rule.metric)
    value = _finite(obs.estimated.get(metric))
    if value is None:
        return None  # not estimated (no calibration, too few records)
    low = high = value
    if rule.confidence:
        bounds = obs.estimated_intervals.get(metric)
        if bounds is None or _finite(bounds[0]) is None or _finite(bounds[1]) is None:
            return None
        low, high = float(bounds[0]), float(bounds[1])
    broken = value_breach(high, rule.lower, None) or value_breach(low, None, rule.upper)
    threshold = broken or _bounds_text(rule.lower, rule.upper)
    return Verdict(rule, labels, broken is not None, value, f"{threshold} (CBPE estimate)",
                   f"estimated_{metric}")


def _compare(rule: RuleSpec, obs: Observation, labels: dict[str, str]) -> Verdict | None:
    """Candidate − baseline of the rule's metric on the candidate's observation: breached when
    worse than ``max_drop`` (the whole interval with ``confidence: true``)."""
    c = rule.compare
    if c is None or str(obs.version) != c.candidate:
        return None
    d = next((x for x in obs.compared if x.baseline == c.baseline and x.metric == c.metric),
             None)
    if d is None or None in (_finite(d.diff), _finite(d.lower), _finite(d.upper)):
        return None  # the baseline is not in this window and slice: not judged
    higher = c.direction == "higher_is_better"
    # confidence: the end of the interval nearest to "no worse"
    judged = (d.upper if higher else d.lower) if rule.confidence else d.diff
    broken = judged < -c.max_drop if higher else judged > c.max_drop
    op = "<" if higher else ">"
    bound = -c.max_drop if higher else c.max_drop
    what = f"interval [{d.lower:.4g}, {d.upper:.4g}]" if rule.confidence else \
        f"diff {d.diff:.4g}"
    threshold = (f"{what} {op} {bound:g} vs {c.baseline}" if broken else
                 f"diff {'>=' if higher else '<='} {bound:g} vs {c.baseline}")
    return Verdict(rule, labels, broken, d.diff, threshold, c.metric, None,
                   context={"baseline": c.baseline, "lower": d.lower, "upper": d.upper})


def _change_text(change: ChangeSpec) -> str:
    op = ">=" if change.direction == "higher_is_better" else "<="
    parts = [f"diff {op} {change.absolute:g}"] if change.absolute is not None else []
    if change.relative is not None:
        parts.append(f"relative {op} {change.relative:g}")
    return " and ".join(parts) + f" vs {change.baseline}"
