"""``/metrics`` (Prometheus text or OpenMetrics) and ``/healthz`` over the latest snapshot.

A custom :class:`Collector` builds metric families fresh from the snapshot on each scrape —
no ``.labels()`` calls per record, and series of expired slices simply stop appearing.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.core.labels import MAX_LABEL_CHARS  # a longer label: series left out, counted
from monitor.export.discovered import discovered_families
from monitor.export.snapshot import Snapshot
from slices.spec import ServerSpec

log = logging.getLogger("slicewatch.exporter")

SLICE_LABELS = ["model", "version", "slice"]

# Help text of each per-slice metric family ``slicewatch_slice_<name>``.
SLICE_METRIC_HELP: dict[str, str] = {
    "count": "Records in the slice in the last closed window.",
    "failure_rate": "Share of predictions whose serving outcome was not ok.",
    "error_rate": "Share of predictions with outcome=error.",
    "timeout_rate": "Share of predictions with outcome=timeout.",
    "fallback_rate": "Share of predictions with outcome=fallback.",
    "labelled_rate": "Share of predictions whose label is known.",
    "score_mean": "Mean prediction score.",
    "score_std": "Standard deviation of the prediction score.",
    "positive_rate": "Share of predictions at or above the decision threshold.",
    "label_positive_rate": "Share of labelled records whose label is positive.",
    "accuracy": "Accuracy on labelled records.",
    "precision": "Precision at the decision threshold.",
    "recall": "Recall at the decision threshold.",
    "f1": "F1 score at the decision threshold.",
    "roc_auc": "Area under the ROC curve.",
    "pr_auc": "Area under the precision-recall curve (average precision).",
    "log_loss": "Mean log loss.",
    "brier": "Brier score (mean squared error of the probability).",
    "ece": "Expected calibration error over equal-width bins.",
    "macro_precision": "Macro-averaged precision.",
    "macro_recall": "Macro-averaged recall.",
    "macro_f1": "Macro-averaged F1 score.",
    "prediction_mean": "Mean predicted value.",
    "prediction_std": "Standard deviation of the predicted value.",
    "mae": "Mean absolute error, in label units.",
    "rmse": "Root mean squared error, in label units.",
    "mape": "Mean absolute percentage error (as a ratio; labels equal to 0 excluded).",
    "mean_error": "Mean of prediction minus label, in label units.",
    "label_mean": "Mean label.",
}


def slice_metric_name(metric: str) -> str:
    """Exported family name of a per-slice metric: ``roc_auc`` → ``slicewatch_slice_roc_auc``;
    ``count`` → ``slicewatch_slice_records`` (a gauge may not end in ``_count``)."""
    return "slicewatch_slice_records" if metric == "count" else f"slicewatch_slice_{metric}"


class SeriesBudget:
    """At most ``per_family`` series in each family and ``total`` on the page. Small families
    are served whole first; the series over the budget (the last in label order) are left
    out and counted in ``slicewatch_series_dropped_total{family}`` — each series once, when
    it is first left out — and a log line says so once."""

    def __init__(self, total: int = ServerSpec.max_series,
                 per_family: int = ServerSpec.max_series_per_family):
        self.total = total
        self.per_family = per_family
        self.dropped: Counter = Counter()  # family → series left out so far
        self._left_out: dict[str, set[int]] = {}  # family → hashes of last scrape's left-outs
        self._lock = threading.Lock()  # scrapes may run at the same time
        self._warned = False

    @classmethod
    def of(cls, server: ServerSpec) -> SeriesBudget:
        return cls(server.max_series, server.max_series_per_family)

    def apply(self, families: list[Metric]) -> list[Metric]:
        """``families`` cut to the budget (in place), then the dropped-series family. A series
        with a label value over :data:`MAX_LABEL_CHARS` is left out first (a record's 1 MiB
        feature value or version would otherwise be a 1 MiB label in every family)."""
        long_out = {f.name: _cut_long_labels(f) for f in families}
        sizes = [len(f.samples) for f in families]
        allowed, remaining = [0] * len(families), self.total
        for i in sorted(range(len(families)), key=sizes.__getitem__):
            allowed[i] = min(sizes[i], self.per_family, remaining)
            remaining -= allowed[i]
        with self._lock:
            for fam, size, n in zip(families, sizes, allowed, strict=True):
                long = long_out[fam.name]
                if n == size and not long:
                    self._left_out.pop(fam.name, None)
                    continue
                left = {hash(tuple(sorted(x.labels.items()))) for x in fam.samples[n:] + long}
                new = len(left - self._left_out.get(fam.name, set()))
                self._left_out[fam.name] = left
                self.dropped[fam.name] += new
                fam.samples = fam.samples[:n]
            if self.dropped and not self._warned:
                self._warned = True
                log.warning("slicewatch: more series than the budget (server."
                            "max_series_per_family=%d, server.max_series=%d) or label values "
                            "over %d characters in %s: those series are left out of /metrics "
                            "and counted in slicewatch_series_dropped_total", self.per_family,
                            self.total, MAX_LABEL_CHARS, ", ".join(sorted(self.dropped)))
            counted = dict(self.dropped)
        dropped = CounterMetricFamily("slicewatch_series_dropped", "Series left out of "
                                      "/metrics because their family or the page went over "
                                      "the series budget (server.max_series_per_family, "
                                      "server.max_series); each counted once when first left "
                                      "out.", labels=["family"])
        for family, n in sorted(counted.items()):
            dropped.add_metric([family], float(n))
        return [*families, dropped]


def _cut_long_labels(family: Metric) -> list:
    """Remove (in place) and return the samples of ``family`` with a label value over
    :data:`MAX_LABEL_CHARS`."""
    long = [x for x in family.samples
            if any(len(v) > MAX_LABEL_CHARS for v in x.labels.values())]
    if long:
        family.samples = [x for x in family.samples
                          if not any(len(v) > MAX_LABEL_CHARS for v in x.labels.values())]
    return long


class SlicewatchCollector(Collector):
    """Yields every slicewatch metric family from ``get_snapshot()``, within ``budget``.

    Extra families (drift, alerts…) come from ``extra_collectors``: callables taking the
    snapshot and yielding metric families.
    """

    def __init__(self, get_snapshot: Callable[[], Snapshot],
                 extra_collectors: tuple[Callable[[Snapshot], Iterator[Metric]], ...] = (),
                 budget: SeriesBudget | None = None):
        self.get_snapshot = get_snapshot
        self.extra_collectors = extra_collectors
        self.budget = budget or SeriesBudget()

    def collect(self) -> Iterator[Metric]:
        return iter(self.budget.apply(list(self._families())))

    def _families(self) -> Iterator[Metric]:
        s = self.get_snapshot()
        yield from _counter("slicewatch_records", "Prediction records accepted.", ["model"],
                            {(m,): v for m, v in s.records.items()})
        yield from _counter("slicewatch_bad_records", "Records rejected, by reason "
                            "(written to the dead-letter output).", ["reason"],
                            {(r,): v for r, v in s.bad_records.items()})
        yield from _counter("slicewatch_late_records", "Records that arrived after their "
                            "window closed (counted, dead-lettered, not aggregated).", ["model"],
                            {(m,): v for m, v in s.late_records.items()})
        yield from _counter("slicewatch_windows_closed", "Windows closed and evaluated.",
                            ["model"], {(m,): v for m, v in s.windows_closed.items()})
        yield from _counter("slicewatch_predictions", "Predictions by serving outcome.",
                            ["model", "version", "outcome"], dict(s.outcomes.items()))
        yield from _gauge("slicewatch_watermark_timestamp_seconds", "Event-time watermark.",
                          ["model"], {(m,): v for m, v in s.watermark.items()})
        yield from _gauge("slicewatch_last_window_end_timestamp_seconds",
                          "Event-time end of the last closed window.", ["model"],
                          {(m,): v for m, v in s.last_window_end.items()})
        yield from _counter("slicewatch_slices_suppressed", "Slice results not reported "
                            "because the slice had fewer records than its min_size.", ["model"],
                            {(m,): v for m, v in s.suppressed.items()})
        yield from _counter("slicewatch_label_join", "Delayed labels and predictions by join "
                            "outcome: joined, expired (window closed before the label came), "
                            "too_late (label after its window closed), orphaned (label never "
                            "matched a prediction), dropped_full (pending store full).",
                            ["model", "outcome"], dict(s.labels.items()))
        yield from _counter("slicewatch_versions_folded", "Accepted records whose model "
                            "version went over the model's max_versions and was exported as "
                            "version=\"__other__\".", ["model"],
                            {(m,): v for m, v in s.versions_folded.items()})
        yield from _counter("slicewatch_listener_errors", "Windows a result listener (table, "
                            "results file, alerting) failed on; the other listeners still got "
                            "them.", ["listener"],
                            {(k,): v for k, v in s.listener_errors.items()})
        yield from _counter("slicewatch_decode_ahead_waits", "Waits of decode ahead: reader "
                            "(chunks decoded up to the bound, the reader waited for the "
                            "daemon), daemon (no chunk ready, the daemon waited for reading "
                            "and decoding).", ["side"],
                            {(k,): v for k, v in s.decode_waits.items()})
        yield from _counter("slicewatch_feature_join", "Predictions and feature-log records by "
                            "join outcome: joined, missing (went on without features after "
                            "feature_delay), orphaned (features never matched).", ["outcome"],
                            {(k,): v for k, v in s.features_join.items()})
        yield from self._slices(s)
        yield from discovered_families(s)
        yield from _gauge("slicewatch_up_time_seconds", "Seconds since the daemon started.",
                          [], {(): time.time() - s.started} if s.started else {})
        for extra in self.extra_collectors:
            yield from extra(s)

    def _slices(self, s: Snapshot) -> Iterator[Metric]:
        families: dict[str, GaugeMetricFamily] = {}
        info = GaugeMetricFamily("slicewatch_slice_info", "Slices reported in the last windows "
                                 "(value 1); critical=true marks critical slices.",
                                 labels=["model", "version", "slice", "slice_spec", "critical"])
        window_end = GaugeMetricFamily("slicewatch_slice_window_end_timestamp_seconds",
                                       "Event-time end of the window the slice's values are "
                                       "from.", labels=SLICE_LABELS)
        for (model, version, slice_label), r in sorted(s.series.items()):
            labels = [model, version, slice_label]
            info.add_metric([*labels, r.slice_name, "true" if r.critical else "false"], 1.0)
            window_end.add_metric(labels, r.window_end)
            for metric, value in r.metrics.items():
                if value is None or (isinstance(value, float) and math.isnan(value)):
                    continue
                name = slice_metric_name(metric)
                fam = families.get(name)
                if fam is None:
                    help_text = SLICE_METRIC_HELP.get(metric, f"Per-slice metric {metric}.")
                    fam = families[name] = GaugeMetricFamily(name, help_text, labels=SLICE_LABELS)
                fam.add_metric(labels, float(value))
                bounds = r.intervals.get(metric)
                if bounds is not None:
                    for side, bound in zip(("lower", "upper"), bounds, strict=True):
                        fam = families.get(f"{name}_{side}")
                        if fam is None:
                            fam = families[f"{name}_{side}"] = GaugeMetricFamily(
                                f"{name}_{side}", f"{side.capitalize()} bound of the "
                                f"confidence interval of {name} (level: the model's "
                                "confidence.level).", labels=SLICE_LABELS)
                        fam.add_metric(labels, float(bound))
        yield info
        yield window_end
        yield from families.values()
        yield from _version_diffs(s)
        yield from _drift_families(s)


DIFF_LABELS = ["model", "slice", "metric", "baseline", "candidate"]


def _version_diffs(s: Snapshot) -> Iterator[Metric]:
    """Candidate − baseline per slice and metric (the model's ``compare``), with the bounds
    of its interval."""
    fams = {k: GaugeMetricFamily(f"slicewatch_version_diff{k}", doc, labels=DIFF_LABELS)
            for k, doc in (("", "Metric of the candidate version minus the baseline version's, "
                                "same slice and window (the model's compare)."),
                           ("_lower", "Lower bound of the confidence interval of "
                                      "slicewatch_version_diff."),
                           ("_upper", "Upper bound of the confidence interval of "
                                      "slicewatch_version_diff."))}
    for (model, _version, slice_label), r in sorted(s.series.items()):
        for d in getattr(r, "compared", ()):
            labels = [model, slice_label, d.metric, d.baseline, d.candidate]
            fams[""].add_metric(labels, d.diff)
            fams["_lower"].add_metric(labels, d.lower)
            fams["_upper"].add_metric(labels, d.upper)
    if any(f.samples for f in fams.values()):
        yield from fams.values()


DRIFT_LABELS = ["model", "version", "slice", "feature", "test"]
QUALITY_HELP = {
    "missing_ratio": ("slicewatch_data_missing_ratio", "Share of records missing the feature."),
    "out_of_range_ratio": ("slicewatch_data_out_of_range_ratio",
                           "Share of present numeric values outside the reference [min, max]."),
    "unseen_category_ratio": ("slicewatch_data_unseen_category_ratio",
                              "Share of present categorical values not among the reference's "
                              "values."),
    "nonfinite": ("slicewatch_data_nonfinite", "NaN or infinite values of the feature."),
    "type_mismatches": ("slicewatch_data_type_mismatches",
                        "Values of the wrong type for the feature."),
}


def _drift_families(s: Snapshot) -> Iterator[Metric]:
    """Drift decisions and data quality of each series' last window; concept-drift events."""
    score = GaugeMetricFamily("slicewatch_drift_score", "Drift effect size (the gate "
                              "distance of the test) against the reference.",
                              labels=DRIFT_LABELS)
    pvalue = GaugeMetricFamily("slicewatch_drift_pvalue", "Drift test p-value, raw.",
                               labels=DRIFT_LABELS)
    adjusted = GaugeMetricFamily("slicewatch_drift_pvalue_adjusted", "Drift test p-value "
                                 "adjusted with Benjamini-Hochberg across the window's tests.",
                                 labels=DRIFT_LABELS)
    detected = GaugeMetricFamily("slicewatch_drift_detected", "1 when drift is declared "
                                 "(BH-significant and effect size over the threshold), else 0.",
                                 labels=DRIFT_LABELS)
    insufficient = GaugeMetricFamily("slicewatch_drift_insufficient", "1 when the window or the "
                                     "reference had too few values for a decision.",
                                     labels=DRIFT_LABELS)
    threshold = GaugeMetricFamily("slicewatch_drift_threshold", "Effect-size threshold of the "
                                  "drift decision.", labels=DRIFT_LABELS)
    quality = {k: GaugeMetricFamily(name, doc, labels=["model", "version", "slice", "feature"])
               for k, (name, doc) in QUALITY_HELP.items()}
    for (model, version, slice_label), r in sorted(s.series.items()):
        for d in r.drift:
            labels = [model, version, slice_label, d.feature, d.test]
            threshold.add_metric(labels, d.threshold)
            if d.status == "insufficient":
                insufficient.add_metric(labels, 1.0)
                continue
            insufficient.add_metric(labels, 0.0)
            detected.add_metric(labels, 1.0 if d.detected else 0.0)
            if d.distance is not None:
                score.add_metric(labels, d.distance)
            if d.pvalue is not None:
                pvalue.add_metric(labels, d.pvalue)
            if d.pvalue_adjusted is not None:
                adjusted.add_metric(labels, d.pvalue_adjusted)
        for q in r.quality or ():
            for k, v in q.to_dict().items():
                if k in quality and math.isfinite(v):
                    quality[k].add_metric([model, version, slice_label, q.feature], v)
    yield from (score, pvalue, adjusted, detected, insufficient, threshold)
    yield from quality.values()
    yield from _multivariate(s)
    yield from _estimated(s)
    yield from _counter("slicewatch_concept_drift_events", "Concept-drift detector signals on "
                        "the slice's error stream.", ["model", "version", "slice", "detector"],
                        dict(s.concept.items()))
    yield from _gauge("slicewatch_window_close_delay_seconds", "Wall-clock time at the last "
                      "window close minus that window's event-time end.", ["model"],
                      {(m,): v for m, v in s.close_delay.items()})


def _multivariate(s: Snapshot) -> Iterator[Metric]:
    """PCA reconstruction error per slice, its reference band and the decision."""
    fams = {k: GaugeMetricFamily(f"slicewatch_multivariate_drift_{k}", doc, labels=SLICE_LABELS)
            for k, doc in (
                ("error", "Mean PCA reconstruction error of the window's records."),
                ("lower", "Lower bound of the reference band at the window's size."),
                ("upper", "Upper bound of the reference band at the window's size."),
                ("detected", "1 when the reconstruction error left the reference band."))}
    for (model, version, slice_label), r in sorted(s.series.items()):
        mv = r.multivariate
        if mv is None:
            continue
        labels = [model, version, slice_label]
        for k, v in (("error", mv.error), ("lower", mv.lower), ("upper", mv.upper),
                     ("detected", float(mv.drift))):
            fams[k].add_metric(labels, v)
    if any(f.samples for f in fams.values()):
        yield from fams.values()


ESTIMATED_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")


def _estimated(s: Snapshot) -> Iterator[Metric]:
    """CBPE: the label-free estimate per metric, its interval, and realised − estimated."""
    est = {m: GaugeMetricFamily(f"slicewatch_slice_estimated_{m}", f"CBPE estimate of {m} "
                                "from the scores alone (calibrated on the reference).",
                                labels=SLICE_LABELS) for m in ESTIMATED_METRICS}
    bound_labels = [*SLICE_LABELS, "metric"]
    lower = GaugeMetricFamily("slicewatch_slice_estimated_lower", "Lower bound of the CBPE "
                              "prediction interval of the realised metric.", labels=bound_labels)
    upper = GaugeMetricFamily("slicewatch_slice_estimated_upper", "Upper bound of the CBPE "
                              "prediction interval of the realised metric.", labels=bound_labels)
    error = GaugeMetricFamily("slicewatch_slice_estimate_error", "Realised metric minus its "
                              "CBPE estimate, once the window's labels define it.",
                              labels=bound_labels)
    for (model, version, slice_label), r in sorted(s.series.items()):
        e = r.estimated
        if e is None:
            continue
        labels = [model, version, slice_label]
        for m, v in e.values.items():
            if m in est and math.isfinite(v):
                est[m].add_metric(labels, v)
        for m, (lo, hi) in e.intervals.items():
            lower.add_metric([*labels, m], lo)
            upper.add_metric([*labels, m], hi)
        for m, v in e.error.items():
            error.add_metric([*labels, m], v)
    fams = [*est.values(), lower, upper, error]
    if any(f.samples for f in fams):
        yield from fams


def _counter(name, doc, labels, values) -> Iterator[Metric]:
    fam = CounterMetricFamily(name, doc, labels=labels)
    for key, value in sorted(values.items()):
        fam.add_metric(list(key), float(value))
    yield fam


def _gauge(name, doc, labels, values) -> Iterator[Metric]:
    fam = GaugeMetricFamily(name, doc, labels=labels)
    for key, value in sorted(values.items()):
        if value is not None and math.isfinite(value):
            fam.add_metric(list(key), float(value))
    yield fam
