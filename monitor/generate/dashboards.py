"""Dashboards generated from a spec: one operations dashboard per spec, one per model.

Every query is built with :func:`monitor.generate.promql.sel`, so it names only families and
labels in :mod:`monitor.export.families`; panels of families that exist only with drift,
alerting, Kafka, delayed labels or ``min_size`` are generated only when the spec uses them.

Every selector carries ``job=~"$job",instance=~"$instance"`` so one Grafana can show several
daemons (one per set of Kafka partitions) or pick one of them.
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import Any

from monitor.export.families import (
    family,
    has_alerting,
    has_cbpe,
    has_compare,
    has_concept,
    has_delayed_labels,
    has_drift,
    has_kafka,
    has_min_size,
    has_multivariate,
    model_metrics,
    slice_family,
)
from monitor.generate.panels import (
    DATASOURCE,
    SCHEMA_VERSION,
    Board,
    Bound,
    query_variable,
    stat,
    table,
    target,
    threshold_steps,
    timeseries,
)
from monitor.generate.promql import regex_escape, sel
from slices.spec import ModelSpec, Spec

RATE = "$__rate_interval"
TAGS = ["slicewatch"]
TARGET = {"job": ("=~", "$job"), "instance": ("=~", "$instance")}
# Units of per-slice metrics (everything else is a plain ratio or score).
_UNITS = {"count": "short", "mae": "short", "rmse": "short", "mean_error": "short",
          "prediction_mean": "short", "prediction_std": "short", "label_mean": "short",
          "log_loss": "short", "score_std": "short", "mape": "percentunit"}
_RATIO_METRICS = ("failure_rate", "error_rate", "timeout_rate", "fallback_rate",
                  "labelled_rate", "positive_rate", "label_positive_rate", "accuracy",
                  "precision", "recall", "f1", "roc_auc", "pr_auc", "macro_precision",
                  "macro_recall", "macro_f1", "score_mean", "brier", "ece")


def uid(kind: str, name: str) -> str:
    """Stable dashboard uid (≤ 40 characters) from the kind and a name.

    >>> uid("model", "fraud")
    'sw-model-fraud-c54f4df4'
    """
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:20]
    digest = hashlib.sha256(f"{kind}:{name}".encode()).hexdigest()[:8]
    return f"sw-{kind}-{slug}-{digest}"


def file_slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _dashboard(uid_: str, title: str, description: str, variables: list[dict],
               board: Board, annotations: list[dict] = ()) -> dict[str, Any]:
    builtin = {"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
               "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
               "name": "Annotations & Alerts", "type": "dashboard"}
    return {
        "id": None, "uid": uid_, "title": title, "description": description, "tags": TAGS,
        "editable": True, "graphTooltip": 1, "timezone": "browser", "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"}, "schemaVersion": SCHEMA_VERSION,
        "version": 1, "fiscalYearStartMonth": 0, "liveNow": False, "weekStart": "",
        "links": [{"type": "dashboards", "tags": TAGS, "asDropdown": True,
                   "title": "slicewatch", "includeVars": False, "keepTime": True}],
        "templating": {"list": variables},
        "annotations": {"list": [builtin, *annotations]},
        "panels": board.panels,
    }


def _target_variables() -> list[dict]:
    return [query_variable("job", "label_values(slicewatch_up_time_seconds, job)"),
            query_variable("instance", "label_values(" + sel(
                "slicewatch_up_time_seconds", job=TARGET["job"]) + ", instance)")]


# ---------------------------------------------------------------------------- operations


def operations_dashboard(spec: Spec) -> dict[str, Any]:
    """Daemon health: throughput, rejects, late records, window latency, Kafka, alerting."""
    names = sorted(m.name for m in spec.models)
    b = Board()

    def rate_by(name: str, by: str, **m: Any) -> str:
        return f"sum by ({by}) (rate({sel(name, **TARGET, **m)}[{RATE}]))"

    b.row("Throughput")
    b.add(timeseries("Records/s by model", [target(rate_by("slicewatch_records_total", "model"),
                                                   "{{model}}")],
                     unit="reqps", step=False, description="Prediction records accepted."), 12)
    b.add(timeseries("Predictions/s by outcome", [target(
        rate_by("slicewatch_predictions_total", "model, outcome"), "{{model}} {{outcome}}")],
        unit="reqps", step=False, stack=True,
        description="Serving outcome of each prediction (ok, error, timeout, fallback)."), 12)
    b.add(timeseries("Bad records/s by reason", [target(
        rate_by("slicewatch_bad_records_total", "reason"), "{{reason}}")], unit="reqps",
        step=False, description="Rejected records (written to the dead-letter output)."), 12)
    b.add(timeseries("Late records/s by model", [target(
        rate_by("slicewatch_late_records_total", "model"), "{{model}}")], unit="reqps",
        step=False, description="Records that arrived after their window closed."), 12)
    b.row("Windows")
    b.add(timeseries("Window close latency", [target(
        sel("slicewatch_window_close_delay_seconds", **TARGET), "{{model}}")], unit="s",
        description="Wall-clock time at close minus the window's event-time end."), 8)
    b.add(timeseries("Windows closed/s", [target(
        rate_by("slicewatch_windows_closed_total", "model"), "{{model}}")], unit="ops",
        step=False), 8)
    b.add(stat("Up time", [target(sel("slicewatch_up_time_seconds", **TARGET),
                                  "{{instance}}")], unit="s"), 8)
    if has_kafka(spec):
        b.row("Kafka")
        b.add(timeseries("Consumer lag", [target(
            f"sum by (topic, partition) ({sel('slicewatch_kafka_consumer_lag', **TARGET)})",
            "{{topic}}/{{partition}}")], description="Messages behind the partition end."),
            12)
        b.add(timeseries("Messages/s by topic", [target(
            rate_by("slicewatch_kafka_messages_total", "topic"), "{{topic}}")],
            unit="reqps", step=False), 12)
    if has_alerting(spec):
        b.row("Alerting")
        b.add(timeseries("Alerts firing", [target(
            f"sum by (model, severity) ({sel('slicewatch_alerts_firing', **TARGET)})",
            "{{model}} {{severity}}")], stack=True), 8)
        b.add(timeseries("Notifications/s by outcome", [target(
            rate_by("slicewatch_notifications_total", "receiver, outcome"),
            "{{receiver}} {{outcome}}")], unit="ops", step=False), 8)
        b.add(timeseries("Outbox depth", [target(
            f"sum({sel('slicewatch_outbox_depth', **TARGET)})", "outbox")],
            description="Notifications waiting to be delivered (retries included)."), 8)
    return _dashboard(uid("ops", ",".join(names)), f"slicewatch · operations · "
                      f"{', '.join(names)}", f"Generated by `slicewatch grafana` from "
                      f"{os.path.basename(spec.file)}; do not edit by hand.",
                      _target_variables(), b)


# ---------------------------------------------------------------------------- per model


def metric_bounds(spec: Spec, model: ModelSpec, metric: str) -> list[Bound]:
    """Value thresholds of the spec's alert rules on ``metric`` that apply to ``model``."""
    out: list[Bound] = []
    if spec.alerting is None:
        return out
    for rule in spec.alerting.rules:
        if rule.kind != "metric" or rule.metric != metric:
            continue
        if rule.model is not None and rule.model != model.name:
            continue
        for side in ("lower", "upper"):
            value = getattr(rule, side)
            if value is not None:
                out.append(Bound(float(value), side, rule.severity))
    return out


def quality_bounds(spec: Spec, model: ModelSpec, check: str) -> list[Bound]:
    out: list[Bound] = []
    for rule in (spec.alerting.rules if spec.alerting is not None else ()):
        if rule.kind == "quality" and rule.check == check and rule.model in (None, model.name):
            out += [Bound(float(v), side, rule.severity)
                    for side, v in (("lower", rule.lower), ("upper", rule.upper))
                    if v is not None]
    return out


def _unit(metric: str) -> str:
    return _UNITS.get(metric, "percentunit" if metric in _RATIO_METRICS else "short")


def _pvalue_tests_possible(model: ModelSpec) -> bool:
    """False only when every checked feature is forced onto a distance-only test."""
    from monitor.drift.statistics import TESTS

    checked = [f for f in model.features if not model.drift.features
               or f.name in model.drift.features]
    if model.drift.prediction or model.drift.label or not checked:
        return True
    return any(f.test is None or "pvalue" in TESTS[f.test].kinds for f in checked)


def model_dashboard(spec: Spec, model: ModelSpec) -> dict[str, Any]:
    """Per-slice metrics (critical slices first), drift, data quality, concept drift."""
    name = model.name
    base = {**TARGET, "model": "$model"}
    ver = {**base, "version": ("=~", "$version")}
    sl = {**ver, "slice": ("=~", "$slice")}
    critical = sel("slicewatch_slice_info", **ver, critical="true")
    metrics = model_metrics(model)
    b = Board()

    b.row("Overview")
    b.add(stat("Records/s", [target(
        f"sum(rate({sel('slicewatch_records_total', **base)}[{RATE}]))")], unit="reqps"), 6, 5)
    b.add(stat("Windows closed", [target(
        f"sum({sel('slicewatch_windows_closed_total', **base)})")]), 6, 5)
    b.add(stat("Slices reported", [target(f"count({sel('slicewatch_slice_info', **ver)})")],
               description="Slices with a value in the latest closed window."), 6, 5)
    b.add(stat("Last closed window (event time)", [target(
        f"max({sel('slicewatch_last_window_end_timestamp_seconds', **base)}) * 1000")],
        unit="dateTimeAsIso"), 6, 5)
    b.add(timeseries("Predictions/s by outcome", [target(
        f"sum by (version, outcome) (rate({sel('slicewatch_predictions_total', **ver)}"
        f"[{RATE}]))", "{{version}} {{outcome}}")], unit="reqps", step=False, stack=True), 12)
    b.add(timeseries("Late records/s", [target(
        f"sum(rate({sel('slicewatch_late_records_total', **base)}[{RATE}]))", "late")],
        unit="reqps", step=False), 6 if has_min_size(model) else 12)
    if has_min_size(model):
        b.add(timeseries("Slices suppressed (min_size)/s", [target(
            f"sum(rate({sel('slicewatch_slices_suppressed_total', **base)}[{RATE}]))",
            "suppressed")], unit="ops", step=False), 6)
    if has_delayed_labels(spec, model):
        b.add(timeseries("Delayed labels by join outcome", [target(
            f"sum by (outcome) (rate({sel('slicewatch_label_join_total', **base)}[{RATE}]))",
            "{{outcome}}")], unit="ops", step=False), 12)

    if any(s.critical for s in model.slices):
        b.row("Critical slices")
        refs = [chr(ord("A") + i) if i < 26 else f"M{i}" for i in range(len(metrics))]
        b.add(table("Critical slices — latest window", [
            target(f"{sel(slice_family(m).name, **ver)} and on (model, version, slice) "
                   f"{critical}", ref=r, instant=True, table=True)
            for m, r in zip(metrics, refs, strict=True)],
            rename={f"Value #{r}": m for m, r in zip(metrics, refs, strict=True)},
            hide=("Time", "__name__", "job", "instance")), 24, 6)
        for m in metrics:
            b.add(_metric_panel(spec, model, m, f"{sel(slice_family(m).name, **ver)} and on "
                                f"(model, version, slice) {critical}", critical=True))

    b.row("Slice metrics")
    for m in metrics:
        b.add(_metric_panel(spec, model, m, sel(slice_family(m).name, **sl)))

    if has_compare(model):
        _compare_panels(b, base)
    if has_cbpe(model) or has_multivariate(model):
        _analysis_panels(b, model, sl)

    annotations = []
    if has_drift(model):
        fl = {**sl, "feature": ("=~", "$feature")}
        b.row("Drift")
        b.add(table("Drift per feature × slice — latest window", [
            target(sel("slicewatch_drift_score", **fl), ref="A", instant=True, table=True),
            target(sel("slicewatch_drift_detected", **fl), ref="B", instant=True, table=True)],
            rename={"Value #A": "score", "Value #B": "drift detected"},
            hide=("Time", "__name__", "job", "instance"),
            overrides=[{"matcher": {"id": "byName", "options": "drift detected"},
                        "properties": [
                            {"id": "custom.cellOptions", "value": {"type": "color-background"}},
                            {"id": "thresholds", "value": {"mode": "absolute", "steps": [
                                {"color": "green", "value": None},
                                {"color": "red", "value": 1}]}}]}]), 12, 10)
        b.add(timeseries("Features drifting per slice", [target(
            f"sum by (slice) ({sel('slicewatch_drift_detected', **fl)})", "{{slice}}")],
            description="Number of features whose drift decision is positive (after BH)."),
            12, 10)
        b.add(timeseries("Drift score", [target(sel("slicewatch_drift_score", **fl),
                                                "{{slice}} · {{feature}} ({{test}})")],
                         description="Statistic of each feature's test vs the reference."))
        if _pvalue_tests_possible(model):
            b.add(timeseries("p-value", [target(sel("slicewatch_drift_pvalue", **fl),
                                                "{{slice}} · {{feature}} ({{test}})")],
                             log=True, max_=1))
            b.add(timeseries("BH-adjusted p-value", [target(
                sel("slicewatch_drift_pvalue_adjusted", **fl),
                "{{slice}} · {{feature}} ({{test}})")], log=True, max_=1,
                thresholds=threshold_steps([Bound(model.drift.fdr, "lower", "warning")]),
                description=f"Benjamini–Hochberg adjusted; drift when below the FDR "
                            f"{model.drift.fdr:g} (and the effect-size gate passes)."))
        b.row("Data quality")
        kinds = {f.type for f in model.features}
        checks = [("missing_rate", "slicewatch_data_missing_ratio", "Missing values",
                   "percentunit")]
        if "numeric" in kinds:
            checks += [("out_of_range_share", "slicewatch_data_out_of_range_ratio",
                        "Out of the reference range", "percentunit"),
                       ("nonfinite", "slicewatch_data_nonfinite", "Non-finite values (±inf)",
                        "short")]
        if "categorical" in kinds:
            checks.append(("unseen_share", "slicewatch_data_unseen_category_ratio",
                           "Unseen categories", "percentunit"))
        for check, fam, title, unit in checks:
            b.add(timeseries(title, [target(sel(fam, **fl), "{{slice}} · {{feature}}")],
                             unit=unit, thresholds=threshold_steps(
                                 quality_bounds(spec, model, check))), 12 if len(checks) == 2
                  else 8 if len(checks) == 3 else 6)
    if has_concept(model):
        events = sel("slicewatch_concept_drift_events_total", **sl)
        b.row("Concept drift")
        b.add(timeseries("Concept-drift events (since start)", [target(
            f"sum by (slice, detector) ({events})", "{{slice}} {{detector}}")],
            unit="short", description=f"Detector {model.drift.concept_detector} on the "
                                      "model's error stream; each event is also an "
                                      "annotation."), 24)
        # A counter series is born at its first event, so increase() alone would miss it.
        annotations.append({
            "datasource": DATASOURCE, "enable": True, "hide": False, "iconColor": "red",
            "name": "Concept drift",
            "expr": f"increase({events}[{RATE}]) > 0 or ({events} > 0 unless {events} "
                    f"offset {RATE})",
            "step": "60s", "titleFormat": "Concept drift", "tagKeys": "slice,detector",
            "textFormat": "{{detector}} on {{slice}}", "useValueForTime": False})
    if has_alerting(spec):
        b.row("Alerts")
        b.add(timeseries("Alerts firing by severity", [target(
            f"sum by (severity) ({sel('slicewatch_alerts_firing', **base)})", "{{severity}}")],
            stack=True), 24, 6)

    variables = [
        *_target_variables(),
        query_variable("model", "label_values(" + sel("slicewatch_slice_info", **TARGET)
                       + ", model)", multi=False, regex=f"/^{regex_escape(name)}$/",
                       current=name),
        query_variable("version", "label_values(" + sel("slicewatch_slice_info", **base)
                       + ", version)"),
        query_variable("slice", "label_values(" + sel("slicewatch_slice_info", **ver)
                       + ", slice)")]
    if has_drift(model):
        variables.append(query_variable("feature", "label_values(" + sel(
            "slicewatch_drift_score", **ver) + ", feature)"))
    return _dashboard(uid("model", name), f"slicewatch · model {name}",
                      f"Model {name} ({model.task}), generated by `slicewatch grafana` from "
                      f"{os.path.basename(spec.file)}; do not edit by hand.", variables, b,
                      annotations)


def _compare_panels(b: Board, base: dict[str, Any]) -> None:
    """Candidate − baseline versions (the model's ``compare``): the latest window's
    differences with their intervals, and the difference over time, for every compared pair
    (the series have ``baseline`` and ``candidate`` labels, no ``version``)."""
    cmp = {**base, "slice": ("=~", "$slice")}
    names = [family(f"slicewatch_version_diff{k}").name for k in ("", "_lower", "_upper")]
    b.row("Version comparison")
    b.add(table("Candidate − baseline — latest window", [
        target(sel(n, **cmp), ref=r, instant=True, table=True)
        for n, r in zip(names, "ABC", strict=True)],
        rename={"Value #A": "candidate − baseline", "Value #B": "lower", "Value #C": "upper"},
        hide=("Time", "__name__", "job", "instance"),
        description="Each metric of the candidate version minus the baseline's, same slice "
                    "and window, with its confidence interval (slicewatch_version_diff, "
                    "_lower, _upper). An interval below 0 for a higher-is-better metric: "
                    "the candidate is surely worse there."), 24, 8)
    b.add(timeseries("Candidate − baseline", [target(
        sel(names[0], **cmp), "{{metric}} {{slice}} {{candidate}} − {{baseline}}")],
        description="slicewatch_version_diff per window; see the table for the intervals."),
        24)


def _analysis_panels(b: Board, model: ModelSpec, sl: dict[str, Any]) -> None:
    """CBPE (label-free performance) and PCA multivariate drift, when the profile has them."""
    b.row("Label-free performance and multivariate drift")
    if has_cbpe(model):
        est = [family(f"slicewatch_slice_estimated_{m}").name
               for m in ("accuracy", "precision", "recall", "f1", "roc_auc")]
        b.add(timeseries("CBPE estimate", [
            target(sel(n, **sl), f"{n.removeprefix('slicewatch_slice_estimated_')} "
                   "{{slice}} {{version}}", ref=chr(ord("A") + i))
            for i, n in enumerate(est)], unit="percentunit", min_=0, max_=1,
            description="Performance estimated from the scores alone (CBPE, calibrated on "
                        "the reference), before labels arrive."), 12)
        b.add(timeseries("CBPE error (realised − estimated)", [target(
            sel(family("slicewatch_slice_estimate_error").name, **sl),
            "{{metric}} {{slice}} {{version}}")],
            description="Once the window's labels define the metric; a growing error hints "
                        "at concept drift."), 12)
    if has_multivariate(model):
        names = [family(f"slicewatch_multivariate_drift_{k}").name
                 for k in ("error", "lower", "upper")]
        b.add(timeseries("Multivariate drift (PCA reconstruction error)", [
            target(sel(n, **sl), f"{k} {{{{slice}}}} {{{{version}}}}", ref=r)
            for n, k, r in zip(names, ("error", "lower", "upper"), "ABC", strict=True)],
            description="Mean reconstruction error of the window's records and the band "
                        "from the reference; outside the band: the features' joint "
                        "distribution changed."), 24)


def _metric_panel(spec: Spec, model: ModelSpec, metric: str, expr: str,
                  critical: bool = False) -> dict[str, Any]:
    bounds = metric_bounds(spec, model, metric)
    desc = slice_family(metric).name
    if bounds:
        desc += " — lines: alert thresholds of " + ", ".join(
            sorted({r.name for r in spec.alerting.rules
                    if r.kind == "metric" and r.metric == metric}))
    ratio = _unit(metric) == "percentunit" and metric != "mape"
    return timeseries(f"{metric}{' (critical slices)' if critical else ''}",
                      [target(expr, "{{slice}} {{version}}")], unit=_unit(metric),
                      description=desc, thresholds=threshold_steps(bounds),
                      min_=0 if ratio else None, max_=1 if ratio else None)


def dashboards(spec: Spec) -> dict[str, dict[str, Any]]:
    """File name → dashboard JSON model, for every dashboard of ``spec``."""
    ops = "-".join(file_slug(m.name) for m in sorted(spec.models, key=lambda m: m.name))
    out = {f"slicewatch-ops-{ops}.json": operations_dashboard(spec)}
    for model in spec.models:
        out[f"slicewatch-model-{file_slug(model.name)}.json"] = model_dashboard(spec, model)
    return out
