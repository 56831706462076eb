"""Mergeable per-window, per-slice metric accumulators (see ``docs/metrics.md``)."""

from monitor.core.metrics.base import Accumulator, ModelColumns
from monitor.core.metrics.binary import Confusion, ProbabilisticLoss
from monitor.core.metrics.calibration import Calibration
from monitor.core.metrics.counts import LabelCount, OutcomeCounts
from monitor.core.metrics.errors import MetricError
from monitor.core.metrics.moments import ScoreMoments
from monitor.core.metrics.multiclass import MulticlassConfusion
from monitor.core.metrics.ranking import ScoreHistogram
from monitor.core.metrics.registry import (
    REGISTRY,
    accumulator_from_state,
    accumulators_for,
    merge_all,
    metrics_for,
    state_of,
    window_results,
)
from monitor.core.metrics.regression import RegressionErrors

__all__ = [
    "REGISTRY", "Accumulator", "Calibration", "Confusion", "LabelCount", "MetricError",
    "ModelColumns", "MulticlassConfusion", "OutcomeCounts", "ProbabilisticLoss",
    "RegressionErrors", "ScoreHistogram", "ScoreMoments", "accumulator_from_state",
    "accumulators_for", "merge_all", "metrics_for", "state_of", "window_results",
]
