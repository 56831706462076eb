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
    "ks", "ks_binned", "chi2", "psi", "js", "wasserstein", "linf", "hellinger",
)

# Concept-drift detectors from River (issue 3), by the name a spec uses.
CONCEPT_DETECTORS: tuple[str, ...] = (
    "ADWIN", "DDM", "EDDM", "HDDM_A", "HDDM_W", "PageHinkley", "KSWIN",
)
