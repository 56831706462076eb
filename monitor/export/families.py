"""The metric families the dashboards and alerting rules may name, with their labels.

One table, tied to the exporter: per-slice names come from
:func:`monitor.export.collector.slice_metric_name` and
:data:`monitor.export.collector.SLICE_LABELS`, and a
unit test checks every family here that a daemon exports against its real ``/metrics``
output (names, types and label names). Generators look names up with :func:`family`, so a
typo fails at generation time, not in Grafana.

``when`` says which spec feature makes the daemon export the family:
``always`` · ``drift`` (a model has ``drift:``) · ``concept`` (a concept-drift detector) ·
``multivariate`` (a profile with a PCA fit, ``drift.multivariate`` on) · ``cbpe`` (a
binary model whose profile holds a calibration) ·
``alerting`` (the spec has ``alerts``) · ``kafka`` (``source.type: kafka``) ·
``discovery`` (a model with ``discovery:``) · ``compare`` (a model comparing versions:
``compare:`` or a ``compare`` alert rule, two versions in one window) ·
``labels`` (delayed labels: ``label_delay`` or label files) · ``min_size`` (a slice with
``min_size``) · ``features`` (a feature-log topic) · ``dead_letter`` (a dead-letter file) ·
``event`` (only once what it counts has happened: series or versions over the budget, HTTP
connections dropped) · ``confidence`` (a metric's interval bounds: ``_lower``/``_upper``,
unless the model has ``confidence: false``).
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.export.collector import SLICE_LABELS, slice_metric_name
from slices.errors import SlicewatchError
from slices.spec import ModelSpec, Spec
from slices.vocab import METRICS_BY_TASK, QUALITY_CHECKS


@dataclass(frozen=True)
class Family:
    """One exported sample name (``_total`` included for counters) and its label names."""

    name: str
    kind: str  # counter | gauge
    labels: tuple[str, ...]
    when: str = "always"


_FEATURE_LABELS = (*SLICE_LABELS, "feature")
_DRIFT_LABELS = (*_FEATURE_LABELS, "test")

FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("slicewatch_records_total", "counter", ("model",)),
    Family("slicewatch_bad_records_total", "counter", ("reason",)),
    Family("slicewatch_late_records_total", "counter", ("model",)),
    Family("slicewatch_windows_closed_total", "counter", ("model",)),
    Family("slicewatch_predictions_total", "counter", ("model", "version", "outcome")),
    Family("slicewatch_watermark_timestamp_seconds", "gauge", ("model",)),
    Family("slicewatch_last_window_end_timestamp_seconds", "gauge", ("model",)),
    Family("slicewatch_slices_suppressed_total", "counter", ("model",), "min_size"),
    Family("slicewatch_label_join_total", "counter", ("model", "outcome"), "labels"),
    Family("slicewatch_up_time_seconds", "gauge", ()),
    Family("slicewatch_window_close_delay_seconds", "gauge", ("model",)),
    Family("slicewatch_slice_info", "gauge", (*SLICE_LABELS, "slice_spec", "critical")),
    Family("slicewatch_slice_window_end_timestamp_seconds", "gauge", tuple(SLICE_LABELS)),
    # drift (issue 3)
    Family("slicewatch_drift_score", "gauge", _DRIFT_LABELS, "drift"),
    Family("slicewatch_drift_pvalue", "gauge", _DRIFT_LABELS, "drift"),
    Family("slicewatch_drift_pvalue_adjusted", "gauge", _DRIFT_LABELS, "drift"),
    Family("slicewatch_drift_detected", "gauge", _DRIFT_LABELS, "drift"),
    Family("slicewatch_drift_insufficient", "gauge", _DRIFT_LABELS, "drift"),
    Family("slicewatch_drift_threshold", "gauge", _DRIFT_LABELS, "drift"),
    Family("slicewatch_concept_drift_events_total", "counter", (*SLICE_LABELS, "detector"),
           "concept"),
    # multivariate drift (issue 15): a profile with a PCA fit and drift.multivariate
    Family("slicewatch_multivariate_drift_error", "gauge", tuple(SLICE_LABELS), "multivariate"),
    Family("slicewatch_multivariate_drift_lower", "gauge", tuple(SLICE_LABELS), "multivariate"),
    Family("slicewatch_multivariate_drift_upper", "gauge", tuple(SLICE_LABELS), "multivariate"),
    Family("slicewatch_multivariate_drift_detected", "gauge", tuple(SLICE_LABELS),
           "multivariate"),
    # CBPE (issue 15): binary models whose profile holds a calibration
    *(Family(f"slicewatch_slice_estimated_{m}", "gauge", tuple(SLICE_LABELS), "cbpe")
      for m in ("accuracy", "precision", "recall", "f1", "roc_auc")),
    Family("slicewatch_slice_estimated_lower", "gauge", (*SLICE_LABELS, "metric"), "cbpe"),
    Family("slicewatch_slice_estimated_upper", "gauge", (*SLICE_LABELS, "metric"), "cbpe"),
    Family("slicewatch_slice_estimate_error", "gauge", (*SLICE_LABELS, "metric"), "cbpe"),
    # version comparison (issue 15): a model with ``compare`` (or a ``compare`` alert rule)
    *(Family(f"slicewatch_version_diff{k}", "gauge",
             ("model", "slice", "metric", "baseline", "candidate"), "compare")
      for k in ("", "_lower", "_upper")),
    # slice discovery (issue 17): a model with a ``discovery:`` block; top_k series at most
    Family("slicewatch_discovered_slice_error", "gauge", ("model", "version", "rank", "slice"),
           "discovery"),
    Family("slicewatch_discovered_slice_records", "gauge", ("model", "version", "rank", "slice"),
           "discovery"),
    Family("slicewatch_data_missing_ratio", "gauge", _FEATURE_LABELS, "drift"),
    Family("slicewatch_data_out_of_range_ratio", "gauge", _FEATURE_LABELS, "drift"),
    Family("slicewatch_data_unseen_category_ratio", "gauge", _FEATURE_LABELS, "drift"),
    Family("slicewatch_data_nonfinite", "gauge", _FEATURE_LABELS, "drift"),
    Family("slicewatch_data_type_mismatches", "gauge", _FEATURE_LABELS, "drift"),
    # alerting (issue 5)
    Family("slicewatch_alerts_firing", "gauge", ("model", "severity"), "alerting"),
    Family("slicewatch_notifications_total", "counter", ("receiver", "outcome"), "alerting"),
    Family("slicewatch_outbox_depth", "gauge", (), "alerting"),
    Family("slicewatch_alert_dispatch_errors_total", "counter", ("loop", "reason"), "alerting"),
    Family("slicewatch_alert_observations_pending", "gauge", (), "alerting"),
    Family("slicewatch_alert_observations_dropped_total", "counter", (), "alerting"),
    Family("slicewatch_alert_labels_cut_total", "counter", (), "alerting"),
    # Kafka source
    Family("slicewatch_kafka_consumer_lag", "gauge", ("topic", "partition"), "kafka"),
    Family("slicewatch_kafka_messages_total", "counter", ("topic",), "kafka"),
    # scale-out evaluator (--role evaluator): partials rejected, upgrade counters (#14)
    Family("slicewatch_kafka_evaluator_events_total", "counter", ("reason",), "kafka"),
    Family("slicewatch_feature_join_total", "counter", ("outcome",), "features"),
    Family("slicewatch_dead_letter_lines_total", "counter", (), "dead_letter"),
    Family("slicewatch_dead_letter_dropped_total", "counter", (), "dead_letter"),
    Family("slicewatch_series_dropped_total", "counter", ("family",), "event"),
    Family("slicewatch_versions_folded_total", "counter", ("model",), "event"),
    Family("slicewatch_http_connections_dropped_total", "counter", ("reason",), "event"),
    Family("slicewatch_listener_errors_total", "counter", ("listener",), "event"),
    Family("slicewatch_decode_ahead_waits_total", "counter", ("side",), "event"),
)}
for _task_metrics in METRICS_BY_TASK.values():
    for _metric in _task_metrics:
        _name = slice_metric_name(_metric)
        FAMILIES.setdefault(_name, Family(_name, "gauge", tuple(SLICE_LABELS)))
        if _metric != "count":
            for _side in ("lower", "upper"):
                FAMILIES.setdefault(f"{_name}_{_side}", Family(
                    f"{_name}_{_side}", "gauge", tuple(SLICE_LABELS), "confidence"))

# Data-quality check names (alerts ``quality: {check: …}``) → exported family.
QUALITY_FAMILIES: dict[str, str] = {c: f"slicewatch_data_{c}" for c in QUALITY_CHECKS}


def family(name: str) -> Family:
    """The family called ``name``; a :class:`SlicewatchError` names unknown ones."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise SlicewatchError(f"unknown metric family {name!r}: not exported by slicewatch "
                              "(see monitor/export/families.py)") from None


def slice_family(metric: str) -> Family:
    """The per-slice family of a spec metric name (``count`` → ``slicewatch_slice_records``)."""
    return family(slice_metric_name(metric))


def model_metrics(model: ModelSpec) -> tuple[str, ...]:
    """The spec metrics a model exports (its ``metrics`` list, or every metric of its task)."""
    return model.metrics or METRICS_BY_TASK[model.task]


def has_compare(model: ModelSpec) -> bool:
    return bool(model.compare) and model.confidence_level is not None


def _profile_keys(model: ModelSpec) -> set[str]:
    """Top-level keys of the model's drift profile holding a value (none: no readable
    profile). Plain JSON, read without running anything."""
    import json

    if not (model.drift.enabled and model.drift.profile):
        return set()
    try:
        with open(model.drift.profile, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return set()
    return {k for k, v in data.items() if v} if isinstance(data, dict) else set()


def has_cbpe(model: ModelSpec) -> bool:
    """A binary model whose profile holds a calibration: CBPE estimates are exported."""
    return model.task == "binary" and "calibration" in _profile_keys(model)


def has_multivariate(model: ModelSpec) -> bool:
    """A model whose profile holds a PCA fit, with ``drift.multivariate`` on."""
    return bool(model.drift.multivariate) and "multivariate" in _profile_keys(model)


def has_drift(model: ModelSpec) -> bool:
    return bool(model.drift.enabled)


def has_concept(model: ModelSpec) -> bool:
    return bool(model.drift.enabled and model.drift.concept_detector)


def has_delayed_labels(spec: Spec, model: ModelSpec) -> bool:
    return model.label_delay > 0 or bool(spec.source.labels)


def has_min_size(model: ModelSpec) -> bool:
    return any(s.min_size > 0 for s in model.slices)


def has_alerting(spec: Spec) -> bool:
    return spec.alerting is not None and bool(getattr(spec.alerting, "rules", ()))


def has_kafka(spec: Spec) -> bool:
    return spec.source.type == "kafka"
