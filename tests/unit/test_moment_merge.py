"""The one pairwise moment merge (:func:`monitor.core.metrics.moments.merge_moments`): against
numpy/scipy moments of the concatenated data, the same bits on Python numbers and on arrays,
empty sides, and values whose powers overflow float64."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from monitor.core.metrics.base import ModelColumns
from monitor.core.metrics.moments import ScoreMoments, merge_moments

DATA = {
    "normal": lambda rng, n: rng.normal(size=n),
    "lognormal": lambda rng, n: rng.lognormal(2.0, 1.5, size=n),
    "shifted": lambda rng, n: rng.normal(size=n) * 1e-3 + 1e6,
    "skewed_ints": lambda rng, n: rng.poisson(0.3, size=n).astype(float),
}


def _moments(x: np.ndarray) -> tuple[int, float, float, float, float]:
    """``(n, mean, M2, M3, M4)`` of ``x`` in one pass (numpy/scipy; ``M_k = n · m_k``)."""
    n = x.shape[0]
    return (n, float(np.mean(x)), float(np.var(x)) * n, float(stats.moment(x, 3)) * n,
            float(stats.moment(x, 4)) * n)


def _close(got, want) -> None:
    """Within rounding: ``M_k`` to ``1e-9·n·sd^k`` plus the cancellation a mean far from 0
    costs (``64·n·ε·|mean|·sd^(k−1)``)."""
    n, mean = want[0], abs(want[1])
    sd = math.sqrt(want[2] / n)
    assert got[0] == n
    assert float(got[1]) == pytest.approx(want[1], rel=1e-12, abs=1e-12 * sd)
    for k, g, w in zip((2, 3, 4), got[2:], want[2:], strict=True):
        tol = n * (1e-9 * sd ** k + 64 * np.finfo(float).eps * mean * sd ** (k - 1))
        assert float(g) == pytest.approx(w, rel=1e-9, abs=tol)


@pytest.mark.parametrize("kind", sorted(DATA))
def test_merged_parts_equal_the_moments_of_the_concatenated_data(kind):
    rng = np.random.default_rng(5)
    x = DATA[kind](rng, 4000)
    cuts = np.sort(rng.integers(1, x.shape[0], 6))
    parts = np.split(x, cuts)
    acc = (0, 0.0, 0.0, 0.0, 0.0)
    for p in parts:
        acc = merge_moments(acc, _moments(p)) if acc[0] else _moments(p)
    _close(acc, _moments(x))
    # pairwise in a tree: the same moments (associative to rounding)
    tree = [_moments(p) for p in parts]
    while len(tree) > 1:
        tree = [merge_moments(*tree[i:i + 2]) if i + 1 < len(tree) else tree[i]
                for i in range(0, len(tree), 2)]
    _close(tree[0], _moments(x))


def test_arrays_give_the_same_bits_as_python_numbers_elementwise():
    rng = np.random.default_rng(9)
    a = [_moments(rng.normal(m, s, size=k)) for m, s, k in
         zip(rng.normal(0, 1e3, 40), rng.random(40) * 10, rng.integers(2, 300, 40),
             strict=True)]
    b = [_moments(rng.lognormal(1, 1, size=k)) for k in rng.integers(2, 300, 40)]
    a[3], b[7] = (0, 0.0, 0.0, 0.0, 0.0), (0, 0.0, 0.0, 0.0, 0.0)  # empty sides among them
    vec = merge_moments(tuple(np.array(c, dtype=np.float64) for c in zip(*a, strict=True)),
                        tuple(np.array(c, dtype=np.float64) for c in zip(*b, strict=True)))
    one = [merge_moments(p, q) for p, q in zip(a, b, strict=True)]
    assert np.array(vec).T.tolist() == [[float(v) for v in m] for m in one]


def test_constant_runs_merge_to_their_value_and_zero_spread():
    merged = (3, 0.37, 0.0, 0.0, 0.0)
    for k in (1, 250, 7):
        merged = merge_moments(merged, (k, 0.37, 0.0, 0.0, 0.0))
    assert merged == (261, 0.37, 0.0, 0.0, 0.0)


def test_an_empty_side_adds_nothing():
    a = (3, -0.0, 2.5, 0.5, 9.0)
    assert merge_moments(a, (0, 7.0, 0.0, 0.0, 0.0)) == a
    n, mean, m2, m3, m4 = merge_moments((0, 0.0, 0.0, 0.0, 0.0), a)
    assert (n, m2, m3, m4) == (3, 2.5, 0.5, 9.0) and mean == 0.0
    assert merge_moments((0, 0.0, 0.0), (0, 0.0, 0.0)) == (0, 0.0, 0.0)


def test_opposite_means_near_the_float_limit_keep_a_finite_mean():
    for merge in (lambda a, b: merge_moments(a, b),
                  lambda a, b: [np.asarray(v).item() for v in merge_moments(
                      tuple(np.array([v]) for v in a), tuple(np.array([v]) for v in b))]):
        n, mean, m2, _, m4 = merge((2, 1.5e308, 0.0, 0.0, 0.0), (6, -1.5e308, 0.0, 0.0, 0.0))
        assert n == 8 and mean == pytest.approx(-0.75e308, rel=1e-15)
        assert m2 == math.inf  # beyond float64, never NaN
        assert not math.isfinite(m4)  # unknown: the std's interval is NaN


def test_huge_values_merge_to_their_true_mean_and_an_infinite_m2():
    x = np.concatenate([np.full(5, 1e200), np.full(3, 3e200)])
    n, mean, m2 = merge_moments((5, 1e200, 0.0), (3, 3e200, 0.0))
    assert n == 8 and mean == pytest.approx(float(np.mean(x / 1e200)) * 1e200, rel=1e-15)
    assert m2 == math.inf
    n, mean, m2 = merge_moments((4, 1e150, 1e299), (4, 1e150, 1e299))  # no overflow: exact
    assert (n, mean, m2) == (8, 1e150, 2e299)


def _predictions(values: np.ndarray) -> ScoreMoments:
    acc = ScoreMoments("regression")
    n = values.shape[0]
    acc.update(ModelColumns(values, values, np.full(n, np.nan), np.zeros(n, np.int8)))
    return acc


@pytest.mark.parametrize("value", [1e200, 1.5e308, -1e300])
def test_score_moments_of_a_constant_run_of_huge_predictions_have_std_zero(value):
    """A constant run summed in units of a power of two: its M2 is 0 in any unit (it was NaN,
    0 times the unit's square, an overflow)."""
    res = _predictions(np.full(6, value)).result()
    assert res["prediction_mean"] == value and res["prediction_std"] == 0.0


def test_score_moments_of_opposite_predictions_near_the_float_limit_are_defined():
    """Accumulators of predictions at ±1.5e308: the merged mean is the true one (it was NaN
    when the difference of the means overflowed), the std +inf."""
    acc = _predictions(np.full(4, 1.5e308))
    acc.merge(_predictions(np.full(4, -1.5e308)))
    res = acc.result()
    assert res["prediction_mean"] == 0.0 and res["prediction_std"] == math.inf
