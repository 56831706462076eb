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
            shift = float(x[finite].mean()) if finite.any() else 0.0
            d = np.where(finite, x - shift, 0.0)
            rows_list = [rows for _, rows in group]
            sums = sum_values(cols, rows_list, np.stack([d, d * d])).tolist()
            codes = [finite.astype(np.int64)]
            if task == "binary":
                p = np.asarray(cols.predicted, np.float64)
                with np.errstate(invalid="ignore"):
                    codes.append(np.where(np.isnan(p), 2, 3 + positive(p)))
            hist = count_codes(cols, rows_list, np.stack(codes), 5).tolist()
            for (acc, _), (s1, s2), h in zip(group, sums, hist, strict=True):
                n_b = h[1]
                if n_b:
                    mean_d = s1 / n_b
                    acc.n, acc.mean, acc.m2 = chan_merge(acc.n, acc.mean, acc.m2, n_b,
                                                         shift + mean_d,
                                                         max(s2 - mean_d * s1, 0.0))
                if task == "binary":
                    acc.n_predicted += h[3] + h[4]
                    acc.n_positive += h[4]

    def merge(self, other: Any) -> None:
        self.check_mergeable(other)
        self.n, self.mean, self.m2 = chan_merge(self.n, self.mean, self.m2,
                                                other.n, other.mean, other.m2)
        self.n_predicted += other.n_predicted
        self.n_positive += other.n_positive

    def to_state(self) -> dict[str, Any]:
        return {"params": self.params(), "n": self.n, "mean": self.mean, "m2": self.m2,
                "n_predicted": self.n_predicted, "n_positive": self.n_positive}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ScoreMoments:
        acc = cls(**state_params(cls, state))
        acc.n, acc.mean, acc.m2 = int(state["n"]), float(state["mean"]), float(state["m2"])
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
        and the Wilson interval of ``positive_rate``; std has none here (bootstrap)."""
        mean_name = "prediction_mean" if self.task == "regression" else "score_mean"
        out = {mean_name: (math.nan, math.nan)}
        if self.n >= 2:
            half = z_value(level) * math.sqrt(max(self.m2, 0.0) / (self.n - 1) / self.n)
            out[mean_name] = (self.mean - half, self.mean + half)
        if self.task == "binary":
            lo, hi = wilson(self.n_positive, self.n_predicted, level)
            out["positive_rate"] = (float(lo), float(hi))
        return out
