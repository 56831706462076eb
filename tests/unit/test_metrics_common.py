"""Data generators and comparison helpers shared by the metric tests (plus their own checks)."""

from __future__ import annotations

import math
from itertools import pairwise
from typing import Any

import numpy as np

from monitor.core.metrics.base import ModelColumns


def outcomes(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.choice(4, size=n, p=[0.85, 0.06, 0.05, 0.04]).astype(np.int8)


def binary_cols(rng: np.random.Generator, n: int, *, unlabelled: float = 0.3,
                missing_score: float = 0.05, threshold: float = 0.5,
                score: np.ndarray | None = None) -> ModelColumns:
    """Scores ~ Beta(2, 2), labels ~ Bernoulli(score) (so AUC ≈ 0.7), some NaN."""
    s = rng.beta(2.0, 2.0, n) if score is None else np.asarray(score, np.float64).copy()
    y = (rng.random(n) < s).astype(np.float64)
    s[rng.random(n) < missing_score] = np.nan
    pred = np.where(np.isnan(s), np.nan, (s >= threshold).astype(np.float64))
    y[rng.random(n) < unlabelled] = np.nan
    return ModelColumns(s, pred, y, outcomes(rng, n))


def multiclass_cols(rng: np.random.Generator, n: int, *, k: int = 4, unlabelled: float = 0.3,
                    unknown_pred: float = 0.05) -> ModelColumns:
    """Labels uniform over ``k`` codes; right 60 % of the time, else a random code."""
    y = rng.integers(0, k, n)
    p = np.where(rng.random(n) < 0.6, y, rng.integers(0, k, n))
    p[rng.random(n) < unknown_pred] = -1
    y[rng.random(n) < unlabelled] = -1
    s = rng.uniform(0.2, 1.0, n)
    s[p < 0] = np.nan
    return ModelColumns(s, p.astype(np.int64), y.astype(np.int64), outcomes(rng, n))


def regression_cols(rng: np.random.Generator, n: int, *, unlabelled: float = 0.3,
                    missing_pred: float = 0.05) -> ModelColumns:
    """Labels ~ N(10, 3); predictions = label + N(0.5, 1) (over-predicting), some NaN."""
    y = rng.normal(10.0, 3.0, n)
    p = y + rng.normal(0.5, 1.0, n)
    p[rng.random(n) < missing_pred] = np.nan
    y[rng.random(n) < unlabelled] = np.nan
    return ModelColumns(np.full(n, np.nan), p, y, outcomes(rng, n))


COLS_BY_TASK = {"binary": binary_cols, "multiclass": multiclass_cols,
                "regression": regression_cols}


def split(cols: ModelColumns, cuts: list[int]) -> list[ModelColumns]:
    """``cols`` cut at the sorted positions ``cuts`` (empty parts allowed)."""
    bounds = [0, *sorted(cuts), len(cols)]
    return [cols.take(np.arange(a, b)) for a, b in pairwise(bounds)]


def assert_close(a: Any, b: Any, rel: float = 1e-9, path: str = "") -> None:
    """Recursive equality of states/results: ints exact, floats to ``rel`` (NaN == NaN)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"{path}: keys {a.keys()} {b.keys()}"
        for key in a:
            assert_close(a[key], b[key], rel, f"{path}.{key}")
    elif isinstance(a, list | tuple):
        assert isinstance(b, list | tuple) and len(a) == len(b), f"{path}: {a} != {b}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_close(x, y, rel, f"{path}[{i}]")
    elif isinstance(a, bool | str) or a is None:
        assert a == b, f"{path}: {a!r} != {b!r}"
    elif isinstance(a, int) and isinstance(b, int):
        assert a == b, f"{path}: {a} != {b}"
    else:
        a, b = float(a), float(b)
        if math.isnan(a) or math.isnan(b):
            assert math.isnan(a) and math.isnan(b), f"{path}: {a} != {b}"
        else:
            assert math.isclose(a, b, rel_tol=rel, abs_tol=rel), f"{path}: {a} != {b}"


def test_split_keeps_every_record_in_order():
    cols = binary_cols(np.random.default_rng(0), 100)
    parts = split(cols, [0, 40, 40, 99])
    assert [len(p) for p in parts] == [0, 40, 0, 59, 1]
    np.testing.assert_array_equal(np.concatenate([p.outcome for p in parts]), cols.outcome)


def test_assert_close_detects_differences():
    assert_close({"a": [1, 2.0, float("nan")]}, {"a": [1, 2.0 + 1e-12, float("nan")]})
    for bad in ({"a": [2, 2.0, float("nan")]}, {"a": [1, 2.1, float("nan")]},
                {"a": [1, 2.0, 0.0]}, {"b": [1, 2.0, float("nan")]}):
        try:
            assert_close({"a": [1, 2.0, float("nan")]}, bad)
        except AssertionError:
            continue
        raise AssertionError(f"{bad} was accepted")
