"""Mean and standard deviation of the model's output (prediction side), mergeable; the one
pairwise merge of moments (:func:`merge_moments`) the drift summaries use too."""

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


Moments = tuple[Any, ...]
"""``(n, mean, M2)`` or ``(n, mean, M2, M3, M4)`` with ``M_k = Σ (x − mean)^k``: Python
numbers, or numpy arrays (one sample per element)."""


def _pick(cond: Any, x: Any, y: Any) -> Any:
    """``x if cond else y`` (``np.where`` of Python numbers)."""
    return x if cond else y


def _all_finite(x: Any) -> bool:
    return bool(np.isfinite(x).all())


def merge_moments(a: Moments, b: Moments) -> Moments:
    """The moments of two samples together, from theirs: one pairwise update for every
    caller (prediction moments, the drift summaries' folds and merges), on Python numbers
    or elementwise on numpy arrays.

    Notes
    -----
    Chan, Golub & LeVeque (1979) for the mean and M2, Pébay (2008) for M3 and M4, with
    ``δ = mean_b − mean_a`` and ``n = n_a + n_b``::

        mean = mean_a + δ·n_b/n
        M2   = M2_a + M2_b + δ²·n_a·n_b/n
        M3   = M3_a + M3_b + δ³·n_a·n_b·(n_a − n_b)/n² + 3δ·(n_a·M2_b − n_b·M2_a)/n
        M4   = M4_a + M4_b + δ⁴·n_a·n_b·(n_a² − n_a·n_b + n_b²)/n³
               + 6δ²·(n_a²·M2_b + n_b²·M2_a)/n² + 4δ·(n_a·M3_b − n_b·M3_a)/n

    Beyond float64 (finite values near ±1e300): where the mean overflows (``δ`` does) it is
    the weighted one, ``mean_a·(n_a/n) + mean_b·(n_b/n)``, finite; ``M2`` is ``+inf``, never
    NaN (a negative ``M2_b``, rounding, counts as 0); ``M3``/``M4`` may be ±inf or NaN
    (unknown: :func:`std_interval` is then NaN). An empty side adds nothing: the other
    comes back as it is, except the mean when ``n_a = 0`` (as above: ``mean_a + δ``
    to rounding). Arrays when the means are; counts then float64 (the same bits as Python
    ints while they stay below 5·10⁷).

    >>> merge_moments((2, 1.0, 2.0), (1, 4.0, 0.0))  # [0, 2] and [4]
    (3, 2.0, 8.0)
    >>> merge_moments((np.array([2.0]), np.array([1.5e308]), np.array([0.0])),
    ...               (np.array([2.0]), np.array([-1.5e308]), np.array([0.0])))[1:]
    (array([0.]), array([inf]))
    """
    if isinstance(a[1], np.ndarray) or isinstance(b[1], np.ndarray):
        with np.errstate(over="ignore", invalid="ignore"):
            return _merge(a, b, np.where, _all_finite, np.maximum)
    return _merge(a, b, _pick, math.isfinite, max)


def _merge(a: Moments, b: Moments, where: Any, finite: Any, maximum: Any) -> Moments:
    """:func:`merge_moments` with the elementwise ``where``, ``finite`` (all) and
    ``maximum`` of the arguments' kind."""
    n_a, mean_a, m2_a, *high_a = a
    n_b, mean_b, m2_b, *high_b = b
    n = n_a + n_b
    safe = where(n > 0, n, 1)
    d = mean_b - mean_a
    mean = mean_a + d * n_b / safe
    if not finite(mean):
        mean = where(np.isfinite(mean), mean, mean_a * (n_a / safe) + mean_b * (n_b / safe))
    both = (n_a > 0) & (n_b > 0)
    m2 = m2_a + maximum(m2_b, 0.0) + where(both, d * d * n_a * n_b / safe, 0.0)
    out = [n, where(n_b > 0, mean, mean_a), where(n_b > 0, m2, m2_a)]
    if high_a:
        (m3_a, m4_a), (m3_b, m4_b) = high_a, high_b
        m3 = (m3_a + m3_b + d * d * d * n_a * n_b * (n_a - n_b) / (safe * safe)
              + 3 * d * (n_a * m2_b - n_b * m2_a) / safe)
        m4 = (m4_a + m4_b
              + d * d * d * d * n_a * n_b * (n_a * n_a - n_a * n_b + n_b * n_b)
              / (safe * safe * safe)
              + 6 * d * d * (n_a * n_a * m2_b + n_b * n_b * m2_a) / (safe * safe)
              + 4 * d * (n_a * m3_b - n_b * m3_a) / safe)
        out += [where(both, m3, where(n_b > 0, m3_b, m3_a)),
                where(both, m4, where(n_b > 0, m4_b, m4_a))]
    return tuple(out)


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


def _batch_moments(n: np.ndarray, sums: np.ndarray, shift: float, unit: float) -> Moments:
    """``(n, mean, M2, M3, M4)`` per group from the sums ``sums[k−1] = Σ dᵏ`` of its ``n``
    values' deviations ``d = x/unit − shift`` (``k = 1..4``; ``unit`` a power of two). Back in
    the values' units one exact factor at a time: M2..M4 may be ±inf; a 0 (a constant run)
    stays 0, never NaN."""
    s1, s2, s3, s4 = sums
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        m = s1 / np.maximum(n, 1.0)
        m2 = np.maximum(s2 - m * s1, 0.0)
        m3 = s3 - 3 * m * s2 + 2 * n * (m * m * m)
        m4 = np.maximum(s4 - 4 * m * s3 + 6 * m * m * s2 - 3 * n * (m * m * m * m), 0.0)
        if unit != 1.0:
            m2, m3, m4 = m2 * unit * unit, m3 * unit * unit * unit, m4 * unit * unit * unit * unit
        return n, (shift + m) * unit, m2, m3, m4


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
    and std are NaN when no value was seen. Batches fold in with :func:`merge_moments`, so merged
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
        :func:`merge_moments` — equal to the per-group update to float rounding."""
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
            sums = sum_values(cols, rows_list, np.stack([d, d2, d2 * d, d2 * d2]))
            codes = [finite.astype(np.int64)]
            if task == "binary":
                p = np.asarray(cols.predicted, np.float64)
                with np.errstate(invalid="ignore"):
                    codes.append(np.where(np.isnan(p), 2, 3 + positive(p)))
            hist = count_codes(cols, rows_list, np.stack(codes), 5)
            batch = _batch_moments(hist[:, 1].astype(np.float64), sums.T, shift, unit)
            state = tuple(np.array(v, dtype=np.float64) for v in zip(
                *((acc.n, acc.mean, acc.m2, acc.m3, acc.m4) for acc, _ in group), strict=True))
            merged = merge_moments(state, batch)
            # an empty accumulator takes the batch's moments as they are
            out = np.where(state[0] == 0, np.array(batch), np.array(merged)).T.tolist()
            for (acc, _), (n, mean, m2, m3, m4), h in zip(group, out, hist.tolist(), strict=True):
                if h[1]:
                    acc.n, acc.mean, acc.m2, acc.m3, acc.m4 = int(n), mean, m2, m3, m4
                if task == "binary":
                    acc.n_predicted += h[3] + h[4]
                    acc.n_positive += h[4]

    def merge(self, other: Any) -> None:
        self.check_mergeable(other)
        b = (other.n, other.mean, other.m2, other.m3, other.m4)
        if self.n or not other.n:  # an empty accumulator takes the other's as they are
            b = merge_moments((self.n, self.mean, self.m2, self.m3, self.m4), b)
        self.n, self.mean, self.m2, self.m3, self.m4 = b
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
