"""Which accumulators a model needs, state (de)serialisation by kind, and window results.

Examples
--------
>>> import numpy as np
>>> from slices.spec import ModelSpec
>>> from monitor.core.metrics.base import ModelColumns
>>> accs = accumulators_for(ModelSpec(name="fraud", task="binary", metrics=("count", "f1")))
>>> [a.kind for a in accs]
['outcome_counts', 'confusion']
>>> s = np.array([0.9, 0.2, 0.7]); y = np.array([1.0, 0.0, 0.0])
>>> cols = ModelColumns(s, (s >= 0.5).astype(float), y, np.zeros(3, np.int8))
>>> for acc in accs:
...     acc.update(cols)
>>> window_results(accs, metrics=("count", "f1"))
{'count': 3.0, 'f1': 0.6666666666666666}
>>> acc = ScoreMoments("regression")
>>> x = np.arange(10.0)
>>> acc.update(ModelColumns(x, x, x, np.zeros(10, np.int8)))
>>> {k: [round(v, 3) for v in b] for k, b in window_intervals([acc], 0.95,
...                                                            acc.result()).items()}
{'prediction_mean': [2.623, 6.377], 'prediction_std': [2.088, 3.656]}
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from monitor.core.metrics.base import Accumulator
from monitor.core.metrics.binary import Confusion, ProbabilisticLoss
from monitor.core.metrics.bootstrap import (
    BOOTSTRAPPED_LABEL,
    BOOTSTRAPPED_PREDICTION,
    PAIRED_LABEL,
    BootstrapLabel,
    BootstrapPrediction,
    bootstrap_interval,
)
from monitor.core.metrics.calibration import Calibration
from monitor.core.metrics.counts import LabelCount, OutcomeCounts
from monitor.core.metrics.errors import MetricError
from monitor.core.metrics.intervals import wilson
from monitor.core.metrics.moments import ScoreMoments
from monitor.core.metrics.multiclass import MulticlassConfusion
from monitor.core.metrics.ranking import DEFAULT_BINS, ScoreHistogram
from monitor.core.metrics.regression import RegressionErrors
from slices.spec import ModelSpec
from slices.vocab import METRICS_BY_TASK

REGISTRY: dict[str, type] = {cls.kind: cls for cls in (
    OutcomeCounts, LabelCount, ScoreMoments, Confusion, ProbabilisticLoss, ScoreHistogram,
    Calibration, MulticlassConfusion, RegressionErrors, BootstrapLabel, BootstrapPrediction,
)}

_COMMON = {"count": "outcome_counts", "failure_rate": "outcome_counts",
           "error_rate": "outcome_counts", "timeout_rate": "outcome_counts",
           "fallback_rate": "outcome_counts", "labelled_rate": "label_count"}

# metric name → kind of the accumulator that produces it (labelled_rate also needs
# outcome_counts, which is always present).
METRIC_SOURCES: dict[str, dict[str, str]] = {
    "binary": {**_COMMON,
               **dict.fromkeys(("score_mean", "score_std", "positive_rate"), "score_moments"),
               **dict.fromkeys(("accuracy", "precision", "recall", "f1", "label_positive_rate"),
                               "confusion"),
               "roc_auc": "score_histogram", "pr_auc": "score_histogram",
               "log_loss": "probabilistic_loss", "brier": "probabilistic_loss",
               "ece": "calibration"},
    "multiclass": {**_COMMON,
                   **dict.fromkeys(("score_mean", "score_std"), "score_moments"),
                   **dict.fromkeys(("accuracy", "macro_precision", "macro_recall", "macro_f1"),
                                   "multiclass_confusion")},
    "regression": {**_COMMON,
                   **dict.fromkeys(("prediction_mean", "prediction_std"), "score_moments"),
                   **dict.fromkeys(("mae", "rmse", "mape", "mean_error", "label_mean"),
                                   "regression_errors")},
}

_FACTORIES: dict[str, Callable[[ModelSpec], Any]] = {
    "outcome_counts": lambda m: OutcomeCounts(),
    "label_count": lambda m: LabelCount(),
    "score_moments": lambda m: ScoreMoments(task=m.task),
    "confusion": lambda m: Confusion(),
    "probabilistic_loss": lambda m: ProbabilisticLoss(),
    "score_histogram": lambda m: ScoreHistogram(bins=DEFAULT_BINS),
    "calibration": lambda m: Calibration(bins=m.calibration_bins),
    "multiclass_confusion": lambda m: MulticlassConfusion(),
    "regression_errors": lambda m: RegressionErrors(),
}

# Ratios across accumulators: metric → (numerator total, denominator total).
DERIVED: dict[str, tuple[str, str]] = {"labelled_rate": ("labelled", "count")}


def metrics_for(model: ModelSpec) -> tuple[str, ...]:
    """The metric names a model reports: ``model.metrics``, or all of its task when empty."""
    if model.task not in METRICS_BY_TASK:
        raise MetricError(f"model {model.name!r}: task must be one of "
                          f"{', '.join(METRICS_BY_TASK)}. Got {model.task!r}.")
    names = model.metrics or METRICS_BY_TASK[model.task]
    unknown = [m for m in names if m not in METRIC_SOURCES[model.task]]
    if unknown:
        raise MetricError(f"model {model.name!r}: unknown {model.task} metric(s) "
                          f"{', '.join(map(repr, unknown))}")
    return tuple(names)


def accumulators_for(model: ModelSpec) -> list[Any]:
    """Fresh accumulators computing the model's metrics; ``OutcomeCounts`` always comes first.

    Order is fixed (registry order), so lists built for one model line up for
    :func:`merge_all`. Feed ``acc.needs_label`` ones the labelled records only.
    """
    sources = METRIC_SOURCES[model.task]
    names = metrics_for(model)
    kinds = {"outcome_counts"} | {sources[m] for m in names}
    out = [_FACTORIES[kind](model) for kind in REGISTRY if kind in _FACTORIES and kind in kinds]
    if model.confidence_level is not None:
        paired = any(c.paired for c in model.compare)
        for cls, by_task in ((BootstrapLabel, PAIRED_LABEL if paired else BOOTSTRAPPED_LABEL),
                             (BootstrapPrediction, BOOTSTRAPPED_PREDICTION)):
            wanted = tuple(m for m in by_task.get(model.task, ()) if m in names)
            if wanted:
                out.append(cls(model.task, wanted, model.bootstrap_replicates,
                               model.calibration_bins))
    return out


# Accumulators of other stages kept in window state (drift summaries): restorable by kind,
# but not metric accumulators (REGISTRY stays exactly the metric kinds).
OTHER_KINDS: dict[str, type] = {}


def register(cls: type) -> type:
    """Register a non-metric accumulator kind (e.g. drift summaries) so window state holding
    it can be checkpointed and restored; usable as a class decorator."""
    existing = REGISTRY.get(cls.kind) or OTHER_KINDS.get(cls.kind)
    if existing is not None and existing is not cls:
        raise MetricError(f"accumulator kind {cls.kind!r} is already registered")
    OTHER_KINDS[cls.kind] = cls
    return cls


def state_of(acc: Accumulator) -> dict[str, Any]:
    """``acc.to_state()`` plus its ``kind``: plain JSON-able data."""
    return {"kind": acc.kind, **acc.to_state()}


def accumulator_from_state(state: dict[str, Any]) -> Any:
    """Rebuild an accumulator from :func:`state_of` output, dispatching on ``kind``."""
    kind = state.get("kind")
    cls = REGISTRY.get(kind) or OTHER_KINDS.get(kind)  # type: ignore[arg-type]
    if cls is None:
        raise MetricError(f"unknown accumulator kind {kind!r}; known: {', '.join(REGISTRY)}")
    return cls.from_state(state)


# Accumulators that only feed intervals (bootstrap replicates): whether a group holds one
# changed between versions (#15 dropped single-slice bootstraps), so state written by another
# version may hold one the spec no longer asks for, or lack one it asks for. Merging tolerates
# either (docs/scaling.md, "Upgrades"); any other kind mismatch is an error.
OPTIONAL_KINDS = frozenset({"bootstrap_label", "bootstrap_prediction"})


def optional_expected(model: ModelSpec) -> dict[str, dict[str, Any]]:
    """Kind → parameters of the optional (bootstrap) accumulators ``model``'s groups hold."""
    return {a.kind: a.params() for a in accumulators_for(model) if a.kind in OPTIONAL_KINDS}


def replicated_metrics(model: ModelSpec) -> frozenset[str]:
    """The metrics ``model``'s bootstrap accumulators replicate (paired comparisons need
    them in both versions' groups)."""
    if model.confidence_level is None:
        return frozenset()
    names = metrics_for(model)
    paired = any(c.paired for c in model.compare)
    return frozenset(m for by_task in (PAIRED_LABEL if paired else BOOTSTRAPPED_LABEL,
                                       BOOTSTRAPPED_PREDICTION)
                     for m in by_task.get(model.task, ()) if m in names)


def conform_accumulators(accs: Sequence[Any], expected: dict[str, dict[str, Any]]
                         ) -> tuple[list[Any], int, int]:
    """``accs`` without the optional accumulators the spec does not ask for (``expected``:
    :func:`optional_expected`): ``(kept, dropped, mismatched)`` — ``dropped`` not asked for
    (state of an older version; nothing reported reads them), ``mismatched`` asked for with
    other parameters (cannot merge: the group then lacks it, as if absent)."""
    kept, dropped, mismatched = [], 0, 0
    for a in accs:
        if a.kind in OPTIONAL_KINDS:
            want = expected.get(a.kind)
            if want is None:
                dropped += 1
                continue
            if a.params() != want:
                mismatched += 1
                continue
        kept.append(a)
    return kept, dropped, mismatched


def common_optional(lists: Sequence[Sequence[Any]]) -> tuple[set[str], set[str]]:
    """``(common, partial)``: the optional kinds every list holds, and those only some hold.
    Raises :class:`MetricError` when the lists differ in any other kind or in order."""
    def required(accs: Sequence[Any]) -> list[str]:
        return [a.kind for a in accs if a.kind not in OPTIONAL_KINDS]
    first = required(lists[0])
    for i, accs in enumerate(lists[1:], start=1):
        if required(accs) != first:
            raise MetricError(f"list {i} holds kinds {[a.kind for a in accs]}, "
                              f"list 0 holds {[a.kind for a in lists[0]]}")
    sets = [{a.kind for a in accs if a.kind in OPTIONAL_KINDS} for accs in lists]
    common = set.intersection(*sets)
    return common, set.union(*sets) - common


def merge_all(groups: Sequence[Sequence[Accumulator]]) -> list[Any]:
    """Merge lists of accumulators position by position into new ones (inputs untouched).

    Every list must hold the same kinds in the same order (as :func:`accumulators_for` builds),
    except the optional (bootstrap) kinds: one that not every list holds is left out of the
    result (its replicates would cover only part of the records).
    """
    if not groups:
        return []
    try:
        common, _ = common_optional(groups)
    except MetricError as exc:
        raise MetricError(f"merge_all: {exc}") from None
    groups = [[a for a in g if a.kind not in OPTIONAL_KINDS or a.kind in common]
              for g in groups]
    first = groups[0]
    merged = [accumulator_from_state(state_of(acc)) for acc in first]
    for group in groups[1:]:
        for into, acc in zip(merged, group, strict=True):
            into.merge(acc)
    return merged


def window_intervals(accumulators: Iterable[Accumulator], level: float,
                     results: dict[str, float]) -> dict[str, tuple[float, float]]:
    """Metric → ``(lower, upper)`` at confidence ``level`` for the metrics of ``results``
    (:func:`window_results`): analytic intervals from each accumulator's ``intervals``,
    bootstrap intervals from its replicates (centred on the metric's own value), Wilson for
    the cross-accumulator ratios. Undefined intervals (too few records) are left out."""
    out: dict[str, tuple[float, float]] = {}
    totals: dict[str, float] = {}
    accs = list(accumulators)
    for acc in accs:
        if hasattr(acc, "intervals"):
            out.update(acc.intervals(level))
        for key, value in getattr(acc, "totals", dict)().items():
            totals[key] = totals.get(key, 0.0) + value
    for acc in accs:
        for name, reps in getattr(acc, "replicates_of", dict)().items():
            if name in results and name not in out:  # analytic first (paired replicates)
                out[name] = bootstrap_interval(reps, results[name], level)
    for name, (num, den) in DERIVED.items():
        if num in totals and den in totals:
            lo, hi = wilson(totals[num], totals[den], level)
            out[name] = (float(lo), float(hi))
    return {k: _clip(k, lo, hi) for k, (lo, hi) in out.items()
            if k in results and lo == lo and hi == hi}


_UNIT = {"accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "ece", "brier",
         "failure_rate", "error_rate", "timeout_rate", "fallback_rate", "labelled_rate",
         "positive_rate", "label_positive_rate", "macro_precision", "macro_recall",
         "macro_f1"}
_NONNEGATIVE = {"score_std", "prediction_std", "log_loss", "mae", "rmse", "mape"}


def _clip(name: str, lo: float, hi: float) -> tuple[float, float]:
    """Bounds kept inside the metric's range (rates in [0, 1], errors ≥ 0)."""
    if name in _UNIT:
        return min(max(lo, 0.0), 1.0), min(max(hi, 0.0), 1.0)
    if name in _NONNEGATIVE:
        return max(lo, 0.0), max(hi, 0.0)
    return lo, hi


def window_results(accumulators: Iterable[Accumulator],
                   metrics: Sequence[str] | None = None) -> dict[str, float]:
    """All results of one window's accumulators, plus cross-accumulator ratios (``DERIVED``).

    ``metrics`` (e.g. ``metrics_for(model)``) keeps only those names, in that order.
    """
    results: dict[str, float] = {}
    totals: dict[str, float] = {}
    for acc in accumulators:
        results.update(acc.result())
        for key, value in getattr(acc, "totals", dict)().items():
            totals[key] = totals.get(key, 0.0) + value
    for name, (num, den) in DERIVED.items():
        if num in totals and den in totals:
            results[name] = totals[num] / totals[den] if totals[den] else float("nan")
    if metrics is None:
        return results
    return {name: results[name] for name in metrics if name in results}
