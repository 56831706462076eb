"""Mean and standard deviation of the model's output (prediction side), mergeable."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from monitor.core.grouped import count_codes, sum_values
from monitor.core.metrics._common import (
    GroupedAccumulator,
    check_choice,
    positive,
    ratio,
    state_params,
)
from monitor.core.metrics.base import ModelColumns
from monitor.core.metrics.intervals import wilson, z_value

TASKS: tuple[str, ...] = ("binary", "multiclass", "regression")


def chan_merge(n_a: int, mean_a: float, m2_a: float,
               n_b: int, mean_b: float, m2_b: float) -> tuple[int, float, float]:
    """Combine two ``(count, mean, M2)`` triples (Chan, Golub & LeVeque 1979).

    ``δ = mean_b − mean_a``, ``n = n_a + n_b``, ``mean = mean_a + δ·n_b/n``,
    ``M2 = M2_a + M2_b + δ²·n_a·n_b/n``, where ``M2 = Σ (x − mean)²``.
    """
    if n_b == 0:
        return n_a, mean_a, m2_a
    if n_a == 0:
        return n_b, mean_b, m2_b
    n = n_a + n_b
    delta = mean_b - mean_a
    return n, mean_a + delta * n_b / n, m2_a + m2_b + delta * delta * n_a * n_b / n


def pebay_merge_high(n_a: int, m2_a: float, m3_a: float, m4_a: float,
                     n_b: int, m2_b: float, m3_b: float, m4_b: float,
                     delta: float) -> tuple[float, float]:
    """``(M3, M4)`` of two combined samples (Pébay 2008, "Formulas for robust, one-pass
    parallel computation of covariances and arbitrary-order statistical moments"), with
    ``δ = mean_b − mean_a`` and ``M_k = Σ (x − mean)^k``."""
    if n_b == 0:
        return m3_a, m4_a
    if n_a == 0:
        return m3_b, m4_b
    n = n_a + n_b
    d = delta
    m3 = (m3_a + m3_b + d * d * d * n_a * n_b * (n_a - n_b) / n ** 2
          + 3 * d * (n_a * m2_b - n_b * m2_a) / n)
    m4 = (m4_a + m4_b + d * d * d * d * n_a * n_b * (n_a * n_a - n_a * n_b + n_b * n_b) / n ** 3
          + 6 * d * d * (n_a * n_a * m2_b + n_b * n_b * m2_a) / n ** 2
          + 4 * d * (n_a * m3_b - n_b * m3_a) / n)
    return m3, m4


MOMENT_EXPONENT = 400
""":func:`moment_units`' default: a largest finite magnitude under ``2**400`` keeps the
squares of the deviations under ``2**802``, their sums finite for any batch."""


def moment_units(x: np.ndarray, finite: np.ndarray,
                 exponent: int = MOMENT_EXPONENT) -> np.ndarray:
    """Per row of ``x``, the power of two (>= 1) that brings its largest finite magnitude
    under ``2**exponent`` (exact: dividing by it changes no bit of a value above
    ``2**-622``).

    >>> units = moment_units(np.array([[1e300, -2.0], [3.0, 4.0]]), np.ones((2, 2), bool))
    >>> np.log2(units).tolist(), float(1e300 / units[0]) < 2.0 ** 400
    ([597.0, 0.0], True)
    """
    big = np.where(finite, np.abs(x), 0.0).max(axis=1, initial=0.0)
    return np.ldexp(1.0, np.maximum(np.frexp(big)[1] - exponent, 0))


def std_interval(n, m2, m4, level: float) -> tuple[float, float]:
    """Interval of the population standard deviation ``σ = √(M2/n)`` from ``n``, ``M2`` and
    ``M4`` (central sums): ``Var(σ̂²) ≈ (μ₄ − σ⁴)/n`` (asymptotic, distribution-free), by the
    delta method ``σ̂ ± z·√((μ₄ − σ⁴)/n) / (2σ̂)``; NaN when ``n < 2``, ``σ̂ = 0`` or ``M4`` is
    unknown (NaN: a state from before it was kept)."""
    if n < 2 or not m2 > 0 or not math.isfinite(m4):
        return math.nan, math.nan
    var = m2 / n
    sd = math.sqrt(var)
    half = z_value(level) * math.sqrt(max(m4 / n - var * var, 0.0) / n) / (2 * sd)
    return sd - half, sd + half


class ScoreMoments(GroupedAccumulator):
    """Count, mean and M2 of the model output, plus the predicted-positive share (binary).

    Notes
    -----
    The values are ``score`` (binary: P(positive); multiclass: P(predicted class)) or
    ``predicted`` (regression). Non-finite values (NaN = absent) are skipped. Results:

    - binary: ``score_mean``, ``score_std``, ``positive_rate = #(predicted = 1) / #(predicted
      known)``;
    - multiclass: ``score_mean``, ``score_std``;
    - regression: ``prediction_mean``, ``prediction_std``.

    ``std`` is the population standard deviation ``sqrt(M2 / n)`` (numpy's ``ddof=0``); means
    and std are NaN when no value was seen. Batches fold in with :func:`chan_merge`, so merged
    and one-pass results agree to float rounding.

    Examples
    --------
    >>> import numpy as np
    >>> from monitor.core.metrics.base import ModelColumns
    >>> acc = ScoreMoments("regression")
    >>> x = np.array([1.0, 2.0, 3.0, np.nan])
    >>> acc.update(ModelColumns(x, x, np.full(4, np.nan), np.zeros(4, np.int8)))
    >>> acc.result()["prediction_mean"], round(acc.result()["prediction_std"], 6)
    (2.0, 0.816497)
    """

    kind = "score_moments"
    needs_label = False
    _param_names = ("task",)

    def __init__(self, task: str = "binary") -> None:
        self.task = check_choice("ScoreMoments", "task", task, TASKS)
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.m3 = 0.0  # Σ (x − mean)³, Σ (x − mean)⁴: the std's interval (NaN: old state)
        self.m4 = 0.0
        self.n_predicted = 0  # binary: records with a known predicted class
        self.n_positive = 0   # binary: records predicted positive

    @staticmethod
    def update_many(cols: ModelColumns, items: list[tuple[ScoreMoments, np.ndarray]]) -> None:
        """``acc.update(cols.take(rows))`` for every ``(acc, rows)`` of a batch, in one pass
        per task: sums of the values minus their batch mean (and squared), merged with
        :func:`chan_merge` — equal to the per-group update to float rounding."""
        by_task: dict[str, list[tuple[ScoreMoments, np.ndarray]]] = {}
        for acc, rows in items:
            by_task.setdefault(acc.task, []).append((acc, rows))
        for task, group in by_task.items():
            x = np.asarray(cols.predicted if task == "regression" else cols.score, np.float64)
            finite = np.isfinite(x)
            rows_list = [rows for _, rows in group]
            # values past 2**240 are summed in units of a power of two (exact), so that the
            # mean stays finite (4th powers of n ≤ 2**40 deviations under 2**241: finite)
            unit = float(moment_units(x[None, :], finite[None, :], 240)[0])
            if unit != 1.0:
                x = x / unit
            shift = float(x[finite].mean()) if finite.any() else 0.0
            d = np.where(finite, x - shift, 0.0)
            d2 = d * d
            sums = sum_values(cols, rows_list, np.stack([d, d2, d2 * d, d2 * d2])).tolist()
            codes = [finite.astype(np.int64)]
            if task == "binary":
                p = np.asarray(cols.predicted, np.float64)
                with np.errstate(invalid="ignore"):
                    codes.append(np.where(np.isnan(p), 2, 3 + positive(p)))
            hist = count_codes(cols, rows_list, np.stack(codes), 5).tolist()
            for (acc, _), (s1, s2, s3, s4), h in zip(group, sums, hist, strict=True):
                n_b = h[1]
                if n_b:
                    m = s1 / n_b
                    m2_b = max(s2 - m * s1, 0.0)
                    m3_b = s3 - 3 * m * s2 + 2 * n_b * (m * m * m)
                    m4_b = max(s4 - 4 * m * s3 + 6 * m * m * s2 - 3 * n_b * (m * m * m * m), 0.0)
                    if unit != 1.0:  # back to the values' units: M2..M4 may be +inf
                        with np.errstate(over="ignore", invalid="ignore"):
                            scaled = np.array([m2_b, m3_b, m4_b]) * unit ** np.arange(2.0, 5.0)
                        m2_b, m3_b, m4_b = scaled.tolist()
                    acc._add(n_b, (shift + m) * unit, m2_b, m3_b, m4_b)
                if task == "binary":
                    acc.n_predicted += h[3] + h[4]
                    acc.n_positive += h[4]

    def _add(self, n_b: int, mean_b: float, m2_b: float, m3_b: float, m4_b: float) -> None:
        """Fold in a sample's ``(n, mean, M2, M3, M4)``."""
        self.m3, self.m4 = pebay_merge_high(self.n, self.m2, self.m3, self.m4,
                                            n_b, m2_b, m3_b, m4_b, mean_b - self.mean)
        self.n, self.mean, self.m2 = chan_merge(self.n, self.mean, self.m2, n_b, mean_b, m2_b)

    def merge(self, other: Any) -> None:
        self.check_mergeable(other)
        self._add(other.n, other.mean, other.m2, other.m3, other.m4)
        self.n_predicted += other.n_predicted
        self.n_positive += other.n_positive

    def to_state(self) -> dict[str, Any]:
        return {"params": self.params(), "n": self.n, "mean": self.mean, "m2": self.m2,
                "m3": self.m3, "m4": self.m4, "n_predicted": self.n_predicted,
                "n_positive": self.n_positive}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ScoreMoments:
        acc = cls(**state_params(cls, state))
        acc.n, acc.mean, acc.m2 = int(state["n"]), float(state["mean"]), float(state["m2"])
        acc.m3 = float(state.get("m3", math.nan))
        acc.m4 = float(state.get("m4", math.nan))
        acc.n_predicted, acc.n_positive = int(state["n_predicted"]), int(state["n_positive"])
        return acc

    def result(self) -> dict[str, float]:
        mean = self.mean if self.n else math.nan
        std = math.sqrt(max(self.m2, 0.0) / self.n) if self.n else math.nan
        if self.task == "regression":
            return {"prediction_mean": mean, "prediction_std": std}
        out = {"score_mean": mean, "score_std": std}
        if self.task == "binary":
            out["positive_rate"] = ratio(self.n_positive, self.n_predicted)
        return out

    def intervals(self, level: float) -> dict[str, tuple[float, float]]:
        """Normal-approximation interval of the mean (``mean ± z·s/√n``, ``s² = M2/(n−1)``)
        and the Wilson interval of ``positive_rate``; the std's from :func:`std_interval`."""
        mean_name = "prediction_mean" if self.task == "regression" else "score_mean"
        std_name = "prediction_std" if self.task == "regression" else "score_std"
        out = {mean_name: (math.nan, math.nan),
               std_name: std_interval(self.n, self.m2, self.m4, level)}
        if self.n >= 2:
            half = z_value(level) * math.sqrt(max(self.m2, 0.0) / (self.n - 1) / self.n)
            out[mean_name] = (self.mean - half, self.mean + half)
        if self.task == "binary":
            lo, hi = wilson(self.n_positive, self.n_predicted, level)
            out["positive_rate"] = (float(lo), float(hi))
        return out
