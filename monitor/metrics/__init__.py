"""Mergeable per-window, per-slice metric accumulators (see ``docs/metrics.md``)."""

from monitor.metrics.base import Accumulator, ModelColumns
from monitor.metrics.binary import Confusion, ProbabilisticLoss
from monitor.metrics.calibration import Calibration
from monitor.metrics.counts import LabelCount, OutcomeCounts
from monitor.metrics.errors import MetricError
from monitor.metrics.moments import ScoreMoments
from monitor.metrics.multiclass import MulticlassConfusion
from monitor.metrics.ranking import ScoreHistogram
from monitor.metrics.registry import (
    REGISTRY,
    accumulator_from_state,
    accumulators_for,
    merge_all,
    metrics_for,
    state_of,
    window_results,
)
from monitor.metrics.regression import RegressionErrors

__all__ = [
    "REGISTRY", "Accumulator", "Calibration", "Confusion", "LabelCount", "MetricError",
    "ModelColumns", "MulticlassConfusion", "OutcomeCounts", "ProbabilisticLoss",
    "RegressionErrors", "ScoreHistogram", "ScoreMoments", "accumulator_from_state",
    "accumulators_for", "merge_all", "metrics_for", "state_of", "window_results",
]
