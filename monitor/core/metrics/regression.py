"""Regression errors (label side): MAE, RMSE, MAPE, mean error, label mean."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from monitor.core.metrics._common import AccumulatorBase, ratio, state_params
from monitor.core.metrics.base import ModelColumns
from monitor.core.metrics.intervals import normal_mean

_SUMS = ("abs_error", "sq_error", "error", "abs_pct_error", "label")
# sums of squares for the intervals (NaN when restored from a state written before them)
_SQUARES = ("quad_error", "sq_abs_pct_error", "sq_label")


class RegressionErrors(AccumulatorBase):
    """Sums of errors ``e = predicted − label`` over labelled records with a prediction.

    Notes
    -----
    With ``n`` labelled records having a finite prediction, ``n₀`` of them with ``label ≠ 0``,
    and ``m`` labelled records in all::

        mae  = Σ|e| / n        rmse = sqrt(Σe² / n)        mean_error = Σe / n
        mape = Σ_{label≠0} |e| / |label| / n₀               label_mean = Σ label / m

    ``mean_error > 0`` means the model over-predicts. MAPE is a fraction (0.1 = 10 %), like
    scikit-learn's ``mean_absolute_percentage_error``; records with ``label == 0`` are left out
    (scikit-learn divides by ``max(|label|, eps)`` instead, which explodes). Each value is NaN
    when its count is 0.
    """

    kind = "regression_errors"
    needs_label = True

    def __init__(self) -> None:
        self.n = 0
        self.n_nonzero = 0
        self.n_label = 0
        self.sums = dict.fromkeys(_SUMS + _SQUARES, 0.0)

    def update(self, cols: ModelColumns) -> None:
        y = np.asarray(cols.label, np.float64)
        p = np.asarray(cols.predicted, np.float64)
        labelled = np.isfinite(y)
        self.n_label += int(np.count_nonzero(labelled))
        self.sums["label"] += float(y[labelled].sum())
        keep = labelled & np.isfinite(p)
        with np.errstate(over="ignore"):  # finite values past ~1e154: their squares are +inf
            self.sums["sq_label"] += float(np.square(y[labelled]).sum())
            e = p[keep] - y[keep]
            self.n += int(e.size)
            self.sums["abs_error"] += float(np.abs(e).sum())
            self.sums["sq_error"] += float(np.square(e).sum())
            self.sums["error"] += float(e.sum())
            self.sums["quad_error"] += float(np.square(np.square(e)).sum())
            nz = y[keep] != 0
            self.n_nonzero += int(np.count_nonzero(nz))
            ape = np.abs(e[nz]) / np.abs(y[keep][nz])
            self.sums["abs_pct_error"] += float(ape.sum())
            self.sums["sq_abs_pct_error"] += float(np.square(ape).sum())

    def merge(self, other: Any) -> None:
        self.check_mergeable(other)
        self.n += other.n
        self.n_nonzero += other.n_nonzero
        self.n_label += other.n_label
        for key in _SUMS + _SQUARES:
            self.sums[key] += other.sums[key]

    def to_state(self) -> dict[str, Any]:
        return {"params": {}, "n": self.n, "n_nonzero": self.n_nonzero, "n_label": self.n_label,
                "sums": {k: (None if v != v else v) for k, v in self.sums.items()}}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> RegressionErrors:
        acc = cls(**state_params(cls, state))
        acc.n, acc.n_nonzero = int(state["n"]), int(state["n_nonzero"])
        acc.n_label = int(state["n_label"])
        acc.sums = {key: float(state["sums"][key]) for key in _SUMS}
        acc.sums |= {key: float("nan") if state["sums"].get(key) is None
                     else float(state["sums"][key]) for key in _SQUARES}
        return acc

    def result(self) -> dict[str, float]:
        mse = ratio(self.sums["sq_error"], self.n)
        return {
            "mae": ratio(self.sums["abs_error"], self.n),
            "rmse": math.sqrt(mse) if not math.isnan(mse) else math.nan,
            "mape": ratio(self.sums["abs_pct_error"], self.n_nonzero),
            "mean_error": ratio(self.sums["error"], self.n),
            "label_mean": ratio(self.sums["label"], self.n_label),
        }

    def intervals(self, level: float) -> dict[str, tuple[float, float]]:
        """Normal-approximation intervals of the means (``mae``, ``mean_error``, ``mape``,
        ``label_mean``, and ``mse`` whose bounds' square roots bound ``rmse``)."""
        s = self.sums
        lo, hi = normal_mean(
            np.array([s["abs_error"], s["error"], s["abs_pct_error"], s["label"],
                      s["sq_error"]]),
            np.array([s["sq_error"], s["sq_error"], s["sq_abs_pct_error"], s["sq_label"],
                      s["quad_error"]]),
            np.array([self.n, self.n, self.n_nonzero, self.n_label, self.n]), level)
        lo, hi = lo.tolist(), hi.tolist()
        return {"mae": (max(lo[0], 0.0), hi[0]), "mean_error": (lo[1], hi[1]),
                "mape": (max(lo[2], 0.0), hi[2]), "label_mean": (lo[3], hi[3]),
                "rmse": (math.sqrt(max(lo[4], 0.0)) if lo[4] == lo[4] else math.nan,
                         math.sqrt(max(hi[4], 0.0)) if hi[4] == hi[4] else math.nan)}
