"""Mergeability, state round-trips and batch == one-by-one, for every registered accumulator."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.core.metrics import (
    REGISTRY,
    Calibration,
    Confusion,
    LabelCount,
    MulticlassConfusion,
    OutcomeCounts,
    ProbabilisticLoss,
    RegressionErrors,
    ScoreHistogram,
    ScoreMoments,
    accumulator_from_state,
    state_of,
)
from monitor.core.metrics.bootstrap import BootstrapLabel, BootstrapPrediction
from tests.unit.test_metrics_common import COLS_BY_TASK, assert_close, split

# (case id, factory, task of the data it is fed); every registered kind appears at least once.
CASES = [
    ("outcome_counts", OutcomeCounts, "binary"),
    ("label_count", LabelCount, "regression"),
    ("score_moments-binary", lambda: ScoreMoments("binary"), "binary"),
    ("score_moments-multiclass", lambda: ScoreMoments("multiclass"), "multiclass"),
    ("score_moments-regression", lambda: ScoreMoments("regression"), "regression"),
    ("confusion", Confusion, "binary"),
    ("probabilistic_loss", ProbabilisticLoss, "binary"),
    ("score_histogram", lambda: ScoreHistogram(64), "binary"),
    ("calibration", lambda: Calibration(10), "binary"),
    ("multiclass_confusion", MulticlassConfusion, "multiclass"),
    ("regression_errors", RegressionErrors, "regression"),
    ("bootstrap_label", lambda: BootstrapLabel("binary", ("f1", "pr_auc", "ece"), 20),
     "binary"),
    ("bootstrap_prediction", lambda: BootstrapPrediction("regression", ("prediction_std",), 20),
     "regression"),
]
IDS = [c[0] for c in CASES]
LABEL_SIDE = [c for c in CASES if c[1]().needs_label]


def test_cases_cover_the_registry():
    assert {factory().kind for _, factory, _ in CASES} == set(REGISTRY)


def data(task: str, seed: int, n: int):
    cols = COLS_BY_TASK[task](np.random.default_rng(seed), n)
    if task == "multiclass" and n:  # later records use higher codes: parts see different K
        tail = np.arange(n) >= n // 2
        cols.label[tail & (cols.label >= 0)] += 3
        cols.predicted[tail & (cols.predicted >= 0)] += 3
    return cols


@st.composite
def split_and_tree(draw, n_max: int = 400):
    """A data size, cut points (k parts) and a random binary merge tree over the parts."""
    n = draw(st.integers(0, n_max))
    cuts = draw(st.lists(st.integers(0, n), min_size=0, max_size=6))
    k = len(cuts) + 1
    # merge order: at each step merge part j into part i (indices into the shrinking list)
    steps = []
    for size in range(k, 1, -1):
        i = draw(st.integers(0, size - 1))
        j = draw(st.integers(0, size - 2))
        steps.append((i, j))
    return n, cuts, steps


@pytest.mark.parametrize(("name", "factory", "task"), CASES, ids=IDS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), plan=split_and_tree())
def test_split_update_merge_equals_one_pass(name, factory, task, seed, plan):
    n, cuts, steps = plan
    cols = data(task, seed, n)
    whole = factory()
    whole.update(cols)
    parts = []
    for part in split(cols, cuts):
        acc = factory()
        acc.update(part)
        parts.append(acc)
    while len(parts) > 1:
        i, j = steps.pop(0)
        into = parts.pop(i)
        other = parts.pop(j)
        into.merge(other)
        parts.append(into)
    assert_close(parts[0].to_state(), whole.to_state())
    assert_close(parts[0].result(), whole.result())


@pytest.mark.parametrize(("name", "factory", "task"), CASES, ids=IDS)
def test_state_round_trips_through_json_and_keeps_updating(name, factory, task):
    first, second = data(task, 11, 500), data(task, 12, 300)
    acc = factory()
    acc.update(first)
    state = json.loads(json.dumps(state_of(acc), allow_nan=False))
    assert state["kind"] == acc.kind
    back = accumulator_from_state(state)
    assert type(back) is type(acc) and back.params() == acc.params()
    assert_close(back.to_state(), acc.to_state(), rel=0)
    assert_close(back.result(), acc.result(), rel=0)
    acc.update(second)
    back.update(second)
    assert_close(back.to_state(), acc.to_state(), rel=0)
    assert_close(back.result(), acc.result(), rel=0)


@pytest.mark.parametrize(("name", "factory", "task"), CASES, ids=IDS)
def test_batch_update_equals_one_by_one(name, factory, task):
    cols = data(task, 21, 120)
    batch, single = factory(), factory()
    batch.update(cols)
    for i in range(len(cols)):
        single.update(cols.take(np.array([i])))
    assert_close(single.to_state(), batch.to_state())
    assert_close(single.result(), batch.result())


@pytest.mark.parametrize(("name", "factory", "task"), CASES, ids=IDS)
def test_merge_leaves_the_other_untouched_and_empty_merge_is_identity(name, factory, task):
    cols = data(task, 31, 300)
    a, b = factory(), factory()
    a.update(cols)
    b.update(cols)
    before = json.dumps(b.to_state())
    a.merge(b)
    assert json.dumps(b.to_state()) == before
    c = b.copy()
    c.merge(factory())
    assert_close(c.to_state(), b.to_state(), rel=0)


@pytest.mark.parametrize(("name", "factory", "task"), LABEL_SIDE, ids=[c[0] for c in LABEL_SIDE])
def test_label_side_accumulators_ignore_unlabelled_records(name, factory, task):
    """Feeding every record or only the labelled ones gives the same state."""
    cols = data(task, 41, 600)
    everything, labelled = factory(), factory()
    everything.update(cols)
    labelled.update(cols.take(cols.labelled()))
    assert_close(everything.to_state(), labelled.to_state(), rel=0)
