"""Prometheus alerting rules equivalent to a spec's alert rules, and a promtool test for them.

Translation of one slicewatch rule (``slices.alerting.RuleSpec``) for one model:

- ``metric`` with ``threshold``: ``slicewatch_slice_<m>{…} < lower or … > upper``;
  ``min_count``: ``and on (model, version, slice) slicewatch_slice_records >= min_count``.
  ``change`` bounds need the baseline's values, which the daemon does not export: a
  change-only rule is not translated, a rule with both keeps its value thresholds (both are
  reported in the file's header).
- ``drift``: the drift score where ``slicewatch_drift_detected == 1`` (``$value`` = score).
- ``concept_drift``: ``increase(slicewatch_concept_drift_events_total[W]) > 0``.
- ``quality``: the check's family (``missing_ratio`` → ``slicewatch_data_missing_ratio``…)
  outside ``[lower, upper]``.
- ``for: N`` windows → ``for: (N-1) × W`` with W the window size: a gauge holds a window's
  value until the next window closes, so N consecutive breached windows are true for
  (N-1)·W. Count windows have no duration; ``for`` > 1 there is an error.
- Critical slices raise the severity to ``critical`` (as the engine does): a rule whose
  severity is lower becomes two Prometheus rules with the same alert name, one
  ``unless on (…) slicewatch_slice_info{critical="true"}``, one ``and on (…)`` with
  ``severity: critical``.
- Annotations: ``{{ model }}`` → ``{{ $labels.model }}``, ``{{ value }}`` →
  ``{{ printf "%.4g" $value }}``, ``{{ count }}``/``{{ window_end }}`` → a ``query`` of the
  slice's series; the rest become literal text.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from monitor.export.families import QUALITY_FAMILIES, family, model_metrics, slice_family
from monitor.generate.output import HEADER, dump_yaml, write_text
from monitor.generate.promql import glob_regex, quote, sel
from slices.errors import SlicewatchError
from slices.spec import ModelSpec, Spec

ON_SLICE = "on (model, version, slice)"
_VAR = r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}"


@dataclass(frozen=True)
class PromRule:
    """One generated Prometheus alerting rule plus what its promtool test needs."""

    alert: str
    expr: str
    for_seconds: float
    labels: dict[str, str]
    annotations: dict[str, str]
    # For the generated test:
    kind: str
    model: ModelSpec
    family: str
    critical: bool | None  # None: no critical split
    lower: float | None = None
    upper: float | None = None
    min_count: int = 0
    for_windows: int = 1
    slice_patterns: tuple[str, ...] = ()
    features: tuple[str, ...] = ()
    metric_text: str = ""
    threshold_text: str = ""
    raw_annotations: dict[str, str] = field(default_factory=dict)

    def to_yaml(self) -> dict[str, Any]:
        out: dict[str, Any] = {"alert": self.alert, "expr": self.expr}
        if self.for_seconds > 0:
            out["for"] = duration(self.for_seconds)
        out["labels"] = self.labels
        out["annotations"] = self.annotations
        return out


def duration(seconds: float) -> str:
    """A Prometheus duration: ``300`` → ``5m``, ``90`` → ``90s``, ``7200`` → ``2h``."""
    s = round(seconds)
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if s and s % n == 0:
            return f"{s // n}{unit}"
    return f"{s}s"


def _bounds_text(lower: float | None, upper: float | None) -> str:
    parts = ([f">= {lower:g}"] if lower is not None else []) + (
        [f"<= {upper:g}"] if upper is not None else [])
    return " and ".join(parts)


def translate_template(text: str, rule: PromRule) -> str:
    """A slicewatch ``{{ name }}`` annotation template as a Prometheus (Go) template."""
    import re

    window = rule.model.window.size
    where = ('{model=%q,version=%q,slice=%q}" $labels.model $labels.version $labels.slice '
             '| query }}')

    def var(m: re.Match) -> str:
        name = m.group(1)
        if name in ("model", "version", "slice", "feature"):
            return "{{ $labels." + name + " }}"
        if name == "value":
            return '{{ printf "%.4g" $value }}'
        if name == "count":
            return ('{{ with printf "slicewatch_slice_records' + where +
                    "{{ . | first | value }}{{ end }}")
        if name in ("window_end", "window_start"):
            shift = f" - {window:g}" if name == "window_start" else ""
            return ('{{ with printf "slicewatch_slice_window_end_timestamp_seconds' +
                    where.replace('" $labels', shift + '" $labels') +
                    "{{ . | first | value | humanizeTimestamp }}{{ end }}")
        if name == "rule":
            return rule.alert.replace("{{", "{{`{{`}}")
        # metric/threshold texts of drift rules are templates themselves ($labels.test)
        return {"severity": rule.labels["severity"], "metric": rule.metric_text,
                "threshold": rule.threshold_text, "status": "firing"}.get(name, "")

    return re.sub(_VAR, var, text)


def _models_of(spec: Spec, rule: Any) -> list[ModelSpec]:
    return [m for m in spec.models if rule.model in (None, m.name)]


def rules_for_spec(spec: Spec) -> tuple[list[PromRule], list[str]]:
    """Generated rules, and notes on what could not be translated."""
    rules: list[PromRule] = []
    notes: list[str] = []
    for rule in (spec.alerting.rules if spec.alerting is not None else ()):
        for model in _models_of(spec, rule):
            rules += _translate(rule, model, notes)
    return rules, notes


def _translate(rule: Any, model: ModelSpec, notes: list[str]) -> list[PromRule]:
    if rule.kind in ("multivariate_drift", "estimated"):
        notes.append(f"{rule.name} ({model.name}): '{rule.kind}' rules are judged by the "
                     "daemon only; rule skipped")
        return []
    if rule.kind == "compare":
        notes.append(f"{rule.name} ({model.name}): 'compare' rules are judged by the daemon "
                     "only (slicewatch_version_diff has no version label to alert on); rule "
                     "skipped")
        return []
    scope: dict[str, Any] = {"model": model.name}
    if rule.slices:
        scope["slice"] = ("=~", glob_regex(rule.slices))
    feat = {"feature": ("=~", glob_regex(rule.features))} if rule.features else {}
    lower, upper = rule.lower, rule.upper
    if rule.kind == "metric":
        if rule.metric not in model_metrics(model):
            return []
        if rule.change is not None:
            notes.append(f"{rule.name} ({model.name}): the 'change' bound against "
                         f"{rule.change.baseline} is not translated (baselines are not "
                         "exported); " + ("value thresholds kept" if lower is not None
                                           or upper is not None else "rule skipped"))
            if lower is None and upper is None:
                return []
        fam = slice_family(rule.metric).name
        if getattr(rule, "confidence", False):
            if lower is not None and upper is not None:
                notes.append(f"{rule.name} ({model.name}): 'confidence: true' with both "
                             "bounds is not translated (one rule per bound translates)")
                return []
            # the whole interval past the bound: its upper end below `lower`, or its lower
            # end above `upper`
            fam = family(f"{fam}_{'upper' if lower is not None else 'lower'}").name
        cond = _outside(sel(fam, **scope), lower, upper)
        metric_text, threshold_text = rule.metric, _bounds_text(lower, upper)
    elif rule.kind == "drift":
        fam = "slicewatch_drift_score"
        cond = (f"{sel(fam, **scope, **feat)} and on (model, version, slice, feature, test) "
                f"({sel('slicewatch_drift_detected', **scope, **feat)} == 1)")
        metric_text, threshold_text = "drift_{{ $labels.test }}", "{{ $labels.test }} drift"
    elif rule.kind == "concept_drift":
        fam = "slicewatch_concept_drift_events_total"
        cond = f"increase({sel(fam, **scope)}[{_window(model)}]) > 0"
        metric_text, threshold_text = "concept_drift", "> 0 events"
    else:
        fam = QUALITY_FAMILIES.get(rule.check or "")
        if fam is None:
            raise SlicewatchError(f"alert {rule.name!r}: quality check {rule.check!r} has no "
                                  f"exported metric; checks with one: "
                                  f"{', '.join(QUALITY_FAMILIES)}")
        cond = _outside(sel(fam, **scope, **feat), lower, upper)
        metric_text, threshold_text = str(rule.check), _bounds_text(lower, upper)
    if rule.min_count > 0:
        cond = (f"({cond}) and {ON_SLICE} "
                f"{sel('slicewatch_slice_records', model=model.name)} >= {rule.min_count}")
    if model.window.kind != "time" and rule.for_windows > 1:
        raise SlicewatchError(f"alert {rule.name!r}: 'for: {rule.for_windows}' windows cannot "
                              f"be a Prometheus duration for model {model.name!r}, whose "
                              "windows count records")
    for_seconds = (rule.for_windows - 1) * model.window.size
    info = sel("slicewatch_slice_info", model=model.name, critical="true")
    variants: list[tuple[str, str, bool | None]] = [(cond, rule.severity, None)]
    if rule.severity != "critical" and any(s.critical for s in model.slices):
        variants = [(f"({cond}) unless {ON_SLICE} {info}", rule.severity, False),
                    (f"({cond}) and {ON_SLICE} {info}", "critical", True)]
    out = []
    for expr, severity, critical in variants:
        pr = PromRule(alert=rule.name, expr=expr, for_seconds=for_seconds,
                      labels={**rule.labels, "model": model.name, "severity": severity},
                      annotations={},
                      kind=rule.kind, model=model, family=fam, critical=critical,
                      lower=lower, upper=upper, min_count=rule.min_count,
                      for_windows=rule.for_windows, slice_patterns=rule.slices,
                      features=rule.features, metric_text=metric_text,
                      threshold_text=threshold_text, raw_annotations=dict(rule.annotations))
        anns = {k: translate_template(v, pr) for k, v in rule.annotations.items()}
        out.append(PromRule(**{**pr.__dict__, "annotations": anns}))
    return out


def _outside(series: str, lower: float | None, upper: float | None) -> str:
    parts = ([f"{series} < {lower!r}"] if lower is not None else []) + (
        [f"{series} > {upper!r}"] if upper is not None else [])
    return " or ".join(parts)


def _window(model: ModelSpec) -> str:
    if model.window.kind != "time":
        raise SlicewatchError(f"model {model.name!r}: concept-drift alerts need time windows "
                              "to become a Prometheus range")
    return duration(model.window.size)


def rules_document(spec: Spec) -> tuple[dict[str, Any], list[str]]:
    rules, notes = rules_for_spec(spec)
    groups = []
    for model in spec.models:
        mine = [r.to_yaml() for r in rules if r.model is model]
        if mine:
            groups.append({"name": f"slicewatch-{model.name}", "rules": mine})
    return {"groups": groups}, notes


def matcher_text(m: Any) -> str:
    """An ``slices.alerting.Matcher`` in Alertmanager's syntax: ``severity="critical"``."""
    return f"{m.label}{m.op}{json.dumps(m.value, ensure_ascii=False)}"


def inhibit_document(spec: Spec) -> dict[str, Any]:
    """The spec's ``inhibit_rules`` (or the default one) as Alertmanager ``inhibit_rules``:
    what the daemon mutes, Alertmanager mutes too when Prometheus fires the rules."""
    rules = spec.alerting.inhibit_rules if spec.alerting is not None else ()
    return {"inhibit_rules": [
        {"source_matchers": [matcher_text(m) for m in r.source],
         "target_matchers": [matcher_text(m) for m in r.target],
         "equal": list(r.equal)} for r in rules]}


INHIBIT_HEADER = ("# Generated by `slicewatch prom-rules`; do not edit by hand.\n"
                  "# Merge into alertmanager.yml: the daemon's inhibition for the generated "
                  "rules.\n")


def write_prom_rules(spec: Spec, out_path: str) -> list[str]:
    """Write the rules to ``out_path``, a promtool unit-test file next to it
    (``<stem>.test.yml``) and the matching Alertmanager ``inhibit_rules`` snippet
    (``<stem>.alertmanager.yml``); returns the three paths. Check with ``promtool test rules
    <test>``; the snippet, merged into a config, with ``amtool check-config``."""
    doc, notes = rules_document(spec)
    header = HEADER.replace("slicewatch grafana", "slicewatch prom-rules") + "".join(
        f"# not translated: {n}\n" for n in notes)
    stem, ext = os.path.splitext(out_path)
    test_path = f"{stem}.test{ext or '.yml'}"
    paths = [write_text(out_path, dump_yaml(doc, header))]
    tests = promtool_tests(spec, os.path.basename(out_path))
    paths.append(write_text(test_path, dump_yaml(tests, HEADER.replace(
        "slicewatch grafana", "slicewatch prom-rules"))))
    paths.append(write_text(f"{stem}.alertmanager{ext or '.yml'}",
                            dump_yaml(inhibit_document(spec), INHIBIT_HEADER)))
    return paths


# ---------------------------------------------------------------------------- promtool tests


def _sample_interval(window: float) -> int:
    return next(i for i in (60, 30, 15, 5, 1) if window % i == 0)


def _slice_for(rule: PromRule) -> str:
    """A slice name the rule's patterns accept (``overall`` when there are none)."""
    if not rule.slice_patterns:
        return "overall"
    p = rule.slice_patterns[0]
    out, i = [], 0
    while i < len(p):
        c = p[i]
        if c == "[":
            j = p.find("]", i + 2)
            body = p[i + 1:j]
            if body.startswith("!"):
                out.append(next(ch for ch in "xyzXYZ0123456789_" if ch not in body[1:]))
            else:
                out.append(body[0])
            i = j + 1
            continue
        out.append("x" if c in "*?" else c)
        i += 1
    return "".join(out)


def _eps(bound: float) -> float:
    return max(abs(bound) * 1e-3, 1e-3)


def _bad_value(rule: PromRule) -> float:
    """Just outside the bound, so a bound moved by more than 0.1 % fails the test."""
    if rule.lower is not None:
        return rule.lower - _eps(rule.lower)
    return (rule.upper or 0.0) + _eps(rule.upper or 0.0)


def _good_value(rule: PromRule) -> float:
    """Exactly on the bound: not breached (bounds are inclusive, as in TFMA)."""
    return rule.lower if rule.lower is not None else (rule.upper or 0.0)


def _series_text(name: str, labels: dict[str, str]) -> str:
    return name + "{" + ",".join(f"{k}={quote(v)}" for k, v in labels.items()) + "}"


def _expand(per_window: list[float], k: int) -> str:
    """promtool values: each window's value repeated for its ``k`` samples."""
    return " ".join(f"{v!r}+0x{k - 1}" for v in per_window)


def _go_float(v: float) -> str:
    """Go's ``%v`` of a float64 as Prometheus templates print ``value``."""
    if v == int(v) and abs(v) < 1e21:
        return str(int(v))
    return repr(v)


def _humanize_timestamp(v: float) -> str:
    return datetime.fromtimestamp(v, UTC).strftime("%Y-%m-%d %H:%M:%S +0000 UTC")


def _render(template: str, labels: dict[str, str], value: float, count: float,
            window_end: float, rule: PromRule) -> str:
    """What Prometheus renders for ``template`` (a slicewatch template) — for promtool."""
    import re

    def var(m: re.Match) -> str:
        name = m.group(1)
        if name in ("model", "version", "slice", "feature"):
            return labels.get(name, "")
        if name == "value":
            return f"{value:.4g}"
        if name == "count":
            return _go_float(count)
        if name == "window_end":
            return _humanize_timestamp(window_end)
        if name == "window_start":
            return _humanize_timestamp(window_end - rule.model.window.size)
        text = {"rule": rule.alert, "severity": rule.labels["severity"],
                "metric": rule.metric_text, "threshold": rule.threshold_text,
                "status": "firing"}.get(name, "")
        return text.replace("{{ $labels.test }}", labels.get("test", ""))

    return re.sub(_VAR, var, template)


def _test_case(rule: PromRule) -> dict[str, Any]:
    """Series that break the rule for exactly ``for_windows`` windows after two good ones;
    the alert must be firing then, not one sample earlier, and gone two windows later."""
    model = rule.model
    w = int(model.window.size) if model.window.kind == "time" else 60
    step = _sample_interval(w)
    k = w // step
    n = rule.for_windows
    total = n + 4  # 2 good, n bad, 2 good
    bad_windows = range(2, 2 + n)
    slice_ = _slice_for(rule)
    base = {"model": model.name, "version": "v1", "slice": slice_}
    labels = dict(base)
    records = float(max(rule.min_count, 0) + 100)
    series: list[dict[str, str]] = []
    if rule.kind in ("metric", "quality"):
        good, bad = _good_value(rule), _bad_value(rule)
        if rule.kind == "quality":
            labels["feature"] = rule.features[0] if rule.features else (
                model.features[0].name if model.features else "x")
        vals = [bad if i in bad_windows else good for i in range(total)]
        series.append({"series": _series_text(rule.family, labels), "values": _expand(vals, k)})
        value = bad
    elif rule.kind == "drift":
        labels.update(feature=rule.features[0] if rule.features else (
            model.features[0].name if model.features else "x"), test="ks")
        value = 0.42
        series.append({"series": _series_text("slicewatch_drift_score", labels),
                       "values": _expand([value] * total, k)})
        series.append({"series": _series_text("slicewatch_drift_detected", labels),
                       "values": _expand([1.0 if i in bad_windows else 0.0
                                          for i in range(total)], k)})
    else:  # concept_drift: the counter steps by one at the start of each bad window
        labels["detector"] = model.drift.concept_detector or "ADWIN"
        counts, c = [], 0.0
        for i in range(total):
            c += 1.0 if i in bad_windows else 0.0
            counts.append(c)
        series.append({"series": _series_text(rule.family, labels),
                       "values": _expand(counts, k)})
        value = 1.0
    ends = [float((i + 1) * w) for i in range(total)]
    series.append({"series": _series_text("slicewatch_slice_records", base),
                   "values": _expand([records] * total, k)})
    series.append({"series": _series_text("slicewatch_slice_window_end_timestamp_seconds",
                                          base), "values": _expand(ends, k)})
    series.append({"series": _series_text("slicewatch_slice_info", {
        **base, "slice_spec": "x", "critical": "true" if rule.critical else "false"}),
        "values": _expand([1.0] * total, k)})
    fire_at = (n + 1) * w + step  # inside the last bad window
    exp_labels = {**labels, **rule.labels}
    exp_labels.pop("__name__", None)
    window_end = ends[(fire_at // w)]
    annotations = {key: _render(t, labels, value, records, window_end, rule)
                   for key, t in rule.raw_annotations.items()}
    return {
        "interval": duration(step),
        "input_series": series,
        "alert_rule_test": [
            {"eval_time": duration(fire_at), "alertname": rule.alert,
             "exp_alerts": [{"exp_labels": exp_labels, "exp_annotations": annotations}]},
            {"eval_time": duration(fire_at - 2 * step), "alertname": rule.alert,
             "exp_alerts": []},
            {"eval_time": duration((n + 4) * w - step), "alertname": rule.alert,
             "exp_alerts": []},
        ],
    }


def promtool_tests(spec: Spec, rules_file: str) -> dict[str, Any]:
    """A ``promtool test rules`` file: one test per generated rule (see :func:`_test_case`).

    Each test runs only its own series, so the other rules of the file stay silent."""
    rules, _ = rules_for_spec(spec)
    steps = {_sample_interval(int(r.model.window.size)) for r in rules
             if r.model.window.kind == "time"} or {60}
    return {"rule_files": [rules_file], "evaluation_interval": duration(math.gcd(*steps)),
            "tests": [_test_case(r) for r in rules]}
