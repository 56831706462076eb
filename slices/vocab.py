"""Names the spec language accepts. ``monitor/`` implements exactly these (a test checks it)."""

from __future__ import annotations

# Metrics computed per model × version × slice × window, by task.
COMMON_METRICS: tuple[str, ...] = (
    "count",             # records in the window
    "failure_rate",      # share of records whose serving outcome is not ok
    "error_rate",        # share with outcome=error
    "timeout_rate",      # share with outcome=timeout
    "fallback_rate",     # share with outcome=fallback
    "labelled_rate",     # share of records with a known label
)
BINARY_METRICS: tuple[str, ...] = (
    "score_mean", "score_std", "positive_rate",
    "accuracy", "precision", "recall", "f1",
    "roc_auc", "pr_auc", "log_loss", "brier", "ece",
    "label_positive_rate",
)
MULTICLASS_METRICS: tuple[str, ...] = (
    "score_mean", "score_std",
    "accuracy", "macro_precision", "macro_recall", "macro_f1",
)
REGRESSION_METRICS: tuple[str, ...] = (
    "prediction_mean", "prediction_std",
    "mae", "rmse", "mape", "mean_error", "label_mean",
)
METRICS_BY_TASK: dict[str, tuple[str, ...]] = {
    "binary": COMMON_METRICS + BINARY_METRICS,
    "multiclass": COMMON_METRICS + MULTICLASS_METRICS,
    "regression": COMMON_METRICS + REGRESSION_METRICS,
}

# Two-sample drift statistics (issue 3).
DRIFT_TESTS: tuple[str, ...] = (
    "ks", "ks_binned", "chi2", "psi", "js", "wasserstein", "linf", "cohen_w",
    "hellinger",
)

# Tests that need numeric data (the rest work on categorical features too).
NUMERIC_DRIFT_TESTS: tuple[str, ...] = ("ks", "ks_binned", "wasserstein")

# Data-quality checks an alert can watch (``quality: {check: …}``), named like the exported
# metric ``slicewatch_data_<check>``; the old names are accepted with a deprecation warning.
QUALITY_CHECKS: tuple[str, ...] = (
    "missing_ratio", "out_of_range_ratio", "unseen_category_ratio", "nonfinite",
    "type_mismatches",
)
DEPRECATED_QUALITY_CHECKS: dict[str, str] = {
    "missing_rate": "missing_ratio",
    "out_of_range_share": "out_of_range_ratio",
    "unseen_share": "unseen_category_ratio",
}

# Concept-drift detectors from River (issue 3), by the name a spec uses.
CONCEPT_DETECTORS: tuple[str, ...] = (
    "ADWIN", "DDM", "EDDM", "HDDM_A", "HDDM_W", "PageHinkley", "KSWIN",
)

# Per-record error signals of slice discovery (issue 17), by task; the first is the default.
DISCOVERY_ERRORS: dict[str, tuple[str, ...]] = {
    "binary": ("misclassification", "log_loss", "brier"),
    "multiclass": ("misclassification",),
    "regression": ("absolute_error", "squared_error"),
}
