"""Registry, vocabulary agreement, common checks over every kind, edge cases and errors."""

from __future__ import annotations

import doctest
import importlib
import json
import math

import numpy as np
import pytest

from monitor.core.metrics import (
    REGISTRY,
    Accumulator,
    Calibration,
    Confusion,
    MetricError,
    MulticlassConfusion,
    OutcomeCounts,
    ScoreHistogram,
    ScoreMoments,
    accumulator_from_state,
    accumulators_for,
    merge_all,
    metrics_for,
    state_of,
    window_results,
)
from monitor.core.metrics.base import ModelColumns
from monitor.core.metrics.registry import METRIC_SOURCES
from slices.errors import SlicewatchError
from slices.spec import ModelSpec
from slices.vocab import METRICS_BY_TASK
from tests.unit.test_metrics_common import COLS_BY_TASK, assert_close, binary_cols

TASKS = sorted(METRICS_BY_TASK)


def model(task: str, metrics: tuple[str, ...] = (), **kw) -> ModelSpec:
    return ModelSpec(name=f"m-{task}", task=task, metrics=metrics, **kw)  # type: ignore[arg-type]


def run_window(m: ModelSpec, cols: ModelColumns) -> list:
    """Feed like the window does: every record to prediction-side, labelled ones to label-side."""
    accs = accumulators_for(m)
    labelled = cols.take(cols.labelled())
    for acc in accs:
        acc.update(labelled if acc.needs_label else cols)
    return accs


@pytest.mark.parametrize("task", TASKS)
def test_produced_metric_names_equal_the_spec_vocabulary(task):
    assert set(METRIC_SOURCES[task]) == set(METRICS_BY_TASK[task])
    accs = run_window(model(task), COLS_BY_TASK[task](np.random.default_rng(0), 500))
    results = window_results(accs)
    assert set(results) == set(METRICS_BY_TASK[task])
    assert all(math.isfinite(v) for v in results.values()), results


@pytest.mark.parametrize("task", TASKS)
def test_requested_metrics_build_only_needed_accumulators(task):
    vocab = METRICS_BY_TASK[task]
    rng = np.random.default_rng(1)
    for _ in range(10):
        wanted = tuple(rng.choice(vocab, size=rng.integers(1, 4), replace=False).tolist())
        m = model(task, wanted, confidence_level=None)  # no bootstrap accumulators
        accs = run_window(m, COLS_BY_TASK[task](rng, 200))
        kinds = [a.kind for a in accs]
        assert kinds[0] == "outcome_counts"
        assert set(kinds) == {"outcome_counts"} | {METRIC_SOURCES[task][w] for w in wanted}
        assert list(window_results(accs, metrics_for(m))) == list(wanted)


def test_accumulators_follow_the_model_parameters():
    accs = accumulators_for(model("binary", ("ece", "score_mean"), calibration_bins=7))
    calib = next(a for a in accs if isinstance(a, Calibration))
    assert calib.bins == 7
    assert next(a for a in accs if isinstance(a, ScoreMoments)).task == "binary"
    regression = accumulators_for(model("regression", ("prediction_std",)))
    assert next(a for a in regression if isinstance(a, ScoreMoments)).task == "regression"


def test_metrics_for_rejects_names_of_another_task():
    with pytest.raises(MetricError, match=r"unknown binary metric\(s\) 'mae'"):
        metrics_for(model("binary", ("f1", "mae")))
    assert metrics_for(model("regression")) == METRICS_BY_TASK["regression"]


def test_labelled_rate_uses_late_labels_fed_to_label_side_only():
    cols = binary_cols(np.random.default_rng(2), 1000, unlabelled=0.0)
    m = model("binary")
    accs = accumulators_for(m)
    unlabelled = ModelColumns(cols.score, cols.predicted, np.full(1000, np.nan), cols.outcome)
    for acc in accs:
        acc.update(unlabelled)
    assert window_results(accs)["labelled_rate"] == 0.0
    assert math.isnan(window_results(accs)["accuracy"])
    late = cols.take(np.arange(400))  # labels of 400 predictions arrive later
    for acc in accs:
        if acc.needs_label:
            acc.update(late)
    assert window_results(accs)["labelled_rate"] == pytest.approx(0.4)
    assert window_results(accs)["count"] == 1000


@pytest.mark.parametrize("task", TASKS)
def test_merge_all_equals_one_window(task):
    rng = np.random.default_rng(3)
    m = model(task)
    cols = COLS_BY_TASK[task](rng, 900)
    groups = [run_window(m, cols.take(np.arange(a, a + 300))) for a in (0, 300, 600)]
    before = [json.dumps(state_of(a)) for a in groups[0]]
    merged = merge_all(groups)
    assert_close(window_results(merged), window_results(run_window(m, cols)))
    assert [json.dumps(state_of(a)) for a in groups[0]] == before
    assert merge_all([]) == []


def test_merge_all_rejects_misaligned_lists():
    with pytest.raises(MetricError, match="list 1 holds kinds"):
        merge_all([accumulators_for(model("binary")), accumulators_for(model("regression"))])


# --- common checks over every registered class --------------------------------------------

@pytest.mark.parametrize("kind", sorted(REGISTRY))
def test_common_checks(kind):
    cls = REGISTRY[kind]
    acc = cls()
    assert isinstance(acc, Accumulator)
    assert cls.kind == kind and isinstance(cls.needs_label, bool)
    assert cls.__doc__ and len(cls.__doc__.strip()) > 40
    assert repr(acc).startswith(cls.__name__ + "(")
    assert accumulator_from_state(state_of(acc)).to_state() == acc.to_state()


@pytest.mark.parametrize("kind", sorted(REGISTRY))
def test_empty_update_changes_nothing_and_results_are_nan(kind):
    acc = REGISTRY[kind]()
    before = acc.to_state()
    empty = ModelColumns(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0, np.int8))
    if kind == "multiclass_confusion":
        empty = ModelColumns(np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64),
                        np.zeros(0, np.int8))
    acc.update(empty)
    assert acc.to_state() == before
    for name, value in acc.result().items():
        assert (value == 0.0) if name == "count" else math.isnan(value), (name, value)


def test_all_nan_scores():
    cols = binary_cols(np.random.default_rng(4), 300, unlabelled=0.0, missing_score=1.0)
    results = window_results(run_window(model("binary"), cols))
    for name in ("score_mean", "score_std", "positive_rate", "roc_auc", "pr_auc", "log_loss",
                 "brier", "ece", "accuracy", "precision", "recall", "f1"):
        assert math.isnan(results[name]), name
    assert results["count"] == 300 and results["labelled_rate"] == 1.0
    assert 0 < results["label_positive_rate"] < 1


def test_single_class_labels():
    rng = np.random.default_rng(5)
    cols = binary_cols(rng, 300, unlabelled=0.0, missing_score=0.0)
    negatives = ModelColumns(cols.score, cols.predicted, np.zeros(300), cols.outcome)
    r = window_results(run_window(model("binary"), negatives))
    assert math.isnan(r["roc_auc"]) and math.isnan(r["pr_auc"]) and math.isnan(r["recall"])
    assert r["label_positive_rate"] == 0.0 and math.isfinite(r["log_loss"])
    positives = ModelColumns(cols.score, cols.predicted, np.ones(300), cols.outcome)
    r = window_results(run_window(model("binary"), positives))
    assert math.isnan(r["roc_auc"]) and r["pr_auc"] == 1.0 and r["label_positive_rate"] == 1.0
    assert r["precision"] == 1.0


def test_precision_undefined_when_nothing_is_predicted_positive():
    s = np.array([0.1, 0.2, 0.3])
    acc = Confusion()
    acc.update(ModelColumns(s, np.zeros(3), np.array([0.0, 1.0, 0.0]), np.zeros(3, np.int8)))
    r = acc.result()
    assert math.isnan(r["precision"]) and r["recall"] == 0.0 and r["f1"] == 0.0
    assert r["accuracy"] == pytest.approx(2 / 3)


def test_unknown_predictions_count_as_wrong_in_multiclass_only_for_accuracy_and_recall():
    acc = MulticlassConfusion()
    y = np.array([0, 0, 1, 1])
    p = np.array([0, -1, 1, 1])
    acc.update(ModelColumns(np.zeros(4), p, y, np.zeros(4, np.int8)))
    r = acc.result()
    assert r["accuracy"] == 0.75
    assert r["macro_recall"] == pytest.approx((0.5 + 1.0) / 2)
    assert r["macro_precision"] == 1.0


def test_scores_outside_the_unit_interval_are_clipped():
    s = np.array([-0.5, 1.5, 0.2, 0.9])
    y = np.array([0.0, 1.0, 0.0, 1.0])
    cols = ModelColumns(s, (s >= 0.5).astype(float), y, np.zeros(4, np.int8))
    clipped = ModelColumns(np.clip(s, 0, 1), cols.predicted, y, cols.outcome)
    for cls in (ScoreHistogram, Calibration):
        a, b = cls(), cls()
        a.update(cols)
        b.update(clipped)
        assert a.to_state() == b.to_state()


# --- errors ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("make", "message"), [
    (lambda: ScoreHistogram(1), r"'bins' parameter of ScoreHistogram .* \[2, 1048576\]\. Got 1"),
    (lambda: ScoreHistogram(10.5), r"'bins' .* Got 10\.5"),
    (lambda: Calibration(0), r"'bins' parameter of Calibration .* Got 0"),
    (lambda: Calibration(True), r"'bins' parameter of Calibration .* Got True"),
    (lambda: ScoreMoments("ranking"), r"'task' parameter of ScoreMoments must be one of"),
    (lambda: MulticlassConfusion(0), r"'max_classes' .* Got 0"),
])
def test_bad_parameters_raise_naming_the_parameter(make, message):
    with pytest.raises(MetricError, match=message) as err:
        make()
    assert isinstance(err.value, SlicewatchError) and isinstance(err.value, ValueError)


def test_merge_refuses_other_kinds_and_parameters():
    with pytest.raises(MetricError, match="different kinds"):
        Confusion().merge(OutcomeCounts())
    with pytest.raises(MetricError, match="parameters differ"):
        ScoreHistogram(64).merge(ScoreHistogram(128))
    with pytest.raises(MetricError, match="parameters differ"):
        ScoreMoments("binary").merge(ScoreMoments("regression"))


def test_bad_states_and_codes_raise():
    with pytest.raises(MetricError, match="unknown accumulator kind 'nope'"):
        accumulator_from_state({"kind": "nope"})
    with pytest.raises(MetricError, match="cannot read a 'confusion' state as Calibration"):
        Calibration.from_state(state_of(Confusion()))
    with pytest.raises(MetricError, match=r"outcome codes must be in the range \[0, 3\].*Got 7"):
        OutcomeCounts().update(ModelColumns(np.zeros(2), np.zeros(2), np.zeros(2),
                                       np.array([0, 7], np.int8)))
    acc = MulticlassConfusion(max_classes=3)
    with pytest.raises(MetricError, match=r"class code 5 is out of range \[0, 2\]"):
        acc.update(ModelColumns(np.zeros(1), np.array([5]), np.array([0]), np.zeros(1, np.int8)))


def test_docstring_examples_run():
    names = ("counts", "moments", "ranking", "registry", "bootstrap", "intervals")
    for name in names:
        module = importlib.import_module(f"monitor.core.metrics.{name}")
        failed, attempted = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert attempted > 0 and failed == 0, name
