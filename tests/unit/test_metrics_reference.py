"""Every metric against an independent reference (scikit-learn / numpy) on seeded random data."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_absolute_percentage_error,
    precision_score,
    recall_score,
    roc_auc_score,
    root_mean_squared_error,
)

from monitor.core.metrics import (
    Calibration,
    Confusion,
    LabelCount,
    MulticlassConfusion,
    OutcomeCounts,
    ProbabilisticLoss,
    RegressionErrors,
    ScoreHistogram,
    ScoreMoments,
    window_results,
)
from monitor.core.metrics.base import ModelColumns
from tests.unit.test_metrics_common import (
    binary_cols,
    multiclass_cols,
    regression_cols,
    split,
)

SEEDS = [0, 1, 2]


def fed(acc, cols: ModelColumns, parts: int = 3):
    """``acc`` updated with ``cols`` in ``parts`` uneven micro-batches."""
    n = len(cols)
    for part in split(cols, [n // 7, n // 2, n - 3][: parts - 1]):
        acc.update(part)
    return acc


@pytest.mark.parametrize("seed", SEEDS)
def test_outcome_rates_and_labelled_rate(seed):
    cols = binary_cols(np.random.default_rng(seed), 3000)
    accs = [fed(OutcomeCounts(), cols), fed(LabelCount(), cols)]
    got = window_results(accs)
    o = cols.outcome
    assert got["count"] == 3000
    assert got["failure_rate"] == pytest.approx(np.mean(o != 0), abs=1e-12)
    assert got["error_rate"] == pytest.approx(np.mean(o == 1), abs=1e-12)
    assert got["timeout_rate"] == pytest.approx(np.mean(o == 2), abs=1e-12)
    assert got["fallback_rate"] == pytest.approx(np.mean(o == 3), abs=1e-12)
    assert got["labelled_rate"] == pytest.approx(np.mean(~np.isnan(cols.label)), abs=1e-12)
    assert 0.6 < got["labelled_rate"] < 0.8


@pytest.mark.parametrize("seed", SEEDS)
def test_binary_moments_and_positive_rate(seed):
    cols = binary_cols(np.random.default_rng(seed), 2500)
    got = fed(ScoreMoments("binary"), cols).result()
    assert got["score_mean"] == pytest.approx(np.nanmean(cols.score), rel=1e-12)
    assert got["score_std"] == pytest.approx(np.nanstd(cols.score), rel=1e-9)
    known = ~np.isnan(cols.predicted)
    assert got["positive_rate"] == pytest.approx(np.mean(cols.predicted[known] == 1), abs=1e-12)


def test_multiclass_and_regression_moments():
    rng = np.random.default_rng(3)
    mc = multiclass_cols(rng, 2000)
    got = fed(ScoreMoments("multiclass"), mc).result()
    assert set(got) == {"score_mean", "score_std"}
    assert got["score_mean"] == pytest.approx(np.nanmean(mc.score), rel=1e-12)
    assert got["score_std"] == pytest.approx(np.nanstd(mc.score), rel=1e-9)
    rg = regression_cols(rng, 2000)
    got = fed(ScoreMoments("regression"), rg).result()
    assert set(got) == {"prediction_mean", "prediction_std"}
    assert got["prediction_mean"] == pytest.approx(np.nanmean(rg.predicted), rel=1e-12)
    assert got["prediction_std"] == pytest.approx(np.nanstd(rg.predicted), rel=1e-9)


def test_moments_stable_for_large_offset():
    """Chan's merge keeps the variance of 1e9 + small noise (naive Σx² would lose it: every
    digit). The stored means round to the ulp of 1e9 (1.2e-7, 1e-3 of the spread of the
    part means), which bounds what merging 50 parts can keep to a few 1e-6."""
    rng = np.random.default_rng(4)
    x = 1e9 + rng.normal(0, 1e-3, 5000)
    acc = ScoreMoments("regression")
    for part in np.array_split(x, 50):
        acc.update(ModelColumns(part, part, np.full(part.size, np.nan),
                                np.zeros(part.size, np.int8)))
    assert acc.result()["prediction_std"] == pytest.approx(np.std(x), rel=1e-5)


@pytest.mark.parametrize("seed", SEEDS)
def test_confusion_metrics_match_sklearn(seed):
    cols = binary_cols(np.random.default_rng(seed), 3000)
    got = fed(Confusion(), cols).result()
    lab = ~np.isnan(cols.label)
    keep = lab & ~np.isnan(cols.predicted)
    y, p = cols.label[keep].astype(int), cols.predicted[keep].astype(int)
    assert got["accuracy"] == pytest.approx(accuracy_score(y, p), abs=1e-12)
    assert got["precision"] == pytest.approx(precision_score(y, p), abs=1e-12)
    assert got["recall"] == pytest.approx(recall_score(y, p), abs=1e-12)
    assert got["f1"] == pytest.approx(f1_score(y, p), abs=1e-12)
    assert got["label_positive_rate"] == pytest.approx(np.mean(cols.label[lab]), abs=1e-12)


def test_confusion_other_threshold_uses_predicted_not_score():
    rng = np.random.default_rng(5)
    cols = binary_cols(rng, 2000, threshold=0.8)
    got = fed(Confusion(), cols).result()
    keep = ~np.isnan(cols.label) & ~np.isnan(cols.predicted)
    y, s = cols.label[keep], cols.score[keep]
    assert got["precision"] == pytest.approx(precision_score(y, s >= 0.8), abs=1e-12)
    assert got["recall"] == pytest.approx(recall_score(y, s >= 0.8), abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("bins", [1000, 1024, 37])
def test_auc_exact_on_quantised_scores(seed, bins):
    """Scores k/B (0 ≤ k < B) fall on left edges: binned AUCs equal sklearn's."""
    rng = np.random.default_rng(seed)
    score = rng.integers(0, bins, 4000) / bins
    cols = binary_cols(rng, 4000, score=score)
    got = fed(ScoreHistogram(bins), cols).result()
    keep = ~np.isnan(cols.label) & ~np.isnan(cols.score)
    y, s = cols.label[keep], cols.score[keep]
    assert got["roc_auc"] == pytest.approx(roc_auc_score(y, s), abs=1e-9)
    assert got["pr_auc"] == pytest.approx(average_precision_score(y, s), abs=1e-9)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("bins", [1024, 64, 4])
def test_auc_error_bound_on_raw_scores(seed, bins):
    """|binned − sklearn(raw)| stays within the bounds the state computes, and they are tight
    enough to be useful at the default resolution."""
    rng = np.random.default_rng(seed)
    raw = rng.beta(2.0, 2.0, 6000)
    raw[:300] = np.round(raw[:300], 2)  # some exact ties as well
    cols = binary_cols(rng, 6000, score=raw)
    acc = fed(ScoreHistogram(bins), cols)
    keep = ~np.isnan(cols.label) & ~np.isnan(cols.score)
    y, s = cols.label[keep], cols.score[keep]
    roc_err = abs(acc.roc_auc() - roc_auc_score(y, s))
    pr_err = abs(acc.pr_auc() - average_precision_score(y, s))
    assert roc_err <= acc.roc_auc_error_bound() + 1e-12
    assert pr_err <= acc.pr_auc_error_bound() + 1e-12
    if bins == 1024:
        assert acc.roc_auc_error_bound() < 1e-3
        assert acc.pr_auc_error_bound() < 1e-2


def test_auc_error_bound_is_attained_when_a_bin_hides_a_perfect_ranking():
    """All scores in one bin, perfectly separated on raw scores: raw AUC 1, binned 0.5."""
    s = np.array([0.10, 0.11, 0.12, 0.13])
    y = np.array([0.0, 0.0, 1.0, 1.0])
    acc = ScoreHistogram(4)
    acc.update(ModelColumns(s, s, y, np.zeros(4, np.int8)))
    assert acc.roc_auc() == 0.5 and roc_auc_score(y, s) == 1.0
    assert acc.roc_auc_error_bound() == 0.5
    assert abs(acc.pr_auc() - average_precision_score(y, s)) <= acc.pr_auc_error_bound()


@pytest.mark.parametrize("seed", SEEDS)
def test_log_loss_and_brier_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    score = rng.beta(0.7, 0.7, 3000)
    score[:20] = [0.0, 1.0] * 10  # exercise the eps clipping at both ends
    cols = binary_cols(rng, 3000, score=score)
    got = fed(ProbabilisticLoss(), cols).result()
    keep = ~np.isnan(cols.label) & ~np.isnan(cols.score)
    y, s = cols.label[keep], cols.score[keep]
    assert got["log_loss"] == pytest.approx(log_loss(y, s, labels=[0, 1]), rel=1e-9)
    assert got["brier"] == pytest.approx(brier_score_loss(y, s), rel=1e-9)


def test_log_loss_of_a_confident_mistake_is_clipped_like_sklearn():
    s, y = np.array([0.0, 1.0]), np.array([1.0, 0.0])
    acc = ProbabilisticLoss()
    acc.update(ModelColumns(s, s, y, np.zeros(2, np.int8)))
    assert acc.result()["log_loss"] == pytest.approx(log_loss(y, s, labels=[0, 1]), rel=1e-12)
    assert acc.result()["log_loss"] == pytest.approx(-np.log(np.finfo(float).eps), rel=1e-12)


def ece_numpy(y: np.ndarray, s: np.ndarray, bins: int) -> float:
    """Independent ECE: right-closed bins via np.digitize, mean gaps weighted by bin share."""
    b = np.digitize(s, np.linspace(0, 1, bins + 1)[1:-1], right=True)
    total = 0.0
    for k in np.unique(b):
        m = b == k
        total += m.sum() / s.size * abs(y[m].mean() - s[m].mean())
    return total


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("bins", [10, 15, 1])
def test_ece_matches_numpy_and_calibration_curve(seed, bins):
    rng = np.random.default_rng(seed)
    score = rng.beta(2.0, 3.0, 3000) ** 0.8  # miscalibrated w.r.t. the Bernoulli(score) labels
    score[:30] = np.linspace(0, 1, bins + 1)[np.arange(30) % (bins + 1)]  # values on bin edges
    cols = binary_cols(rng, 3000, score=score)
    cols.label[30:1500] = (rng.random(1470) < cols.score[30:1500] ** 1.5)  # make it miscalibrated
    got = fed(Calibration(bins), cols).result()["ece"]
    keep = ~np.isnan(cols.label) & ~np.isnan(cols.score)
    y, s = cols.label[keep], cols.score[keep]
    assert got == pytest.approx(ece_numpy(y, s, bins), rel=1e-9)
    prob_true, prob_pred = calibration_curve(y, s, n_bins=bins, strategy="uniform")
    b = np.digitize(s, np.linspace(0, 1, bins + 1)[1:-1], right=True)
    weights = np.bincount(b, minlength=bins)
    weights = weights[weights > 0] / s.size
    assert got == pytest.approx(float(np.sum(weights * np.abs(prob_true - prob_pred))), rel=1e-9)
    assert got > 0.01


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("k", [2, 3, 7])
def test_multiclass_metrics_match_sklearn_macro(seed, k):
    cols = multiclass_cols(np.random.default_rng(seed), 3000, k=k)
    cols.predicted[:5] = k + 1  # a class nobody is labelled with (precision 0, recall 0/0 → 0)
    got = fed(MulticlassConfusion(), cols).result()
    lab = cols.label >= 0
    y, p = cols.label[lab], cols.predicted[lab]
    present = np.union1d(y, p[p >= 0])
    kw = {"labels": present, "average": "macro", "zero_division": 0}
    assert got["accuracy"] == pytest.approx(accuracy_score(y, p), abs=1e-12)
    assert got["macro_precision"] == pytest.approx(precision_score(y, p, **kw), abs=1e-12)
    assert got["macro_recall"] == pytest.approx(recall_score(y, p, **kw), abs=1e-12)
    assert got["macro_f1"] == pytest.approx(f1_score(y, p, **kw), abs=1e-12)


def test_multiclass_without_unknown_predictions_is_plain_sklearn_macro():
    cols = multiclass_cols(np.random.default_rng(9), 2000, k=5, unknown_pred=0.0)
    got = fed(MulticlassConfusion(), cols).result()
    lab = cols.label >= 0
    y, p = cols.label[lab], cols.predicted[lab]
    assert got["macro_f1"] == pytest.approx(f1_score(y, p, average="macro"), abs=1e-12)
    assert got["macro_precision"] == pytest.approx(precision_score(y, p, average="macro"),
                                                   abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_regression_errors_match_sklearn(seed):
    cols = regression_cols(np.random.default_rng(seed), 3000)
    got = fed(RegressionErrors(), cols).result()
    lab = ~np.isnan(cols.label)
    keep = lab & ~np.isnan(cols.predicted)
    y, p = cols.label[keep], cols.predicted[keep]
    assert np.all(y != 0)
    assert got["mae"] == pytest.approx(mean_absolute_error(y, p), rel=1e-9)
    assert got["rmse"] == pytest.approx(root_mean_squared_error(y, p), rel=1e-9)
    assert got["mape"] == pytest.approx(mean_absolute_percentage_error(y, p), rel=1e-9)
    assert got["mean_error"] == pytest.approx(np.mean(p - y), rel=1e-9)
    assert got["mean_error"] > 0  # the generator over-predicts by 0.5
    assert got["label_mean"] == pytest.approx(np.mean(cols.label[lab]), rel=1e-12)


def test_mape_leaves_out_zero_labels():
    cols = regression_cols(np.random.default_rng(7), 1000, unlabelled=0.0, missing_pred=0.0)
    cols.label[:50] = 0.0
    got = fed(RegressionErrors(), cols).result()
    nz = cols.label != 0
    assert got["mape"] == pytest.approx(
        mean_absolute_percentage_error(cols.label[nz], cols.predicted[nz]), rel=1e-9)
    assert got["mae"] == pytest.approx(mean_absolute_error(cols.label, cols.predicted), rel=1e-9)
