"""Drift engine core: summaries, reference profiles, two-sample tests, decisions, data quality,
concept drift. Pure functions and small mergeable classes; the daemon wires them in
(see docs/drift.md)."""

from monitor.drift.concept import ConceptMonitor, error_rows, make_detector
from monitor.drift.decide import Decision, decide, evaluate_drift, select
from monitor.drift.errors import DriftError, DriftParamError, ProfileError
from monitor.drift.features import LABEL, PREDICTION, FeatureSummaries
from monitor.drift.profile import (
    Profile,
    RollingReference,
    build_profile,
    load_profile,
    save_profile,
)
from monitor.drift.quality import Quality, data_quality
from monitor.drift.statistics import TESTS, TestResult
from monitor.drift.summary import CategoricalSummary, NumericSummary, Reservoir

__all__ = [
    "LABEL", "PREDICTION", "TESTS", "CategoricalSummary", "ConceptMonitor", "Decision",
    "DriftError", "DriftParamError", "FeatureSummaries", "NumericSummary", "Profile",
    "ProfileError", "Quality", "Reservoir", "RollingReference", "TestResult", "build_profile",
    "data_quality", "decide", "error_rows", "evaluate_drift", "load_profile",
    "make_detector", "save_profile", "select",
]
